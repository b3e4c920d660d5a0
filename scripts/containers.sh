#!/usr/bin/env bash
# The container engine that builds and runs the module images here, for development and CI:
#   scripts/containers.sh up       install what is missing, start the engine (or reuse a running
#                                  one), register arm64 emulation, provide the base images
#   scripts/containers.sh bases    only provide the base images (the engine must run)
#   scripts/containers.sh status   whether the engine runs: version, storage driver, images
#   scripts/containers.sh env      print the DOCKER_HOST export for this engine
#   scripts/containers.sh down     stop the engine, only when this checkout's `up` started it
#
# Every checkout of the repository shares one engine and its caches (images, layers, stand-in
# bases) in EDGE_CONTAINERS_DIR (default ~/.cache/edge-classifier/containers), so a fresh
# clone builds from a warm cache. The engine is apart from any system Docker: its own socket,
# data and state folders, its own containerd, no config file of the system's.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${EDGE_CONTAINERS_DIR:-$HOME/.cache/edge-classifier/containers}"
SOCK="$DIR/docker.sock"
CONTAINERD_SOCK="$DIR/containerd.sock"
# Which processes this checkout started for this engine folder (PID and kernel start time
# each), so `down` stops those and nothing else: another checkout's `up` that found the
# engine running left none, and an engine in another folder has a marker of its own.
MARKER="$ROOT/.run/containers/started-$(printf '%s' "$DIR" | sha256sum | cut -c1-12)"
START_TIMEOUT_S=60
STOP_TIMEOUT_S=30
export DOCKER_HOST="unix://$SOCK"

say() { echo "containers: $*" >&2; }
die() { say "$*"; exit 1; }

install_missing() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v containerd >/dev/null 2>&1 || missing+=(containerd)
  command -v docker >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ -e /usr/share/binfmts/qemu-aarch64 ] || missing+=(qemu-user-static)
  command -v update-binfmts >/dev/null 2>&1 || missing+=(binfmt-support)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and there is no apt-get to install them"
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: installing them needs root"
  say "installing ${missing[*]}"
  # The packages' own services stay stopped (Debian's policy-rc.d, for the time of the
  # install where the machine has none): a system dockerd would make a bridge network in a
  # private address range and iptables rules. This script starts the engine it uses.
  local policy=/usr/sbin/policy-rc.d ours=0 status=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}") >"$DIR/apt.log" 2>&1 || status=$?
  [ "$ours" -eq 0 ] || rm -f "$policy"
  [ "$status" -eq 0 ] || { cat "$DIR/apt.log" >&2; die "installing ${missing[*]} failed"; }
}

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# The kernel's start time of a process (field 22 of /proc/PID/stat) tells a process from a
# later one that reuses its PID.
# A zombie (ended, not yet reaped by its parent) has none: it is gone for our purposes.
start_time_of() { awk '{ sub(/^.*\) /, ""); if ($1 != "Z") print $20 }' "/proc/$1/stat" 2>/dev/null; }

wait_for() {
  local what="$1" timeout_s="$2" log="$3"
  shift 3
  local deadline=$((SECONDS + timeout_s))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { tail -20 "$log" >&2; die "$what did not start within ${timeout_s}s (log: $log)"; }
    sleep 0.5
  done
}

start_engine() {
  mkdir -p "$DIR/data" "$DIR/exec" "$(dirname "$MARKER")"
  # Our own containerd, so a system containerd (or a system dockerd's) is never shared; no
  # CRI plugin: only dockerd talks to it.
  cat >"$DIR/containerd.toml" <<EOF
version = 2
root = "$DIR/data/containerd"
state = "$DIR/exec/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CONTAINERD_SOCK"
EOF
  # No system daemon.json either: an empty one of our own.
  [ -f "$DIR/daemon.json" ] || echo '{}' >"$DIR/daemon.json"
  # What an engine that was killed leaves behind: its sockets, and a PID file that would stop
  # dockerd from starting while that PID lives (as another process, by then).
  rm -f "$CONTAINERD_SOCK" "$SOCK"
  local stale
  stale="$(cat "$DIR/dockerd.pid" 2>/dev/null || true)"
  if [ -n "$stale" ] && ! tr '\0' ' ' <"/proc/$stale/cmdline" 2>/dev/null | grep -qF " $DIR/"; then
    rm -f "$DIR/dockerd.pid"
  fi
  setsid containerd --config "$DIR/containerd.toml" >>"$DIR/containerd.log" 2>&1 </dev/null 9>&- &
  local containerd_pid=$!
  wait_for containerd "$START_TIMEOUT_S" "$DIR/containerd.log" test -S "$CONTAINERD_SOCK"
  # No bridge, no iptables, no IP forwarding: builds and containers use the host's network and
  # loopback addresses only, and the host's network settings stay as they are.
  local storage=()
  [ -n "${EDGE_CONTAINERS_STORAGE_DRIVER:-}" ] && storage=(--storage-driver "$EDGE_CONTAINERS_STORAGE_DRIVER")
  setsid dockerd --host "unix://$SOCK" --containerd "$CONTAINERD_SOCK" \
    --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$DIR/dockerd.pid" \
    --config-file "$DIR/daemon.json" --bridge=none --iptables=false --ip-masq=false \
    --ip-forward=false --ip6tables=false "${storage[@]}" \
    >>"$DIR/dockerd.log" 2>&1 </dev/null 9>&- &
  local dockerd_pid=$!
  printf 'dockerd %s %s\ncontainerd %s %s\n' \
    "$dockerd_pid" "$(start_time_of "$dockerd_pid")" \
    "$containerd_pid" "$(start_time_of "$containerd_pid")" >"$MARKER"
  wait_for dockerd "$START_TIMEOUT_S" "$DIR/dockerd.log" engine_answers
  say "started dockerd (pid $dockerd_pid) on $SOCK, storage driver $(docker info --format '{{.Driver}}')"
}

stop_recorded() {
  local name="$1" pid="$2" started="$3"
  # The same start time, and a command line naming this engine's folder: the very process.
  if [ "$(start_time_of "$pid")" != "$started" ] ||
    ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF " $DIR/"; then
    say "$name (pid $pid) already ended"
    return 0
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + STOP_TIMEOUT_S))
  while [ "$(start_time_of "$pid")" = "$started" ]; do
    if [ $SECONDS -ge $deadline ]; then
      say "$name (pid $pid) did not stop within ${STOP_TIMEOUT_S}s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
  done
  say "stopped $name (pid $pid)"
}

cmd_up() {
  mkdir -p "$DIR"
  install_missing
  "$ROOT/scripts/containers/arm64-emulation.sh"
  # One `up` at a time over the shared folder, so two checkouts never start two engines.
  exec 9>"$DIR/lock"
  flock 9
  if engine_answers; then
    say "reusing the engine on $SOCK"
  else
    start_engine
  fi
  flock -u 9
  "$ROOT/scripts/containers/bases.sh"
}

cmd_down() {
  if [ ! -f "$MARKER" ]; then
    say "this checkout started no engine: nothing to stop"
    return 0
  fi
  # dockerd first: it stops its containers, then containerd can go.
  local name pid started
  while read -r name pid started; do
    stop_recorded "$name" "$pid" "$started"
  done <"$MARKER"
  rm -f "$MARKER"
}

cmd_status() {
  if ! engine_answers; then
    echo "engine: not running ($SOCK)"
    return 3
  fi
  echo "engine: running on $SOCK"
  docker version --format 'version: {{.Server.Version}} (API {{.Server.APIVersion}})'
  docker info --format 'storage driver: {{.Driver}}; data: {{.DockerRootDir}}'
  if [ -f "$MARKER" ]; then echo "started by this checkout: yes"; else echo "started by this checkout: no"; fi
  docker image ls --format 'table {{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}'
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  bases) "$ROOT/scripts/containers/bases.sh" ;;
  env) echo "export DOCKER_HOST=unix://$SOCK" ;;
  *)
    echo "usage: scripts/containers.sh up|down|status|env|bases" >&2
    exit 2
    ;;
esac
