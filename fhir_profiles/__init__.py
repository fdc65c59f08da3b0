"""AMO implementation guide as FHIR JSON and the validator that reads it (issue 3).

Imports nothing of ours.
"""
