#!/usr/bin/env bash
# The whole pipeline on the device simulator: a synthetic camera module sends frames through
# edgeHub routes to the classifier module, whose predictions arrive at the simulated IoT Hub.
# Extra arguments go to `python -m simulator demo` (e.g. --duration 30 --fps 20 --quiet).
# With --mqtt: the same modules on a local Eclipse Mosquitto, two classifier replicas sharing
# the frames (docs/mqtt.md; `scripts/demo.sh --mqtt --help` for its options).
# With --runtime docker the modules run as containers from their images: the container
# engine is started first (scripts/containers.sh up, which installs it when missing), the
# images are built and pushed to the simulator's registry, and on exit the engine is stopped
# again if this demo started it.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/bootstrap.sh"
if [ "${1:-}" = "--mqtt" ]; then
  shift
  exec python -m simulator.mqtt_demo "$@"
fi
containers=false
previous=""
for arg in "$@"; do
  if [ "$arg" = "--runtime=docker" ] || { [ "$previous" = "--runtime" ] && [ "$arg" = "docker" ]; }; then
    containers=true
  fi
  previous="$arg"
done
if ! $containers; then
  exec python -m simulator demo "$@"
fi
"$HERE/containers.sh" up
trap '"$HERE/containers.sh" down' EXIT
eval "$("$HERE/containers.sh" env)"
python -m simulator demo "$@"
