"""Security scanning (`churnctl scan`): Trivy, bandit, semgrep and pip-audit behind one small
interface (`model.Scanner`), merged into one table, JSON, SARIF 2.1.0 log and HTML page."""
