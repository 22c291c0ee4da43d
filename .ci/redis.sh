#!/usr/bin/env bash
# Runs the LSH engine's Redis tests against a real redis-server.
#
# Installs redis-server with apt when it is missing, starts a throwaway
# server on a free 127.0.0.1 port with a temporary data directory (loopback
# only, no persistence), exports SWANN_REDIS_URL for the tests, and stops the
# server on exit, whatever happens. Call it from .ci/run:
#     bash .ci/redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis.sh: installing redis-server"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
tmp=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$port" --dir "$tmp" --save "" --appendonly no \
    --daemonize no --protected-mode yes >"$tmp/redis.log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then break; fi
    sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$port" ping | grep -q PONG || {
    echo "redis.sh: redis-server did not start"; cat "$tmp/redis.log"; exit 1; }

export SWANN_REDIS_URL="redis://127.0.0.1:$port/"
echo "redis.sh: redis-server $(redis-server --version | awk '{print $3}') on $SWANN_REDIS_URL"
cargo test --features redis --test lsh_redis -- --nocapture
