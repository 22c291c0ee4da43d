"""Compares swann's drop-in modules with the real packages, from Python, in
one process, on sift-real (200k x 128 SIFT descriptors, squared L2).

    python python/bench/compare.py [--data /work/shared/data] [--reps 5]

Needs numpy, hnswlib (0.8) and, for the Annoy and N2 parts, annoy (1.17) and
n2 (0.1.7) installed
beside swann (build swann with ``maturin build --release`` or
``pip install ./python``, which builds in release mode).

For each library it sweeps the search parameter (hnswlib's ``ef``, Annoy's
``search_k``), measures recall@10 against the ground truth, and picks the
smallest setting reaching the target recall (0.95 for HNSW, 0.90 for the
forests). Then it times both libraries at their chosen settings,
interleaving them (``--reps`` repetitions of ``--rounds`` runs each,
alternating which goes first) so that load on a shared machine hits both
alike, and reports queries per second, the ratio per repetition (median,
min, max) and the ratio of each library's best run.

HNSW: batch ``knn_query`` of all queries, ``num_threads=2``, k=10, both
indexes built with M=16, ef_construction=200. Annoy: ``get_nns_by_vector``
one query at a time from a Python loop (how Annoy is used), k=10, both
forests with the same number of trees. N2: ``batch_search_by_vectors`` of all
queries on ``--threads`` threads, k=10, both built with m=16, max_m0=32,
ef_construction=200, N2's ``ef_search`` swept like hnswlib's ``ef``.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

K = 10


def bvecs(path):
    raw = np.fromfile(path, dtype=np.uint8)
    dim = int(raw[:4].view(np.int32)[0])
    return raw.reshape(-1, 4 + dim)[:, 4:].astype(np.float32)


def ivecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:]


def recall(found, truth):
    hits = 0
    for f, t in zip(found, truth):
        hits += len(set(int(x) for x in f[:K]) & set(int(x) for x in t[:K]))
    return hits / (len(truth) * K)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


# -- HNSW ---------------------------------------------------------------------


def hnsw_part(mod_real, mod_swann, base, queries, truth, args, cache):
    out = {"target_recall": 0.95, "efs": args.efs, "libraries": {}}
    indexes = {}
    for name, mod in (("hnswlib", mod_real), ("swann.hnswlib", mod_swann)):
        path = os.path.join(cache, f"sift-{name}-M16-efc200.bin")
        p = mod.Index(space="l2", dim=base.shape[1])
        if os.path.exists(path):
            p.load_index(path, max_elements=len(base))
            build_s = None
        else:
            p.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=100)
            build_s, _ = timed(lambda: p.add_items(base, np.arange(len(base)), num_threads=args.threads))
            p.save_index(path)
        indexes[name] = p
        sweep = []
        for ef in args.efs:
            p.set_ef(ef)
            secs, (labels, _) = timed(lambda: p.knn_query(queries, k=K, num_threads=args.threads))
            sweep.append({"ef": ef, "recall": recall(labels, truth), "qps": len(queries) / secs})
        chosen = next((s for s in sweep if s["recall"] >= 0.95), sweep[-1])
        out["libraries"][name] = {"build_s": build_s, "sweep": sweep, "chosen_ef": chosen["ef"],
                                  "recall": chosen["recall"]}
        print(f"[hnsw] {name}: build {build_s and round(build_s, 1)} s; "
              + ", ".join(f"ef={s['ef']} r={s['recall']:.3f} {s['qps']:.0f}qps" for s in sweep),
              flush=True)

    def run(name):
        p = indexes[name]
        p.set_ef(out["libraries"][name]["chosen_ef"])
        secs, _ = timed(lambda: p.knn_query(queries, k=K, num_threads=args.threads))
        return len(queries) / secs

    out.update(alternate(run, "hnswlib", "swann.hnswlib", args.reps, args.rounds))
    return out


# -- Annoy --------------------------------------------------------------------


def annoy_part(mod_real, mod_swann, base, queries, truth, args, cache):
    out = {"target_recall": 0.90, "n_trees": args.trees, "search_ks": args.search_ks,
           "libraries": {}}
    indexes = {}
    qlist = [q.tolist() for q in queries]
    for name, mod in (("annoy", mod_real), ("swann.annoy", mod_swann)):
        path = os.path.join(cache, f"sift-{name}-{args.trees}trees.ann")
        a = mod.AnnoyIndex(base.shape[1], "euclidean")
        if os.path.exists(path):
            a.load(path)
            build_s = None
        else:
            a.set_seed(42)
            for i, v in enumerate(base):
                a.add_item(i, v)
            build_s, _ = timed(lambda: a.build(args.trees, n_jobs=args.threads))
            a.save(path)
        indexes[name] = a
        sweep = []
        for sk in args.search_ks:
            secs, found = timed(lambda: [a.get_nns_by_vector(q, K, search_k=sk) for q in qlist])
            sweep.append({"search_k": sk, "recall": recall(found, truth), "qps": len(qlist) / secs})
        chosen = next((s for s in sweep if s["recall"] >= 0.90), sweep[-1])
        out["libraries"][name] = {"build_s": build_s, "sweep": sweep,
                                  "chosen_search_k": chosen["search_k"], "recall": chosen["recall"]}
        print(f"[annoy] {name}: build {build_s and round(build_s, 1)} s; "
              + ", ".join(f"sk={s['search_k']} r={s['recall']:.3f} {s['qps']:.0f}qps" for s in sweep),
              flush=True)

    def run(name):
        a = indexes[name]
        sk = out["libraries"][name]["chosen_search_k"]
        secs, _ = timed(lambda: [a.get_nns_by_vector(q, K, search_k=sk) for q in qlist])
        return len(qlist) / secs

    out.update(alternate(run, "annoy", "swann.annoy", args.reps, max(1, args.rounds // 2)))
    return out


# -- N2 -----------------------------------------------------------------------


def n2_part(mod_real, mod_swann, base, queries, truth, args, cache):
    out = {"target_recall": 0.95, "efs": args.efs, "libraries": {}}
    indexes = {}
    qlist = [q.tolist() for q in queries]
    for name, mod in (("n2", mod_real), ("swann.n2", mod_swann)):
        path = os.path.join(cache, f"sift-{name}-M16-efc200.n2")
        p = mod.HnswIndex(base.shape[1], "L2")
        if os.path.exists(path):
            p.load(path)
            build_s = None
        else:
            for v in base:
                p.add_data(v)
            build_s, _ = timed(lambda: p.build(m=16, max_m0=32, ef_construction=200,
                                               n_threads=args.threads, graph_merging="skip"))
            p.save(path)
        indexes[name] = p
        sweep = []
        for ef in args.efs:
            secs, found = timed(lambda: p.batch_search_by_vectors(qlist, K, ef_search=ef,
                                                                  num_threads=args.threads))
            sweep.append({"ef": ef, "recall": recall(found, truth), "qps": len(qlist) / secs})
        chosen = next((s for s in sweep if s["recall"] >= 0.95), sweep[-1])
        out["libraries"][name] = {"build_s": build_s, "sweep": sweep, "chosen_ef": chosen["ef"],
                                  "recall": chosen["recall"]}
        print(f"[n2] {name}: build {build_s and round(build_s, 1)} s; "
              + ", ".join(f"ef={s['ef']} r={s['recall']:.3f} {s['qps']:.0f}qps" for s in sweep),
              flush=True)

    def run(name):
        p = indexes[name]
        ef = out["libraries"][name]["chosen_ef"]
        secs, _ = timed(lambda: p.batch_search_by_vectors(qlist, K, ef_search=ef,
                                                          num_threads=args.threads))
        return len(qlist) / secs

    out.update(alternate(run, "n2", "swann.n2", args.reps, args.rounds))
    return out


def alternate(run, theirs, ours, reps, rounds):
    """Times both libraries ``reps`` times. Each repetition runs each
    library ``rounds`` times, interleaved and alternating which goes first,
    so that a burst of load from other processes lands on both; its QPS is
    total queries over total time. Also reports each library's best single
    round (the least disturbed by load) and the ratio of those."""
    rows = []
    best = {theirs: 0.0, ours: 0.0}
    for r in range(reps):
        secs = {theirs: 0.0, ours: 0.0}
        for i in range(rounds):
            order = (theirs, ours) if (r * rounds + i) % 2 == 0 else (ours, theirs)
            for name in order:
                qps = run(name)
                secs[name] += 1.0 / qps
                best[name] = max(best[name], qps)
        q = {name: rounds / secs[name] for name in secs}
        rows.append({theirs: q[theirs], ours: q[ours], "ratio": q[ours] / q[theirs]})
        print(f"  rep {r}: {theirs} {q[theirs]:.0f} qps, {ours} {q[ours]:.0f} qps, "
              f"ratio {q[ours] / q[theirs]:.2f}", flush=True)
    ratios = sorted(x["ratio"] for x in rows)
    return {
        "reps": rows,
        "rounds_per_rep": rounds,
        "qps_median": {n: statistics.median(x[n] for x in rows) for n in (theirs, ours)},
        "ratio_median": statistics.median(ratios),
        "ratio_min": ratios[0],
        "ratio_max": ratios[-1],
        "qps_best": best,
        "ratio_best": best[ours] / best[theirs],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--cache", default="/tmp/swann-compare-cache",
                    help="built indexes are kept here and reused by later runs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=6,
                    help="timed runs of each library per repetition (half that for Annoy)")
    ap.add_argument("--efs", type=int, nargs="+", default=[10, 16, 24, 32, 48, 64, 96, 128])
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--search-ks", type=int, nargs="+",
                    default=[1000, 1500, 2000, 2500, 3000, 4000, 8000, 16000, 32000])
    ap.add_argument("--skip", choices=["hnsw", "annoy", "n2"], action="append", default=[])
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    os.makedirs(args.cache, exist_ok=True)

    base = bvecs(os.path.join(args.data, "sift-real_base.bvecs"))
    queries = bvecs(os.path.join(args.data, "sift-real_query.bvecs"))
    truth = ivecs(os.path.join(args.data, "sift-real_groundtruth.ivecs"))[:, :K]
    print(f"base {base.shape}, queries {queries.shape}, load {os.getloadavg()}", flush=True)
    results = {"python": sys.version.split()[0], "cpus": os.cpu_count(),
               "loadavg_start": os.getloadavg()}

    if "hnsw" not in args.skip:
        import hnswlib

        import swann.hnswlib as swann_hnswlib

        results["hnsw"] = hnsw_part(hnswlib, swann_hnswlib, base, queries, truth, args, args.cache)
    if "annoy" not in args.skip:
        try:
            import annoy

            import swann.annoy as swann_annoy
        except ImportError as e:
            print(f"[annoy] skipped: {e}")
        else:
            results["annoy"] = annoy_part(annoy, swann_annoy, base, queries, truth, args, args.cache)
    if "n2" not in args.skip:
        try:
            import n2

            import swann.n2 as swann_n2
        except ImportError as e:
            print(f"[n2] skipped: {e}")
        else:
            results["n2"] = n2_part(n2, swann_n2, base, queries, truth, args, args.cache)
    results["loadavg_end"] = os.getloadavg()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    for part in ("hnsw", "annoy", "n2"):
        if part in results:
            r = results[part]
            libs = list(r["qps_median"])
            print(f"{part}: " + ", ".join(f"{n} {r['qps_median'][n]:.0f} qps" for n in libs)
                  + f"; ratio median {r['ratio_median']:.2f} (min {r['ratio_min']:.2f}, "
                  f"max {r['ratio_max']:.2f}); best-round ratio {r['ratio_best']:.2f}")


if __name__ == "__main__":
    main()
