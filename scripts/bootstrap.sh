#!/usr/bin/env bash
# Creates .venv with Python 3.11 and installs the pinned requirements (constraints.txt pins
# every transitive package too). Re-running is cheap: a stamp of the requirement files'
# hash skips the install when nothing changed. Sourced by demo.sh and test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  PYTHON="$(find_python)" || {
    echo "bootstrap: Python 3.11 is required (python3.11 or python3 on PATH)" >&2
    exit 1
  }
  echo "bootstrap: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.requirements.sha256
want="$(cat requirements.txt modules/*/requirements.txt constraints.txt 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing pinned requirements (first run takes a minute or two)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  constraints=()
  [ -f constraints.txt ] && constraints=(-c constraints.txt)
  .venv/bin/python -m pip install --quiet -r requirements.txt "${constraints[@]}"
  echo "$want" >"$stamp"
fi
# Node tools (Azurite, the Blob Storage emulator the simulator and tests run), pinned by
# tools/node/package-lock.json. Without npm the simulator runs without storage and the tests
# that need it skip, saying why (CI sets EDGE_REQUIRE_TOOLS=1 so they fail instead).
node_stamp=tools/node/node_modules/.package-lock.sha256
node_want="$(sha256sum tools/node/package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$node_stamp" 2>/dev/null)" != "$node_want" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "bootstrap: installing pinned Node tools (Azurite)"
    npm ci --prefix tools/node --no-audit --no-fund --ignore-scripts --loglevel=error
    echo "$node_want" >"$node_stamp"
  else
    echo "bootstrap: npm not found: the Blob Storage emulator (Azurite) is not installed" >&2
  fi
fi
# The repository's own packages, each with its pyproject.toml: the shared libraries (libs/),
# the modules (modules/) and the operator side (the root: cloud_tools, the simulator), all
# editable, so every python of .venv imports them from the working tree. Compat mode puts
# each project's folder on the path through a .pth file (mypy cannot follow the import
# hooks of the default mode); no build isolation, so this works without the package index.
packages=(libs/edge_module libs/synthdata modules/classifier modules/framesource .)
packages_stamp=.venv/.packages.sha256
packages_want="$(printf '%s\n' "${packages[@]}" | sha256sum | cut -d' ' -f1)"
packages_want="$packages_want-$(cat "${packages[@]/%//pyproject.toml}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$packages_stamp" 2>/dev/null)" != "$packages_want" ]; then
  echo "bootstrap: installing the repository's packages (editable)"
  editable=()
  for package in "${packages[@]}"; do editable+=(-e "$package"); done
  # setuptools warns at length about its own beta configuration: shown only on failure.
  if ! .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation \
    --config-settings editable_mode=compat "${editable[@]}" >.venv/.packages.log 2>&1; then
    cat .venv/.packages.log >&2
    exit 1
  fi
  echo "$packages_want" >"$packages_stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
