"""This project's own dev tasks, dogfooding the collection: `invoke test` runs our suite."""
import subprocess
import sys

from invoke import Collection, task

from invoke_pachyderm import ns as pachyderm_ns

ns = Collection()
ns.add_task(pachyderm_ns.tasks["test"], name="test")


@task
def schema(c):
    """Regenerate stages/pipeline_spec.schema.json and backends/pps_table.json from python-pachyderm's protobufs."""
    with open("invoke_pachyderm/stages/pipeline_spec.schema.json", "w") as handle:
        subprocess.run([sys.executable, "-m", "invoke_pachyderm.stages.schema_gen"], stdout=handle, check=True)
    subprocess.run([sys.executable, "-m", "invoke_pachyderm.backends.pps_table"], check=True)


@task
def bench(c):
    """Run the benchmark (benchmarks/run.py) and rewrite BENCHMARKS.md."""
    subprocess.run([sys.executable, "benchmarks/run.py"], check=True)


ns.add_task(schema)
ns.add_task(bench)
