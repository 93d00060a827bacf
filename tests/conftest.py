"""Shared fixtures. Service fixtures live in their own modules so each can be owned separately."""
from fixtures_services import *  # noqa: F401,F403  (docker engine, registries, busybox build contexts)
from fixtures_pachd import *  # noqa: F401,F403  (the pachd double)
