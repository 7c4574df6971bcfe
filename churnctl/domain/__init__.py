"""Pure domain code shared by backends: data model, generator, features, metrics, registry."""
