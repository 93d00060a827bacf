"""Fixtures for the pachd double."""
