"""FHIR R4 REST API: thin routes over the interactions, bundles and operations."""
