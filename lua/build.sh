#!/usr/bin/env bash
# Builds the annoy Lua module (lua/annoy.c) once per installed Lua runtime:
# lua/build/<version>/annoy.so for 5.1, 5.2, 5.3, 5.4 and luajit, each with
# swann's C ABI static library linked in (no shared library to install).
#
#   bash lua/build.sh               # every runtime whose headers are found
#   bash lua/build.sh 5.4 luajit    # just these
#
# Needs target/release/libswann_capi.a (cargo build --release -p swann-capi;
# CARGO_TARGET_DIR is honoured) and the Lua headers (Debian: liblua5.1-0-dev,
# liblua5.2-dev, liblua5.3-dev, liblua5.4-dev, libluajit-5.1-dev). CC and
# CFLAGS are honoured. Exits non-zero if a requested runtime cannot be built,
# or if no runtime was found at all.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
lib="${CARGO_TARGET_DIR:-$root/target}/release/libswann_capi.a"
cc="${CC:-cc}"

if [[ ! -f "$lib" ]]; then
    echo "lua/build.sh: $lib is missing; run: cargo build --release -p swann-capi" >&2
    exit 1
fi

# The include directory of a runtime's headers (Debian's layout, then
# pkg-config), or nothing.
include_dir() {
    local v="$1" d pc
    case "$v" in
        luajit) d=/usr/include/luajit-2.1; pc=luajit ;;
        *) d="/usr/include/lua$v"; pc="lua$v" ;;
    esac
    if [[ -f "$d/lua.h" ]]; then
        echo "$d"
    elif command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "$pc" 2>/dev/null; then
        local inc c
        inc="$(pkg-config --variable=includedir "$pc")"
        for c in "$inc/lua$v" "$inc/luajit-2.1" "$inc"; do
            if [[ -f "$c/lua.h" ]]; then
                echo "$c"
                return
            fi
        done
    fi
}

# -fPIC: the module is a shared object. The Rust static library is
# position-independent (Rust's default relocation model on x86-64 and
# aarch64 Linux is PIC), so it links into it.
# --exclude-libs,ALL: the library's symbols stay private to each module.
# -z nodelete: lua_close unloads C modules with dlclose; the library may still
# have worker threads or thread-local destructors, so the code must stay
# mapped until the process exits.
cflags=(-std=c99 -O2 -g -fPIC -Wall -Wextra -Werror -I "$root/capi/include")
ldflags=(-shared -Wl,--exclude-libs,ALL -Wl,-z,nodelete -Wl,--gc-sections)
libs=("$lib" -lpthread -ldl -lm)

if [[ $# -gt 0 ]]; then
    versions=("$@")
    strict=1
else
    versions=(5.1 5.2 5.3 5.4 luajit)
    strict=0
fi

built=0
for v in "${versions[@]}"; do
    inc="$(include_dir "$v")"
    if [[ -z "$inc" ]]; then
        if [[ $strict -eq 1 ]]; then
            echo "lua/build.sh: no headers for Lua $v" >&2
            exit 1
        fi
        echo "lua/build.sh: skipping Lua $v (no headers)"
        continue
    fi
    out="$here/build/$v"
    mkdir -p "$out"
    # shellcheck disable=SC2086
    "$cc" "${cflags[@]}" ${CFLAGS:-} -I "$inc" "${ldflags[@]}" \
        -o "$out/annoy.so.tmp" "$here/annoy.c" "${libs[@]}"
    mv "$out/annoy.so.tmp" "$out/annoy.so"
    echo "lua/build.sh: built $out/annoy.so (headers $inc)"
    built=$((built + 1))
done

if [[ $built -eq 0 ]]; then
    echo "lua/build.sh: no Lua headers found" >&2
    exit 1
fi
