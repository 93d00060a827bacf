#!/usr/bin/env bash
# Test services for invoke-pachyderm: a private Docker Engine and two Distribution v2
# registries on loopback.
#
#   scripts/services.sh start|stop|env|status
#
# State lives under $SERVICES_DIR (default: <repo>/.services, gitignored):
#   docker.sock            dockerd's API socket (DOCKER_HOST=unix://...)
#   docker/data, docker/exec, docker.pid, daemon.json, dockerd.log
#   registry/              open registry on 127.0.0.1:$REGISTRY_PORT (default 5000), deletes enabled
#   registry-auth/         htpasswd registry on 127.0.0.1:$AUTH_REGISTRY_PORT (default 5001),
#                          user ci-user, password in registry-auth/password
#   env                    shell lines to `source` (DOCKER_HOST, INVOKE_PACHYDERM_TEST_*)
#
# Settings (environment):
#   SERVICES_DIR            state directory (see above)
#   REGISTRY_PORT           open registry port (default 5000)
#   AUTH_REGISTRY_PORT      auth registry port (default 5001)
#   DOCKER_STORAGE_DRIVER   dockerd storage driver (default: overlay2, falling back to vfs
#                           automatically if dockerd cannot start with overlay2; when set
#                           explicitly, no fallback)
#   SERVICES_TIMEOUT        seconds to wait for each service to answer (default 60)
#
# dockerd runs with --iptables=false --bridge=none --ip-forward=false and its own
# data-root/exec-root/pidfile/socket, so it does not touch the host's network setup or
# any other Docker daemon. Only processes recorded in our pid files are ever stopped.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_DIR="${SERVICES_DIR:-$REPO_ROOT/.services}"
REGISTRY_PORT="${REGISTRY_PORT:-5000}"
AUTH_REGISTRY_PORT="${AUTH_REGISTRY_PORT:-5001}"
STORAGE_DRIVER_FROM_ENV="${DOCKER_STORAGE_DRIVER:-}"
DOCKER_STORAGE_DRIVER="${DOCKER_STORAGE_DRIVER:-overlay2}"
SERVICES_TIMEOUT="${SERVICES_TIMEOUT:-60}"
AUTH_USER="ci-user"

log() { echo "services: $*" >&2; }
die() { echo "services: ERROR: $*" >&2; exit 1; }

mkdir -p "$SERVICES_DIR"
SERVICES_DIR="$(cd "$SERVICES_DIR" && pwd)"

DOCKER_DIR="$SERVICES_DIR/docker"
DOCKER_DATA="$DOCKER_DIR/data"
DOCKER_EXEC="$DOCKER_DIR/exec"
DOCKER_SOCK="$SERVICES_DIR/docker.sock"
DOCKER_PIDFILE="$SERVICES_DIR/docker.pid"
DOCKER_LOG="$SERVICES_DIR/dockerd.log"
ENV_FILE="$SERVICES_DIR/env"
REG_DIR="$SERVICES_DIR/registry"
AUTH_DIR="$SERVICES_DIR/registry-auth"
REG_PIDFILE="$SERVICES_DIR/registry.pid"
AUTH_PIDFILE="$SERVICES_DIR/registry-auth.pid"
REG_LOG="$SERVICES_DIR/registry.log"
AUTH_LOG="$SERVICES_DIR/registry-auth.log"
PASSWORD_FILE="$AUTH_DIR/password"

# Unix socket paths are limited to 108 bytes; containerd's socket lives deepest.
if (( ${#DOCKER_EXEC} + 40 > 107 )) || (( ${#DOCKER_SOCK} > 107 )); then
    die "SERVICES_DIR path too long for unix sockets ($SERVICES_DIR); use a shorter SERVICES_DIR"
fi

# ---------------------------------------------------------------- process helpers

# pid_alive PID: true if PID is a live (non-zombie) process.
pid_alive() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/stat" ]] || return 1
    # field 3 of /proc/PID/stat is the state; the comm field (2) is in parentheses
    state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != "Z" && "$state" != "X" ]]
}

# pid_matches PID WORD: the process's command line mentions WORD (guards against pid reuse).
pid_matches() {
    local pid="$1" word="$2"
    pid_alive "$pid" || return 1
    local cmd
    cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)"
    [[ "$cmd" == *"$word"* ]]
}

read_pid() { [[ -s "$1" ]] && tr -dc '0-9' <"$1" || true; }

# running PIDFILE WORD: prints the pid if the recorded process is alive and ours.
running() {
    local pid
    pid="$(read_pid "$1")"
    if [[ -n "$pid" ]] && pid_matches "$pid" "$2"; then
        echo "$pid"
        return 0
    fi
    return 1
}

# wait_exit PID SECONDS
wait_exit() {
    local pid="$1" deadline=$((SECONDS + $2))
    while pid_alive "$pid"; do
        (( SECONDS < deadline )) || return 1
        sleep 0.1
    done
}

# stop_pid NAME PID: TERM, wait, KILL if needed, wait.
stop_pid() {
    local name="$1" pid="$2"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_exit "$pid" 30; then
        log "$name (pid $pid) did not exit after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_exit "$pid" 10 || die "$name (pid $pid) would not exit"
    fi
}

# port_in_use PORT: something accepts connections on 127.0.0.1:PORT
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# http_code URL [curl args...]: prints the HTTP status, or 000
http_code() {
    local url="$1"; shift
    curl --noproxy '*' -s -o /dev/null -m 2 -w '%{http_code}' "$@" "$url" 2>/dev/null || true
}

tail_log() {
    local f="$1"
    if [[ -f "$f" ]]; then
        echo "---- last lines of $f ----" >&2
        tail -n 25 "$f" >&2 || true
        echo "----" >&2
    fi
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found (run scripts/setup.sh)"
}

# ---------------------------------------------------------------- dockerd

docker_ping() {
    [[ -S "$DOCKER_SOCK" ]] || return 1
    [[ "$(curl --noproxy '*' -s -m 2 --unix-socket "$DOCKER_SOCK" http://docker/_ping 2>/dev/null || true)" == "OK" ]]
}

# launch_dockerd DRIVER: start dockerd and wait for /_ping. Returns 1 on failure.
launch_dockerd() {
    local driver="$1" pid deadline
    mkdir -p "$DOCKER_DATA" "$DOCKER_EXEC"
    # An explicit (empty) config file so /etc/docker/daemon.json is never read.
    echo '{}' >"$SERVICES_DIR/daemon.json"
    rm -f "$DOCKER_SOCK" "$DOCKER_PIDFILE"
    {
        echo "==== $(date -u +%FT%TZ) starting dockerd (storage driver $driver)"
    } >>"$DOCKER_LOG"
    # setsid: own session, so the caller's terminal/process group signals don't hit it.
    setsid dockerd \
        --config-file "$SERVICES_DIR/daemon.json" \
        --host "unix://$DOCKER_SOCK" \
        --data-root "$DOCKER_DATA" \
        --exec-root "$DOCKER_EXEC" \
        --pidfile "$DOCKER_PIDFILE" \
        --storage-driver "$driver" \
        --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --bridge=none \
        --userland-proxy=false \
        --log-level=warn \
        </dev/null >>"$DOCKER_LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$SERVICES_DIR/dockerd.launch.pid"
    deadline=$((SECONDS + SERVICES_TIMEOUT))
    until docker_ping; do
        if ! pid_alive "$pid"; then
            log "dockerd (storage driver $driver) exited during startup"
            return 1
        fi
        if (( SECONDS >= deadline )); then
            log "dockerd did not answer /_ping within ${SERVICES_TIMEOUT}s"
            stop_pid dockerd "$pid"
            return 1
        fi
        sleep 0.2
    done
    # dockerd writes its own pid file; make sure it is there (same pid as launched).
    [[ -s "$DOCKER_PIDFILE" ]] || echo "$pid" >"$DOCKER_PIDFILE"
    echo "$driver" >"$SERVICES_DIR/storage-driver"
    return 0
}

start_dockerd() {
    local pid deadline
    if pid="$(running "$DOCKER_PIDFILE" dockerd)"; then
        # Already running (maybe still starting): wait for it rather than start another.
        deadline=$((SECONDS + SERVICES_TIMEOUT))
        until docker_ping; do
            (( SECONDS < deadline )) || die "dockerd (pid $pid) is running but does not answer /_ping on $DOCKER_SOCK"
            sleep 0.2
        done
        log "dockerd already running (pid $pid)"
        return 0
    fi
    need dockerd; need curl
    cleanup_docker_leftovers
    if ! launch_dockerd "$DOCKER_STORAGE_DRIVER"; then
        if [[ "$DOCKER_STORAGE_DRIVER" == "overlay2" && -z "$STORAGE_DRIVER_FROM_ENV" ]]; then
            cleanup_docker_leftovers
            log "overlay2 failed; retrying dockerd with the vfs storage driver (slower)"
            tail_log "$DOCKER_LOG"
            launch_dockerd vfs || { tail_log "$DOCKER_LOG"; die "dockerd failed to start (log: $DOCKER_LOG)"; }
        else
            tail_log "$DOCKER_LOG"
            die "dockerd failed to start with storage driver $DOCKER_STORAGE_DRIVER (log: $DOCKER_LOG)"
        fi
    fi
    log "dockerd up (pid $(read_pid "$DOCKER_PIDFILE"), storage driver $(cat "$SERVICES_DIR/storage-driver"), socket $DOCKER_SOCK)"
}

# Processes left behind by a dead dockerd (its containerd and shims) mention our exec-root
# on their command lines; they are ours, so stop them by pid. Also drop the netns mount.
cleanup_docker_leftovers() {
    local p cmd
    for p in /proc/[0-9]*; do
        p="${p#/proc/}"
        [[ "$p" == "$$" ]] && continue
        cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" || true)"
        [[ -n "$cmd" ]] || continue
        case "$cmd" in
            *containerd*"$DOCKER_EXEC"*|*containerd*"$DOCKER_DATA"*|dockerd*"$DOCKER_SOCK"*)
                pid_alive "$p" || continue
                log "stopping leftover process $p: ${cmd:0:120}"
                stop_pid leftover "$p"
                ;;
        esac
    done
    # dockerd leaves its default network namespace bind-mounted in the exec-root.
    local m
    while read -r _ m _; do
        case "$m" in
            "$DOCKER_EXEC"/*|"$DOCKER_DATA"/*|"$DOCKER_DATA") umount -l "$m" 2>/dev/null || true ;;
        esac
    done < <(tac /proc/self/mounts 2>/dev/null || true)
}

stop_dockerd() {
    local pid
    if pid="$(running "$DOCKER_PIDFILE" dockerd)" || pid="$(running "$SERVICES_DIR/dockerd.launch.pid" dockerd)"; then
        log "stopping dockerd (pid $pid)"
        stop_pid dockerd "$pid"
    fi
    rm -f "$DOCKER_PIDFILE" "$SERVICES_DIR/dockerd.launch.pid"
    cleanup_docker_leftovers
}

# ---------------------------------------------------------------- registries

# write_registry_config DIR PORT [auth]
write_registry_config() {
    local dir="$1" port="$2" auth="${3:-}" secret
    mkdir -p "$dir/storage"
    if [[ ! -s "$dir/http-secret" ]]; then
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/http-secret"
    fi
    secret="$(cat "$dir/http-secret")"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: $secret
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    if [[ -n "$auth" ]]; then
        cat >>"$dir/config.yml" <<EOF
auth:
  htpasswd:
    realm: invoke-pachyderm-test-registry
    path: $dir/htpasswd
EOF
    fi
}

ensure_auth_credentials() {
    mkdir -p "$AUTH_DIR"
    chmod 700 "$AUTH_DIR"
    if [[ ! -s "$PASSWORD_FILE" ]]; then
        local pw
        pw="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
        pw="${pw:0:24}"
        (umask 077; printf '%s' "$pw" >"$PASSWORD_FILE")
    fi
    # Distribution only accepts bcrypt entries.
    htpasswd -Bbn "$AUTH_USER" "$(cat "$PASSWORD_FILE")" | sed '/^$/d' >"$AUTH_DIR/htpasswd"
}

# start_registry NAME DIR PORT PIDFILE LOG [auth]
start_registry() {
    local name="$1" dir="$2" port="$3" pidfile="$4" logf="$5" auth="${6:-}" pid code deadline
    if pid="$(running "$pidfile" docker-registry)"; then
        log "$name already running (pid $pid, port $port)"
        return 0
    fi
    need docker-registry; need curl
    [[ "$port" =~ ^[0-9]+$ ]] || die "$name: port '$port' is not a number"
    if port_in_use "$port"; then
        die "$name: port 127.0.0.1:$port is already in use (set $( [[ -n "$auth" ]] && echo AUTH_REGISTRY_PORT || echo REGISTRY_PORT ) to a free port)"
    fi
    if [[ -n "$auth" ]]; then
        need htpasswd
        ensure_auth_credentials
    fi
    write_registry_config "$dir" "$port" "$auth"
    echo "==== $(date -u +%FT%TZ) starting $name on 127.0.0.1:$port" >>"$logf"
    # Keep stray REGISTRY_* variables (e.g. REGISTRY_PORT) away from Distribution's
    # environment-variable config overrides.
    setsid env -u REGISTRY_PORT -u REGISTRY_HOST \
        docker-registry serve "$dir/config.yml" </dev/null >>"$logf" 2>&1 &
    pid=$!
    echo "$pid" >"$pidfile"
    deadline=$((SECONDS + SERVICES_TIMEOUT))
    while :; do
        code="$(http_code "http://127.0.0.1:$port/v2/")"
        [[ "$code" == "200" || "$code" == "401" ]] && break
        if ! pid_alive "$pid"; then
            rm -f "$pidfile"
            tail_log "$logf"
            die "$name exited during startup (log: $logf)"
        fi
        if (( SECONDS >= deadline )); then
            stop_pid "$name" "$pid"; rm -f "$pidfile"
            tail_log "$logf"
            die "$name did not answer GET /v2/ within ${SERVICES_TIMEOUT}s (last status $code; log: $logf)"
        fi
        sleep 0.1
    done
    log "$name up (pid $pid, http://127.0.0.1:$port, GET /v2/ -> $code)"
}

# stop_registry NAME PIDFILE
stop_registry() {
    local name="$1" pidfile="$2" pid
    if pid="$(running "$pidfile" docker-registry)"; then
        log "stopping $name (pid $pid)"
        stop_pid "$name" "$pid"
    fi
    rm -f "$pidfile"
}

# ---------------------------------------------------------------- env file

# Ports actually in use by running registries (from their configs), so `env` is right
# even when called without the same REGISTRY_PORT/AUTH_REGISTRY_PORT as `start`.
config_port() {
    sed -n 's/^  addr: 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1/config.yml" 2>/dev/null | head -n1 || true
}

write_env() {
    local rp ap
    rp="$(config_port "$REG_DIR")"; rp="${rp:-$REGISTRY_PORT}"
    ap="$(config_port "$AUTH_DIR")"; ap="${ap:-$AUTH_REGISTRY_PORT}"
    cat >"$ENV_FILE.tmp" <<EOF
export DOCKER_HOST=unix://$DOCKER_SOCK
export INVOKE_PACHYDERM_TEST_REGISTRY=127.0.0.1:$rp
export INVOKE_PACHYDERM_TEST_AUTH_REGISTRY=127.0.0.1:$ap
export INVOKE_PACHYDERM_TEST_AUTH_USER=$AUTH_USER
export INVOKE_PACHYDERM_TEST_AUTH_PASSWORD_FILE=$PASSWORD_FILE
EOF
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- commands

cmd_start() {
    local t0=$SECONDS
    # Check ports of registries we are about to start before starting anything.
    running "$REG_PIDFILE" docker-registry >/dev/null || ! port_in_use "$REGISTRY_PORT" \
        || die "registry: port 127.0.0.1:$REGISTRY_PORT is already in use (set REGISTRY_PORT to a free port)"
    running "$AUTH_PIDFILE" docker-registry >/dev/null || ! port_in_use "$AUTH_REGISTRY_PORT" \
        || die "auth registry: port 127.0.0.1:$AUTH_REGISTRY_PORT is already in use (set AUTH_REGISTRY_PORT to a free port)"
    [[ "$REGISTRY_PORT" != "$AUTH_REGISTRY_PORT" ]] || die "REGISTRY_PORT and AUTH_REGISTRY_PORT must differ"
    start_dockerd
    start_registry registry "$REG_DIR" "$REGISTRY_PORT" "$REG_PIDFILE" "$REG_LOG"
    start_registry "auth registry" "$AUTH_DIR" "$AUTH_REGISTRY_PORT" "$AUTH_PIDFILE" "$AUTH_LOG" auth
    write_env
    log "all services up in $((SECONDS - t0))s; env: $ENV_FILE"
}

cmd_stop() {
    stop_registry "auth registry" "$AUTH_PIDFILE"
    stop_registry registry "$REG_PIDFILE"
    stop_dockerd
    rm -f "$DOCKER_SOCK" "$ENV_FILE"
    log "stopped"
}

cmd_status() {
    local rc=0 pid
    if pid="$(running "$DOCKER_PIDFILE" dockerd)" && docker_ping; then
        echo "dockerd: running (pid $pid, unix://$DOCKER_SOCK, storage driver $(cat "$SERVICES_DIR/storage-driver" 2>/dev/null || echo '?'))"
    else
        echo "dockerd: stopped"; rc=3
    fi
    if pid="$(running "$REG_PIDFILE" docker-registry)"; then
        echo "registry: running (pid $pid, 127.0.0.1:$(config_port "$REG_DIR"))"
    else
        echo "registry: stopped"; rc=3
    fi
    if pid="$(running "$AUTH_PIDFILE" docker-registry)"; then
        echo "auth registry: running (pid $pid, 127.0.0.1:$(config_port "$AUTH_DIR"), user $AUTH_USER)"
    else
        echo "auth registry: stopped"; rc=3
    fi
    return "$rc"
}

cmd_env() {
    [[ -s "$ENV_FILE" ]] || die "no env file at $ENV_FILE (run: scripts/services.sh start)"
    cat "$ENV_FILE"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
