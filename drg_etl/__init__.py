"""drg-etl: a data-quality and standards-mapping ETL for national DRG-stimulation registries."""

__version__ = "0.1.0"
