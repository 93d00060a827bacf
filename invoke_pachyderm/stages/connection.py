"""The pachd connection of a task: where pachd is (config), its token kept out of the output."""
from __future__ import annotations

from invoke_pachyderm.core.config import Settings, resolve_pachd
from invoke_pachyderm.core.output import Reporter


def connect(settings: Settings, reporter: Reporter):
    from invoke_pachyderm.backends.pachd import Cluster  # python_pachyderm: not for `invoke --list`

    target = resolve_pachd(settings)
    reporter.add_secret(target.token)
    return Cluster(target, settings.project)
