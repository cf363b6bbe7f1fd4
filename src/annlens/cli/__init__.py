"""The command line interface (``annlens ...``)."""
