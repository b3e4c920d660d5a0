#!/usr/bin/env bash
# Provides the base images that the module Dockerfiles start FROM, in the engine that
# scripts/containers.sh runs. Each is pulled when its registry answers; where it cannot be
# pulled, an image of the same name is made instead for the python:3.11-slim-bookworm bases:
# Debian bookworm (minbase) with Debian's Python 3.11 in /usr/bin (python3, python3-venv,
# python-is-python3, ca-certificates), bootstrapped from the distribution's archive with
# debootstrap (arm64 through qemu-user) and imported with `docker import`. It is NOT the
# official image (whose Python is a build of its own in /usr/local); the Dockerfiles build
# on it unchanged. The stand-in also trusts the certificate authorities that pip trusts on
# this machine, so that pip inside `docker build` reaches the package index as pip here does
# (the Dockerfiles cannot take a secret: iotedgedev's builder has no BuildKit).
#
# Cache: the root filesystem tarball of each stand-in lies in $DIR/bases, named by a hash of
# its recipe (this script's bootstrap steps, the suite, the architecture, the packages and the
# trusted certificates); an image already tagged with the same recipe is left alone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${EDGE_CONTAINERS_DIR:-$HOME/.cache/edge-classifier/containers}"
BASES="$DIR/bases"
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
PULL_TIMEOUT_S="${EDGE_BASE_PULL_TIMEOUT_S:-60}"
RECIPE_LABEL=org.edge-classifier.stand-in-recipe
export DOCKER_HOST="unix://$DIR/docker.sock"

say() { echo "bases: $*" >&2; }

# The certificate bundle that pip uses here: PIP_CERT, pip's configuration, else the system's.
pip_ca_bundle() {
  local bundle="${PIP_CERT:-}"
  [ -n "$bundle" ] || bundle="$(python3 -m pip config get global.cert 2>/dev/null || true)"
  [ -n "$bundle" ] && [ -f "$bundle" ] || bundle=/etc/ssl/certs/ca-certificates.crt
  echo "$bundle"
}

# The archive that apt uses here for the suite; debootstrap's own default where apt has none.
debian_mirror() {
  apt-get indextargets --format '$(SITE) $(RELEASE)' 2>/dev/null |
    awk -v suite="$1" '$2 == suite { print $1; exit }'
}

bootstrap_rootfs() {
  local suite="$1" arch="$2" rootfs="$3" ca_bundle="$4" mirror
  mirror="$(debian_mirror "$suite")"
  # Without --foreign: the second stage runs the target's binaries in the chroot, arm64 ones
  # through the registered qemu-aarch64 interpreter.
  debootstrap --variant=minbase --arch="$arch" --include="$PACKAGES" "$suite" "$rootfs" \
    ${mirror:+"$mirror"} >"$rootfs.log" 2>&1 || {
    tail -30 "$rootfs.log" >&2
    return 1
  }
  cp "$ca_bundle" "$rootfs/usr/local/share/ca-certificates/build-machine.crt"
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
}

recipe_hash() {
  local suite="$1" arch="$2" ca_bundle="$3"
  { declare -f bootstrap_rootfs; echo "$suite $arch $PACKAGES"; cat "$ca_bundle"; } |
    sha256sum | cut -c1-16
}

image_recipe() {
  docker image inspect --format "{{ index .Config.Labels \"$RECIPE_LABEL\" }}" "$1" 2>/dev/null
}

# Loads the root filesystem as a one-layer image in `docker save`'s format, whose config
# names the architecture: `docker import --platform` sets it only on an experimental daemon,
# and `docker build --platform linux/arm64` takes a base of the build's architecture only.
load_image() {
  local image="$1" arch="$2" hash="$3" tarball="$4" archive diff_id
  archive="$(mktemp -d "$BASES/archive.XXXXXX")"
  ln "$tarball" "$archive/layer.tar"
  diff_id="sha256:$(sha256sum "$tarball" | cut -d' ' -f1)"
  cat >"$archive/config.json" <<EOF
{"architecture": "$arch", "os": "linux",
 "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
            "Cmd": ["python3"], "Labels": {"$RECIPE_LABEL": "$hash"}},
 "rootfs": {"type": "layers", "diff_ids": ["$diff_id"]},
 "history": [{"created_by": "scripts/containers/bases.sh: debootstrap $PACKAGES"}]}
EOF
  printf '[{"Config": "config.json", "RepoTags": ["%s"], "Layers": ["layer.tar"]}]\n' "$image" \
    >"$archive/manifest.json"
  tar -C "$archive" -cf - manifest.json config.json layer.tar | docker load -q >/dev/null
  rm -rf "$archive"
}

make_standin() {
  local image="$1" arch="$2" suite="$3" ca_bundle hash tarball started=$SECONDS
  ca_bundle="$(pip_ca_bundle)"
  hash="$(recipe_hash "$suite" "$arch" "$ca_bundle")"
  if [ "$(image_recipe "$image")" = "$hash" ]; then
    say "$image: stand-in up to date"
    return 0
  fi
  mkdir -p "$BASES"
  tarball="$BASES/debian-$suite-$arch-$hash.tar"
  if [ ! -f "$tarball" ]; then
    say "$image: bootstrapping a stand-in from Debian $suite ($arch)"
    local rootfs
    rootfs="$(mktemp -d "$BASES/rootfs-$arch.XXXXXX")"
    # shellcheck disable=SC2064 # the folder's name is fixed now
    trap "umount -R '$rootfs/proc' '$rootfs/sys' 2>/dev/null; rm -rf '$rootfs' '$rootfs.log'" EXIT
    bootstrap_rootfs "$suite" "$arch" "$rootfs" "$ca_bundle"
    tar --numeric-owner -C "$rootfs" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$rootfs" "$rootfs.log"
    trap - EXIT
  fi
  load_image "$image" "$arch" "$hash" "$tarball"
  say "$image: stand-in imported ($((SECONDS - started)) s)"
}

provide() {
  local image="$1" arch=amd64
  [[ "$image" == arm64v8/* ]] && arch=arm64
  # A pulled (real) image carries no recipe label; a stand-in is checked against its recipe.
  if docker image inspect "$image" >/dev/null 2>&1 && [ -z "$(image_recipe "$image")" ]; then
    return 0
  fi
  if [ -z "$(image_recipe "$image")" ] &&
    timeout "$PULL_TIMEOUT_S" docker pull -q --platform "linux/$arch" "$image" >/dev/null 2>&1; then
    say "$image: pulled"
    return 0
  fi
  if [[ "$image" =~ ^(amd64|arm64v8)/python:3\.11\.[0-9]+-slim-bookworm$ ]]; then
    make_standin "$image" "$arch" bookworm
  else
    say "$image: cannot be pulled and has no stand-in here (images FROM it will not build)"
  fi
}

images="$(grep -h '^FROM ' "$ROOT"/modules/*/Dockerfile.* | awk '{ print $2 }' | sort -u)"
for image in $images; do
  provide "$image"
done
