"""Kubernetes deployment: render (kustomize), validate (real schemas), diff and apply.

Every heavy library (kubernetes, kubernetes_validate, yaml) is imported inside the functions
that need it, so importing this package costs nothing at CLI start-up.
"""
