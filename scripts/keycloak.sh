#!/usr/bin/env bash
# A throw-away local Keycloak with the agentcube realm, for integration tests and examples.
#
#   scripts/keycloak.sh start   start in the background, print `export ...` lines (eval-able)
#   scripts/keycloak.sh stop    stop the instance recorded in .cache/keycloak/keycloak.pid
#   scripts/keycloak.sh fetch   only download and unpack the distribution
#   source scripts/keycloak.sh  then keycloak_start / keycloak_stop (see scripts/with-services.sh)
#
# The distribution comes from Maven Central through mvn (so ~/.m2 is reused) and is unpacked once
# into .cache/keycloak/. Every start uses an in-memory dev database, so the realm import in
# deploy/keycloak/agentcube-realm.json always applies (Keycloak imports a realm only into an empty
# database) and several instances can run side by side from one unpacked distribution.
#
# Settings (environment): KEYCLOAK_VERSION, KEYCLOAK_START_TIMEOUT (s), KEYCLOAK_CACHE_DIR,
# KEYCLOAK_JAVA_HOME, KC_BOOTSTRAP_ADMIN_USERNAME/PASSWORD, KC_CLIENT_{APP,ROUTER,ADMIN}_SECRET,
# KC_ROUTER_URL (the Router's base URL in the clients' back-channel logout URL).

KEYCLOAK_VERSION="${KEYCLOAK_VERSION:-26.4.7}"
KEYCLOAK_REALM="agentcube"
KEYCLOAK_START_TIMEOUT="${KEYCLOAK_START_TIMEOUT:-180}"
KEYCLOAK_STOP_TIMEOUT="${KEYCLOAK_STOP_TIMEOUT:-30}"
_KC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/service.sh
source "$_KC_ROOT/scripts/lib/service.sh"
KEYCLOAK_CACHE_DIR="${KEYCLOAK_CACHE_DIR:-$_KC_ROOT/.cache/keycloak}"
KEYCLOAK_REALM_FILE="$_KC_ROOT/deploy/keycloak/agentcube-realm.json"
KEYCLOAK_HOME="$KEYCLOAK_CACHE_DIR/keycloak-$KEYCLOAK_VERSION"

# Fixed dev credentials; a caller may preset its own.
: "${KC_BOOTSTRAP_ADMIN_USERNAME:=admin}"
: "${KC_BOOTSTRAP_ADMIN_PASSWORD:=admin-dev}"
: "${KC_CLIENT_APP_SECRET:=app-secret-dev}"
: "${KC_CLIENT_ROUTER_SECRET:=router-secret-dev}"
: "${KC_CLIENT_ADMIN_SECRET:=admin-secret-dev}"
# The Router's base URL, for the back-channel logout URL of the realm's clients (the realm file's
# ${KC_ROUTER_URL}); tests that run their own Router set the URL on a realm of their own.
: "${KC_ROUTER_URL:=http://127.0.0.1:8080}"

_kc_log() { echo "[keycloak] $*" >&2; }

# Major Java version of the java binary $1 (e.g. 17).
_kc_java_major() {
  "$1" -XshowSettings:properties -version 2>&1 |
    awk -F'= ' '/java.specification.version/ { print $2; exit }'
}

# Chooses a Java >= 17 for Keycloak 26 and sets _KC_JAVA_HOME (passed to kc.sh only):
# KEYCLOAK_JAVA_HOME, else JAVA_HOME, else java on PATH, else a JDK under /usr/lib/jvm, else
# installs Debian's openjdk-17-jre-headless (bookworm has no openjdk-21 package).
_kc_select_java() {
  local candidates=() c major
  [[ -n "${KEYCLOAK_JAVA_HOME:-}" ]] && candidates+=("$KEYCLOAK_JAVA_HOME/bin/java")
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null && candidates+=("$(readlink -f "$(command -v java)")")
  for c in /usr/lib/jvm/*/bin/java; do [[ -x "$c" ]] && candidates+=("$c"); done
  for c in "${candidates[@]}"; do
    [[ -x "$c" ]] || continue
    major="$(_kc_java_major "$c")"
    if [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 17)); then
      _KC_JAVA_HOME="$(dirname "$(dirname "$c")")"
      _kc_log "using Java $major from $_KC_JAVA_HOME"
      return 0
    fi
  done
  _kc_log "no Java >= 17 found; installing openjdk-17-jre-headless"
  { apt-get update && apt-get install -y openjdk-17-jre-headless; } >&2 || return 1
  _KC_JAVA_HOME="$(dirname "$(dirname "$(readlink -f /usr/lib/jvm/java-17-openjdk-*/bin/java)")")"
}

# Downloads and unpacks the distribution unless already there. Call with the cache lock held.
_kc_fetch_locked() {
  [[ -x "$KEYCLOAK_HOME/bin/kc.sh" ]] && return 0
  command -v mvn >/dev/null || { _kc_log "mvn not found (needed to fetch Keycloak)"; return 1; }
  command -v unzip >/dev/null || { apt-get update && apt-get install -y unzip; } >&2 || return 1
  local t0="$EPOCHREALTIME" tmp
  tmp="$(mktemp -d "$KEYCLOAK_CACHE_DIR/.fetch.XXXXXX")"
  _kc_log "fetching org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip from Maven Central"
  # Run mvn from the temp dir so a pom.xml in the caller's directory cannot interfere; its output
  # goes to stderr so that stdout stays clean for `eval "$(scripts/keycloak.sh start)"`.
  if ! (cd "$tmp" && mvn -q -B -Dstyle.color=never dependency:copy \
    "-Dartifact=org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" -DoutputDirectory="$tmp") >&2; then
    _kc_log "ERROR: mvn could not fetch Keycloak $KEYCLOAK_VERSION"
    rm -rf "$tmp"
    return 1
  fi
  _kc_log "downloaded in $(svc_since "$t0") s; unpacking into $KEYCLOAK_HOME"
  # Unpack beside the final place and rename, so an interrupted unpack is never mistaken for a
  # complete one; the zip itself stays only in ~/.m2.
  if ! unzip -q "$tmp/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip" -d "$tmp" ||
    ! mv "$tmp/keycloak-$KEYCLOAK_VERSION" "$KEYCLOAK_HOME"; then
    _kc_log "ERROR: unpacking failed"
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$tmp"
  _kc_log "fetched and unpacked in $(svc_since "$t0") s"
}

# Runs "$@" while holding the cache lock (serialises unpacking and Keycloak's first-start build
# step between concurrent callers). The lock fd is not passed on to Keycloak itself.
# Note: "$@" runs in an `||` list, where set -e is off, so the functions check errors themselves.
_kc_with_lock() {
  mkdir -p "$KEYCLOAK_CACHE_DIR"
  local fd rc=0
  exec {fd}>"$KEYCLOAK_CACHE_DIR/.lock"
  if ! flock -w "$KEYCLOAK_START_TIMEOUT" "$fd"; then
    _kc_log "timed out waiting for $KEYCLOAK_CACHE_DIR/.lock"
    exec {fd}>&-
    return 1
  fi
  _KC_LOCK_FD="$fd" "$@" || rc=$?
  exec {fd}>&-
  return "$rc"
}

keycloak_fetch() { _kc_with_lock _kc_fetch_locked; }

# Starts Keycloak and waits until the realm's discovery document is served. Sets KEYCLOAK_PID
# (also the process group id), KEYCLOAK_PORT, KEYCLOAK_MGMT_PORT, KEYCLOAK_URL, KEYCLOAK_LOG,
# KEYCLOAK_PIDFILE, KEYCLOAK_STARTUP_SECONDS.
keycloak_start() { _kc_with_lock _kc_start_locked; }

_kc_start_locked() {
  _kc_fetch_locked || return 1
  _kc_select_java || return 1
  local import="$KEYCLOAK_HOME/data/import"
  # Replace atomically: a running instance may be reading the directory.
  mkdir -p "$import" &&
    cp "$KEYCLOAK_REALM_FILE" "$import/.agentcube-realm.json.tmp" &&
    mv "$import/.agentcube-realm.json.tmp" "$import/agentcube-realm.json" || return 1
  rm -rf "$KEYCLOAK_HOME/data/h2" # leftovers of a dev-file database are never used

  local attempt
  for attempt in 1 2 3; do
    read -r KEYCLOAK_PORT KEYCLOAK_MGMT_PORT < <(svc_free_ports 2)
    # keycloak.log/keycloak.pid belong to the first live instance; a concurrent one gets its own.
    KEYCLOAK_LOG="$KEYCLOAK_CACHE_DIR/keycloak.log"
    KEYCLOAK_PIDFILE="$KEYCLOAK_CACHE_DIR/keycloak.pid"
    if [[ -s "$KEYCLOAK_PIDFILE" ]] && svc_group_alive "$(<"$KEYCLOAK_PIDFILE")"; then
      KEYCLOAK_LOG="$KEYCLOAK_CACHE_DIR/keycloak-$KEYCLOAK_PORT.log"
      KEYCLOAK_PIDFILE="$KEYCLOAK_CACHE_DIR/keycloak-$KEYCLOAK_PORT.pid"
    fi
    KEYCLOAK_URL="http://127.0.0.1:$KEYCLOAK_PORT"
    local args=(start-dev --import-realm --db=dev-mem
      --http-host=127.0.0.1 "--http-port=$KEYCLOAK_PORT"
      "--http-management-port=$KEYCLOAK_MGMT_PORT" --health-enabled=true
      --hostname-strict=false)
    _kc_log "starting Keycloak $KEYCLOAK_VERSION on $KEYCLOAK_URL (management :$KEYCLOAK_MGMT_PORT), log $KEYCLOAK_LOG"
    _kc_log "  $KEYCLOAK_HOME/bin/kc.sh ${args[*]}"
    local t0="$EPOCHREALTIME"
    # setsid: own process group (kc.sh + its java child), stopped as one, untouched by the
    # terminal's Ctrl-C. Job control is switched off so setsid does not fork and $! is the group.
    local had_m=0
    [[ $- == *m* ]] && had_m=1 && set +m
    JAVA_HOME="$_KC_JAVA_HOME" \
      KC_BOOTSTRAP_ADMIN_USERNAME="$KC_BOOTSTRAP_ADMIN_USERNAME" \
      KC_BOOTSTRAP_ADMIN_PASSWORD="$KC_BOOTSTRAP_ADMIN_PASSWORD" \
      KC_CLIENT_APP_SECRET="$KC_CLIENT_APP_SECRET" \
      KC_CLIENT_ROUTER_SECRET="$KC_CLIENT_ROUTER_SECRET" \
      KC_CLIENT_ADMIN_SECRET="$KC_CLIENT_ADMIN_SECRET" \
      KC_ROUTER_URL="$KC_ROUTER_URL" \
      setsid "$KEYCLOAK_HOME/bin/kc.sh" "${args[@]}" >"$KEYCLOAK_LOG" 2>&1 </dev/null {_KC_LOCK_FD}>&- &
    KEYCLOAK_PID=$!
    ((had_m)) && set -m
    echo "$KEYCLOAK_PID" >"$KEYCLOAK_PIDFILE"

    local discovery="$KEYCLOAK_URL/realms/$KEYCLOAK_REALM/.well-known/openid-configuration" code
    local locked=1
    while :; do
      # Once the one-off build step is behind it, a concurrent caller may go ahead.
      if ((locked)) && grep -q 'Running the server' "$KEYCLOAK_LOG"; then
        flock -u "$_KC_LOCK_FD" && locked=0
      fi
      code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$discovery" || true)"
      if [[ "$code" == 200 ]]; then
        KEYCLOAK_STARTUP_SECONDS="$(svc_since "$t0")"
        _kc_log "ready after $KEYCLOAK_STARTUP_SECONDS s (pid $KEYCLOAK_PID): $discovery"
        return 0
      fi
      if ! svc_group_alive "$KEYCLOAK_PID"; then
        wait "$KEYCLOAK_PID" 2>/dev/null || true
        rm -f "$KEYCLOAK_PIDFILE"
        if grep -qi 'address already in use\|port .* already' "$KEYCLOAK_LOG" && ((attempt < 3)); then
          _kc_log "port taken meanwhile; retrying with other ports"
          continue 2
        fi
        _kc_log "ERROR: Keycloak exited during start-up; last lines of $KEYCLOAK_LOG:"
        tail -n 40 "$KEYCLOAK_LOG" >&2
        return 1
      fi
      if (($(svc_since "$t0" | cut -d. -f1) >= KEYCLOAK_START_TIMEOUT)); then
        _kc_log "ERROR: not ready after ${KEYCLOAK_START_TIMEOUT} s (last HTTP status $code); last lines of $KEYCLOAK_LOG:"
        tail -n 40 "$KEYCLOAK_LOG" >&2
        keycloak_stop
        return 1
      fi
      sleep 0.5
    done
  done
  return 1
}

# Stops the instance KEYCLOAK_PID (or the pid in $1, or in .cache/keycloak/keycloak.pid):
# SIGTERM to its process group, wait, SIGKILL as a fallback.
keycloak_stop() {
  local pid="${1:-${KEYCLOAK_PID:-}}" pidfile="${KEYCLOAK_PIDFILE:-$KEYCLOAK_CACHE_DIR/keycloak.pid}"
  if [[ -z "$pid" && -s "$pidfile" ]]; then pid="$(<"$pidfile")"; fi
  if [[ -z "$pid" ]]; then
    _kc_log "nothing to stop"
    return 0
  fi
  svc_stop_group _kc_log "$pid" "$KEYCLOAK_STOP_TIMEOUT"
  if [[ -s "$pidfile" && "$(<"$pidfile")" == "$pid" ]]; then rm -f "$pidfile"; fi
  if [[ "$pid" == "${KEYCLOAK_PID:-}" ]]; then KEYCLOAK_PID=""; fi
}

# The variables a client of this Keycloak needs, as export lines.
keycloak_env() {
  printf 'export %s=%q\n' \
    AGENTCUBE_KEYCLOAK_URL "$KEYCLOAK_URL" \
    AGENTCUBE_KEYCLOAK_REALM "$KEYCLOAK_REALM" \
    AGENTCUBE_KEYCLOAK_ADMIN_USER "$KC_BOOTSTRAP_ADMIN_USERNAME" \
    AGENTCUBE_KEYCLOAK_ADMIN_PASSWORD "$KC_BOOTSTRAP_ADMIN_PASSWORD" \
    AGENTCUBE_KEYCLOAK_MANAGEMENT_URL "http://127.0.0.1:$KEYCLOAK_MGMT_PORT" \
    KC_CLIENT_APP_SECRET "$KC_CLIENT_APP_SECRET" \
    KC_CLIENT_ROUTER_SECRET "$KC_CLIENT_ROUTER_SECRET" \
    KC_CLIENT_ADMIN_SECRET "$KC_CLIENT_ADMIN_SECRET"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-}" in
    start) keycloak_start && keycloak_env ;;
    stop) keycloak_stop "${2:-}" ;;
    fetch) keycloak_fetch ;;
    *)
      echo "usage: $0 start|stop [pid]|fetch   (or: source $0; keycloak_start; ...; keycloak_stop)" >&2
      exit 2
      ;;
  esac
fi
