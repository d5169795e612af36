#!/usr/bin/env bash
# Makes sure a CRIU that works on this kernel is there and prints its path.
#
# An installed `criu` is used when `criu check` passes. Otherwise CRIU 4.1.1 is built from
# its upstream tarball, which Debian 13 (trixie) carries as the orig tarball of its source
# package: it is fetched with a private apt configuration (the host's package lists and
# sources stay as they are), checked against its pinned SHA-256, built with Debian 12's own
# build dependencies and kept in the cache directory, so a second run does not rebuild it.
# The patches beside this script (criu-*.patch) are applied first: the cache directory's name
# carries their level, so a changed set is built afresh.
set -euo pipefail

VERSION=4.1.1
SHA256=f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe
PATCH_LEVEL=p1
CACHE=${STRATOSWARM_CRIU_CACHE:-/var/cache/stratoswarm/criu-$VERSION-$PATCH_LEVEL}
MIRROR=${STRATOSWARM_DEBIAN_MIRROR:-}
BUILD_DEPS=(libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler python3-protobuf
  libnl-3-dev libnet1-dev libcap-dev pkg-config libbsd-dev libaio-dev libgnutls28-dev libnftables-dev uuid-dev)

works() {
  # Hardware breakpoints do not trap in some VMs; the check does not need them.
  "$1" check >/dev/null 2>&1
}

if command -v criu >/dev/null 2>&1 && works "$(command -v criu)"; then
  command -v criu
  exit 0
fi
if [ -x "$CACHE/criu" ] && works "$CACHE/criu"; then
  echo "$CACHE/criu"
  exit 0
fi

log() { echo "criu: $*" >&2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The Debian source the host uses (its first deb.debian.org-style URI), for trixie's sources.
if [ -z "$MIRROR" ]; then
  MIRROR=$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
  [ -n "$MIRROR" ] || MIRROR=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\(http[^ ]*debian\)\/* .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n1)
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi

log "building CRIU $VERSION (the installed one is missing or fails its check)"
missing=()
for p in "${BUILD_DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing build dependencies: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }
fi

apt="$work/apt"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$work/src"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" >"$apt/sources.list"
aptopts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
apt-get "${aptopts[@]}" update -qq >&2
# Only the orig tarball is needed (the .dsc is not always served): apt fetches what it can
# and the tarball is checked here, by its pinned digest.
(cd "$work/src" && apt-get "${aptopts[@]}" source --download-only -qq criu >&2 2>&1) || true
tarball="$work/src/criu_$VERSION.orig.tar.xz"
[ -f "$tarball" ] || { log "trixie's sources did not give criu_$VERSION.orig.tar.xz"; exit 1; }
echo "$SHA256  $tarball" | sha256sum -c --quiet - >&2 || { log "criu_$VERSION.orig.tar.xz: SHA-256 mismatch"; exit 1; }
tar -xJf "$tarball" -C "$work/src"
for p in "$(dirname "$0")"/criu-*.patch; do
  [ -f "$p" ] || continue
  patch -d "$work/src/criu-$VERSION" -p1 --quiet <"$p" >&2 || { log "patch $(basename "$p") does not apply"; exit 1; }
done
make -C "$work/src/criu-$VERSION" -j"$(nproc)" criu >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; exit 1; }
mkdir -p "$CACHE"
install -m 0755 "$work/src/criu-$VERSION/criu/criu" "$CACHE/criu.new"
mv "$CACHE/criu.new" "$CACHE/criu"
works "$CACHE/criu" || { log "the CRIU just built fails 'criu check':"; "$CACHE/criu" check >&2 || true; exit 1; }
echo "$CACHE/criu"
