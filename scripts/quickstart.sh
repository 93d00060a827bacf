#!/usr/bin/env bash
# Quickstart: install everything, start local services and run the main job, `invoke deploy`
# of examples/edges. Run as root on a fresh Debian machine:
#
#   bash scripts/quickstart.sh
#
# Local services: a private Docker Engine, a registry on 127.0.0.1:5000, and the PACHD DOUBLE —
# a local stand-in for pachd (invoke_pachyderm.testing.pachd_double), NOT Pachyderm. Point
# PACHD_ADDRESS at a real cluster to deploy there instead. Everything started here is stopped
# at the end unless KEEP_SERVICES=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
log() { echo "quickstart: $*" >&2; }

bash scripts/setup.sh
started_services=0
if ! bash scripts/services.sh status >/dev/null 2>&1; then
    bash scripts/services.sh start
    started_services=1
fi
# shellcheck disable=SC1091
source .services/env
export PATH="$ROOT/.venv/bin:$PATH"

double_pid=""
cleanup() {
    if [[ "${KEEP_SERVICES:-0}" != 1 ]]; then
        [[ -n "$double_pid" ]] && kill "$double_pid" 2>/dev/null && wait "$double_pid" 2>/dev/null
        if ((started_services)); then bash "$ROOT/scripts/services.sh" stop; fi
    else
        log "services left running (pachd double pid $double_pid); stop with: kill $double_pid; bash scripts/services.sh stop"
    fi
}
trap cleanup EXIT

if [[ -z "${PACHD_ADDRESS:-}" ]]; then
    log "starting the pachd double (a local stand-in for pachd, not Pachyderm)"
    out=.services/pachd-double.out
    python -m invoke_pachyderm.testing.pachd_double --port 0 \
        --registry "http://$INVOKE_PACHYDERM_TEST_REGISTRY" >"$out" 2>.services/pachd-double.log &
    double_pid=$!
    for _ in $(seq 50); do grep -q listening "$out" 2>/dev/null && break; sleep 0.1; done
    port=$(grep -o '127.0.0.1:[0-9]*' "$out" | head -n1 | cut -d: -f2)
    [[ -n "$port" ]] || { log "the pachd double did not start: $(cat .services/pachd-double.log)"; exit 1; }
    export PACHD_ADDRESS="grpc://127.0.0.1:$port"
    python - "$port" <<'PY'
import sys, grpc, python_pachyderm
client = python_pachyderm.Client(host="127.0.0.1", port=int(sys.argv[1]))
try:
    client.create_repo("images")
except grpc.RpcError as error:
    if error.code() != grpc.StatusCode.ALREADY_EXISTS:
        raise
print("quickstart: created input repo 'images' on the pachd double", file=sys.stderr)
PY
fi

cd examples/edges
cp /bin/busybox busybox  # the example image is busybox on scratch: no public registry needed
log "invoke deploy (examples/edges) against $PACHD_ADDRESS"
invoke deploy --wait
log "invoke deploy again: nothing changed, so nothing is rebuilt and no pipeline restarts"
invoke deploy --skip-tests
invoke status
