"""Git hooks: real `git push` to a local bare repository, with the hook installed by `invoke hooks.install`."""
from __future__ import annotations

import os
from pathlib import Path

from scaffold_helpers import (
    commit_all,
    git,
    home,  # noqa: F401  (fixture)
    invoke,
    json_stdout,
    local_env,  # noqa: F401  (fixture)
    run,
    CLI,
)

USER_HOOK = """#!/bin/sh
# the user's own hook
echo "args: $*" >>"$(git rev-parse --show-toplevel)/../user-hook.log"
cat >>"$(git rev-parse --show-toplevel)/../user-hook.log"
exit "${USER_HOOK_EXIT:-0}"
"""


def make_repo(tmp_path: Path, env, subdir: str = "") -> tuple[Path, Path]:
    """A scaffolded project (in `subdir` of the work tree, if given), committed, with a bare origin."""
    top = tmp_path / "work"
    project = top / subdir if subdir else top
    project.mkdir(parents=True)
    run([CLI, "init", project, "--name", "hooked", "--image", "localhost:5000/hooked"], tmp_path, env, check=True)
    git(top, env, "init", "-q", "-b", "main")
    commit_all(top, env, "Scaffold")
    remote = tmp_path / "remote.git"
    git(tmp_path, env, "init", "-q", "--bare", str(remote))
    git(top, env, "remote", "add", "origin", str(remote))
    return top, project


def without_venv(env) -> dict[str, str]:
    """As git is often run (an IDE, a GUI): the virtual environment is not on PATH."""
    venv_bin = str(Path(env["PATH"].split(os.pathsep)[0]))
    return {**env, "PATH": os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)}


def break_tests(project: Path) -> None:
    transform = next(project.glob("src/*/transform.py"))
    transform.write_text(transform.read_text().replace('"words": len(text.split())', '"words": 0'))


def remote_head(tmp_path: Path, env) -> str:
    return git(tmp_path / "remote.git", env, "rev-parse", "--verify", "-q", "refs/heads/main", check=False).stdout.strip()


def test_pre_push_blocks_failing_tests_runs_the_existing_hook_and_uninstall_restores(tmp_path, local_env):
    top, project = make_repo(tmp_path, local_env)
    hooks_dir = top / ".git/hooks"
    (hooks_dir / "pre-push").write_text(USER_HOOK)
    (hooks_dir / "pre-push").chmod(0o755)

    installed = json_stdout(invoke(project, local_env, "hooks.install", "--json"))
    (hook,) = installed["hooks"]
    assert hook["action"] == "installed" and hook["chained"] == str(hooks_dir / "pre-push.invoke-pachyderm-chained")
    assert installed["tasks"] == ["test", "render-spec --check"]
    assert (hooks_dir / "pre-push.invoke-pachyderm-chained").read_text() == USER_HOOK

    # Failing tests: the push is refused, nothing reaches the remote.
    break_tests(project)
    broken = commit_all(top, local_env, "Break the word count")
    env = without_venv(local_env)
    pushed = git(top, env, "push", "-q", "origin", "main", check=False)
    assert pushed.returncode != 0
    assert "invoke-pachyderm pre-push hook: `invoke test` failed (exit 5); push refused" in pushed.stderr
    assert remote_head(tmp_path, env) == ""
    # The user's hook ran first, with git's arguments and the refs on stdin.
    log = (tmp_path / "user-hook.log").read_text().splitlines()
    assert log[0] == f"args: origin {tmp_path / 'remote.git'}"
    assert log[1].split() == ["refs/heads/main", broken, "refs/heads/main", "0" * 40]

    # Fixed: the push goes through.
    git(top, env, "revert", "--no-edit", "HEAD")
    fixed = git(top, env, "rev-parse", "HEAD").stdout.strip()
    pushed = git(top, env, "push", "-q", "origin", "main", check=False)
    assert pushed.returncode == 0, pushed.stderr
    assert "invoke-pachyderm pre-push hook: invoke render-spec --check" in pushed.stderr
    assert remote_head(tmp_path, env) == fixed

    # A failing user hook still blocks the push.
    (project / "README.md").write_text("changed\n")
    commit_all(top, env, "Docs")
    blocked = git(top, {**env, "USER_HOOK_EXIT": "3"}, "push", "-q", "origin", "main", check=False)
    assert blocked.returncode != 0 and remote_head(tmp_path, env) == fixed
    assert "invoke test" not in blocked.stderr

    # Installing again changes nothing; uninstalling puts the user's hook back.
    before = (hooks_dir / "pre-push").read_text()
    again = json_stdout(invoke(project, local_env, "hooks.install", "--json"))
    assert again["hooks"][0]["action"] == "unchanged"
    assert (hooks_dir / "pre-push").read_text() == before
    assert (hooks_dir / "pre-push.invoke-pachyderm-chained").read_text() == USER_HOOK

    removed = json_stdout(invoke(project, local_env, "hooks.uninstall", "--json"))
    assert [(h["hook"], h["action"]) for h in removed["hooks"]] == [("pre-push", "restored"), ("post-commit", "absent")]
    assert (hooks_dir / "pre-push").read_text() == USER_HOOK
    assert os.access(hooks_dir / "pre-push", os.X_OK)
    assert not (hooks_dir / "pre-push.invoke-pachyderm-chained").exists()


def test_hooks_path_and_a_project_in_a_subdirectory(tmp_path, local_env):
    top, project = make_repo(tmp_path, local_env, subdir="pipelines/hooked")
    git(top, local_env, "config", "core.hooksPath", ".githooks")

    result = invoke(project, local_env, "hooks.install", "--post-commit")
    assert f"pre-push: installed {top / '.githooks/pre-push'}" in result.stdout
    assert (top / ".githooks/pre-push").is_file() and (top / ".githooks/post-commit").is_file()
    assert not (top / ".git/hooks/pre-push").exists()

    # A spec template that does not render blocks the push (render-spec --check).
    template = project / "templates/pipeline.json.j2"
    template.write_text(template.read_text().replace("{{ image }}", "{{ imag }}"))
    env = without_venv(local_env)
    committed = git(top, env, "add", "-A")
    committed = git(top, env, "commit", "-q", "-m", "Typo")
    assert "invoke-pachyderm post-commit hook: invoke render-spec --check" in committed.stderr  # cannot block
    pushed = git(top, env, "push", "-q", "origin", "main", check=False)
    assert pushed.returncode != 0
    assert "templates/pipeline.json.j2" in pushed.stderr and "imag" in pushed.stderr
    assert remote_head(tmp_path, env) == ""

    template.write_text(template.read_text().replace("{{ imag }}", "{{ image }}"))
    fixed = commit_all(top, env, "Fix typo")
    assert git(top, env, "push", "-q", "origin", "main", check=False).returncode == 0
    assert remote_head(tmp_path, env) == fixed

    removed = json_stdout(invoke(project, local_env, "hooks.uninstall", "--json"))
    assert [h["action"] for h in removed["hooks"]] == ["removed", "removed"]
    assert list((top / ".githooks").iterdir()) == []


def test_a_deletion_only_push_skips_the_tasks_and_a_foreign_hook_is_left_alone(tmp_path, local_env):
    top, project = make_repo(tmp_path, local_env)
    invoke(project, local_env, "hooks.install")
    git(top, local_env, "push", "-q", "origin", "main:topic")  # tests pass: pushed
    break_tests(project)
    commit_all(top, local_env, "Broken")
    deleted = git(top, local_env, "push", "-q", "origin", ":topic", check=False)
    assert deleted.returncode == 0, deleted.stderr
    assert "invoke test" not in deleted.stderr

    # Someone replaced our hook by hand: uninstall leaves theirs; install will not clobber it twice.
    hook = top / ".git/hooks/pre-push"
    hook.write_text("#!/bin/sh\nexit 0\n")
    removed = json_stdout(invoke(project, local_env, "hooks.uninstall", "--json"))
    assert removed["hooks"][0]["action"] == "skipped"
    assert hook.read_text() == "#!/bin/sh\nexit 0\n"
