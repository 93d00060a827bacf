"""Benchmark of the fast-CI loop (issue 6), written to BENCHMARKS.md.

One command, from the repository root:

    .venv/bin/python benchmarks/run.py            # the whole run, ~5 minutes on 2 cores
    .venv/bin/python benchmarks/run.py --quick    # N=10 only, fewer repetitions (a smoke run)
    .venv/bin/python benchmarks/run.py --out -    # print the report instead of writing BENCHMARKS.md

Services: if DOCKER_HOST is not set, a private dockerd and registry are started with
scripts/services.sh (in a temporary SERVICES_DIR, on free ports) and stopped at the end; if it
is set, INVOKE_PACHYDERM_TEST_REGISTRY names the registry to push to (`source .services/env`).
pachd is the in-process PachdDouble, checking images against that registry.

What is measured (each deploy is `invoke deploy --json` in a subprocess, as CI runs it):

* A synthetic project of N pipelines (10, 50, 200) and K images (1, 3); pipeline i runs image i % K.
  Scenarios, in order: cold deploy (5 times, each in a project of its own: new repositories,
  new doubles, the images of the run before removed); redeploy of the same commit; a new commit
  touching no image nor spec; a commit changing one pipeline's spec; a commit changing one
  image's code. For each: wall time, builds and pushes (from the JSON: images[*].built /
  pushed) and pipeline versions bumped (from the double).
* The baseline, the documented loop as Pachyderm's GitHub action does it: `docker build` and
  `docker push` of every image tagged with the commit (docker SDK), then every spec sent with
  python-pachyderm's create_pipeline_from_request(update=True); a subprocess of its own, its own
  double, the same commits. Both share one daemon's build cache, so neither is handed the other's
  fresh layers: the baseline's cold build starts after our images are removed, and for "one
  image's code changed" each side is timed on a code change it is the first to build.
* `invoke --list` start-up, with the collection and with a tasks.py of one trivial task
  (median of 15 runs each), and `invoke --list` in each synthetic project (median of 10).
* Three images whose builds each sleep 2 s in a RUN step: `invoke build` with jobs=3 and jobs=1.
* render_specs (render + validate) of 1,000 specs: 1,000 template files, and one template
  whose loop gives 1,000 specs.
* Import cost of what a deploy needs beyond `invoke --list` (median of 5 fresh interpreters).

Before measuring, the package under test is byte-compiled (compileall): an editable install
under PYTHONDONTWRITEBYTECODE=1 would otherwise compile it again in every deploy, while the
floor's packages (and a pip-installed invoke-pachyderm) come with their .pyc files.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The invoke_pachyderm under test: this checkout, or BENCH_CODE_DIR (an export of another commit,
#: for before/after numbers from the same benchmark code; the deploy subprocesses get it first on
#: PYTHONPATH).
CODE = Path(os.environ.get("BENCH_CODE_DIR") or REPO).resolve()
VENV_BIN = Path(sys.executable).parent
BUSYBOX = Path("/bin/busybox")
sys.path.insert(0, str(CODE))

TEMPLATE = """{
  "pipeline": {"name": "%(name)s"},
  "description": "%(description)s",
  "transform": {"image": "{{ images.%(image)s.ref }}", "cmd": ["/busybox", "sh", "-c", "cp -r /pfs/images/* /pfs/out/"]},
  "input": {"pfs": {"repo": "images", "glob": "/*"}},
  "parallelism_spec": {"constant": 1},
  "resource_requests": {"memory": "64M", "cpu": 0.5}
}
"""


# ============================================================================ the baseline
def baseline_main(argv: list[str]) -> int:
    """`run.py --baseline PROJECT PACHD_PORT`: build+push every image, update every spec. Prints JSON."""
    project, port = Path(argv[0]), int(argv[1])
    import docker
    import python_pachyderm
    from google.protobuf import json_format
    from python_pachyderm.proto.v2.pps import pps_pb2

    config = json.loads((project / "baseline.json").read_text())
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True,
                            check=True).stdout.strip()
    client = docker.from_env(timeout=600)
    refs = {}
    for image in config["images"]:
        ref = f"{image['repository']}:{commit}"
        for chunk in client.api.build(path=str(project / image["context"]), tag=ref, rm=True, decode=True):
            if "error" in chunk:
                raise SystemExit(f"build of {ref}: {chunk['error']}")
        for chunk in client.api.push(image["repository"], tag=commit, stream=True, decode=True):
            if "error" in chunk:
                raise SystemExit(f"push of {ref}: {chunk['error']}")
        refs[image["name"]] = ref
    pachd = python_pachyderm.Client(host="127.0.0.1", port=port)
    existing = {info.pipeline.name for info in pachd.list_pipeline()}
    updated = 0
    for template in sorted((project / "templates").glob("*.json.j2")):
        text = template.read_text()
        for name, ref in refs.items():
            text = text.replace("{{ images.%s.ref }}" % name, ref)
        request = json_format.ParseDict(json.loads(text), pps_pb2.CreatePipelineRequest())
        request.update = request.pipeline.name in existing
        pachd.create_pipeline_from_request(request)
        updated += 1
    print(json.dumps({"builds": len(refs), "pushes": len(refs), "updated": updated}))
    return 0


# ============================================================================ services and helpers
class Services:
    def __init__(self):
        self.dir: Path | None = None
        self.env: dict[str, str] = {}

    def __enter__(self):
        if os.environ.get("DOCKER_HOST"):
            registry = os.environ.get("INVOKE_PACHYDERM_TEST_REGISTRY")
            if not registry:
                raise SystemExit("DOCKER_HOST is set but INVOKE_PACHYDERM_TEST_REGISTRY is not; "
                                 "`source .services/env`, or unset DOCKER_HOST to start services here")
            self.docker_host, self.registry = os.environ["DOCKER_HOST"], registry
            return self
        self.dir = Path(tempfile.mkdtemp(prefix="ipb-", dir="/tmp"))
        ports = free_ports(2)
        self.env = {**os.environ, "SERVICES_DIR": str(self.dir), "REGISTRY_PORT": str(ports[0]),
                    "AUTH_REGISTRY_PORT": str(ports[1])}
        log(f"starting services in {self.dir}")
        started = subprocess.run(["bash", str(REPO / "scripts/services.sh"), "start"], env=self.env,
                                 capture_output=True, text=True, timeout=300)
        if started.returncode != 0:
            self.__exit__()
            raise SystemExit(f"scripts/services.sh start failed:\n{started.stdout}{started.stderr}")
        values = {}
        for line in (self.dir / "env").read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            values[key.strip()] = value.strip().strip("'\"")
        self.docker_host, self.registry = values["DOCKER_HOST"], values["INVOKE_PACHYDERM_TEST_REGISTRY"]
        os.environ["DOCKER_HOST"] = self.docker_host
        return self

    def __exit__(self, *exc):
        if self.dir:
            subprocess.run(["bash", str(REPO / "scripts/services.sh"), "stop"], env=self.env,
                           capture_output=True, timeout=180)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def clean_env(docker_host: str, pachd: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("INVOKE_PACHYDERM_", "PACH", "GITHUB_")) and k not in ("CI",)}
    env.update(HOME=str(home), DOCKER_HOST=docker_host, PACHD_ADDRESS=pachd, GRPC_VERBOSITY="ERROR",
               PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if CODE != REPO:
        env["PYTHONPATH"] = str(CODE)
    return env


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    began = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return time.perf_counter() - began, completed


def check(completed: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if completed.returncode != 0:
        raise SystemExit(f"{what} failed (exit {completed.returncode}):\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    return completed


def git(project: Path, *args: str) -> str:
    return check(subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
                                cwd=project, capture_output=True, text=True), f"git {args[0]}").stdout.strip()


def commit(project: Path, message: str) -> None:
    git(project, "add", "-A")
    git(project, "commit", "-q", "--allow-empty", "-m", message)


def write_context(directory: Path, code: str, run_seconds: float = 0) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, directory / "busybox")
    (directory / "code.txt").write_text(code)
    lines = ["FROM scratch", "COPY busybox /busybox", "COPY code.txt /code.txt"]
    if run_seconds:
        lines.append(f'RUN ["/busybox", "sleep", "{run_seconds:g}"]')
    lines.append('ENTRYPOINT ["/busybox"]')
    (directory / "Dockerfile").write_text("\n".join(lines) + "\n")


def pyproject(images: list[dict], tag: str | None = None, jobs: int | None = None) -> str:
    lines = ["[tool.invoke-pachyderm]", 'test_command = "true"']
    if tag:
        lines.append(f'tag = "{tag}"')
    if jobs:
        lines.append(f"jobs = {jobs}")
    for image in images:
        lines += ["", "[[tool.invoke-pachyderm.images]]"] + [f'{k} = "{v}"' for k, v in image.items()]
    return "\n".join(lines) + "\n"


def median_time(command: list[str], cwd: Path, env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        seconds, completed = timed(command, cwd, env)
        check(completed, " ".join(command))
        times.append(seconds)
    return statistics.median(times)


# ============================================================================ the synthetic project
class Synthetic:
    def __init__(self, root: Path, services: Services, pipelines: int, images: int):
        from invoke_pachyderm.testing.pachd_double import PachdDouble

        self.root, self.n, self.k = root, pipelines, images
        self.nonce = uuid.uuid4().hex[:8]
        self.images = [
            {"name": f"img{j}", "repository": f"{services.registry}/bench-{self.nonce}/n{pipelines}k{images}-img{j}",
             "context": f"img{j}", "dockerfile": f"img{j}/Dockerfile"}
            for j in range(images)
        ]
        self.ours = PachdDouble(registry_url=f"http://{services.registry}", start_delay=0.05).start()
        self.base = PachdDouble(registry_url=f"http://{services.registry}", start_delay=0.05).start()
        for double in (self.ours, self.base):
            double.create_repo("images")
        home = root.parent / f"home-{root.name}"
        home.mkdir(parents=True, exist_ok=True)
        self.env = clean_env(services.docker_host, f"grpc://{self.ours.address}", home)
        root.mkdir(parents=True)
        for image in self.images:
            write_context(root / image["context"], f"{image['name']} {self.nonce} v1\n")
        for i in range(pipelines):
            self.write_template(i, "")
        (root / "tasks.py").write_text("from invoke_pachyderm import ns  # noqa: F401\n")
        (root / ".gitignore").write_text("build/\n")
        (root / "pyproject.toml").write_text(pyproject(self.images))
        baseline_images = [{**image, "repository": image["repository"] + "-baseline"} for image in self.images]
        (root / "baseline.json").write_text(json.dumps({"images": baseline_images}))
        git(root, "init", "-q", "-b", "main")
        commit(root, "initial")

    def write_template(self, index: int, description: str) -> None:
        path = self.root / "templates" / f"p{index:03d}.json.j2"
        path.parent.mkdir(exist_ok=True)
        path.write_text(TEMPLATE % {"name": f"p{index:03d}", "description": description,
                                    "image": f"img{index % self.k}"})

    def deploy(self) -> dict:
        before = self.ours.pipeline_versions()
        seconds, completed = timed([str(VENV_BIN / "invoke"), "deploy", "--json"], self.root, self.env)
        document = json.loads(check(completed, "invoke deploy").stdout)
        return {
            "seconds": seconds,
            "builds": sum(bool(i["built"]) for i in document["images"].values()),
            "pushes": sum(bool(i["pushed"]) for i in document["images"].values()),
            "bumped": bumped(before, self.ours.pipeline_versions()),
            "timings": document.get("timings"),
        }

    def baseline(self) -> dict:
        before = self.base.pipeline_versions()
        seconds, completed = timed([sys.executable, str(Path(__file__).resolve()), "--baseline", str(self.root),
                                    str(self.base.port)], self.root, self.env)
        counts = json.loads(check(completed, "baseline").stdout.strip().splitlines()[-1])
        return {"seconds": seconds, "builds": counts["builds"], "pushes": counts["pushes"],
                "bumped": bumped(before, self.base.pipeline_versions())}

    def remove_local_images(self) -> None:
        import docker

        client = docker.from_env()
        for image in self.images:
            for found in client.images.list(name=image["repository"]):
                client.images.remove(found.id, force=True)
        client.close()

    def stop(self) -> None:
        self.ours.stop()
        self.base.stop()


def bumped(before: dict, after: dict) -> int:
    return sum(version - before.get(name, 0) for name, version in after.items())


FLOOR = "import invoke.main, python_pachyderm"


def run_scenarios(workdir: Path, services: Services, n: int, k: int, repeats: int) -> dict:
    """Every scenario `repeats` times for each side (medians); each cold deploy in a project of its own."""
    log(f"project N={n} K={k}")
    cold_ours, cold_base = [], []
    for run in range(repeats - 1):  # the last cold deploy is the one of the project kept below
        throwaway = Synthetic(workdir / f"n{n}k{k}-cold{run}", services, n, k)
        try:
            cold_ours.append(throwaway.deploy())
            throwaway.remove_local_images()  # the baseline's cold build starts without our build cache
            cold_base.append(throwaway.baseline())
            throwaway.remove_local_images()
        finally:
            throwaway.stop()
    project = Synthetic(workdir / f"n{n}k{k}", services, n, k)
    rows: dict[str, dict] = {}
    try:
        cold_ours.append(project.deploy())
        project.remove_local_images()  # the baseline's cold build starts without our build cache
        cold_base.append(project.baseline())
        rows["cold deploy"] = {"ours": summarize(cold_ours), "baseline": summarize(cold_base)}

        ours, base, floor = [], [], []
        for _ in range(repeats):  # interleaved, so that the three share the machine's noise
            ours.append(project.deploy())
            base.append(project.baseline())
            floor.append(timed([sys.executable, "-c", FLOOR], project.root, project.env)[0])
        rows["redeploy, no change"] = {"ours": summarize(ours), "baseline": summarize(base)}

        ours, base = [], []
        for run in range(repeats):  # CI's usual no-op: a new commit that touches no image nor spec
            (project.root / "NOTES.md").write_text(f"notes {project.nonce} {run}\n")
            commit(project.root, "notes only")
            ours.append(project.deploy())
            base.append(project.baseline())
        rows["new commit, nothing changed"] = {"ours": summarize(ours), "baseline": summarize(base)}

        ours, base = [], []
        for run in range(repeats):  # a commit changing one spec, deployed by each side
            project.write_template(run % n, f"changed description {run}")
            commit(project.root, "one pipeline's spec")
            ours.append(project.deploy())
            base.append(project.baseline())
        rows["one pipeline's spec changed"] = {"ours": summarize(ours), "baseline": summarize(base)}

        # Whoever builds new content first pays for it and leaves the layer in the shared build
        # cache; so each side gets a code change of its own to build first.
        ours, base = [], []
        for run in range(repeats):
            write_context(project.root / "img0", f"img0 {project.nonce} ours {run}\n")
            commit(project.root, "one image's code")
            ours.append(project.deploy())
            write_context(project.root / "img0", f"img0 {project.nonce} baseline {run}\n")
            commit(project.root, "one image's code, again")
            base.append(project.baseline())
        rows["one image's code changed"] = {"ours": summarize(ours), "baseline": summarize(base)}

        list_seconds = median_time([str(VENV_BIN / "invoke"), "--list"], project.root, project.env, repeats)
        return {"n": n, "k": k, "rows": rows, "list_seconds": list_seconds,
                "floor_seconds": statistics.median(floor)}
    finally:
        project.stop()


def summarize(results: list[dict]) -> dict:
    middle = sorted(results, key=lambda r: r["seconds"])[len(results) // 2]
    return {
        "seconds": statistics.median(r["seconds"] for r in results),
        "builds": max(r["builds"] for r in results),
        "pushes": max(r["pushes"] for r in results),
        "bumped": max(r["bumped"] for r in results),
        "runs": len(results),
        "timings": middle.get("timings"),
    }


# ============================================================================ the other measurements
def startup(workdir: Path, services: Services, runs: int) -> dict:
    env = clean_env(services.docker_host, "grpc://127.0.0.1:1", workdir)
    results = {}
    for label, tasks in (
        ("with the collection", "from invoke_pachyderm import ns  # noqa: F401\n"),
        ("one trivial task", "from invoke import task\n\n\n@task\ndef hello(c):\n    pass\n"),
    ):
        project = workdir / f"startup-{len(results)}"
        project.mkdir()
        (project / "tasks.py").write_text(tasks)
        command = [str(VENV_BIN / "invoke"), "--list"]
        check(subprocess.run(command, cwd=project, env=env, capture_output=True, text=True), "invoke --list")  # warm .pyc
        results[label] = median_time(command, project, env, runs)
    return results


def parallel_builds(workdir: Path, services: Services) -> dict:
    log("3 images x 2 s builds, jobs=3 and jobs=1")
    root = workdir / "parallel"
    root.mkdir()
    images = [{"name": f"slow{j}", "repository": f"{services.registry}/bench-{uuid.uuid4().hex[:8]}/slow{j}",
               "context": f"slow{j}", "dockerfile": f"slow{j}/Dockerfile"} for j in range(3)]
    (root / "tasks.py").write_text("from invoke_pachyderm import ns  # noqa: F401\n")
    env = clean_env(services.docker_host, "grpc://127.0.0.1:1", workdir)
    git(root, "init", "-q", "-b", "main")
    results: dict[str, list[float]] = {"jobs=3": [], "jobs=1": []}
    for round_ in range(2):
        for label, jobs in (("jobs=3", 3), ("jobs=1", 1)):
            nonce = uuid.uuid4().hex  # a fresh context: no build cache for the RUN step
            for image in images:
                write_context(root / image["context"], f"{image['name']} {nonce}\n", run_seconds=2)
            (root / "pyproject.toml").write_text(pyproject(images, jobs=jobs))
            commit(root, f"{label} {round_}")
            seconds, completed = timed([str(VENV_BIN / "invoke"), "build", "--json"], root, env)
            document = json.loads(check(completed, "invoke build").stdout)
            assert all(i["built"] for i in document["images"].values())
            results[label].append(seconds)
    return {label: min(times) for label, times in results.items()}


def render_thousand(workdir: Path) -> dict:
    log("render + validate 1,000 specs")
    from invoke_pachyderm.core.artifacts import Artifacts, ImageArtifact
    from invoke_pachyderm.core.config import load_settings
    from invoke_pachyderm.core.gitinfo import GitInfo
    from invoke_pachyderm.stages import render
    from invoke_pachyderm.stages.render import render_specs
    from invoke_pachyderm.stages.validate import validate_spec

    os.environ["XDG_CACHE_HOME"] = str(workdir / "render-cache")  # no cache from an earlier run

    def forget_renders() -> None:
        """Cold: no compiled templates, no cached specs (the validator itself stays built)."""
        render.make_environment.cache_clear()
        if hasattr(render, "RenderCache"):
            render.RenderCache._by_project.clear()

    results = {}
    git_info = GitInfo(commit="0" * 40, branch="main", dirty=False, dirty_digest=None, repo_url=None)
    for label, layout in (("1,000 template files", "files"), ("one template, a loop of 1,000", "loop")):
        root = workdir / f"render-{layout}"
        (root / "templates").mkdir(parents=True)
        if layout == "files":
            for i in range(1000):
                (root / "templates" / f"p{i:04d}.json.j2").write_text(
                    TEMPLATE % {"name": f"p{i:04d}", "description": f"pipeline {i}", "image": "main"})
        else:
            body = TEMPLATE % {"name": "p{{ '%04d' % i }}", "description": "pipeline {{ i }}", "image": "main"}
            (root / "templates" / "all.json.j2").write_text(
                "[\n{% for i in range(1000) %}" + body.strip() + "{{ ',' if not loop.last }}\n{% endfor %}]\n")
        (root / "pyproject.toml").write_text('[tool.invoke-pachyderm]\nimage = "registry.example/edges"\n')
        settings = load_settings(root, environ={})
        artifacts = Artifacts(git=git_info, images={"main": ImageArtifact("main", "registry.example/edges", "0" * 40)})
        times = []
        for _ in range(3):
            forget_renders()
            began = time.perf_counter()
            specs = render_specs(settings, artifacts)
            times.append(time.perf_counter() - began)
        assert len(specs) == 1000
        results[label] = {"first": times[0], "best": min(times)}
        if hasattr(render, "RenderCache"):
            began = time.perf_counter()
            render_specs(settings, artifacts)
            results[label]["cached"] = time.perf_counter() - began
    specs = [s.spec for s in specs]
    began = time.perf_counter()
    for spec in specs:
        validate_spec(spec, "bench")
    results["validate only (1,000)"] = {"first": time.perf_counter() - began, "best": time.perf_counter() - began}
    return results


IMPORTS = [
    ("invoke_pachyderm.stages.flow", "invoke.main, invoke_pachyderm.tasks", "invoke_pachyderm.stages.flow"),
    ("python_pachyderm (grpc, protobuf in pure Python)", "invoke.main, invoke_pachyderm.stages.flow", "python_pachyderm"),
    ("docker (requests, urllib3)", "invoke.main, invoke_pachyderm.stages.flow, python_pachyderm", "docker"),
]


def compile_package() -> None:
    """.pyc files for the code under test, as a pip install writes them (see the module docstring)."""
    check(subprocess.run([sys.executable, "-m", "compileall", "-q", str(CODE / "invoke_pachyderm")],
                         capture_output=True, text=True), "compileall")


def import_costs(runs: int = 5) -> dict:
    results = {}
    for label, before, module in IMPORTS:
        code = f"import time, {before}\nt = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - t)"
        times = [float(check(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                            cwd=CODE), "import").stdout) for _ in range(runs)]
        results[label] = statistics.median(times)
    return results


def machine(services: Services) -> dict:
    import docker

    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "0")
    client = docker.from_env()
    docker_version = client.version().get("Version", "?")
    client.close()
    import google.protobuf
    from google.protobuf.internal import api_implementation

    return {
        "cpus": len(os.sched_getaffinity(0)),
        "memory": f"{int(memory) / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "docker": docker_version,
        "protobuf": f"{google.protobuf.__version__} ({api_implementation.Type()})",
        "os": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ============================================================================ the report
def fmt(result: dict) -> str:
    return f"{result['seconds']:.2f} s | {result['builds']} | {result['pushes']} | {result['bumped']}"


def report(data: dict, before: dict | None = None) -> str:
    m = data["machine"]
    out = [
        "# Benchmarks",
        "",
        "Written by `benchmarks/run.py` (issues 6 and 12). Rerun from the repository root with",
        "",
        "    .venv/bin/python benchmarks/run.py --save-json after.json",
        "",
        "It starts a private dockerd + registry with scripts/services.sh unless DOCKER_HOST is set",
        "(then INVOKE_PACHYDERM_TEST_REGISTRY names the registry), and a PachdDouble in-process.",
        "`BENCH_CODE_DIR=<an export of another commit>` measures that commit's code with the same",
        "benchmark (`--before before.json` puts its numbers beside these).",
        f"This run ({data.get('label', 'this checkout')}) took {data['total_seconds'] / 60:.1f} minutes.",
        "",
        "## Machine",
        "",
        f"- CPUs (nproc): {m['cpus']}; memory: {m['memory']}",
        f"- Python {m['python']}; Docker Engine {m['docker']}; protobuf {m['protobuf']}",
        f"- {m['os']}",
        f"- {m['date']}",
        "- Shared: the 2 cores serve other sessions too, so absolute times are noisy;",
        "  ours and the baseline alternate within each scenario, so they share the noise.",
        "",
        "## Deploys: ours (`invoke deploy`) against the baseline (build + push every image, update every spec)",
        "",
        "Wall clock of one process each, as a CI step; medians of "
        f"{data['repeats']} runs per side (each cold deploy in a new project: new repositories, new doubles). \"Bumped\" is pipeline versions",
        "created (a new pipeline counts 1), the worst run. Each spec-change run is a new commit changing",
        "one spec; each code-change run a new commit changing image 0's code (pipelines run image i % K).",
        "",
        "| N | K | scenario | ours | builds | pushes | bumped | baseline | builds | pushes | bumped | ours / baseline |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for project in data["projects"]:
        for scenario, row in project["rows"].items():
            ratio = row["ours"]["seconds"] / row["baseline"]["seconds"]
            out.append(f"| {project['n']} | {project['k']} | {scenario} | {fmt(row['ours'])} | {fmt(row['baseline'])} "
                       f"| {ratio:.2f}× |")
    if before:
        out += ["", f"### The same scenarios before ({before.get('label', 'before')}, same benchmark code, "
                f"{before['machine']['date']})", "",
                "| N | K | scenario | before: ours | builds | pushes | bumped | baseline | ours / baseline | after: ours | bumped |",
                "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        after = {(p["n"], p["k"], sc): row for p in data["projects"] for sc, row in p["rows"].items()}
        for project in before["projects"]:
            for scenario, row in project["rows"].items():
                now = after.get((project["n"], project["k"], scenario))
                ratio = row["ours"]["seconds"] / row["baseline"]["seconds"]
                now_text = f"{now['ours']['seconds']:.2f} s | {now['ours']['bumped']}" if now else "- | -"
                out.append(f"| {project['n']} | {project['k']} | {scenario} | {fmt(row['ours'])} | "
                           f"{row['baseline']['seconds']:.2f} s | {ratio:.2f}× | {now_text} |")
    stages = [(p, sc, row["ours"]["timings"]) for p in data["projects"] for sc, row in p["rows"].items()
              if row["ours"].get("timings")]
    if stages:
        out += ["", "### Where ours spends its time (`timings` of the median run's `--json`)", "",
                "| N | K | scenario | stages |", "|---:|---:|---|---|"]
        for project, scenario, timings in stages:
            text = " · ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items())
            out.append(f"| {project['n']} | {project['k']} | {scenario} | {text} |")
    out += ["", "## No-op deploy against the import floor of its own clients", "",
            f"Floor: `python -c \"{FLOOR}\"` in the same venv and project, median of {data['repeats']}, each run",
            "right after a no-op deploy and a baseline run (so all three share the machine's load).", "",
            "\"At a new commit\": a commit touching no image nor spec (the redeploy above is of the same commit).", "",
            "| N | K | no-op deploy | import floor | no-op / floor | at a new commit | / floor | `invoke --list` |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for project in data["projects"]:
        noop = project["rows"]["redeploy, no change"]["ours"]["seconds"]
        fresh = project["rows"].get("new commit, nothing changed", {}).get("ours", {}).get("seconds")
        fresh_text = f"{fresh:.3f} s | {fresh / project['floor_seconds']:.2f}×" if fresh else "- | -"
        out.append(f"| {project['n']} | {project['k']} | {noop:.3f} s | {project['floor_seconds']:.3f} s | "
                   f"{noop / project['floor_seconds']:.2f}× | {fresh_text} | {project['list_seconds']:.3f} s |")
    out += ["", "## Start-up, parallel builds, rendering", "", "| measurement | result |", "|---|---:|"]
    s = data["startup"]
    out.append(f"| `invoke --list` with the collection (median of {data['startup_runs']}) | {s['with the collection']:.3f} s |")
    out.append(f"| `invoke --list`, tasks.py of one trivial task (median of {data['startup_runs']}) | {s['one trivial task']:.3f} s |")
    p = data["parallel"]
    out.append(f"| `invoke build`, 3 images each sleeping 2 s, jobs=3 (best of 2) | {p['jobs=3']:.2f} s |")
    out.append(f"| `invoke build`, 3 images each sleeping 2 s, jobs=1 (best of 2) | {p['jobs=1']:.2f} s |")
    for label, r in data["render"].items():
        if label.startswith("validate"):
            out.append(f"| validate_spec alone, 1,000 rendered specs | {r['first']:.3f} s |")
        else:
            out.append(f"| render_specs, {label}, no cache: first call / best of 3 | "
                       f"{r['first']:.3f} s / {r['best']:.3f} s |")
            if "cached" in r:
                out.append(f"| render_specs, {label}, unchanged (render cache) | {r['cached']:.3f} s |")
    for label, seconds in data["imports"].items():
        out.append(f"| import of {label}, on top of what comes before it (median of 5) | {seconds * 1000:.0f} ms |")
    out += ["", "## Targets (issue 12)", ""] + targets(data) + ["", NOTES]
    return "\n".join(out) + "\n"


def verdict(met: bool, missed: str = "") -> str:
    return "yes" if met else f"NO{', ' + missed if missed else ''}"


def targets(data: dict) -> list[str]:
    lines = ["| goal | measured | met? |", "|---|---|---|"]
    for project in data["projects"]:
        shape = f"N={project['n']} K={project['k']}"
        slower = [f"{sc} {row['ours']['seconds']:.2f} vs {row['baseline']['seconds']:.2f} s"
                  for sc, row in project["rows"].items() if row["ours"]["seconds"] > row["baseline"]["seconds"]]
        lines.append(f"| 1. {shape}: every scenario no slower than the baseline | "
                     f"{'; '.join(slower) or 'all no slower'} | {verdict(not slower)} |")
    for k in sorted({p["k"] for p in data["projects"]}):
        noops = {p["n"]: p["rows"]["redeploy, no change"]["ours"]["seconds"] for p in data["projects"] if p["k"] == k}
        low, high = min(noops), max(noops)
        ratio = noops[high] / noops[low]
        lines.append(f"| 1. K={k}: no-op flat in N (N={high} / N={low}) | {noops[high]:.3f} s / {noops[low]:.3f} s = "
                     f"{ratio:.2f}× | {verdict(ratio <= 1.25, 'grows with N')} |")
    for project in data["projects"]:
        noop = project["rows"]["redeploy, no change"]["ours"]
        ratio = noop["seconds"] / project["floor_seconds"]
        over = noop["seconds"] - 1.25 * project["floor_seconds"]
        lines.append(f"| 2. N={project['n']} K={project['k']}: no-op ≤ 1.25× import floor | {ratio:.2f}× "
                     f"(0 builds/pushes/bumps: {noop['builds'] == noop['pushes'] == noop['bumped'] == 0}) | "
                     f"{verdict(ratio <= 1.25, f'{over:.2f} s over')} |")
    for project in data["projects"]:
        row = project["rows"]["one pipeline's spec changed"]["ours"]
        lines.append(f"| 3. N={project['n']} K={project['k']}: a spec-only commit bumps exactly 1 (default settings) | "
                     f"{row['bumped']} bumped, {row['builds']} builds | {verdict(row['bumped'] == 1 and row['builds'] == 0)} |")
    for label, r in data["render"].items():
        if label.startswith("validate"):
            continue
        lines.append(f"| 5. render + validate 1,000 specs < 0.5 s ({label}, no cache, first call) | {r['first']:.3f} s | "
                     f"{verdict(r['first'] < 0.5, 'missed by %.2f s' % (r['first'] - 0.5))} |")
    return lines


NOTES = """## Notes (issue 12): what the code measured here does

- **Byte code.** The package under test is byte-compiled (compileall) before anything is timed,
  as a pip install leaves it; the environment sets PYTHONDONTWRITEBYTECODE=1, so an editable
  install would otherwise compile it again in every deploy while the floor's packages do not.
- **Goal 3.** With the default tag each image is tagged with the last commit that changed its
  build inputs, and a spec records only the images it names: a spec-only commit bumps exactly
  one pipeline and builds nothing; new code in one of K images bumps only the pipelines running it.
- **Goal 4.** One LABEL step per build, `created` from the commit time: covered by tests
  (tests/test_images.py, tests/test_fast_ci.py), not timed here.
- **Overlap.** A deploy's registry look-ups and builds begin as soon as the tags are known, in
  threads beside rendering, pachd's reads, the plan and the tests (stages/build_push.py Builds);
  nothing is pushed until the plan and the tests passed. python_pachyderm is imported once the
  build is with the daemon (the two imports end to end rather than sharing the GIL). The
  baseline does each step after the other.
- **Parallel builds.** `jobs` defaults to the CPUs + 4 (at most 32): the daemon does the
  building and a build mostly waits, so the K=3 cold deploys build their 3 images at once on
  these 2 cores (before 9867102: 2 at once, then the third). The baseline builds one by one.
- **Apply.** Every create/update goes to pachd in one BatchTransaction (backends/pachd.py
  Cluster.apply); on pachd >= 2.8 each request carries pachd's own effective spec, from one
  CreatePipelineV2 dry run per pipeline, sent at the end of the plan so that pachd answers during
  the build (an answer is reused for a spec that then only gained the pushed digest's
  annotations, re-sent otherwise or when the defaults changed meanwhile). The versions pachd
  gave are read back with one ListPipeline (not one InspectPipeline per pipeline).
- **Exit.** Every task freezes the objects left at exit (gc.freeze in an atexit handler), so the
  interpreter's shutdown collections skip python-pachyderm's pure-Python protobuf descriptors
  and the rendered specs (~0.1-0.2 s). The baseline exits as Python does.
- **No-op path.** A no-op imports neither Jinja2 nor jsonschema: templates whose only Jinja is
  `{{ name.path }}` are filled in without jinja2 (stages/render.py fill_simple), and specs are
  checked by a compiled yes/no schema check (stages/fast_schema.py), jsonschema being asked only
  for the message of an invalid spec. There is no render cache: every deploy renders every
  template. On pachd >= 2.8 a no-op does not import python-pachyderm either: GetVersion,
  ListPipeline and the cluster/project defaults are asked with hand-encoded requests from a
  thread started at once (backends/pachd_early.py), each PipelineInfo is read from its wire
  bytes (pachd_wire.py, in that thread), and specs are compared with a committed table of
  CreatePipelineRequest's descriptor (pps_table.json, tested equal to python-pachyderm's). A
  pipeline whose stored user spec is, but for provenance annotations, the JSON this deploy would
  send is unchanged without protobuf; "did the defaults change?" compares dicts first.
  python-pachyderm is imported in that thread only when a change is likely (a pipeline deployed
  from another commit, none deployed, a dirty tree): the "no change" rows redeploy the same
  commit. Git: rev-parse, status and remote side by side, then two ls-files and one `git log`
  for all images.
- **The double.** pachd here is the in-process Python double, on the same 2 cores. Its
  ListPipeline sends each stored PipelineInfo serialized once (state and reason spliced in) and
  asks the registry once per image per call, as pachd streams stored records; it still answers
  a CreatePipelineV2 dry run and runs the batch's creates in pure-Python protobuf, costs that
  grow with N and that a real pachd does not have in the same measure. Both sides use it.
- **Flat in N.** What a no-op does per pipeline: one PipelineInfo (~2.7 KB) streamed by
  ListPipeline and read from its wire bytes, one template read and filled, the spec checked,
  compared with the stored one, checked against today's defaults, and its out_dir file read
  back. That is ~0.9 ms of the main thread's CPU per pipeline (in-process, imports warm: 20 ms
  at N=10, 186 ms at N=200), on top of which the listing thread and the double share the
  2 cores. The listing cannot be constant on a real pachd either: its listPipeline asks the
  jobs table for each pipeline's latest job state (src/server/pps/server/api_server.go,
  getLatestJobState). The N=200 / N=10 ratio moves with the machine's load as much as with the
  code: at K=1, e3f5503 measured 1.45× (14:53 UTC run) and 0da2e74, whose no-op differs from it
  only in how the build threads are pooled, 1.19× (17:01 UTC run, the "before" below).
- The table's rows are medians of the runs shown, ours and the
  baseline alternating, on 2 cores shared with other jobs.
"""


# ============================================================================ main
def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--baseline":
        return baseline_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=10 only, fewer repetitions")
    parser.add_argument("--out", default=str(REPO / "BENCHMARKS.md"), help="report file, or - for stdout")
    parser.add_argument("--save-json", help="also write the measurements to this JSON file")
    parser.add_argument("--from-json", help="write the report from saved measurements, measuring nothing")
    parser.add_argument("--before", help="saved measurements of the code before, shown beside these")
    parser.add_argument("--label", default="this checkout", help="what code this run measures")
    parser.add_argument("--shapes", default="10x1,10x3,50x1,50x3,200x1,200x3", help="NxK,... of the synthetic projects")
    args = parser.parse_args()
    before = json.loads(Path(args.before).read_text()) if args.before else None
    if args.from_json:
        return write_report(report(json.loads(Path(args.from_json).read_text()), before), args.out)
    if not BUSYBOX.is_file():
        raise SystemExit(f"{BUSYBOX} not found: install busybox-static (scripts/setup.sh)")
    compile_package()
    began = time.perf_counter()
    shapes = [tuple(map(int, s.split("x"))) for s in args.shapes.split(",")]
    if args.quick and args.shapes == parser.get_default("shapes"):
        shapes = [(10, 1), (10, 3)]
    repeats = 3 if args.quick else 5
    startup_runs = 10 if args.quick else 15
    with Services() as services, tempfile.TemporaryDirectory(prefix="ipb-work-") as tmp:
        workdir = Path(tmp)
        data = {"machine": machine(services), "repeats": repeats, "startup_runs": startup_runs, "label": args.label}
        data["startup"] = startup(workdir, services, startup_runs)
        data["projects"] = [run_scenarios(workdir, services, n, k, repeats) for n, k in shapes]
        data["parallel"] = parallel_builds(workdir, services)
        data["render"] = render_thousand(workdir)
        data["imports"] = import_costs()
        data["total_seconds"] = time.perf_counter() - began
    if args.save_json:
        Path(args.save_json).write_text(json.dumps(data, indent=1))
    log(f"measured in {data['total_seconds']:.0f} s")
    return write_report(report(data, before), args.out)


def write_report(text: str, out: str) -> int:
    if out == "-":
        print(text)
    else:
        Path(out).write_text(text)
        log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
