"""A/B tests of model variants: sticky assignment, the assignment log, serving, the report."""
