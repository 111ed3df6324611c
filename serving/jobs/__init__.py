"""Training and export jobs run by the gateway (ModelService): persisted, supervised subprocesses."""
