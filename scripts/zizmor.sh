#!/usr/bin/env bash
# zizmor (static analysis of GitHub Actions) over action.yml and a freshly scaffolded workflow:
# fails on any finding of medium severity or above. Offline: it asks no GitHub API.
#
#   bash scripts/zizmor.sh [EXTRA FILES...]
#
# zizmor is installed into .venv by scripts/setup.sh (a wheel from the package index).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ZIZMOR="${ZIZMOR:-.venv/bin/zizmor}"
[[ -x "$ZIZMOR" ]] || { echo "zizmor: $ZIZMOR not found; run bash scripts/setup.sh" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
.venv/bin/invoke-pachyderm init "$work/scaffold" --name zizmor-check --json >/dev/null
workflows=("$work/scaffold/.github/workflows/"*.yml)
echo "zizmor: action.yml, the scaffolded workflow(s) ${workflows[*]##*/}${*:+, $*}" >&2
"$ZIZMOR" --offline --no-progress --color never --min-severity medium action.yml "${workflows[@]}" "$@"
