"""The operator's commands. Each module registers one top-level verb with ``register``."""
