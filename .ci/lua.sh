#!/usr/bin/env bash
# CI for the Lua module (lua/): builds the C ABI static library and the
# swann CLI in release, builds lua/build/<version>/annoy.so for Lua 5.1,
# 5.2, 5.3, 5.4 and LuaJIT, and runs the busted suite (lua/spec) under each
# runtime, each loading its own annoy.so. Prints the pass counts per
# runtime; exits non-zero on any failure.
#
#   bash .ci/lua.sh                 # every runtime
#   LUA_RUNTIMES="5.4 luajit" bash .ci/lua.sh
#
# Installs the interpreters, their headers, busted and a C compiler with
# apt-get (through sudo when not root) when they are missing (Debian 12).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -d "$HOME/.cargo/bin" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
runtimes=(${LUA_RUNTIMES:-5.1 5.2 5.3 5.4 luajit})

step() {
    printf '\n== lua: %s\n' "$*"
}

apt_install() {
    local sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@"
}

interpreter() {
    case "$1" in
        luajit) echo luajit ;;
        *) echo "lua$1" ;;
    esac
}

step "tools"
want=()
for v in "${runtimes[@]}"; do
    case "$v" in
        5.1) pkgs=(lua5.1 liblua5.1-0-dev); hdr=/usr/include/lua5.1/lua.h ;;
        5.2|5.3|5.4) pkgs=("lua$v" "liblua$v-dev"); hdr="/usr/include/lua$v/lua.h" ;;
        luajit) pkgs=(luajit libluajit-5.1-dev); hdr=/usr/include/luajit-2.1/lua.h ;;
        *) echo "unknown Lua runtime: $v" >&2; exit 2 ;;
    esac
    if ! command -v "$(interpreter "$v")" >/dev/null 2>&1 || [[ ! -f "$hdr" ]]; then
        want+=("${pkgs[@]}")
    fi
    # Debian's busted is installed per Lua version; LuaJIT uses 5.1's.
    share="$v"
    [[ "$v" == luajit ]] && share=5.1
    if [[ ! -f "/usr/share/lua/$share/busted/runner.lua" ]]; then
        want+=(lua-busted)
    fi
done
if [[ ! -f /usr/bin/busted ]]; then
    want+=(lua-busted)
fi
if ! command -v cc >/dev/null 2>&1; then
    want+=(gcc libc6-dev)
fi
if [[ ${#want[@]} -gt 0 ]]; then
    mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
    apt_install "${want[@]}"
fi
cc --version | head -n 1
for v in "${runtimes[@]}"; do
    "$(interpreter "$v")" -v 2>&1 | head -n 1
done

# Two builds, as the other CI scripts do: one command for both would unify
# their features and rebuild the library in a third configuration.
step "cargo build --release -p swann-capi"
cargo build --release -p swann-capi
step "cargo build --release -p swann-cli (the suite builds forests with it)"
cargo build --release -p swann-cli
target="${CARGO_TARGET_DIR:-$root/target}/release"
export SWANN_CLI="$target/swann"

step "build annoy.so"
bash lua/build.sh "${runtimes[@]}"

# Each runtime runs Debian's /usr/bin/busted script with its own
# interpreter (it finds busted under /usr/share/lua/<version>) and loads
# its own annoy.so through LUA_CPATH (";;" keeps the default paths, where
# busted's C modules are). The version-specific variables would win over
# LUA_CPATH, so they are cleared.
unset LUA_CPATH_5_2 LUA_CPATH_5_3 LUA_CPATH_5_4 LUA_PATH_5_2 LUA_PATH_5_3 LUA_PATH_5_4
# The panic test's panics print their message on stderr; no backtraces.
export RUST_BACKTRACE=0
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
declare -A summary
failed=0
for v in "${runtimes[@]}"; do
    step "busted under $(interpreter "$v")"
    status=0
    (cd lua && LUA_CPATH="$root/lua/build/$v/?.so;;" \
        "$(interpreter "$v")" /usr/bin/busted --output=TAP spec) \
        >"$logs/$v.tap" 2>"$logs/$v.err" || status=$?
    grep -v '^ok ' "$logs/$v.tap" || true
    pass="$(grep -c '^ok ' "$logs/$v.tap" || true)"
    fail="$(grep -c '^not ok ' "$logs/$v.tap" || true)"
    plan="$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$logs/$v.tap" | tail -n 1)"
    if [[ $status -ne 0 || $fail -ne 0 || -z "$plan" || $pass -ne $plan ]]; then
        echo "--- stderr:"
        cat "$logs/$v.err"
        summary[$v]="FAILED: $pass passed, $fail failed of ${plan:-?} (exit $status)"
        failed=1
    else
        summary[$v]="$pass passed of $plan"
    fi
    echo "${summary[$v]}"
done

step "summary"
for v in "${runtimes[@]}"; do
    printf '%-8s %s\n' "$(interpreter "$v")" "${summary[$v]}"
done
exit $failed
