"""Fixtures for the Docker Engine and registries (see scripts/services.sh)."""
