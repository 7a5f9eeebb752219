"""The FHIR R4 layer: terminology, mapping the canonical model to resources, export."""
