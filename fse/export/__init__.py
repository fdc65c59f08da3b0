"""FHIR Bulk Data export (``$export``): the kick-off, status and file routes (routes.py), what
an export covers (scope.py), the NDJSON files written from the store by keyset pages (ndjson.py),
the jobs clients poll (jobs.py) and the asyncio tasks that run them inside the server
(runner.py). Above the FHIR API: its routes use the guard and the callers' audit."""
