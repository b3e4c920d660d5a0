#!/usr/bin/env bash
# Every check, as CI runs it: lint, format, types, then the test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k decode).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
echo "== pytest"; python -m pytest "$@"
