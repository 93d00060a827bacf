from invoke_pachyderm import ns  # noqa: F401
