# shellcheck shell=bash
# Helpers shared by scripts/keycloak.sh and scripts/redis.sh (sourced, not run). Each of those
# starts its service with setsid, so the service's pid is also its process group, and stops it by
# that group.

# Prints N free TCP ports on 127.0.0.1 (all sockets held open together, so they differ).
svc_free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# Seconds since $1 (an $EPOCHREALTIME value), one decimal.
svc_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# True while any non-zombie process is left in process group $1.
svc_group_alive() {
  ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# Stops process group $2, logging through the function named $1: SIGTERM, up to $3 seconds,
# then SIGKILL; reaps the leader when it is our child.
svc_stop_group() {
  local log="$1" pid="$2" timeout="$3" waited=0
  if svc_group_alive "$pid"; then
    "$log" "stopping process group $pid"
    kill -TERM -- "-$pid" 2>/dev/null || true
    while svc_group_alive "$pid" && ((waited < timeout * 5)); do
      sleep 0.2
      waited=$((waited + 1))
    done
    if svc_group_alive "$pid"; then
      "$log" "still running after $timeout s; sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  wait "$pid" 2>/dev/null || true
}
