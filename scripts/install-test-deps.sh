#!/usr/bin/env bash
# Debian packages the test suite uses: the reference memcached for differential tests,
# real clients for interop tests, twemproxy, and iproute2 for `ss`.
set -euo pipefail
packages=(memcached libmemcached-tools python3-pymemcache nutcracker openssl iproute2 netcat-openbsd sasl2-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# Debian starts a memcached service on install; the tests start their own, on their own ports.
if command -v systemctl >/dev/null 2>&1; then systemctl stop memcached 2>/dev/null || true; fi
