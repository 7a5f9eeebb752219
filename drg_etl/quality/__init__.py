"""Data quality: the rule catalogue, quarantine and reconciliation."""
