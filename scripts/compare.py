#!/usr/bin/env python3
"""Compare swann with other ANN libraries on the same data, side by side.

The anchor libraries (hnswlib, faiss HNSW, annoy, exact search) are built with
the same data, metric, k, index parameters and build threads as swann, each in
a fresh process, and swept over their search knob; then swann runs (through
its CLI, ``--swann-cmd``) or an existing swann result is read (``--result``).
The script prints one table and the swann/anchor ratios.

    python3 scripts/compare.py --against hnswlib --against annoy \\
        --base B.fvecs --queries Q.fvecs --groundtruth G.ivecs --metric l2 \\
        --params M=16,ef_construction=200,n_trees=50 --threads 2 \\
        --swann-cmd 'target/release/swann bench hnsw --base B.fvecs --queries Q.fvecs \\
            --groundtruth G.ivecs --metric l2 --m 16 --ef-construction 200 --threads 2 --json {json}'
    python3 scripts/compare.py --self-test

Measurement: build time and peak RSS growth of the build (VmHWM after a
reset through /proc/self/clear_refs), size of the saved index; for each knob
value 50 warm-up queries, then --reps timed passes over all queries, one query
per call on one thread (a small query set is repeated inside a pass so that a
pass lasts at least ~0.1 s). QPS = queries / median pass time; recall@k =
|result & ground truth top-k| / k, averaged. A sweep stops after the third
point reaching recall 0.999. QPS at a recall target interpolates between the
two runs around it (linear in recall, logarithmic in QPS).

The first run creates a private venv ($SWANN_COMPARE_VENV, default
~/.cache/swann-compare/venv), installs only what the requested anchors need
and re-executes itself inside it. Exit status: 0 every run completed, 1 a run
failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import math
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time

PROG = "compare.py"
SCRIPT = os.path.realpath(__file__)

# pip requirements: numpy always, plus one package per anchor (`flat` is numpy only)
BASE_REQUIREMENTS = ["numpy>=1.24,<3"]
ANCHOR_REQUIREMENTS = {
    "hnswlib": ["hnswlib>=0.7,<0.9"],
    "faiss-hnsw": ["faiss-cpu>=1.7.4,<2"],
    "annoy": ["annoy>=1.17,<1.18"],
    "flat": [],
}
IMPORT_NAME = {"numpy": "numpy", "hnswlib": "hnswlib", "faiss-cpu": "faiss", "annoy": "annoy"}

METRICS = ["l2", "ip", "cosine", "angular", "manhattan"]
# metric names (also those swann may write) -> the ranking they stand for
CANONICAL = {"l2": "l2", "euclidean": "l2", "ip": "ip", "dot": "ip", "cosine": "cosine",
             "angular": "cosine", "manhattan": "manhattan"}
ANCHOR_METRICS = {
    "hnswlib": ("l2", "ip", "cosine"),
    "faiss-hnsw": ("l2", "ip", "cosine"),
    "annoy": ("l2", "ip", "cosine", "manhattan"),
    "flat": ("l2", "ip", "cosine", "manhattan"),
}
# --params keys the anchors read (aliases on the same line)
PARAM_ALIASES = {"M": ("M", "m"), "ef_construction": ("ef_construction", "efc"),
                 "n_trees": ("n_trees", "trees")}
PARAM_DEFAULTS = {"M": 16, "ef_construction": 200, "n_trees": 50}
# --sweep knob names -> the knob they set
KNOB_ALIASES = {"ef": "ef", "efsearch": "ef", "ef_search": "ef", "search_k": "search_k"}

HNSW_EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
ANNOY_FACTORS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
TARGETS = (0.90, 0.95, 0.99)
WARMUP_QUERIES = 50
MIN_PASS_SECONDS = 0.1
SATURATED_RECALL, SATURATED_POINTS = 0.999, 3


class UsageError(Exception):
    """Bad input: exit status 2."""


def say(msg):
    print(f"{PROG}: {msg}", flush=True)


def warn(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- private venv

def apt_install(packages):
    """apt-get install, only as root on Debian; True when it worked."""
    if os.geteuid() != 0 or not shutil.which("apt-get") or not os.path.exists("/etc/debian_version"):
        return False
    say(f"apt-get install {' '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], env=env)
    return subprocess.run(["apt-get", "install", "-y", "-q", *packages], env=env).returncode == 0


def ensure_venv(requirements):
    """Create the venv, install what is missing in it, and re-execute this script inside it."""
    venv = os.path.abspath(os.path.expanduser(
        os.environ.get("SWANN_COMPARE_VENV", "~/.cache/swann-compare/venv")))
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        say(f"creating venv {venv}")
        existed = os.path.exists(venv)
        make = [sys.executable, "-m", "venv", venv]
        if subprocess.run(make).returncode != 0:
            if not existed:
                shutil.rmtree(venv, ignore_errors=True)  # a half-made venv has no pip
            if not (apt_install(["python3-venv"]) and subprocess.run(make).returncode == 0):
                warn("`python3 -m venv` failed; install python3-venv (Debian/Ubuntu) and retry")
                sys.exit(1)

    # which requirements are not importable in the venv yet
    by_module = {IMPORT_NAME[r.split("<")[0].split(">")[0].split("=")[0]]: r for r in requirements}
    probe = ("import importlib.util, sys\n"
             "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))")
    out = subprocess.run([python, "-c", probe, *by_module], capture_output=True, text=True)
    if out.returncode != 0:
        warn(f"the venv {venv} does not work ({out.stderr.strip()}); remove it and retry")
        sys.exit(1)
    missing = [by_module[m] for m in out.stdout.split()]
    if missing:
        say(f"installing into {venv}: {' '.join(missing)}")
        pip = [python, "-m", "pip", "install", "--progress-bar", "off", *missing]
        if subprocess.run(pip).returncode != 0:
            # hnswlib and annoy come as source packages: they need a C++ compiler and headers
            if not (apt_install(["build-essential", "python3-dev"]) and subprocess.run(pip).returncode == 0):
                warn("pip install failed (hnswlib/annoy build from source: they need g++ and the Python headers)")
                sys.exit(1)

    if os.path.realpath(sys.prefix) != os.path.realpath(venv):
        if os.environ.get("SWANN_COMPARE_REEXEC"):
            warn(f"re-executed, but not running inside {venv}")
            sys.exit(1)
        os.environ["SWANN_COMPARE_REEXEC"] = "1"
        os.execv(python, [python, SCRIPT, *sys.argv[1:]])


# ---------------------------------------------------------------- vector files
# .fvecs / .ivecs / .bvecs: each row is an int32 dimension, then the row's values
VECS_ITEM_SIZE = {".fvecs": 4, ".ivecs": 4, ".bvecs": 1}


def file_shape(path):
    """(rows, columns) of a vector file from its header and size (stdlib only, no data read)."""
    ext = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    if ext == ".npy":
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise UsageError(f"{path}: not a .npy file")
            major = f.read(2)[0]
            (length,) = struct.unpack("<H" if major == 1 else "<I", f.read(2 if major == 1 else 4))
            header = ast.literal_eval(f.read(length).decode("latin1"))
        shape = tuple(header["shape"])
        if len(shape) != 2:
            raise UsageError(f"{path}: expected a 2-D array, found shape {shape}")
        return shape
    if ext not in VECS_ITEM_SIZE:
        raise UsageError(f"{path}: unknown file type (want .fvecs, .bvecs, .ivecs or .npy)")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) < 4:
        raise UsageError(f"{path}: empty file")
    (dim,) = struct.unpack("<i", head)
    row = 4 + dim * VECS_ITEM_SIZE[ext]
    if dim <= 0 or size % row:
        raise UsageError(f"{path}: not a valid {ext} file (dimension {dim}, {size} bytes)")
    return size // row, dim


def read_vectors(path):
    """.fvecs -> float32, .ivecs -> int32, .bvecs -> uint8, .npy -> as stored (2-D)."""
    import numpy as np
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        a = np.load(path)
        if a.ndim != 2:
            raise UsageError(f"{path}: expected a 2-D array, found shape {a.shape}")
        return a
    rows, dim = file_shape(path)
    if ext == ".bvecs":
        raw = np.fromfile(path, dtype=np.uint8).reshape(rows, dim + 4)
        heads, data = raw[:, :4].copy().view("<i4")[:, 0], raw[:, 4:]
    else:
        raw = np.fromfile(path, dtype="<i4").reshape(rows, dim + 1)
        heads, data = raw[:, 0], raw[:, 1:]
        data = data.view("<f4") if ext == ".fvecs" else data
    if (heads != dim).any():
        raise UsageError(f"{path}: rows of different dimensions")
    return np.ascontiguousarray(data)


def read_float_vectors(path):
    """Vectors as float32 rows (.bvecs and uint8 .npy are widened)."""
    import numpy as np
    return np.ascontiguousarray(read_vectors(path), dtype=np.float32)


def write_vecs(path, a):
    """Write float32 rows as .fvecs, integer rows as .ivecs."""
    import numpy as np
    a = np.ascontiguousarray(a)
    out = np.empty((a.shape[0], a.shape[1] + 1), dtype="<i4")
    out[:, 0] = a.shape[1]
    out[:, 1:] = a.view("<i4") if a.dtype == np.float32 else a.astype("<i4")
    out.tofile(path)


# ---------------------------------------------------------------- exact search

def exact_knn(X, Q, k, metric):
    """Exact top-k ids by brute force (float64), ties to the smaller id.

    Distances are computed for blocks of queries at a time; every base row
    within a small margin of the k-th distance is then re-scored directly,
    row by row, and the candidates are ordered by (distance, id), so equal
    vectors always compare equal and the smaller id wins.
    """
    import numpy as np
    metric = CANONICAL[metric]
    X = np.asarray(X, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    if metric == "cosine":
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-300)
        Q = Q / np.maximum(np.linalg.norm(Q, axis=1, keepdims=True), 1e-300)
    n, k = len(X), min(k, len(X))
    xnorm = (X * X).sum(1) if metric == "l2" else None

    def direct(rows, q):  # exact distance of the given rows, smaller = nearer
        if metric == "l2":
            d = rows - q
            return (d * d).sum(1)
        if metric == "manhattan":
            return np.abs(rows - q).sum(1)
        return -(rows * q).sum(1)

    def block_distances(Qb):  # rank-equivalent distances of a query block to every row
        if metric == "l2":
            return xnorm[None, :] - 2.0 * (Qb @ X.T)  # |q|^2 omitted: same for every row
        if metric in ("ip", "cosine"):
            return -(Qb @ X.T)
        D = np.empty((len(Qb), n))
        step = max(1, (1 << 22) // max(1, X.shape[1]))
        for i, q in enumerate(Qb):
            for s in range(0, n, step):
                D[i, s:s + step] = np.abs(X[s:s + step] - q).sum(1)
        return D

    out = np.empty((len(Q), k), dtype=np.int64)
    block = max(1, (1 << 23) // max(1, n))  # ~64 MiB of float64 distances per block
    for s in range(0, len(Q), block):
        D = block_distances(Q[s:s + block])
        kth = np.partition(D, k - 1, axis=1)[:, k - 1]
        margin = 1e-9 * (np.abs(D).max(axis=1) + 1.0)
        for i in range(len(D)):
            cand = np.flatnonzero(D[i] <= kth[i] + margin[i])
            d = direct(X[cand], Q[s + i])
            out[s + i] = cand[np.lexsort((cand, d))[:k]]
    return out


def recall_at_k(results, groundtruth, k):
    """Mean of |result & ground truth top-k| / k over the queries."""
    hits = sum(len({int(x) for x in r[:k]} & {int(x) for x in g[:k]}) for r, g in zip(results, groundtruth))
    return hits / (k * len(groundtruth))


def qps_at(runs, target):
    """QPS at a recall target from runs sorted by knob value.

    The first run reaching the target and the run before it are interpolated,
    linearly in recall and logarithmically in QPS. If the first run already
    reaches the target its QPS is used; None if no run reaches it.
    """
    prev = None
    for r in runs:
        if r["recall"] >= target:
            if prev is None or r["recall"] <= prev["recall"]:
                return r["qps"]
            f = (target - prev["recall"]) / (r["recall"] - prev["recall"])
            return math.exp(math.log(prev["qps"]) + f * (math.log(r["qps"]) - math.log(prev["qps"])))
        prev = r
    return None


# ---------------------------------------------------------------- anchors
# Each anchor: build(X, threads), set_knob(v), query(q) -> ids, save(path).
# prepare_queries turns the query rows into what query() takes, outside the timed loop.

class Anchor:
    index, knob, package = "hnsw", "ef", ""
    threaded_build = True

    def __init__(self, metric, k, params):
        self.metric, self.k = CANONICAL[metric], k
        self.M, self.efc = int(params["M"]), int(params["ef_construction"])
        self.params = {"M": self.M, "ef_construction": self.efc}

    def knob_values(self):
        return sorted({max(v, self.k) for v in HNSW_EFS})  # ef below k returns fewer than k

    def prepare_queries(self, Q):
        return list(Q)

    def version(self):
        import importlib.metadata
        return importlib.metadata.version(self.package)


class HnswlibAnchor(Anchor):
    package = "hnswlib"

    def build(self, X, threads):
        import hnswlib
        import numpy as np
        self.idx = hnswlib.Index(space=self.metric, dim=X.shape[1])  # 'l2', 'ip', 'cosine'
        self.idx.init_index(max_elements=len(X), M=self.M, ef_construction=self.efc, random_seed=100)
        self.idx.add_items(X, np.arange(len(X)), num_threads=threads)

    def set_knob(self, v):
        self.idx.set_ef(int(v))

    def query(self, q):
        return self.idx.knn_query(q, k=self.k, num_threads=1)[0][0]

    def save(self, path):
        self.idx.save_index(path)


class FaissHnswAnchor(Anchor):
    package = "faiss-cpu"

    def _rows(self, A):  # cosine = inner product of unit rows
        import numpy as np
        A = np.ascontiguousarray(A, dtype=np.float32)
        if self.metric == "cosine":
            A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-30)
        return A

    def build(self, X, threads):
        import faiss
        faiss.omp_set_num_threads(threads)
        kind = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.idx = faiss.IndexHNSWFlat(X.shape[1], self.M, kind)
        self.idx.hnsw.efConstruction = self.efc
        self.idx.add(self._rows(X))
        faiss.omp_set_num_threads(1)  # queries run on one thread

    def prepare_queries(self, Q):
        return [row[None, :] for row in self._rows(Q)]  # faiss searches 2-D batches

    def set_knob(self, v):
        self.idx.hnsw.efSearch = int(v)

    def query(self, q):
        return self.idx.search(q, self.k)[1][0]

    def save(self, path):
        import faiss
        faiss.write_index(self.idx, path)


class AnnoyAnchor(Anchor):
    index, knob, package = "forest", "search_k", "annoy"

    def __init__(self, metric, k, params):
        super().__init__(metric, k, params)
        self.trees = int(params["n_trees"])
        self.params = {"n_trees": self.trees}

    def knob_values(self):  # annoy's default search_k is n_trees * k: sweep multiples of it
        return [self.trees * self.k * f for f in ANNOY_FACTORS]

    def build(self, X, threads):
        from annoy import AnnoyIndex
        kind = {"l2": "euclidean", "ip": "dot", "cosine": "angular", "manhattan": "manhattan"}[self.metric]
        self.idx = AnnoyIndex(X.shape[1], kind)
        self.idx.set_seed(42)
        for i, row in enumerate(X.tolist()):
            self.idx.add_item(i, row)
        self.idx.build(self.trees, n_jobs=threads)

    def prepare_queries(self, Q):
        return Q.tolist()  # annoy converts its argument to a list on every call otherwise

    def set_knob(self, v):
        self.search_k = int(v)

    def query(self, q):
        return self.idx.get_nns_by_vector(q, self.k, search_k=self.search_k)

    def save(self, path):
        self.idx.save(path)


class FlatAnchor(Anchor):
    """Exact search with numpy: the recall-1.0 baseline, one point, no build threads."""
    index, knob, package = "flat", "exact", "numpy"
    threaded_build = False

    def __init__(self, metric, k, params):
        self.metric, self.k, self.params = CANONICAL[metric], k, {}

    def knob_values(self):
        return [0]

    def _rows(self, A):
        import numpy as np
        A = np.ascontiguousarray(A, dtype=np.float32)
        if self.metric == "cosine":
            A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-30)
        return A

    def build(self, X, threads):
        self.X = self._rows(X)
        self.xnorm = (self.X * self.X).sum(1) if self.metric == "l2" else None

    def prepare_queries(self, Q):
        return list(self._rows(Q))

    def set_knob(self, v):
        pass

    def query(self, q):
        import numpy as np
        if self.metric == "l2":
            d = self.xnorm - 2.0 * (self.X @ q)
        elif self.metric == "manhattan":
            d = np.abs(self.X - q).sum(1)
        else:
            d = -(self.X @ q)
        # every row up to the k-th distance, in id order; a stable sort gives ties to the smaller id
        cand = np.flatnonzero(d <= np.partition(d, self.k - 1)[self.k - 1])
        return cand[np.argsort(d[cand], kind="stable")[:self.k]]

    def save(self, path):
        import numpy as np
        with open(path, "wb") as f:
            np.save(f, self.X)


ANCHORS = {"hnswlib": HnswlibAnchor, "faiss-hnsw": FaissHnswAnchor, "annoy": AnnoyAnchor, "flat": FlatAnchor}


# ---------------------------------------------------------------- the measuring worker (one process per run)

def proc_status(field):
    """A /proc/self/status figure in bytes (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def sweep(anchor, queries, gt, reps, values, label):
    """Recall@k and single-thread, one-query-per-call QPS for each knob value."""
    import numpy as np
    runs, saturated, nq = [], 0, len(queries)
    for v in values:
        anchor.set_knob(v)
        t = time.perf_counter()
        for i in range(WARMUP_QUERIES):
            anchor.query(queries[i % nq])
        pass_estimate = (time.perf_counter() - t) / WARMUP_QUERIES * nq
        loops = max(1, math.ceil(MIN_PASS_SECONDS / max(pass_estimate, 1e-9)))
        times = []
        for _ in range(reps):
            gc.collect()
            t = time.perf_counter()
            for _ in range(loops):
                results = [anchor.query(q) for q in queries]
            times.append((time.perf_counter() - t) / loops)
        median = float(np.median(times))
        run = {"knob": anchor.knob, "value": v, "recall": recall_at_k(results, gt, anchor.k),
               "qps": nq / median, "threads": 1, "mean_latency_us": median / nq * 1e6}
        runs.append(run)
        print(f"  [{label}] {anchor.knob}={v}: recall {run['recall']:.4f}  qps {run['qps']:,.0f}", flush=True)
        saturated += run["recall"] >= SATURATED_RECALL
        if saturated >= SATURATED_POINTS:
            break
    return runs


def worker(setup):
    """Build, save and sweep one anchor as described by `setup`; returns a result in swann's schema."""
    import numpy as np
    name, label = setup["anchor"], setup.get("label") or setup["anchor"]
    anchor = ANCHORS[name](setup["metric"], int(setup["k"]), setup["params"])
    if anchor.package != "numpy":
        __import__(IMPORT_NAME[anchor.package])  # loading the library is not build time or memory
    X = read_float_vectors(setup["base"])
    Q = read_float_vectors(setup["queries"])
    gt = read_vectors(setup["groundtruth"])[:len(Q), :anchor.k].astype(np.int64)
    queries = anchor.prepare_queries(Q)
    threads = int(setup["threads"]) if anchor.threaded_build else 1

    gc.collect()
    hwm_reset = reset_peak_rss()
    rss_before = proc_status("VmRSS")
    t = time.perf_counter()
    anchor.build(X, threads)
    build_s = time.perf_counter() - t
    hwm = proc_status("VmHWM")
    peak = hwm - rss_before if hwm_reset and hwm is not None and rss_before is not None else None

    with tempfile.TemporaryDirectory(prefix="index-", dir=setup.get("tmp")) as d:
        try:
            anchor.save(os.path.join(d, "index"))
            index_bytes = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        except Exception as e:  # a failed save only loses the size column
            print(f"  [{label}] saving the index failed: {e!r}", flush=True)
            index_bytes = None
        mib = lambda b: "n/a" if b is None else f"{b / 2**20:.1f} MiB"  # noqa: E731
        print(f"  [{label}] build {build_s:.2f} s on {threads} thread(s), peak RSS growth {mib(peak)}, "
              f"index {mib(index_bytes)}", flush=True)
        values = setup["sweep"].get(anchor.knob) or anchor.knob_values()
        runs = sweep(anchor, queries, gt, int(setup["reps"]), values, label)

    version = anchor.version()
    if label != name:
        version = f"{name} {version}"
    return {"library": label, "version": version, "index": anchor.index,
            "dataset": dict(setup["dataset"], n_base=int(X.shape[0]), n_queries=int(Q.shape[0]),
                            dim=int(X.shape[1])),
            "metric": setup["metric"], "k": anchor.k, "params": anchor.params,
            "build": {"threads": threads, "seconds": build_s, "peak_rss_bytes": peak, "index_bytes": index_bytes},
            "runs": runs}


def worker_main(setup_path, out_path):
    with open(setup_path) as f:
        setup = json.load(f)
    try:
        result = worker(setup)
    except UsageError as e:
        warn(f"error: {e}")
        return 1
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    return 0


# ---------------------------------------------------------------- arguments and setup

def number(text):
    """'16' -> 16, '0.5' -> 0.5, other text unchanged."""
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_items(items, what):
    """['a=1,b=2', 'c=3'] -> {'a': '1', 'b': '2', 'c': '3'}."""
    out = {}
    for item in items:
        for kv in item.split(","):
            if not kv.strip():
                continue
            if "=" not in kv:
                raise UsageError(f"{what} wants KEY=VALUE items, got '{kv}'")
            key, value = kv.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def parse_sweeps(items):
    """['ef=10,20,40', 'search_k=500,1000'] -> {'ef': [10, 20, 40], 'search_k': [500, 1000]}."""
    out = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--sweep wants KNOB=V1,V2,..., got '{item}'")
        knob, values = item.split("=", 1)
        key = KNOB_ALIASES.get(knob.strip().lower())
        if key is None:
            raise UsageError(f"--sweep: unknown knob '{knob}' (ef for hnswlib/faiss-hnsw, search_k for annoy)")
        try:
            out[key] = [int(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise UsageError(f"--sweep {knob}: values must be integers") from None
        if not out[key] or min(out[key]) < 1:
            raise UsageError(f"--sweep {knob}: give positive values")
    return out


def load_result(path):
    """Read and check a swann result file (the schema the anchors write too)."""
    try:
        with open(path) as f:
            r = json.load(f)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read the swann result {path}: {e}") from None
    if not isinstance(r, dict):
        raise UsageError(f"{path}: a result is a JSON object")
    for key in ("library", "metric", "k", "build", "runs"):
        if key not in r:
            raise UsageError(f"{path}: the result has no '{key}'")
    for run in r["runs"]:
        if not all(isinstance(run.get(key), (int, float)) for key in ("recall", "qps")):
            raise UsageError(f"{path}: every run needs a numeric recall and qps")
    return r


def result_path(r, key, result_file):
    """A dataset path from a result: relative ones against the current folder, then the file's folder."""
    p = (r.get("dataset") or {}).get(key)
    if p and not os.path.isabs(p) and not os.path.exists(p):
        p = os.path.join(os.path.dirname(os.path.abspath(result_file)), p)
    return p


def build_parser():
    ap = argparse.ArgumentParser(
        prog="compare.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare swann with anchor ANN libraries (hnswlib, faiss HNSW, annoy, exact) "
                    "on the same data, side by side.",
        epilog="Example:\n  python3 scripts/compare.py --against hnswlib --base B.fvecs --queries Q.fvecs "
               "--metric l2 \\\n      --params M=16,ef_construction=200 --threads 2 \\\n"
               "      --swann-cmd 'target/release/swann bench hnsw --base B.fvecs --queries Q.fvecs "
               "--json {json}'\n\nExit status: 0 every run completed, 1 a run failed, 2 bad usage.")
    ap.add_argument("--against", action="append", default=[], metavar="NAME",
                    help="anchor library, repeatable: " + ", ".join(ANCHORS))
    ap.add_argument("--base", help="base vectors (.fvecs, .bvecs, .npy)")
    ap.add_argument("--queries", help="query vectors (.fvecs, .bvecs, .npy)")
    ap.add_argument("--groundtruth", help="ground-truth ids (.ivecs, .npy); computed exactly when absent")
    ap.add_argument("--metric", help="l2 (squared), ip, cosine, angular, manhattan (annoy/flat only); default l2")
    ap.add_argument("--k", type=int, help="neighbours per query (default 10)")
    ap.add_argument("--params", action="append", default=[], metavar="KEY=V,...",
                    help="index parameters: M, ef_construction (hnsw; 16, 200), n_trees or trees (annoy; 50)")
    ap.add_argument("--threads", type=int, help="build threads (default 1; queries always run on one)")
    ap.add_argument("--reps", type=int, default=3, help="timed passes per sweep point, median taken (default 3)")
    ap.add_argument("--sweep", action="append", default=[], metavar="KNOB=V1,V2,...",
                    help="replace an anchor's sweep: ef=... (hnswlib, faiss-hnsw) or search_k=... (annoy)")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--swann-cmd", metavar="CMD",
                     help="shell command run after the anchors; {json} is replaced by the path it writes "
                          "its result to")
    src.add_argument("--result", metavar="FILE", help="an existing swann result JSON instead of --swann-cmd")
    ap.add_argument("--json", metavar="PATH", help="write the anchors' results in swann's result schema")
    ap.add_argument("--out", metavar="PATH", help="write everything (setup, results, table, ratios) as JSON")
    ap.add_argument("--self-test", action="store_true",
                    help="tiny generated data, hnswlib run twice (once as 'swann'): every ratio is ~1.0x")
    return ap


def make_setup(a):
    """Check the arguments and turn them into the setup every run gets. Raises UsageError."""
    if a.reps < 1:
        raise UsageError("--reps must be >= 1")
    if a.k is not None and a.k < 1:
        raise UsageError("--k must be >= 1")
    if a.threads is not None and a.threads < 1:
        raise UsageError("--threads must be >= 1")
    unknown = [n for n in a.against if n not in ANCHORS]
    if unknown:
        raise UsageError(f"unknown anchor {', '.join(unknown)} (want {', '.join(ANCHORS)})")
    if not a.against:
        raise UsageError("give at least one --against NAME (" + ", ".join(ANCHORS) + ")")
    if a.swann_cmd is not None and "{json}" not in a.swann_cmd:
        raise UsageError("--swann-cmd must contain {json} (replaced by the path swann writes its result to)")

    swann = load_result(a.result) if a.result else None
    r = swann or {}
    given = {key: number(v) for key, v in parse_items(a.params, "--params").items()}
    known = {alias for aliases in PARAM_ALIASES.values() for alias in aliases}
    for key in given:
        if key not in known:
            raise UsageError(f"--params: unknown key '{key}' (want M, ef_construction, n_trees/trees)")
    params = dict(PARAM_DEFAULTS)
    for src in (r.get("params") or {}, given):  # swann's result first, the command line wins
        for key, aliases in PARAM_ALIASES.items():
            for alias in aliases:
                if alias in src:
                    params[key] = src[alias]
    for key, value in params.items():
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"--params {key} must be a positive integer, got {value!r}")

    s = {
        "base": a.base or (result_path(r, "base", a.result) if swann else None),
        "queries": a.queries or (result_path(r, "queries", a.result) if swann else None),
        "groundtruth": a.groundtruth or (result_path(r, "groundtruth", a.result) if swann else None),
        "metric": (a.metric or r.get("metric") or "l2").lower(),
        "k": a.k or r.get("k") or 10,
        "threads": a.threads or (r.get("build") or {}).get("threads") or 1,
        "params": params, "reps": a.reps, "sweep": parse_sweeps(a.sweep),
    }
    if s["metric"] not in METRICS and not (swann and not a.metric and s["metric"] in CANONICAL):
        raise UsageError(f"unknown metric '{s['metric']}' (want {', '.join(METRICS)})")
    for key in ("base", "queries"):
        if not s[key]:
            raise UsageError(f"give --{key}" + ("" if swann else " (or --result with the dataset in it)"))
    (s["n_base"], s["dim"]), (s["n_queries"], qdim) = file_shape(s["base"]), file_shape(s["queries"])
    if s["dim"] != qdim:
        raise UsageError(f"dimension mismatch: base {s['base']} has {s['dim']}, queries {s['queries']} have {qdim}")
    if s["n_base"] < s["k"]:
        raise UsageError(f"k={s['k']} but the base has only {s['n_base']} vectors")
    if s["groundtruth"]:
        gt_rows, gt_cols = file_shape(s["groundtruth"])
        if gt_rows < s["n_queries"]:
            raise UsageError(f"ground truth {s['groundtruth']} has {gt_rows} rows for {s['n_queries']} queries")
        if gt_cols < s["k"]:
            raise UsageError(f"ground truth {s['groundtruth']} has {gt_cols} ids per query, fewer than k={s['k']}")
    for key in ("base", "queries", "groundtruth"):
        s[key] = os.path.abspath(s[key]) if s[key] else None
    # the sweep knobs given must belong to some requested anchor
    knobs = {ANCHORS[n].knob for n in a.against}
    for knob in s["sweep"]:
        if knob not in knobs:
            raise UsageError(f"--sweep {knob}: none of the requested anchors has that knob")
    return s, swann


# ---------------------------------------------------------------- running

def run_anchor(name, s, tmp):
    """One anchor in a fresh process (so the peak RSS belongs to that build alone); its result or None."""
    setup_path = os.path.join(tmp, f"{name}.setup.json")
    out_path = os.path.join(tmp, f"{name}.result.json")
    with open(setup_path, "w") as f:
        json.dump(worker_setup(name, s, tmp, name), f)
    # faiss builds with OpenMP threads; numpy's BLAS stays on one thread (exact search is single-threaded)
    env = dict(os.environ, OMP_NUM_THREADS=str(s["threads"]), OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    print(f"\n== {name}", flush=True)
    rc = subprocess.run([sys.executable, SCRIPT, "--worker", setup_path, out_path], env=env).returncode
    if rc != 0 or not os.path.exists(out_path):
        warn(f"anchor {name} failed (exit status {rc})")
        return None
    with open(out_path) as f:
        return json.load(f)


def worker_setup(name, s, tmp, label):
    """What a worker process gets: the run's setup, plus the label it reports under."""
    return {"anchor": name, "label": label, "tmp": tmp, "base": s["base"], "queries": s["queries"],
            "groundtruth": s["gt_file"], "metric": s["metric"], "k": s["k"], "threads": s["threads"],
            "params": s["params"], "reps": s["reps"], "sweep": s["sweep"],
            "dataset": {"base": s["base"], "queries": s["queries"], "groundtruth": s["groundtruth"]}}


def run_swann(command, tmp):
    """Run the swann command; returns (result or None, info about the command)."""
    path = os.path.join(tmp, "swann.json")
    cmd = command.replace("{json}", shlex.quote(path))
    print(f"\n== swann: {cmd}", flush=True)
    t = time.perf_counter()
    p = subprocess.Popen(cmd, shell=True)
    _, status, usage = os.wait4(p.pid, 0)  # rusage of the shell and what it waited for
    rc = os.waitstatus_to_exitcode(status)
    info = {"command": cmd, "exit_status": rc, "wall_s": time.perf_counter() - t,
            "max_rss_bytes": usage.ru_maxrss * 1024}
    if rc != 0:
        warn(f"the swann command failed (exit status {rc})")
        return None, info
    try:
        return load_result(path), info
    except UsageError as e:
        warn(f"the swann command wrote no valid result: {e}")
        return None, info


def check_swann_setup(r, s):
    """Warn when swann's result says it ran something other than the anchors' setup."""
    d, diffs = r.get("dataset") or {}, []
    for key in ("base", "queries"):
        if d.get(key) and os.path.realpath(d[key]) != os.path.realpath(s[key]):
            diffs.append(f"{key} ({d[key]})")
    if CANONICAL.get(str(r.get("metric")).lower()) != CANONICAL[s["metric"]]:
        diffs.append(f"metric ({r.get('metric')})")
    if r.get("k") != s["k"]:
        diffs.append(f"k ({r.get('k')})")
    if (r.get("build") or {}).get("threads") not in (None, s["threads"]):
        diffs.append(f"build threads ({r['build']['threads']})")
    for key, aliases in PARAM_ALIASES.items():
        for alias in aliases:
            v = (r.get("params") or {}).get(alias)
            if v is not None and v != s["params"][key]:
                diffs.append(f"{key} ({v})")
    if diffs:
        print(f"WARNING: swann's result differs from the anchors' setup in: {', '.join(diffs)}", flush=True)


# ---------------------------------------------------------------- report

def size_text(b):
    if b is None:
        return "-"
    return f"{b / 2**20:.1f}M" if b >= 2**17 else f"{b / 2**10:.0f}K"


def summary(r):
    """One table row of a result: single-thread runs (all runs if none) in knob order."""
    runs = [x for x in r["runs"] if x.get("threads", 1) == 1] or list(r["runs"])
    runs.sort(key=lambda x: x.get("value") or 0)
    b = r.get("build") or {}
    return {"library": r["library"], "index": r.get("index"), "build_s": b.get("seconds"),
            "threads": b.get("threads"), "peak_rss_bytes": b.get("peak_rss_bytes"),
            "index_bytes": b.get("index_bytes"),
            "max_recall": max((x["recall"] for x in runs), default=None),
            "qps_at": {f"{t:.2f}": (qps_at(runs, t) if runs else None) for t in TARGETS}}


def print_table(rows):
    head = ["library", "index", "build_s", "threads", "peak_rss", "index_size", "max_recall"]
    head += [f"qps@{t:.2f}" for t in TARGETS]
    cells = [[x["library"], x["index"] or "-",
              "-" if x["build_s"] is None else f"{x['build_s']:.2f}",
              "-" if x["threads"] is None else str(x["threads"]),
              size_text(x["peak_rss_bytes"]), size_text(x["index_bytes"]),
              "-" if x["max_recall"] is None else f"{x['max_recall']:.4f}"]
             + ["-" if v is None else f"{v:,.0f}" for v in x["qps_at"].values()] for x in rows]
    widths = [max(len(c[i]) for c in [head] + cells) for i in range(len(head))]
    print()
    for c in [head] + cells:
        print("  ".join(v.ljust(widths[i]) if i < 2 else v.rjust(widths[i]) for i, v in enumerate(c)).rstrip())


def ratios(swann, anchors):
    """swann / anchor for each column, with which direction is better; printed and returned."""
    out = []
    if not swann or not anchors:
        return out
    print("\nRATIOS (swann / anchor)")
    for n, an in enumerate(anchors):
        if n:
            print()
        pairs = [(f"qps@{t}", swann["qps_at"][t], an["qps_at"][t], "higher") for t in swann["qps_at"]]
        pairs += [("build_s", swann["build_s"], an["build_s"], "lower"),
                  ("peak_rss", swann["peak_rss_bytes"], an["peak_rss_bytes"], "lower"),
                  ("index_size", swann["index_bytes"], an["index_bytes"], "lower")]
        for what, a, b, better in pairs:
            value = a / b if a and b else None
            out.append({"what": what, "anchor": an["library"], "ratio": value, "better": better})
            text = f"{value:.2f}x" if value else "n/a"
            if value is None:
                missing = "swann" if not a else an["library"]
                text += f" (not reached by {missing})" if what.startswith("qps") else f" (no value for {missing})"
            print(f"  {what:<10} swann/{an['library']} = {text} ({better} is better)")
    return out


# ---------------------------------------------------------------- main

def prepare_groundtruth(s, tmp):
    """s["gt_file"]: the given ground truth, or exact ids computed here into a temporary .npy."""
    s["gt_file"] = s["groundtruth"]
    if s["groundtruth"]:
        return
    import numpy as np
    say(f"no ground truth given: exact top-{s['k']} by numpy brute force")
    t = time.perf_counter()
    gt = exact_knn(read_float_vectors(s["base"]), read_float_vectors(s["queries"]), s["k"], s["metric"])
    s["gt_file"] = os.path.join(tmp, "groundtruth.npy")
    np.save(s["gt_file"], gt.astype(np.int32))
    say(f"ground truth in {time.perf_counter() - t:.1f} s")


def compare(a, s, swann, tmp):
    """Run the anchors, then swann; print the table and ratios. Returns (exit status, table rows)."""
    load_start = os.getloadavg()[0]
    failed, skipped = [], []
    print(f"{PROG}: load average at the start {load_start:.2f} "
          f"({os.cpu_count()} CPUs; on a busy machine every timing is noisy)", flush=True)

    anchors = []
    for name in dict.fromkeys(a.against):
        if CANONICAL[s["metric"]] not in ANCHOR_METRICS[name]:
            say(f"skipping {name}: it has no '{s['metric']}' metric")
            skipped.append(name)
        else:
            anchors.append(name)
    if not anchors and not a.swann_cmd and not swann:
        warn("nothing to run: every anchor was skipped and there is no swann result")
        return 2, []

    if anchors and "gt_file" not in s:
        prepare_groundtruth(s, tmp)

    print(f"{PROG}: {s['n_base']} x {s['dim']} base, {s['n_queries']} queries, metric {s['metric']}, "
          f"k={s['k']}, params {s['params']}, build threads {s['threads']}, reps {s['reps']}", flush=True)

    results = []
    for name in anchors:
        r = run_anchor(name, s, tmp)
        if r:
            results.append(r)
        else:
            failed.append(name)

    swann_info = None
    if a.swann_cmd:
        swann, swann_info = run_swann(a.swann_cmd, tmp)
        if swann is None:
            failed.append("swann")
    if swann:
        check_swann_setup(swann, s)

    rows = ([summary(swann)] if swann else []) + [summary(r) for r in results]
    print_table(rows)
    ratio_list = ratios(rows[0] if swann else None, rows[1:] if swann else [])
    if swann_info and swann:
        print(f"\nswann command: {swann_info['wall_s']:.1f} s wall, max RSS {size_text(swann_info['max_rss_bytes'])} "
              "(the whole process, not the build's growth)")
    load_end = os.getloadavg()[0]
    print(f"QPS: 1 thread, 1 query per call, median of {s['reps']} passes; recall@{s['k']}. "
          f"Load average {load_start:.2f} -> {load_end:.2f}.")
    if skipped or failed:
        print(f"skipped: {', '.join(skipped) or '-'}; failed: {', '.join(failed) or '-'}")

    if a.json:
        with open(a.json, "w") as f:
            json.dump(results[0] if len(results) == 1 else {"results": results}, f, indent=1)
        say(f"wrote {a.json}")
    if a.out:
        setup = {k: v for k, v in s.items() if k != "gt_file"}
        with open(a.out, "w") as f:
            json.dump({"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "setup": setup,
                       "loadavg": [load_start, load_end], "swann_cmd": swann_info,
                       "results": ([swann] if swann else []) + results, "table": rows,
                       "ratios": ratio_list, "skipped": skipped, "failed": failed}, f, indent=1)
        say(f"wrote {a.out}")
    return (1 if failed else 0), rows


def self_checks(tmp):
    """Quick checks of the readers, the exact search and the interpolation; a list of failures."""
    import numpy as np
    failures = []

    def check(ok, what):
        if not ok:
            failures.append(what)

    rng = np.random.default_rng(3)
    path = lambda name: os.path.join(tmp, name)  # noqa: E731
    f = rng.normal(size=(7, 5)).astype(np.float32)
    write_vecs(path("t.fvecs"), f)
    check(np.array_equal(read_vectors(path("t.fvecs")), f), ".fvecs round trip")
    i = rng.integers(0, 1000, size=(7, 3)).astype(np.int32)
    write_vecs(path("t.ivecs"), i)
    check(np.array_equal(read_vectors(path("t.ivecs")), i), ".ivecs round trip")
    b = rng.integers(0, 256, size=(4, 6)).astype(np.uint8)
    np.concatenate([np.tile(np.array([6], "<i4").view(np.uint8), (4, 1)), b], axis=1).tofile(path("t.bvecs"))
    check(np.array_equal(read_float_vectors(path("t.bvecs")), b.astype(np.float32)), ".bvecs widened to float32")
    np.save(path("t.npy"), f)
    check(file_shape(path("t.npy")) == (7, 5) == file_shape(path("t.fvecs")), "file shapes")
    # exact search: duplicate rows tie and the smaller id comes first
    X = np.array([[1, 0], [5, 5], [1, 0], [0, 1], [1, 0]], dtype=np.float32)
    for metric in METRICS:
        want = [1, 0, 2] if metric == "ip" else [0, 2, 4]
        check(exact_knn(X, X[:1], 3, metric)[0].tolist() == want, f"exact search ({metric})")
    # interpolation: log-linear between the runs around the target, no extrapolation
    runs = [{"recall": 0.8, "qps": 1000.0}, {"recall": 1.0, "qps": 100.0}]
    check(abs(qps_at(runs, 0.9) - math.sqrt(1000.0 * 100.0)) < 1e-6, "qps interpolation")
    check(qps_at(runs[1:], 0.9) == 100.0 and qps_at(runs[:1], 0.9) is None, "qps at the ends of a sweep")
    say("self-test: readers, exact search and interpolation " + ("OK" if not failures else
                                                                 "FAILED: " + ", ".join(failures)))
    return failures


def self_test(a, tmp):
    """Generated clustered data; hnswlib as the anchor and, through --swann-cmd, as 'swann'."""
    import numpy as np
    if self_checks(tmp):
        print("\nself-test: FAIL")
        return 1
    rng = np.random.default_rng(1)
    n, nq, dim, clusters = 2000, 100, 16, 20
    centers = rng.normal(0, 1.0, (clusters, dim))
    pts = (centers[rng.integers(0, clusters, n + nq)] + rng.normal(0, 1.0, (n + nq, dim))).astype(np.float32)
    base, queries = os.path.join(tmp, "selftest_base.fvecs"), os.path.join(tmp, "selftest_query.fvecs")
    write_vecs(base, pts[:n])
    write_vecs(queries, pts[n:])
    a.base, a.queries, a.groundtruth, a.metric, a.k = base, queries, None, "l2", 10
    a.threads = a.threads or 2
    a.params = a.params or ["M=16,ef_construction=100"]
    a.against, a.result = ["hnswlib"], None
    s, _ = make_setup(a)
    # the "swann" side: this script's own worker running hnswlib under the label swann
    fake = os.path.join(tmp, "fake-swann.setup.json")
    a.swann_cmd = f"{shlex.quote(sys.executable)} {shlex.quote(SCRIPT)} --worker {shlex.quote(fake)} {{json}}"

    prepare_groundtruth(s, tmp)
    with open(fake, "w") as f:
        json.dump(worker_setup("hnswlib", s, tmp, "swann"), f)
    status, rows = compare(a, s, None, tmp)
    ok = status == 0 and len(rows) == 2 and all((x["max_recall"] or 0) >= 0.9 for x in rows) \
        and all(v is not None for x in rows for v in x["qps_at"].values())
    print(f"\nself-test: {'PASS' if ok else 'FAIL'} (same library on both sides: the ratios should be near "
          "1.0x, apart from timing noise)")
    return 0 if ok else 1


def main(argv):
    if argv[:1] == ["--worker"]:  # internal: one measured run in a fresh process
        if len(argv) != 3:
            warn("usage: compare.py --worker SETUP.json OUT.json")
            return 2
        return worker_main(argv[1], argv[2])

    ap = build_parser()
    a = ap.parse_args(argv)
    try:
        if a.self_test:
            if any((a.base, a.queries, a.groundtruth, a.metric, a.k, a.result, a.swann_cmd, a.sweep)):
                raise UsageError("--self-test generates its own data and swann; drop the data options")
            requested = ["hnswlib"]
        else:
            make_setup(a)  # fail on bad input before creating the venv
            requested = a.against
    except UsageError as e:
        ap.print_usage(sys.stderr)
        warn(f"error: {e}")
        return 2

    ensure_venv(BASE_REQUIREMENTS + [r for n in dict.fromkeys(requested) for r in ANCHOR_REQUIREMENTS[n]])

    tmp = tempfile.mkdtemp(prefix="swann-compare-")
    try:
        if a.self_test:
            return self_test(a, tmp)
        s, swann = make_setup(a)
        return compare(a, s, swann, tmp)[0]
    except UsageError as e:  # e.g. rows of different dimensions, found while reading the data
        warn(f"error: {e}")
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
