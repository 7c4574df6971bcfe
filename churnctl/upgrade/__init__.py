"""`churnctl profile upgrade`: plan, gates and the project-file write."""
