"""Tools that agents call: a registry of JSON-schema-typed tools (registry.py), the built-ins
(builtins.py) and the sandbox that runs anything that executes code (sandbox.py)."""
