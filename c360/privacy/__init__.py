"""Privacy and security primitives: the keyring, field encryption and pseudonyms, the PII scanner."""
