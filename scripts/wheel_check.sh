#!/usr/bin/env bash
# The distributions as a user gets them: build the sdist and, from it, the wheel; install the wheel
# alone into a fresh virtualenv; scaffold a project with `invoke-pachyderm init` and run
# `invoke --list` and `invoke render-spec` there. Called by .ci/run after the tests.
#
#   bash scripts/wheel_check.sh
#
# Dependencies come from pip's configured indexes (as in scripts/setup.sh) and its cache: the
# local mirror has no python-pachyderm, so a fully offline install is not possible here.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="$REPO_ROOT/.venv/bin/python"
log() { echo "wheel-check: $*" >&2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "python -m build (sdist, then the wheel from the sdist)"
"$PYTHON" -m build -o "$work/dist" "$REPO_ROOT" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
wheels=("$work"/dist/invoke_pachyderm-*.whl)
[[ ${#wheels[@]} == 1 && -f "${wheels[0]}" ]] || { log "ERROR: expected one wheel, got: ${wheels[*]}"; exit 1; }

log "fresh virtualenv with $(basename "${wheels[0]}")"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "${wheels[0]}" 2> >(grep -v "is ignored: it is neither" >&2)
export PATH="$work/venv/bin:$PATH"
unset VIRTUAL_ENV DOCKER_HOST PACHD_ADDRESS

export GIT_AUTHOR_NAME="wheel check" GIT_AUTHOR_EMAIL="wheel-check@example.invalid"
export GIT_COMMITTER_NAME="wheel check" GIT_COMMITTER_EMAIL="wheel-check@example.invalid"
project="$work/demo"
cd "$work"
invoke-pachyderm init demo --name demo --image localhost:5000/demo --input-repo words >/dev/null
cd "$project"
git init -q -b main && git add -A && git commit -q -m "Scaffold demo"

listed="$(invoke --list)"
for task in test build push render-spec deploy status rollback init hooks.install hooks.uninstall; do
    grep -qE "^  $task( |$)" <<<"$listed" || { log "ERROR: invoke --list lacks $task"; echo "$listed" >&2; exit 1; }
done
invoke render-spec
image="$(python -c 'import json; print(json.load(open("build/pipelines/demo.json"))["transform"]["image"])')"
[[ "$image" == "localhost:5000/demo:$(git rev-parse HEAD)" ]] || { log "ERROR: rendered image is $image"; exit 1; }
log "ok: the wheel installs alone, init scaffolds, invoke --list lists every task, render-spec renders $image"
