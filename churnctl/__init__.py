"""churnctl: one CLI for a customer-churn ML system; a profile picks each stage's backend."""

__version__ = "0.1.0"
