"""gRPC servicers: thin (validate, call, build the reply), one module per service."""
