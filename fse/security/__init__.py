"""Security of the kernel: throttling now; authentication and scopes arrive with issue 3."""
