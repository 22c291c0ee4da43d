#!/usr/bin/env bash
# Checks that find what the tests miss, one per argument:
#
#   bash .ci/checks.sh tsan    # concurrency tests under ThreadSanitizer
#   bash .ci/checks.sh miri    # the store and the scalar kernels under Miri
#   bash .ci/checks.sh soak    # examples/soak for $SOAK_SECONDS (default 60)
#
# tsan and miri need a nightly toolchain with rust-src (and miri); they are
# installed with rustup when missing. Each exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -d "$HOME/.cargo/bin" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

nightly() {
    local toolchains
    toolchains="$(rustup toolchain list)"
    if ! grep -q '^nightly' <<<"$toolchains"; then
        rustup toolchain install nightly --profile minimal
    fi
    local have
    have="$(rustup component list --toolchain nightly --installed)"
    for c in "$@"; do
        if ! grep -q "^$c" <<<"$have"; then
            rustup component add --toolchain nightly "$c"
        fi
    done
}

host="$(rustc -vV | sed -n 's/^host: //p')"

for check in "$@"; do
    case "$check" in
    tsan)
        # The standard library is rebuilt with the sanitizer (-Zbuild-std),
        # so its synchronization is seen too; --target keeps build scripts
        # and proc macros uninstrumented. Two seeds per thread count: the
        # sanitizer slows the builds 5-15x.
        nightly rust-src
        echo "== tsan: HNSW builds on 16 and 64 threads, try_insert beside searches (exact and on codes), replace under contention, filtered batches"
        RUSTFLAGS="-Zsanitizer=thread" \
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
        SWANN_TEST_SEEDS=2 \
            cargo +nightly test -Zbuild-std --target "$host" --target-dir target/tsan \
            --test hnsw_graph --test hnsw --test hnsw_filter --test hnsw_quant -- \
            every_node_reachable_after_a_build_on_16_threads \
            every_node_reachable_after_a_build_on_64_threads \
            every_node_reachable_after_concurrent_try_inserts \
            every_node_reachable_after_replacing_under_contention \
            searches_during_concurrent_inserts \
            a_batch_under_a_predicate \
            concurrent_inserts_code_their_rows
        ;;
    miri)
        # Dispatch goes to the scalar kernels under Miri (cfg(miri)), and
        # the huge-page arrays run at a small scale. Isolation is off so
        # the tests can make temporary files.
        nightly miri rust-src
        cargo +nightly miri setup
        echo "== miri: store (aligned arrays, slabs, link and row arenas)"
        MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-strict-provenance" \
            cargo +nightly miri test --lib -- store::arena store::slab store::aligned
        echo "== miri: scalar kernels through their safe wrappers (single, batch, gather, Hamming, widening)"
        MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-strict-provenance" \
            cargo +nightly miri test --test kernels -- \
            f32_kernels_all_short_lengths hamming_exact_on_all gather_kernels_equal \
            zero_vectors batch_kernels_match hamming_batch_exact widen_u8_exact
        ;;
    soak)
        secs="${SOAK_SECONDS:-60}"
        echo "== soak: ${secs} s of concurrent inserts, searches, deletes, then replaces, removals, compaction, saves and reopens"
        cargo run --release --example soak -- --seconds "$secs" --threads 4
        ;;
    *)
        echo "checks.sh: unknown check '$check' (tsan, miri, soak)" >&2
        exit 2
        ;;
    esac
done
