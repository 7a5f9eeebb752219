"""Test peers: stand-ins for the servers drg-etl talks to (a real sekmet-fhir server and a fault proxy)."""
