"""Orchestrators that run churnctl's stages through an outside tool.

Each outside tool (DVC here; Kubeflow Pipelines compiles in `churnctl.pipelines`) runs one
churnctl stage per step with `churnctl stage run STAGE`, which uses the same Runner, cache
and backends as `churnctl run`: a pipeline gives the same features and metrics whatever
orchestrates it.
"""
