"""A protocol-faithful pachd double for tests; see ``server.py`` for what it does not model."""
from .server import PachdDouble

__all__ = ["PachdDouble"]
