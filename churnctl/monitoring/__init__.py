"""Monitoring: feature drift (PSI, KS), its reports, and the gauges Prometheus scrapes.

Nothing here is imported by `churnctl --help`; `gauges` stays light (the serving app reads it
on every scrape), the rest imports pandas and friends and is loaded inside commands.
"""
