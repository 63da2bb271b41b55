#!/usr/bin/env bash
# A throw-away local Redis (session store of the reference system) for integration tests.
#
#   scripts/redis.sh start    start in the background, print `export AGENTCUBE_REDIS_URL=...`
#   scripts/redis.sh stop     stop the instance recorded in .cache/redis/redis.pid
#   source scripts/redis.sh   then redis_start / redis_stop (see scripts/with-services.sh)
#
# Installs Debian's redis-server when missing. Listens on 127.0.0.1 on a free port, keeps nothing
# on disk (no RDB snapshots, no AOF), runs in the foreground of its own process group.

_REDIS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/service.sh
source "$_REDIS_ROOT/scripts/lib/service.sh"
REDIS_CACHE_DIR="${REDIS_CACHE_DIR:-$_REDIS_ROOT/.cache/redis}"
REDIS_START_TIMEOUT="${REDIS_START_TIMEOUT:-20}"

_redis_log() { echo "[redis] $*" >&2; }

# Sets REDIS_PID, REDIS_PORT, REDIS_URL, REDIS_LOG, REDIS_PIDFILE.
redis_start() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    _redis_log "redis-server not found; installing it from Debian apt"
    { apt-get update && apt-get install -y redis-server; } >&2 || return 1
  fi
  mkdir -p "$REDIS_CACHE_DIR" || return 1
  REDIS_PORT="$(svc_free_ports 1)" || return 1
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
  # redis.log/redis.pid belong to the first live instance; a concurrent one gets its own.
  REDIS_LOG="$REDIS_CACHE_DIR/redis.log"
  REDIS_PIDFILE="$REDIS_CACHE_DIR/redis.pid"
  if [[ -s "$REDIS_PIDFILE" ]] && svc_group_alive "$(<"$REDIS_PIDFILE")"; then
    REDIS_LOG="$REDIS_CACHE_DIR/redis-$REDIS_PORT.log"
    REDIS_PIDFILE="$REDIS_CACHE_DIR/redis-$REDIS_PORT.pid"
  fi
  local args=(--bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no
    --daemonize no --dir "$REDIS_CACHE_DIR")
  _redis_log "starting redis $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') on $REDIS_URL, log $REDIS_LOG"
  # setsid: Ctrl-C in the terminal must not reach it before our own cleanup runs. Job control is
  # switched off so that setsid does not fork and $! is redis-server itself.
  local had_m=0
  [[ $- == *m* ]] && had_m=1 && set +m
  setsid redis-server "${args[@]}" >"$REDIS_LOG" 2>&1 </dev/null &
  REDIS_PID=$!
  ((had_m)) && set -m
  echo "$REDIS_PID" >"$REDIS_PIDFILE"

  local t0="$EPOCHREALTIME" tries=0
  until [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; do
    if ! svc_group_alive "$REDIS_PID" || ((tries >= REDIS_START_TIMEOUT * 10)); then
      _redis_log "ERROR: redis did not answer PING; last lines of $REDIS_LOG:"
      tail -n 20 "$REDIS_LOG" >&2
      redis_stop
      return 1
    fi
    sleep 0.1
    tries=$((tries + 1))
  done
  _redis_log "ready after $(svc_since "$t0") s (pid $REDIS_PID)"
}

# Stops REDIS_PID (or the pid in $1, or in .cache/redis/redis.pid): SIGTERM to its process
# group, up to 10 s, then SIGKILL.
redis_stop() {
  local pid="${1:-${REDIS_PID:-}}" pidfile="${REDIS_PIDFILE:-$REDIS_CACHE_DIR/redis.pid}"
  if [[ -z "$pid" && -s "$pidfile" ]]; then pid="$(<"$pidfile")"; fi
  if [[ -z "$pid" ]]; then
    _redis_log "nothing to stop"
    return 0
  fi
  svc_stop_group _redis_log "$pid" 10
  if [[ -s "$pidfile" && "$(<"$pidfile")" == "$pid" ]]; then rm -f "$pidfile"; fi
  if [[ "$pid" == "${REDIS_PID:-}" ]]; then REDIS_PID=""; fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-}" in
    start) redis_start && printf 'export AGENTCUBE_REDIS_URL=%q\n' "$REDIS_URL" ;;
    stop) redis_stop "${2:-}" ;;
    *)
      echo "usage: $0 start|stop [pid]   (or: source $0; redis_start; ...; redis_stop)" >&2
      exit 2
      ;;
  esac
fi
