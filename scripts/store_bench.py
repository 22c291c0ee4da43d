#!/usr/bin/env python3
"""Compares opening a saved swann HNSW index with hnswlib's load_index on
the same data (sift-real by default), and file sizes.

    cargo build --release --example store_bench
    python3 scripts/store_bench.py [DATA_DIR] [OUT_DIR]

Needs `pip install numpy hnswlib`. Builds both indexes (M=16,
ef_construction=200, squared L2) on first run and keeps them in OUT_DIR.
hnswlib's load_index is timed as the median of 5 loads; swann's numbers
come from the store_bench example (median of 501 mapped opens).
"""

import os
import subprocess
import sys
import time

import hnswlib
import numpy as np

data = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"
out = sys.argv[2] if len(sys.argv) > 2 else "target/store-bench"
os.makedirs(out, exist_ok=True)
base_p = os.path.join(data, "sift-real_base.bvecs")
query_p = os.path.join(data, "sift-real_query.bvecs")
gt_p = os.path.join(data, "sift-real_groundtruth.ivecs")


def bvecs(path):
    raw = np.fromfile(path, dtype=np.uint8)
    dim = int(raw[:4].view(np.int32)[0])
    return raw.reshape(-1, 4 + dim)[:, 4:].astype(np.float32)


swann = subprocess.run(
    ["target/release/examples/store_bench", base_p, query_p, gt_p, out],
    check=True, capture_output=True, text=True).stdout
print(swann, end="")
res = dict(l.split("=", 1) for l in swann.split() if "=" in l)

hpath = os.path.join(out, "index.hnswlib")
base = bvecs(base_p)
if not os.path.exists(hpath):
    idx = hnswlib.Index(space="l2", dim=base.shape[1])
    idx.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=100)
    t = time.perf_counter()
    idx.add_items(base, np.arange(len(base)))
    print(f"hnswlib_build_secs={time.perf_counter() - t:.1f}")
    idx.save_index(hpath)
    del idx
times = []
for _ in range(5):
    idx = hnswlib.Index(space="l2", dim=base.shape[1])
    t = time.perf_counter()
    idx.load_index(hpath, max_elements=len(base))
    times.append(time.perf_counter() - t)
    del idx
hl_ms = sorted(times)[2] * 1e3
print(f"hnswlib_load_index_median_ms={hl_ms:.1f}")
hsize = os.path.getsize(hpath)
print(f"hnswlib_file_bytes={hsize}")
open_us = float(res["open_mmap_median_us"])
print(f"load_ratio_hnswlib_over_swann_mmap={hl_ms * 1e3 / open_us:.0f}")
print(f"file_ratio_swann_over_hnswlib={int(res['file_bytes']) / hsize:.3f}")
