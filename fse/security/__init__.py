"""Access, above the store: the access model (access.py), who is calling (auth.py, sessions,
clients, users), throttling and lockout, the token endpoint and the security headers. The keys
and ciphers it uses are ``fse.crypto``."""
