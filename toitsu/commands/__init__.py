"""Subcommands; each module has ``register(subparsers)`` and sets ``args.run``."""
