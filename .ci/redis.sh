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

tmp=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# A random high loopback port; another one if it is taken.
port=
for _ in $(seq 1 20); do
    try=$((20000 + RANDOM % 40000))
    redis-server --bind 127.0.0.1 --port "$try" --dir "$tmp" --save "" --appendonly no \
        --daemonize no --protected-mode yes >"$tmp/redis.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do
        # Our own server's log, not a ping: a ping could be answered by
        # someone else's server already on that port.
        kill -0 "$pid" 2>/dev/null || break
        if grep -q "Ready to accept connections" "$tmp/redis.log"; then port=$try; break; fi
        sleep 0.1
    done
    [ -n "$port" ] && break
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=
done
[ -n "$port" ] || { echo "redis.sh: redis-server did not start"; cat "$tmp/redis.log"; exit 1; }

export SWANN_REDIS_URL="redis://127.0.0.1:$port/"
echo "redis.sh: redis-server $(redis-server --version | awk '{print $3}') on $SWANN_REDIS_URL"
cargo test --features redis --test lsh_redis -- --nocapture
