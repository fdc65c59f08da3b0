"""FHIR Bulk Data export (``$export``): what an export covers (scope.py), the NDJSON files
written from the store by keyset pages (ndjson.py), the jobs clients poll (jobs.py) and the
asyncio tasks that run them inside the server (runner.py). The HTTP side is
``fse.fhir_api.export``."""
