"""Spark pieces of churnctl: the session of a run and the feature job (features.spark)."""
