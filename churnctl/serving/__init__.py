"""Online serving (FastAPI) and batch scoring of the registry's production model.

Nothing here is imported by `churnctl --help`: the CLI imports these modules inside commands.
"""
