"""Security services: for now the sealing of data at rest (see crypto)."""
