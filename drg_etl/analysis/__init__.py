"""The national analysis (analysis.md): SQL over the warehouse's FHIR views, and the exact test."""
