#!/usr/bin/env bash
# Builds the images offline, each cached by a content hash of its inputs (no rebuild when
# nothing changed):
#   sglang-prep/debian-base:<hash>  debootstrap (minbase) + docker import
#   sglang-prep/runtime:<hash>      the collection's images/Dockerfile FROM that base (BASE_IMAGE build argument)
#   sglang-prep/standin:<hash>      tests/standins/Dockerfile: the GPU stand-ins on top
# and tags the last one sglang-prep/standin:test, the image the tests and the demo run.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Debian mirror and suite: those this machine's apt uses (scripts/apt_mirror.py reads
# /etc/apt/sources.list and sources.list.d/), unless SGLANG_PREP_DEBIAN_MIRROR / _SUITE say otherwise.
mirror_suite=$(python3 scripts/apt_mirror.py)
read -r MIRROR SUITE <<<"$mirror_suite"
case $MIRROR in file:*)  # debootstrap could read it, the apt-get of the image builds (in containers) cannot
  dir=${MIRROR#file:}; dir=/${dir#"${dir%%[!/]*}"}
  echo "error: the Debian mirror $MIRROR is a directory on this machine, which the image builds" \
    "(apt-get inside containers) cannot read. Serve it over HTTP, e.g." \
    "'python3 -m http.server --directory $dir 8000', and set SGLANG_PREP_DEBIAN_MIRROR to a URL of it" \
    "that containers reach (an address of this machine such as its docker0 one, not 127.0.0.1)." >&2
  exit 1;;
esac
# SGLANG_PREP_TEST_IMAGE names another final tag (another checkout on this machine building its own stand-ins);
# such a build prunes nothing, so the images of other checkouts stay.
TEST_TAG=${SGLANG_PREP_TEST_IMAGE:-sglang-prep/standin:test}
# The production image recipe ships inside the collection.
IMAGE_DIR=collections/ansible_collections/sglang/prep/images

tree_hash() {  # hash of the named files/directories' contents and names, plus extra words
  local paths=() words=()
  for a in "$@"; do if [ -e "$a" ]; then paths+=("$a"); else words+=("$a"); fi; done
  { printf '%s\n' "${words[@]}"
    if [ ${#paths[@]} -gt 0 ]; then
      find "${paths[@]}" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum
    fi; } | sha256sum | cut -c1-16
}
have() { docker image inspect "$1" >/dev/null 2>&1; }

base_tag="sglang-prep/debian-base:$(tree_hash "debootstrap-minbase-v1" "$SUITE" "$MIRROR")"
if ! have "$base_tag"; then
  command -v debootstrap >/dev/null 2>&1 || {
    if [ "$(id -u)" = 0 ] && [ -r /etc/debian_version ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    else
      echo "error: debootstrap is needed to build the test base image (apt-get install debootstrap)" >&2; exit 1
    fi; }
  root=$(mktemp -d /var/tmp/sglang-prep-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "Building $base_tag with debootstrap ($SUITE from $MIRROR) ..."
  debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >/dev/null
  # debootstrap writes its own default mirror for a non-http one; the image builds use ours.
  echo "deb $MIRROR $SUITE main" >"$root/etc/apt/sources.list"
  tar -C "$root" -c . | docker import - "$base_tag" >/dev/null
  rm -rf "$root"; trap - EXIT
fi

runtime_tag="sglang-prep/runtime:$(tree_hash "$IMAGE_DIR" "$base_tag")"
if ! have "$runtime_tag"; then
  echo "Building $runtime_tag ..."
  docker build -q --build-arg BASE_IMAGE="$base_tag" -t "$runtime_tag" "$IMAGE_DIR" >/dev/null
fi

standin_tag="sglang-prep/standin:$(tree_hash tests/standins "$runtime_tag")"
if ! have "$standin_tag"; then
  echo "Building $standin_tag ..."
  docker build -q --build-arg BASE_IMAGE="$runtime_tag" -t "$standin_tag" -f tests/standins/Dockerfile tests/standins >/dev/null
fi
docker tag "$standin_tag" "$TEST_TAG"
# Drop superseded builds of these three images (a tag still used by a container stays).
[ "$TEST_TAG" = sglang-prep/standin:test ] && for current in "$base_tag" "$runtime_tag" "$standin_tag"; do
  docker image ls --format '{{.Repository}}:{{.Tag}}' "${current%%:*}" | grep -vxF -e "$current" -e "$TEST_TAG" \
    | xargs -r docker image rm >/dev/null 2>&1 || true
done
echo "Images ready: $TEST_TAG = $standin_tag (on $runtime_tag, $base_tag)"
