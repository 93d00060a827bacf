"""Shared fixtures. Service fixtures live in their own modules so each can be owned separately."""
import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # no "Got goaway" noise when a double stops

from fixtures_services import *  # noqa: F401,F403  (docker engine, registries, busybox build contexts)
from fixtures_pachd import *  # noqa: F401,F403  (the pachd double)
