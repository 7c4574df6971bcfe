"""The Feast feature store of the `features.feast` backend: the generated feature repository,
the point-in-time join, materialization and the online look-ups serving uses.

Feast costs ~10 s to import: only `store` and `online` import it, inside their functions, and
nothing here is imported by `--help`, `plan` or `profile`.
"""
