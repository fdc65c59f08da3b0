"""Versioned FHIR resource store: tables, index extraction, search and the repository."""
