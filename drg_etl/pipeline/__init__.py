"""The load: stage each delivery, write the staged deliveries in one transaction, rebuild the FHIR layer.

Plain library functions, called by ``drg-etl load`` and wrapped by the Dagster assets alike.
"""
