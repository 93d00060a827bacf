"""invoke-pachyderm: build, push and deploy Pachyderm pipelines from git commits.

In a project's tasks.py::

    from invoke_pachyderm import ns
"""
__version__ = "0.1.0"


def __getattr__(name):
    # `ns` is built on first use so that importing submodules (e.g. the pachd double) stays light.
    if name == "ns":
        from invoke_pachyderm.tasks import ns

        return ns
    raise AttributeError(name)
