"""Authentication and authorization: bearer tokens mapped to roles on every RPC (issue 16)."""
