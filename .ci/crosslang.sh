#!/usr/bin/env bash
# Files are the same everywhere: a 10,000-vector forest built in Go is
# searched from Go, Lua, Python and Rust, and one built in Python from Go,
# Lua and Rust; every language must return identical ids and distances.
#
#   bash .ci/crosslang.sh
#
# Runs after .ci/python.sh, .ci/go.sh and .ci/lua.sh (it uses the Python
# venv, Go, the Lua module and the C ABI library those set up); builds
# what is missing of the Rust side itself. Exits non-zero on any difference.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -d "$HOME/.cargo/bin" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
python="${VENV:-$root/target/python-ci-venv}/bin/python"
if [[ ! -x "$python" ]]; then
    echo "crosslang: no Python venv at $python (run .ci/python.sh first, or set VENV)" >&2
    exit 1
fi
lua="${CROSSLANG_LUA:-lua5.4}"
case "$lua" in
    luajit) luaver=luajit ;;
    *) luaver="${lua#lua}" ;;
esac

echo "== crosslang: the C ABI, the swann command and the $luaver Lua module"
cargo build --release -p swann-capi
cargo build --release -p swann-cli
bash lua/build.sh "$luaver"
swann="$root/target/release/swann"

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$python" scripts/crosslang.py gen "$dir"
K=10
SEARCH_K=2000

search_all() { # INDEX PREFIX
    local index="$1" prefix="$2"
    (cd go && go run ./cmd/swann-crosslang search -index "$index" -metric angular \
        -queries "$dir/q.fvecs" -k $K -search-k $SEARCH_K -out "$dir/$prefix.go.txt")
    "$lua" lua/crosslang.lua "$index" 32 angular "$dir/q.txt" $K $SEARCH_K "$dir/$prefix.lua.txt"
    "$python" scripts/crosslang.py search "$index" "$dir" "$dir/$prefix.python.txt"
    "$swann" query "$index" --queries "$dir/q.fvecs" --k $K --ef $SEARCH_K \
        --results "$dir/$prefix.rust.txt" >/dev/null
}

echo "== crosslang: built in Go, searched from Go, Lua, Python and Rust"
(cd go && go run ./cmd/swann-crosslang build -data "$dir/base.fvecs" -metric angular \
    -trees 20 -seed 42 -out "$dir/go.swann")
search_all "$dir/go.swann" go
"$python" scripts/crosslang.py compare "$dir"/go.{go,lua,python,rust}.txt

echo "== crosslang: built in Python, searched from Go, Lua, Python and Rust"
"$python" scripts/crosslang.py build "$dir" "$dir/py.swann"
search_all "$dir/py.swann" py
"$python" scripts/crosslang.py compare "$dir"/py.{python,go,lua,rust}.txt

echo "== crosslang: the same seed gives the same file from Go and from Python"
cmp "$dir/go.swann" "$dir/py.swann"
echo "crosslang: go.swann and py.swann are byte-identical"
