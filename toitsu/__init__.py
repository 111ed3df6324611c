"""The ``toitsu`` command line: the gateway's entry point and a client of its gRPC API."""
