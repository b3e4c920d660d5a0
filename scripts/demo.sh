#!/usr/bin/env bash
# The whole pipeline on the device simulator: a synthetic camera module sends frames through
# edgeHub routes to the classifier module, whose predictions arrive at the simulated IoT Hub.
# Extra arguments go to `python -m simulator demo` (e.g. --duration 30 --fps 20 --quiet).
# With --mqtt: the same modules on a local Eclipse Mosquitto, two classifier replicas sharing
# the frames (docs/mqtt.md; `scripts/demo.sh --mqtt --help` for its options).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
if [ "${1:-}" = "--mqtt" ]; then
  shift
  exec python -m simulator.mqtt_demo "$@"
fi
exec python -m simulator demo "$@"
