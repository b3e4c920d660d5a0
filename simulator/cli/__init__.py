"""``python -m simulator``: the command line (``main``) and the live demo's pieces."""
