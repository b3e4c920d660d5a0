#!/usr/bin/env bash
# The whole pipeline on the device simulator: a synthetic camera module sends frames through
# edgeHub routes to the classifier module, whose predictions arrive at the simulated IoT Hub.
# Extra arguments go to `python -m simulator demo` (e.g. --duration 30 --fps 20 --quiet).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec python -m simulator demo "$@"
