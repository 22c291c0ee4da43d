#!/usr/bin/env python3
"""Compare swann's LSH engine with NearPy on the same data and configuration.

Runs, in one process and one sitting, for each storage (memory, redis), each
hash count and each seed:

- NearPy 1.0 (`Engine` with `RandomBinaryProjections`, `UniqueFilter`,
  `NearestFilter(k)`, `MemoryStorage` or `RedisStorage` over redis-py):
  stores the first `--limit` base vectors one `store_vector` call each, then
  runs the queries one `neighbours` call each;
- `swann lsh experiment` with the same bits, hash count, k, filters and
  storage (`--store single`, one `store` call per vector, as NearPy; for
  Redis also `--store batch`, one pipelined round trip per 10,000 vectors,
  which NearPy's engine has no equivalent of).

It prints store and query throughput, the swann/NearPy ratios, and recall@k
per seed and over the seeds. swann draws its hyperplanes with NumPy's
generator (`rng=numpy`, hash i of seed s gets NumPy seed 1000 s + i, as
NearPy here), so both libraries hash into the same buckets seed for seed:
recall must agree per seed (up to float rounding at ties), and the ratios
compare the same work (with different generators, each seed gives each
library buckets of other sizes, and a per-seed ratio would mix that in).

Ranking: NearPy's engine normalizes every stored vector and the query to
unit length before computing distances, so its Euclidean ranking is a cosine
ranking. Both sides therefore rank by cosine and recall is measured against
exact cosine neighbours (computed here with numpy) for NearPy and by swann's
own exact scan for swann.

Setup: with no NearPy importable, the script creates a venv in
~/.cache/swann-lsh-compare/venv (NearPy 1.0, numpy<2 because NearPy's
RedisStorage calls ndarray.tostring, redis-py) and re-runs itself there.
Redis: pass --redis-url or set SWANN_REDIS_URL, either a loopback server
(redis://127.0.0.1:6379/) or a Unix socket (unix:///run/redis.sock), which
both sides then use; without one, the Redis rows are skipped with a message.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

VENV = os.path.expanduser("~/.cache/swann-lsh-compare/venv")


def ensure_nearpy():
    try:
        import nearpy  # noqa: F401
        import numpy  # noqa: F401
        import redis  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("SWANN_LSH_COMPARE_IN_VENV"):
        sys.exit("lsh_compare: NearPy still not importable inside the venv")
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        print(f"lsh_compare: creating {VENV} (NearPy 1.0, numpy<2, redis)", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([py, "-m", "pip", "install", "-q", "NearPy==1.0.0", "numpy<2", "redis"])
    env = dict(os.environ, SWANN_LSH_COMPARE_IN_VENV="1")
    os.execve(py, [py] + sys.argv, env)


def read_bvecs(path, limit):
    import numpy as np
    raw = np.fromfile(path, dtype=np.uint8)
    dim = int(raw[:4].view(np.int32)[0])
    rows = raw.reshape(-1, 4 + dim)
    if limit:
        rows = rows[:limit]
    return rows[:, 4:].astype(np.float32)


def exact_cosine_topk(base, queries, k):
    import numpy as np
    b = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-30)
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
    sims = q @ b.T
    out = []
    for row in sims:
        # Ties by smaller id, like swann's exact scan.
        idx = np.lexsort((np.arange(len(row)), -row))[:k]
        out.append(set(int(i) for i in idx))
    return out


def check_loopback(url):
    """The redis-py connection arguments for `url`, a loopback TCP URL
    (redis://127.0.0.1:PORT/) or a Unix socket (unix:///path/to/socket);
    anything else is refused, since the script empties what it stores."""
    if url.startswith("unix://"):
        path = url[len("unix://"):].split("?", 1)[0]
        if not path.startswith("/"):
            sys.exit(f"lsh_compare: a Unix socket URL needs an absolute path: {url!r}")
        return {"unix_socket_path": path}
    rest = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = rest.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "[::1]"):
        sys.exit(f"lsh_compare: refusing non-loopback Redis server {url!r}")
    return {"host": host.strip("[]"), "port": int(port)}


def run_nearpy(base, queries, truth, bits, hashes, seed, k, storage, redis_url, reps):
    import redis as redis_py
    from nearpy import Engine
    from nearpy.distances import CosineDistance
    from nearpy.filters import NearestFilter, UniqueFilter
    from nearpy.hashes import RandomBinaryProjections
    from nearpy.storage import MemoryStorage, RedisStorage

    dim = base.shape[1]
    lshashes = [RandomBinaryProjections(f"np{seed}_{i}", bits, rand_seed=seed * 1000 + i)
                for i in range(hashes)]
    if storage == "redis":
        client = redis_py.Redis(**check_loopback(redis_url))
        st = RedisStorage(client)
    else:
        st = MemoryStorage()
    engine = Engine(dim, lshashes=lshashes, distance=CosineDistance(),
                    fetch_vector_filters=[UniqueFilter()], vector_filters=[NearestFilter(k)],
                    storage=st)
    def clean():
        for h in lshashes:
            keys = list(client.scan_iter(f"nearpy_{h.hash_name}_*"))
            if keys:
                client.delete(*keys)

    # Same protocol as swann's experiment: store passes (emptied before
    # each) until at least `reps` and 1 s in all; a 50-query warm-up; `reps`
    # query passes, each repeating the query set until it lasts 0.2 s;
    # medians. (NearPy's passes are long, so the minimums rarely matter.)
    store_times = []
    cpu0 = time.process_time()
    while len(store_times) < reps or (sum(store_times) < 1.0 and len(store_times) < 100):
        if storage == "redis":
            clean()
        else:
            engine.clean_all_buckets()
        t = time.perf_counter()
        for i in range(base.shape[0]):
            engine.store_vector(base[i], i)
        store_times.append(time.perf_counter() - t)
    store_cpu = (time.process_time() - cpu0) / (len(store_times) * base.shape[0])
    # The first pass right after storing, timed on its own (cold caches;
    # swann's in-memory storage also codes a large arena for screening then).
    t = time.perf_counter()
    for q in queries:
        engine.neighbours(q)
    first_pass_s = time.perf_counter() - t
    query_times = []
    cpu0 = time.process_time()
    queries_run = 0
    for _ in range(reps):
        t = time.perf_counter()
        done = 0
        while True:
            results = [engine.neighbours(q) for q in queries]
            done += len(queries)
            if time.perf_counter() - t >= 0.2:
                break
        query_times.append((time.perf_counter() - t) * len(queries) / done)
        queries_run += done
    query_cpu = (time.process_time() - cpu0) / queries_run
    store_s = statistics.median(store_times)
    query_s = statistics.median(query_times)
    recall = statistics.fmean(len(set(r[1] for r in res) & tr) / k for res, tr in zip(results, truth))
    if storage == "redis":
        clean()
    return {"store_per_second": base.shape[0] / store_s, "queries_per_second": len(queries) / query_s,
            "first_pass_queries_per_second": len(queries) / first_pass_s,
            "store_cpu_per_second": 1 / store_cpu, "query_cpu_per_second": 1 / query_cpu,
            "recall": recall}


def run_swann(args, bits, hashes, seed, storage, store_mode, reps=None):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        cmd = [args.swann, "lsh", "experiment", "--base", args.base, "--limit", str(args.limit),
               "--queries", args.queries, "--query-count", str(args.query_count),
               "--config", f"rbp:bits={bits},hashes={hashes},seed={seed * 1000},rng=numpy",
               "--k", str(args.k), "--metric", "cosine", "--storage", storage,
               "--store", store_mode, "--reps", str(reps or args.reps), "--json", out]
        if storage == "redis":
            cmd += ["--redis-url", args.redis_url, "--namespace", f"swann-compare-{os.getpid()}"]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            sys.exit(f"lsh_compare: {' '.join(cmd)} failed:\n{proc.stderr}")
        with open(out) as f:
            r = json.load(f)["results"][0]
    return {"store_per_second": r["store_per_second"], "queries_per_second": r["queries_per_second"],
            "first_pass_queries_per_second": r.get("first_pass_queries_per_second"),
            "store_cpu_per_second": r.get("store_cpu_per_second"),
            "query_cpu_per_second": r.get("query_cpu_per_second"),
            "recall": r["recall"]}


def main():
    ensure_nearpy()
    import numpy as np

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", default="/work/shared/data/sift-real_base.bvecs")
    p.add_argument("--queries", default="/work/shared/data/sift-real_query.bvecs")
    p.add_argument("--limit", type=int, default=20000, help="base vectors (first N)")
    p.add_argument("--query-count", type=int, default=200)
    p.add_argument("--bits", type=int, default=10)
    p.add_argument("--hashes", default="1,4", help="comma-separated hash counts")
    p.add_argument("--seeds", type=int, default=3, help="seeds per configuration")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--reps", type=int, default=3, help="timed passes per measurement (median)")
    p.add_argument("--storage", default="memory,redis")
    p.add_argument("--redis-url", default=os.environ.get("SWANN_REDIS_URL"))
    p.add_argument("--swann", default="target/release/swann")
    p.add_argument("--recall-seeds", type=int, default=10,
                   help="seeds for the recall comparison (memory storage, one untimed pass each)")
    p.add_argument("--json", help="write all measurements here")
    args = p.parse_args()

    base = read_bvecs(args.base, args.limit)
    queries = read_bvecs(args.queries, args.query_count)
    truth = exact_cosine_topk(base, queries, args.k)
    storages = [s for s in args.storage.split(",") if s]
    if "redis" in storages and not args.redis_url:
        print("lsh_compare: no --redis-url / SWANN_REDIS_URL: skipping the Redis rows", file=sys.stderr)
        storages.remove("redis")
    if args.redis_url:
        check_loopback(args.redis_url)
    print(f"data: {base.shape[0]} x {base.shape[1]} base, {len(queries)} queries, bits={args.bits}, "
          f"k={args.k}, seeds={args.seeds}, load {os.getloadavg()[0]:.2f}", file=sys.stderr)

    rows = []
    for storage in storages:
        for hashes in [int(h) for h in args.hashes.split(",")]:
            modes = ["single", "batch"] if storage == "redis" else ["single"]
            acc = {"nearpy": []}
            for m in modes:
                acc[f"swann-{m}"] = []
            for seed in range(1, args.seeds + 1):
                acc["nearpy"].append(run_nearpy(base, queries, truth, args.bits, hashes, seed, args.k,
                                                storage, args.redis_url, args.reps))
                for m in modes:
                    acc[f"swann-{m}"].append(run_swann(args, args.bits, hashes, seed, storage, m))
                print(f"  {storage} hashes={hashes} seed={seed}: nearpy recall "
                      f"{acc['nearpy'][-1]['recall']:.4f}, swann recall {acc['swann-single'][-1]['recall']:.4f}",
                      file=sys.stderr)
            for name, runs in acc.items():
                rows.append({
                    "storage": storage, "hashes": hashes, "impl": name,
                    "store_per_second": statistics.median(r["store_per_second"] for r in runs),
                    "queries_per_second": statistics.median(r["queries_per_second"] for r in runs),
                    "recall_mean": statistics.fmean(r["recall"] for r in runs),
                    "recall_sd": statistics.stdev([r["recall"] for r in runs]) if len(runs) > 1 else 0.0,
                    "runs": runs,
                })

    # Recall over many seeds (storage does not change results: the Redis
    # tests check that), one pass each, timing ignored.
    recall_rows = []
    if args.recall_seeds > 0:
        for hashes in [int(h) for h in args.hashes.split(",")]:
            np_r, sw_r = [], []
            for seed in range(101, 101 + args.recall_seeds):
                np_r.append(run_nearpy(base, queries, truth, args.bits, hashes, seed, args.k,
                                       "memory", None, 1)["recall"])
                sw_r.append(run_swann(args, args.bits, hashes, seed, "memory", "single", reps=1)["recall"])
            recall_rows.append({"hashes": hashes, "nearpy": np_r, "swann": sw_r})

    print(f"\n{'storage':<8} {'hashes':>6} {'impl':<13} {'store/s':>11} {'query/s':>10} "
          f"{'recall(mean±sd, seeds)':>23} {'store x (min-max)':>17} {'query x (min-max)':>17} "
          f"{'cpu store x':>17} {'cpu query x':>17} {'1st pass x':>17}")
    for r in rows:
        ref = next(x for x in rows if x["storage"] == r["storage"] and x["hashes"] == r["hashes"]
                   and x["impl"] == "nearpy")
        # Ratios: median over seeds of the per-seed ratio (NearPy and swann of
        # one seed ran back to back, so they saw about the same machine load).
        def ratio(key):
            vals = [a.get(key) and b.get(key) and a[key] / b[key] for a, b in zip(r["runs"], ref["runs"])]
            vals = [v for v in vals if v]
            return (statistics.median(vals), min(vals), max(vals)) if vals else None
        sx, qx = ratio("store_per_second"), ratio("queries_per_second")
        fx = ratio("first_pass_queries_per_second")
        cs, cq = (ratio("store_cpu_per_second"), ratio("query_cpu_per_second")) \
            if r["storage"] == "memory" else (None, None)
        r["store_ratio"], r["query_ratio"], r["cpu_store_ratio"], r["cpu_query_ratio"] = sx, qx, cs, cq
        r["first_pass_ratio"] = fx
        fmt = lambda x: f"{x[0]:>7.1f}x ({x[1]:.0f}-{x[2]:.0f})" if x else f"{'-':>17}"
        print(f"{r['storage']:<8} {r['hashes']:>6} {r['impl']:<13} {r['store_per_second']:>11,.0f} "
              f"{r['queries_per_second']:>10,.0f} {r['recall_mean']:>15.4f} ± {r['recall_sd']:.4f} "
              f"{fmt(sx):>17} {fmt(qx):>17} {fmt(cs):>17} {fmt(cq):>17} {fmt(fx):>17}")
    print("\n(throughputs: medians over seeds, wall clock; ratios: median over seeds of swann / NearPy, "
          "each pair run back to back, (min-max) over seeds; cpu: the same with each process's CPU time instead of wall "
          "time, memory storage only; 1st pass: the first pass over the queries right after storing, which "
          "includes anything built on a first query; store single = one call per vector, batch = pipelined)")
    for r in recall_rows:
        n = len(r["nearpy"])
        mn, ms = statistics.fmean(r["nearpy"]), statistics.stdev(r["nearpy"]) if n > 1 else 0.0
        wn, ws = statistics.fmean(r["swann"]), statistics.stdev(r["swann"]) if n > 1 else 0.0
        se = ((ms ** 2 + ws ** 2) / n) ** 0.5
        print(f"recall@{args.k}, {r['hashes']} hash(es), {n} seeds each: NearPy {mn:.4f} ± {ms:.4f}, "
              f"swann {wn:.4f} ± {ws:.4f} (sd); difference {wn - mn:+.4f}, "
              f"standard error of the difference {se:.4f}; per seed: equal on "
              f"{sum(abs(a - b) < 1e-9 for a, b in zip(r['nearpy'], r['swann']))} of {n}, largest gap "
              f"{max(abs(a - b) for a, b in zip(r['nearpy'], r['swann'])):.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"limit": args.limit, "query_count": len(queries), "bits": args.bits, "k": args.k,
                       "seeds": args.seeds, "rows": rows, "recall": recall_rows}, f, indent=1)


if __name__ == "__main__":
    main()
