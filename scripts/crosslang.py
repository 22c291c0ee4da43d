#!/usr/bin/env python3
"""Files are the same everywhere: one forest, built in one language,
searched from Go, Lua, Python and Rust, must give identical ids and
distances. Driven by .ci/crosslang.sh; this script makes the data, builds
and searches with the Python package, and compares the result files.

  crosslang.py gen DIR                      # base.fvecs, q.fvecs, q.txt
  crosslang.py build DIR OUT.swann          # swann.annoy, seed 42
  crosslang.py search INDEX DIR OUT.txt     # swann.annoy, as the others
  crosslang.py compare A.txt B.txt ...      # all identical, or exit 1

Result files: one line per query, "label:distance" pairs separated by
spaces, distances as printf's %.9g writes them (which identifies an f32).
"""
import struct
import sys
from pathlib import Path

import numpy as np

DIM, N, NQ = 32, 10_000, 100
METRIC, TREES, SEED, K, SEARCH_K = "angular", 20, 42, 10, 2000


def write_fvecs(path, rows):
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    with open(path, "wb") as f:
        for r in rows:
            f.write(struct.pack("<i", len(r)))
            f.write(r.tobytes())


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    return raw.reshape(-1, dim + 1)[:, 1:].copy().view(np.float32)


def gen(d):
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)
    centres = rng.normal(size=(50, DIM))
    base = centres[rng.integers(0, 50, N)] + 0.3 * rng.normal(size=(N, DIM))
    queries = centres[rng.integers(0, 50, NQ)] + 0.3 * rng.normal(size=(NQ, DIM))
    write_fvecs(d / "base.fvecs", base)
    write_fvecs(d / "q.fvecs", queries)
    with open(d / "q.txt", "w") as f:
        for q in queries.astype(np.float32):
            f.write(" ".join("%.9g" % float(x) for x in q) + "\n")
    print(f"crosslang: {N} x {DIM} base, {NQ} queries in {d}")


def build(d, out):
    from swann.annoy import AnnoyIndex

    base = read_fvecs(Path(d) / "base.fvecs")
    t = AnnoyIndex(DIM, METRIC)
    t.set_seed(SEED)
    for i, v in enumerate(base):
        t.add_item(i, v)
    t.build(TREES, n_jobs=1)
    t.save(out)


def search(index, d, out):
    from swann.annoy import AnnoyIndex

    t = AnnoyIndex(DIM, METRIC)
    t.load(index)
    lines = []
    for q in read_fvecs(Path(d) / "q.fvecs"):
        ids, dists = t.get_nns_by_vector(q, K, search_k=SEARCH_K, include_distances=True)
        lines.append(" ".join("%d:%.9g" % (i, float(np.float32(x))) for i, x in zip(ids, dists)))
    Path(out).write_text("\n".join(lines) + "\n")


def compare(paths):
    texts = [Path(p).read_text() for p in paths]
    first = texts[0].splitlines()
    if len(first) != NQ or any(len(line.split()) != K for line in first):
        print(f"crosslang: {paths[0]} does not hold {NQ} lines of {K} results", file=sys.stderr)
        return 1
    bad = 0
    for p, t in zip(paths[1:], texts[1:]):
        if t != texts[0]:
            lines = t.splitlines()
            diff = next((i for i, (a, b) in enumerate(zip(first, lines)) if a != b), min(len(first), len(lines)))
            print(f"crosslang: {p} differs from {paths[0]} at query {diff}", file=sys.stderr)
            bad += 1
    if bad:
        return 1
    print(f"crosslang: {len(paths)} result files identical ({NQ} queries x {K}): " + ", ".join(Path(p).name for p in paths))
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "gen" and len(argv) == 3:
        gen(argv[2])
    elif cmd == "build" and len(argv) == 4:
        build(argv[2], argv[3])
    elif cmd == "search" and len(argv) == 5:
        search(argv[2], argv[3], argv[4])
    elif cmd == "compare" and len(argv) >= 4:
        return compare(argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
