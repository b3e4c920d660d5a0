#!/usr/bin/env bash
# Registers qemu-user for aarch64 in binfmt_misc, so arm64 images build and run here.
#
# qemu-user before 8.1 hands arm64 programs the host's own /proc/cpuinfo (x86 text); ONNX
# Runtime's CPU detection crashes on it (SIGSEGV in `import onnxruntime`). In a container
# that then hangs: qemu ends itself by raising the signal at itself and waiting for it, and
# the kernel drops a fatal signal a PID namespace's init sends itself (qemu is PID 1 when the
# program is the container's command; `docker run --init` makes it exit 139 instead).
# Later qemu emulates an ARM /proc/cpuinfo. Where the distribution's qemu-user-static is
# older, the static qemu-aarch64 of Debian's next release (QEMU_SUITE) is fetched into
# $DIR/qemu (apt with the machine's own mirror and keyring, in a private state folder:
# nothing is installed or upgraded) and registered instead of the distribution's.
# The F flag makes the kernel open the interpreter when it is registered, so it works
# inside containers' own root filesystems too.
set -euo pipefail
DIR="${EDGE_CONTAINERS_DIR:-$HOME/.cache/edge-classifier/containers}"
QEMU_SUITE="${EDGE_QEMU_SUITE:-trixie}"
BINFMT=/proc/sys/fs/binfmt_misc
MAGIC='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
MASK='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'

say() { echo "arm64 emulation: $*" >&2; }

# True for qemu 8.1 or later.
emulates_cpuinfo() {
  [ -x "$1" ] && "$1" --version 2>/dev/null |
    awk 'NR == 1 { split($3, v, "."); exit !(v[1] > 8 || (v[1] == 8 && v[2] >= 1)) }'
}

fetch_newer_qemu() {
  local dest="$1" apt="$DIR/qemu/apt" mirror codename
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  mirror="$(apt-get indextargets --format '$(SITE) $(RELEASE)' 2>/dev/null |
    awk -v suite="$codename" '$2 == suite { print $1; exit }')"
  [ -n "$mirror" ] || { say "no Debian archive configured for apt here"; return 1; }
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
  echo "deb $mirror $QEMU_SUITE main" >"$apt/sources.list"
  local options=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root
    -o "APT::Architectures=$(dpkg --print-architecture)")
  say "fetching qemu-user from Debian $QEMU_SUITE"
  (apt-get "${options[@]}" update -qq && cd "$apt" && rm -f qemu-user_*.deb &&
    apt-get "${options[@]}" download -qq qemu-user) >"$apt/fetch.log" 2>&1 ||
    { tail -5 "$apt/fetch.log" >&2; return 1; }
  dpkg-deb --fsys-tarfile "$apt"/qemu-user_*.deb | tar -xOf - ./usr/bin/qemu-aarch64 >"$dest.part"
  chmod 755 "$dest.part"
  mv "$dest.part" "$dest"
  rm -f "$apt"/qemu-user_*.deb
}

emulator() {
  local system ours="$DIR/qemu/qemu-aarch64"
  system="$(command -v qemu-aarch64-static || true)"
  if [ -n "$system" ] && emulates_cpuinfo "$system"; then
    echo "$system"
  elif emulates_cpuinfo "$ours" || fetch_newer_qemu "$ours"; then
    echo "$ours"
  elif [ -n "$system" ]; then
    say "only $("$system" --version | head -1) is available: ONNX Runtime will crash under it"
    echo "$system"
  else
    return 1
  fi
}

[ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT" ||
  { say "cannot mount binfmt_misc: arm64 images will not build"; exit 0; }
mkdir -p "$DIR/qemu"
interpreter="$(emulator)" || { say "no qemu-aarch64: arm64 images will not build"; exit 0; }
if [ -e "$BINFMT/qemu-aarch64" ]; then
  grep -qx "interpreter $interpreter" "$BINFMT/qemu-aarch64" && exit 0
  echo -1 >"$BINFMT/qemu-aarch64"
fi
printf ':qemu-aarch64:M::%s:%s:%s:OCF\n' "$MAGIC" "$MASK" "$interpreter" >"$BINFMT/register" ||
  { say "cannot register $interpreter: arm64 images will not build"; exit 0; }
say "registered $("$interpreter" --version | head -1)"
