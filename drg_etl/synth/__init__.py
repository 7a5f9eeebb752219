"""The synthetic cohort generator: per-patient histories, rendered as each center delivers."""
