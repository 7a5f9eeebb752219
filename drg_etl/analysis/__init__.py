"""The national analysis (analysis.md): SQL over the FHIR layer's flat tables, and the exact test."""
