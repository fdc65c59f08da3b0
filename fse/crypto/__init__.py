"""Keys and ciphers, below the store: the CIN sealed at rest (cin.py), token and signature keys
(tokens.py, key_ring.py, provenance.py, signing.py), passwords (argon2), access codes, and the
key files they live in. No database and no HTTP: the store and the access layer build on it."""
