#!/usr/bin/env bash
# What the test suite needs, on Debian bookworm, as root (or with sudo):
#   - Debian packages: real clients for interop tests (libmemcached-tools, pymemcache),
#     twemproxy, openssl, iproute2 (`ss`), netcat, sasl2-bin (saslpasswd2), and what
#     memcached's own test suite and its build need (perl, libio-socket-ssl-perl, a C
#     toolchain, libevent, OpenSSL and SASL headers, pkg-config);
#   - the reference: memcached 1.6.45 (release and debug builds, `timedrun`, its `t/` suite),
#     built from Debian's source tarball into a cache outside the repository:
#       ${MCTS_CACHE_DIR:-$HOME/.cache/memcached-ts}/memcached-1.6.45/
#     (scripts/memcached-reference.js is the one place that knows this path). Skipped when
#     that tree already holds a memcached that says 1.6.45.
#
#   MCTS_MEMCACHED_TARBALL=<file>  build from this memcached_1.6.45.orig.tar.xz instead of
#                                  downloading it (it must have the pinned SHA-256)
set -euo pipefail

REF_VERSION=1.6.45
# SHA-256 of memcached_1.6.45.orig.tar.xz, from Debian sid's Sources index (memcached 1.6.45-1).
REF_TARBALL_SHA256=c383a2ad8f973b627c3de472702f46ee33b402750de4fd2d25cef65a00140110
REPO="$(cd "$(dirname "$0")/.." && pwd)"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

packages=(libmemcached-tools python3-pymemcache nutcracker openssl iproute2 netcat-openbsd sasl2-bin
  perl libio-socket-ssl-perl build-essential pkg-config libevent-dev libssl-dev libsasl2-dev
  xz-utils dpkg-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# An earlier version of this script installed Debian's memcached, which starts a service on
# port 11211; the tests start their own servers on their own ports.
if command -v systemctl >/dev/null 2>&1; then systemctl stop memcached 2>/dev/null || true; fi

# ---- the reference memcached -------------------------------------------------------------
REF_DIR="$(node "$REPO/scripts/memcached-reference.js" --dir)"
[ "$(node "$REPO/scripts/memcached-reference.js" --version)" = "$REF_VERSION" ] || {
  echo "install-test-deps: scripts/memcached-reference.js pins another version than $REF_VERSION" >&2; exit 1; }

built_ok() {
  [ -x "$REF_DIR/memcached" ] && [ -x "$REF_DIR/memcached-debug" ] && [ -x "$REF_DIR/timedrun" ] &&
    [ -d "$REF_DIR/t" ] && [ "$("$REF_DIR/memcached" -V 2>/dev/null)" = "memcached $REF_VERSION" ]
}

if built_ok; then
  echo "install-test-deps: memcached $REF_VERSION already built in $REF_DIR"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/mcts-memcached-src.XXXXXX")"
trap 'rm -rf "$work"' EXIT
tarball="$work/memcached_${REF_VERSION}.orig.tar.xz"

if [ -n "${MCTS_MEMCACHED_TARBALL:-}" ]; then
  cp "$MCTS_MEMCACHED_TARBALL" "$tarball"
else
  # Debian's sid carries memcached 1.6.45; fetch its source index into a private apt state
  # (nothing is added to the system's sources) and download the upstream tarball. The .dsc
  # may be gone from the mirror while the tarball is not; only the tarball matters here.
  mkdir -p "$work/apt/lists/partial"
  echo 'deb-src http://deb.debian.org/debian sid main' > "$work/apt/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/apt/lists")
  $SUDO apt-get "${apt_opts[@]}" update -qq || true
  (cd "$work" && $SUDO apt-get "${apt_opts[@]}" source --download-only "memcached=${REF_VERSION}-1" >/dev/null 2>&1) || true
  if [ ! -f "$tarball" ]; then
    (cd "$work" && $SUDO apt-get "${apt_opts[@]}" source --download-only memcached >/dev/null 2>&1) || true
  fi
fi

if [ ! -f "$tarball" ]; then
  cat >&2 <<EOF
install-test-deps: cannot get memcached_${REF_VERSION}.orig.tar.xz from Debian's archive.
  The tests compare against memcached ${REF_VERSION} exactly, so no other version will do.
  Debian sid may have moved to a newer memcached; put the ${REF_VERSION} tarball somewhere and run
    MCTS_MEMCACHED_TARBALL=/path/to/memcached_${REF_VERSION}.orig.tar.xz bash scripts/install-test-deps.sh
EOF
  exit 1
fi
sum="$(sha256sum "$tarball" | cut -d' ' -f1)"
if [ "$sum" != "$REF_TARBALL_SHA256" ]; then
  echo "install-test-deps: $tarball has SHA-256 $sum, expected $REF_TARBALL_SHA256 (memcached $REF_VERSION)" >&2
  exit 1
fi

tar -C "$work" -xf "$tarball"
src="$work/memcached-${REF_VERSION}"
[ -d "$src" ] || { echo "install-test-deps: the tarball has no memcached-${REF_VERSION}/ directory" >&2; exit 1; }
echo "install-test-deps: building memcached $REF_VERSION (TLS, SASL) in $REF_DIR"
(cd "$src" && ./configure --enable-tls --enable-sasl --enable-sasl-pwdb >"$work/configure.log" 2>&1) || {
  tail -n 40 "$work/configure.log" >&2; exit 1; }
(cd "$src" && make -j"$(nproc 2>/dev/null || echo 2)" memcached memcached-debug timedrun >"$work/make.log" 2>&1) || {
  tail -n 40 "$work/make.log" >&2; exit 1; }

mkdir -p "$(dirname "$REF_DIR")"
rm -rf "$REF_DIR.new"
mv "$src" "$REF_DIR.new"
rm -rf "$REF_DIR"
mv "$REF_DIR.new" "$REF_DIR"
built_ok || { echo "install-test-deps: $REF_DIR/memcached does not report memcached $REF_VERSION" >&2; exit 1; }
echo "install-test-deps: memcached $REF_VERSION ready in $REF_DIR"
