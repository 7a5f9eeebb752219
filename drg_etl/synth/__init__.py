"""The synthetic cohort generator: per-patient histories, rendered as each center delivers."""

#: The generator's seed when none is given (``drg-etl generate --seed``): here, so the command line names it
#: without importing the generator.
DEFAULT_SEED = 2021
