"""Doctor's web UI and services (issue 5)."""
