"""Security of the kernel: the access model (access.py), authentication, throttling, keys."""
