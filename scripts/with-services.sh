#!/usr/bin/env bash
# Runs a command with a fresh local Keycloak (realm agentcube) and Redis, then stops both.
#
#   scripts/with-services.sh cargo test --workspace -- --include-ignored
#
# Exports to the command:
#   AGENTCUBE_KEYCLOAK_URL              http://127.0.0.1:PORT (no trailing slash)
#   AGENTCUBE_KEYCLOAK_REALM            agentcube
#   AGENTCUBE_KEYCLOAK_ADMIN_USER       bootstrap admin of the master realm
#   AGENTCUBE_KEYCLOAK_ADMIN_PASSWORD
#   AGENTCUBE_KEYCLOAK_MANAGEMENT_URL   http://127.0.0.1:PORT of /health/ready
#   KC_CLIENT_APP_SECRET, KC_CLIENT_ROUTER_SECRET, KC_CLIENT_ADMIN_SECRET
#   AGENTCUBE_REDIS_URL                 redis://127.0.0.1:PORT/
#
# AGENTCUBE_SKIP_KEYCLOAK=1 / AGENTCUBE_SKIP_REDIS=1 skip a service (its variables stay unset).
# The command's exit status is returned; both services are stopped on any exit, including Ctrl-C.
set -euo pipefail

if (($# == 0)); then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi

scripts="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/keycloak.sh
source "$scripts/keycloak.sh"
# shellcheck source=scripts/redis.sh
source "$scripts/redis.sh"

# shellcheck disable=SC2317 # reached through the trap below
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [[ -n "${KEYCLOAK_PID:-}" ]] && keycloak_stop
  [[ -n "${REDIS_PID:-}" ]] && redis_stop
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ "${AGENTCUBE_SKIP_KEYCLOAK:-0}" == 1 ]]; then
  echo "[with-services] AGENTCUBE_SKIP_KEYCLOAK=1: not starting Keycloak" >&2
else
  keycloak_start
  echo "[with-services] Keycloak took ${KEYCLOAK_STARTUP_SECONDS} s to start" >&2
  eval "$(keycloak_env)"
fi

if [[ "${AGENTCUBE_SKIP_REDIS:-0}" == 1 ]]; then
  echo "[with-services] AGENTCUBE_SKIP_REDIS=1: not starting Redis" >&2
else
  redis_start
  export AGENTCUBE_REDIS_URL="$REDIS_URL"
fi

echo "[with-services] running: $*" >&2
rc=0
"$@" || rc=$?
echo "[with-services] command exited with status $rc" >&2
exit "$rc"
