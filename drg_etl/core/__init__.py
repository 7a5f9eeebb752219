"""The ground floor: what every other part of drg-etl shares and nothing here imports from above.

The canonical model and the warehouse's tables (declared once), the rule catalogue, a delivery and
its findings, the CPR number and its pseudonym, the vocabularies, and where the package's data lives.
"""
