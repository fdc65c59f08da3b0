"""FSE platform kernel: configuration, storage, FHIR REST API, runtime services, app assembly."""
