"""Built-in backends, one module each. Heavy libraries are imported inside methods only."""
