#!/usr/bin/env bash
# Build the image and check it on a machine with a Docker engine (this project's CI machines
# have none): the container becomes healthy, runs as a non-root user, serves set/get on a
# loopback-published port, has the native addon, and stops. Bounded in time; everything it
# starts is removed by id.
#
#   bash scripts/docker-smoke.sh [image-tag]
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-memcached-ts:smoke}"
health_wait_s=60

command -v docker >/dev/null || { echo "docker-smoke: docker not found" >&2; exit 69; }
docker info >/dev/null 2>&1 || { echo "docker-smoke: no Docker engine answers (docker info failed)" >&2; exit 69; }

docker build -t "$tag" .
id="$(docker run -d --rm -p 127.0.0.1::11211 "$tag" -m 64 -v)"
cleanup() { docker rm -f "$id" >/dev/null 2>&1 || true; }
trap cleanup EXIT

for _ in $(seq 1 "$health_wait_s"); do
  status="$(docker inspect -f '{{.State.Health.Status}}' "$id")"
  [ "$status" = healthy ] && break
  [ "$status" = unhealthy ] && { docker logs "$id" >&2; echo "docker-smoke: container unhealthy" >&2; exit 1; }
  sleep 1
done
[ "$status" = healthy ] || { docker logs "$id" >&2; echo "docker-smoke: not healthy after ${health_wait_s}s" >&2; exit 1; }

uid="$(docker exec "$id" id -u)"
[ "$uid" != 0 ] || { echo "docker-smoke: the server runs as root" >&2; exit 1; }

port="$(docker port "$id" 11211/tcp | head -1 | sed 's/.*://')"
reply="$(node -e "
const s = require('net').connect($port, '127.0.0.1');
let r = '';
s.setTimeout(5000, () => { console.log('timeout: ' + r); process.exit(1); });
s.on('connect', () => s.write('set smoke 0 0 2\r\nok\r\nget smoke\r\n'));
s.on('data', (d) => { r += d; if (r.endsWith('END\r\n')) { console.log(JSON.stringify(r)); process.exit(0); } });
")"
[ "$reply" = '"STORED\r\nVALUE smoke 0 2\r\nok\r\nEND\r\n"' ] || { echo "docker-smoke: unexpected reply $reply" >&2; exit 1; }

docker logs "$id" 2>&1 | grep -q 'native addon loaded' || echo "docker-smoke: warning: the native addon is not loaded in the image" >&2
docker stop -t 10 "$id" >/dev/null
trap - EXIT
echo "docker-smoke: OK ($tag: healthy, uid $uid, set/get on 127.0.0.1:$port)"
