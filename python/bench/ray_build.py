"""Sharded HNSW build on a local Ray cluster versus one process, and the
search quality and speed of the sharded index versus one index.

    python python/bench/ray_build.py --data base.bvecs [--queries q.bvecs --groundtruth gt.ivecs]
        [--shards 4] [--workers 2] [--M 16] [--ef-construction 200] [--efs 10,20,40,80,160]

Needs swann with its ray extra (``pip install './python[ray]'``). Times, on
the same rows, with one build thread per shard:

1. the shards built by ``swann.distributed.build`` on a local Ray cluster of
   ``--workers`` CPUs (workers started before timing; the driver's
   checksum pass and manifest included);
2. the same shards built one after another in this process
   (``swann.sharding.build_local``), checked to be byte-identical to (1);
3. one unsharded index (``swann.Hnsw``) on one thread and on ``--workers``
   threads.

With queries and ground truth (recomputed exactly with ``--limit``) it then sweeps ``ef`` and reports recall@10
and queries per second (one batch of all queries, ``--workers`` search
threads, best of ``--reps``) of the sharded index (``swann.ShardedIndex``)
and of the one index.

Vector files: .fvecs, .bvecs, .ivecs (ground truth) or .npy.
"""

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

K = 10


def read_vecs(path):
    if path.endswith(".npy"):
        return np.load(path)
    kind = {".fvecs": np.float32, ".ivecs": np.int32, ".bvecs": np.uint8}[os.path.splitext(path)[1]]
    raw = np.fromfile(path, dtype=np.uint8)
    dim = int(raw[:4].view(np.int32)[0])
    width = 4 + dim * np.dtype(kind).itemsize
    rows = raw.reshape(-1, width)[:, 4:]
    return rows.copy().view(kind).reshape(len(rows), dim)


def recall(found, truth):
    hits = sum(len(set(f[:K].tolist()) & set(t[:K].tolist())) for f, t in zip(found, truth))
    return hits / (len(truth) * K)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--queries")
    ap.add_argument("--groundtruth")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--efs", default="10,20,40,80,160")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0, help="use only the first LIMIT rows")
    ap.add_argument("--out", help="folder for the shards (default: a temporary folder, removed)")
    args = ap.parse_args()

    import ray

    import swann
    import swann.distributed as sd
    from swann.sharding import build_local

    base = np.ascontiguousarray(read_vecs(args.data), dtype=np.float32)
    if args.limit:
        base = base[: args.limit]
    n, dim = base.shape
    params = dict(M=args.M, ef_construction=args.ef_construction, seed=args.seed, num_threads=1)
    print(f"data: {n} x {dim} from {args.data}; {args.shards} shards; M={args.M}, "
          f"ef_construction={args.ef_construction}, one build thread per shard")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "unknown") if os.path.exists("/proc/cpuinfo") else "unknown"
    print(f"cpu: {cpu}; {os.cpu_count()} logical CPUs; swann {swann.__version__}, ray {ray.__version__}")

    work = args.out or tempfile.mkdtemp(prefix="swann-ray-bench-")
    temp = tempfile.mkdtemp(prefix="ray-")
    try:
        ray.init(num_cpus=args.workers, include_dashboard=False, _temp_dir=temp, log_to_driver=False)

        @ray.remote(num_cpus=1)
        def warm():
            import swann  # noqa: F401 - load the extension in the worker

            time.sleep(0.5)
            return os.getpid()

        pids = set(ray.get([warm.remote() for _ in range(args.workers)]))
        print(f"ray: {args.workers} CPUs, {len(pids)} worker processes started")

        reports = []
        t_ray, manifest = timed(lambda: sd.build(
            base, os.path.join(work, "ray"), num_shards=args.shards, index="hnsw",
            on_shard_built=reports.append, overwrite=True, **params))
        shard_s = [r["seconds"] for r in sorted(reports, key=lambda r: r["shard"])]
        print(f"ray build, {args.workers} workers:       {t_ray:8.1f} s wall "
              f"(shards {', '.join(f'{s:.1f}' for s in shard_s)} s; "
              f"{len({r['pid'] for r in reports})} processes)")
        ray.shutdown()

        t_seq, local = timed(lambda: build_local(base, os.path.join(work, "seq"), num_shards=args.shards,
                                                 index="hnsw", overwrite=True, **params))
        print(f"same shards, one after another: {t_seq:8.1f} s wall ({t_seq / t_ray:.2f}x the Ray build)")
        same = [a["xxh3"] == b["xxh3"] for a, b in zip(swann.read_manifest(manifest)["shards"],
                                                       swann.read_manifest(local)["shards"])]
        print(f"ray shards byte-identical to the sequential ones: {all(same)}")

        one = {}
        for threads in sorted({1, args.workers}):
            idx = swann.Hnsw(dim, capacity=n, M=args.M, ef_construction=args.ef_construction, seed=args.seed)
            t, _ = timed(lambda: idx.add(base, np.arange(n), num_threads=threads))
            one[threads] = idx
            print(f"one index, {threads} thread(s):          {t:8.1f} s wall")

        if args.queries and args.groundtruth:
            queries = np.ascontiguousarray(read_vecs(args.queries), dtype=np.float32)
            truth = read_vecs(args.groundtruth)[:, :K]
            if args.limit:
                # The file's ground truth is of every row: the exact answer
                # over the rows used instead.
                exact = swann.Flat(dim)
                exact.add(base)
                truth = exact.search(queries, K)[0]
                print(f"(--limit: ground truth computed exactly over the first {n} rows)")
            sharded = swann.ShardedIndex(manifest)
            single = one[max(one)]
            print(f"\nrecall@{K} and QPS, {len(queries)} queries, one batch, {args.workers} search threads "
                  f"(best of {args.reps})")
            print(f"{'ef':>5} | {'sharded recall':>14} {'QPS':>9} | {'one index recall':>16} {'QPS':>9}")
            for ef in [int(e) for e in args.efs.split(",")]:
                row = []
                for search in (
                    lambda: sharded.search(queries, K, ef=ef, num_threads=args.workers),
                    lambda: single.search(queries, K, ef=ef, num_threads=args.workers),
                ):
                    best, found = min((timed(search) for _ in range(args.reps)), key=lambda r: r[0])
                    row += [recall(found[0], truth), len(queries) / best]
                print(f"{ef:>5} | {row[0]:>14.4f} {row[1]:>9.0f} | {row[2]:>16.4f} {row[3]:>9.0f}")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
