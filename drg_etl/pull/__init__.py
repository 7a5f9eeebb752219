"""Pulling deliveries from the centers' systems (pull.md): REDCap's API for rh, FHIR Bulk Data for aauh.

A pull writes a delivery into the inbox in exactly the center's format (extracts.md), whole or not at
all; everything downstream (the survey, the load, the Dagster sensor) reads it as it reads a file drop.
"""
