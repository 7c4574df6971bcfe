"""Compilers of churnctl's pipeline for other orchestrators (Kubeflow Pipelines)."""
