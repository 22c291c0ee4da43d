//! NearPy's experiments: recall/precision and distance ratio of engine
//! configurations against exact search, on one dataset.
//!
//! [`Experiment::new`] computes the exact `k` nearest neighbours of every
//! query by a full scan (timing it: that is the "exact search" the search
//! times are relative to). [`Experiment::run`] empties an engine, stores the
//! whole base set in it (timed), runs every query (timed) and reports, as
//! means over the queries:
//!
//! - **recall**: the share of the exact `k` nearest found among the results;
//! - **precision**: the share of the results that are among the exact `k`;
//! - **distance ratio** (NearPy's `DistanceRatioExperiment`): over the
//!   results farther than the exact `k`-th neighbour, the sum of
//!   `(d - radius) / radius`, divided by the number of results (0 means every
//!   result is within the exact radius). For [`Metric::L2`] it is computed on
//!   the Euclidean distance, as NearPy does;
//! - **result size** and **candidate count**;
//! - **search time relative to exact search** (below 1 is faster), plus
//!   absolute store and query throughput.
//!
//! Queries either come from a separate set, or are base vectors picked at
//! even spacing, as NearPy's `coverage_ratio` does; then the query's own
//! entry is left out of the exact neighbours and out of the results.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use swann::error::check_vector;
use swann::index::lsh::{Distance, Engine, MetricDistance, Storage};
use swann::{Error, Metric, Result};

/// Where an experiment's queries come from.
#[derive(Clone, Debug)]
pub enum QuerySet {
    /// Separate query vectors, row after row.
    External(Vec<f32>),
    /// `count` base vectors at even spacing (NearPy's `coverage_ratio`).
    FromBase {
        /// How many.
        count: usize,
    },
}

/// A dataset, its queries and their exact neighbours.
#[derive(Debug)]
pub struct Experiment {
    base: Vec<f32>,
    dim: usize,
    queries: Vec<f32>,
    /// For base queries, each query's own index in the base set.
    self_index: Option<Vec<u32>>,
    k: usize,
    metric: Metric,
    truth: Vec<Vec<u32>>,
    radius: Vec<f32>,
    exact_seconds_per_query: f64,
}

/// One configuration's result (means over the queries).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExperimentResult {
    /// The configuration's label.
    pub config: String,
    /// Mean recall@k.
    pub recall: f64,
    /// Mean precision.
    pub precision: f64,
    /// Mean distance ratio (see the module documentation).
    pub distance_ratio: f64,
    /// Mean number of results.
    pub result_size: f64,
    /// Mean number of candidates read from the buckets (before filters).
    pub candidates: f64,
    /// Mean search time divided by the mean exact search time.
    pub search_time_ratio: f64,
    /// Seconds to store the whole base set.
    pub store_seconds: f64,
    /// Vectors stored per second.
    pub store_per_second: f64,
    /// Seconds for all queries.
    pub query_seconds: f64,
    /// Queries per second (one thread, one query per call), after a first
    /// pass over the queries.
    pub queries_per_second: f64,
    /// Seconds for that first pass, run right after the last store pass:
    /// cold caches, and whatever the storage builds when first queried
    /// (the in-memory storage codes a large arena for screening then).
    pub first_pass_seconds: f64,
    /// Queries per second of the first pass.
    pub first_pass_queries_per_second: f64,
    /// Vectors stored per second of this process's CPU time (user + system,
    /// over all store passes), where the platform reports it (Linux). On a
    /// shared machine this is steadier than wall time, which counts the
    /// time the process waited for a core.
    pub store_cpu_per_second: Option<f64>,
    /// Queries per second of CPU time, as `store_cpu_per_second`.
    pub query_cpu_per_second: Option<f64>,
    /// Mean exact-search time per query, in seconds.
    pub exact_seconds_per_query: f64,
    /// Number of base vectors.
    pub n_base: usize,
    /// Number of queries.
    pub n_queries: usize,
}

/// How [`Experiment::run`] stores the base set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreMode {
    /// One [`Engine::store`] call per vector, as NearPy's experiments do.
    Single,
    /// [`Engine::store_batch`] in batches of this many vectors.
    Batch(usize),
}

impl Experiment {
    /// Prepares an experiment on `base` (`n x dim`, row-major): picks the
    /// queries and computes their exact `k` nearest neighbours under `metric`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an empty base set, `k == 0`, too few
    /// base vectors for `k`, or a query count out of range; the vector
    /// errors for a non-finite value or a query of another dimension;
    /// [`Error::UnsupportedMetric`] for [`Metric::Hamming`].
    pub fn new(
        base: Vec<f32>,
        dim: usize,
        queries: QuerySet,
        k: usize,
        metric: Metric,
    ) -> Result<Self> {
        if dim == 0 || base.is_empty() || !base.len().is_multiple_of(dim) {
            return Err(Error::InvalidParameter(format!(
                "base set of {} values is not a non-empty set of {dim}-dimensional vectors",
                base.len()
            )));
        }
        let n = base.len() / dim;
        for row in base.chunks_exact(dim) {
            check_vector(row, dim)?;
        }
        let exact = MetricDistance::new(metric)?;
        let (queries, self_index) = match queries {
            QuerySet::External(q) => {
                if q.is_empty() || !q.len().is_multiple_of(dim) {
                    return Err(Error::InvalidParameter(format!(
                        "query set of {} values is not a non-empty set of {dim}-dimensional vectors",
                        q.len()
                    )));
                }
                for row in q.chunks_exact(dim) {
                    check_vector(row, dim)?;
                }
                (q, None)
            }
            QuerySet::FromBase { count } => {
                if count == 0 || count > n {
                    return Err(Error::InvalidParameter(format!(
                        "cannot pick {count} queries from {n} base vectors"
                    )));
                }
                let idx: Vec<u32> = (0..count)
                    .map(|i| {
                        ((i as f64 * n as f64 / count as f64).floor() as usize).min(n - 1) as u32
                    })
                    .collect();
                let q = idx
                    .iter()
                    .flat_map(|&i| {
                        base[i as usize * dim..(i as usize + 1) * dim]
                            .iter()
                            .copied()
                    })
                    .collect();
                (q, Some(idx))
            }
        };
        let own = usize::from(self_index.is_some());
        if k == 0 || k + own > n {
            return Err(Error::InvalidParameter(format!(
                "k = {k} needs more than the {n} base vectors"
            )));
        }
        let nq = queries.len() / dim;
        let mut truth = Vec::with_capacity(nq);
        let mut radius = Vec::with_capacity(nq);
        let mut dist = vec![0.0f32; n];
        let start = Instant::now();
        for (qi, q) in queries.chunks_exact(dim).enumerate() {
            exact.distance_batch(q, &base, &mut dist);
            let mut order: Vec<u32> = (0..n as u32).collect();
            let me = self_index.as_ref().map(|s| s[qi]);
            // Rank by (distance, index); the query's own entry goes first so it can be dropped.
            let key = |i: &u32| (Some(*i) != me, dist[*i as usize], *i);
            let cmp = |a: &u32, b: &u32| {
                let (a, b) = (key(a), key(b));
                a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2))
            };
            order.select_nth_unstable_by(k + own - 1, cmp);
            order.truncate(k + own);
            order.sort_unstable_by(cmp);
            let nearest: Vec<u32> = order[own..].to_vec();
            radius.push(ratio_distance(
                metric,
                dist[*nearest.last().expect("k > 0") as usize],
            ));
            truth.push(nearest);
        }
        let exact_seconds_per_query = start.elapsed().as_secs_f64() / nq as f64;
        Ok(Experiment {
            base,
            dim,
            queries,
            self_index,
            k,
            metric,
            truth,
            radius,
            exact_seconds_per_query,
        })
    }

    /// Number of queries.
    pub fn query_count(&self) -> usize {
        self.truth.len()
    }

    /// Number of base vectors.
    pub fn base_count(&self) -> usize {
        self.base.len() / self.dim
    }

    /// Mean time of one exact search (a full scan), in seconds.
    pub fn exact_seconds_per_query(&self) -> f64 {
        self.exact_seconds_per_query
    }

    /// The exact `k` nearest base indices of query `i`, nearest first.
    #[cfg(test)]
    pub fn truth(&self, i: usize) -> &[u32] {
        &self.truth[i]
    }

    /// Empties `engine`, stores the base set in it (payload: the base index)
    /// and measures it on every query. See the module documentation.
    ///
    /// Timing: the store pass runs at least `reps` times and for at least
    /// 1 s in all (emptying the engine before each), and the median is kept;
    /// the queries are warmed up with one pass over the first 50, then timed
    /// over `reps` passes, each repeating the query set until it lasts at
    /// least 0.2 s, and the median time per query set is kept. Quality
    /// figures come from the last pass.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `engine` has another dimension than
    /// the base set; otherwise the engine's and its storage's errors as it is
    /// emptied, filled and queried ([`Error::Storage`] for Redis).
    pub fn run<S: Storage<u32>>(
        &self,
        label: &str,
        engine: &mut Engine<u32, S>,
        mode: StoreMode,
        reps: usize,
    ) -> Result<ExperimentResult> {
        if engine.dim() != self.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                got: engine.dim(),
            });
        }
        let reps = reps.max(1);
        let dim = self.dim;
        let n = self.base_count();
        // Short passes are at the mercy of one scheduler hiccup on a busy
        // machine, so: store passes until at least `reps` and 1 s in all;
        // each query pass repeats the query set until it lasts 0.2 s.
        let mut store_times = Vec::with_capacity(reps);
        let mut total = 0.0;
        let cpu0 = process_cpu_seconds();
        while store_times.len() < reps || (total < 1.0 && store_times.len() < 100) {
            engine.clean_all_buckets()?;
            let start = Instant::now();
            match mode {
                StoreMode::Single => {
                    for (i, v) in self.base.chunks_exact(dim).enumerate() {
                        engine.store(v, i as u32)?;
                    }
                }
                StoreMode::Batch(size) => {
                    let size = size.max(1);
                    let ids: Vec<u32> = (0..n as u32).collect();
                    for (rows, ids) in self.base.chunks(size * dim).zip(ids.chunks(size)) {
                        engine.store_batch(rows, ids)?;
                    }
                }
            }
            let t = start.elapsed().as_secs_f64();
            store_times.push(t);
            total += t;
        }
        let store_seconds = median(&mut store_times);
        let store_cpu_per_vector = cpu_since(cpu0).map(|c| c / (store_times.len() * n) as f64);

        let nq = self.query_count();
        // The first pass right after storing, timed on its own: it runs on
        // cold caches and pays for whatever the storage prepares on a first
        // query (the in-memory storage's screening codes of a large arena).
        let start = Instant::now();
        for q in self.queries.chunks_exact(dim) {
            engine.neighbours(q)?;
        }
        let first_pass_seconds = start.elapsed().as_secs_f64();
        let mut results = Vec::with_capacity(nq);
        let mut query_times = Vec::with_capacity(reps);
        let cpu0 = process_cpu_seconds();
        let mut queries_run = 0usize;
        for _ in 0..reps {
            let start = Instant::now();
            let mut done = 0usize;
            loop {
                results.clear();
                for q in self.queries.chunks_exact(dim) {
                    results.push(engine.neighbours(q)?);
                }
                done += nq;
                if start.elapsed().as_secs_f64() >= 0.2 {
                    break;
                }
            }
            query_times.push(start.elapsed().as_secs_f64() * nq as f64 / done as f64);
            queries_run += done;
        }
        let query_seconds = median(&mut query_times);
        let query_cpu_per_query = cpu_since(cpu0).map(|c| c / queries_run as f64);

        let exact = MetricDistance::new(self.metric)?;
        let (mut recall, mut precision, mut ratio, mut size, mut cands) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (qi, found) in results.iter().enumerate() {
            let q = &self.queries[qi * dim..(qi + 1) * dim];
            let me = self.self_index.as_ref().map(|s| s[qi]);
            let ids: Vec<u32> = found
                .iter()
                .map(|r| r.data)
                .filter(|&i| Some(i) != me)
                .collect();
            let truth = &self.truth[qi];
            let hits = ids.iter().filter(|i| truth.contains(i)).count() as f64;
            if !ids.is_empty() {
                recall += hits / self.k as f64;
                precision += hits / ids.len() as f64;
            }
            let r = self.radius[qi];
            let mut dr = 0.0f64;
            for res in found.iter().filter(|x| Some(x.data) != me) {
                let d = ratio_distance(self.metric, exact.distance(q, &res.vector));
                if d > r && r > 0.0 {
                    dr += ((d - r) / r) as f64;
                }
            }
            if !ids.is_empty() {
                ratio += dr / ids.len() as f64;
            }
            size += found.len() as f64;
            cands += engine.candidate_count(q)? as f64;
        }
        let m = nq as f64;
        let per_query = query_seconds / m;
        Ok(ExperimentResult {
            config: label.to_string(),
            recall: recall / m,
            precision: precision / m,
            distance_ratio: ratio / m,
            result_size: size / m,
            candidates: cands / m,
            search_time_ratio: per_query / self.exact_seconds_per_query,
            store_seconds,
            store_per_second: n as f64 / store_seconds,
            store_cpu_per_second: store_cpu_per_vector.map(|c| 1.0 / c),
            query_cpu_per_second: query_cpu_per_query.map(|c| 1.0 / c),
            query_seconds,
            queries_per_second: m / query_seconds,
            first_pass_seconds,
            first_pass_queries_per_second: m / first_pass_seconds,
            exact_seconds_per_query: self.exact_seconds_per_query,
            n_base: n,
            n_queries: nq,
        })
    }
}

/// This process's CPU time (user + system) in seconds, from
/// `/proc/self/stat` (clock ticks, 1/100 s on Linux); `None` elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesized command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn cpu_since(start: Option<f64>) -> Option<f64> {
    let d = process_cpu_seconds()? - start?;
    // Below a few ticks the figure is mostly rounding.
    (d >= 0.05).then_some(d)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

/// The distance the ratio is taken on: Euclidean rather than squared for L2.
fn ratio_distance(metric: Metric, d: f32) -> f32 {
    match metric {
        Metric::L2 => d.max(0.0).sqrt(),
        _ => d,
    }
}

impl ExperimentResult {
    /// The CSV header matching [`ExperimentResult::csv_row`].
    pub const CSV_HEADER: &'static str = "config,recall,precision,distance_ratio,result_size,candidates,search_time_ratio,store_per_second,queries_per_second,store_seconds,query_seconds,exact_seconds_per_query,n_base,n_queries,first_pass_queries_per_second";

    /// One CSV line (the label quoted).
    pub fn csv_row(&self) -> String {
        format!(
            "\"{}\",{:.6},{:.6},{:.6},{:.3},{:.1},{:.6},{:.1},{:.1},{:.6},{:.6},{:.9},{},{},{:.1}",
            self.config.replace('"', "\"\""),
            self.recall,
            self.precision,
            self.distance_ratio,
            self.result_size,
            self.candidates,
            self.search_time_ratio,
            self.store_per_second,
            self.queries_per_second,
            self.store_seconds,
            self.query_seconds,
            self.exact_seconds_per_query,
            self.n_base,
            self.n_queries,
            self.first_pass_queries_per_second
        )
    }

    /// A plain-text table of `results`, one line per configuration.
    pub fn table(results: &[ExperimentResult]) -> String {
        let w = results
            .iter()
            .map(|r| r.config.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut s = format!(
            "{:<w$}  {:>7}  {:>9}  {:>10}  {:>7}  {:>9}  {:>11}  {:>11}  {:>10}\n",
            "config",
            "recall",
            "precision",
            "dist_ratio",
            "results",
            "cands",
            "time/exact",
            "store/s",
            "query/s"
        );
        for r in results {
            s += &format!(
                "{:<w$}  {:>7.4}  {:>9.4}  {:>10.4}  {:>7.2}  {:>9.1}  {:>11.5}  {:>11.0}  {:>10.0}\n",
                r.config,
                r.recall,
                r.precision,
                r.distance_ratio,
                r.result_size,
                r.candidates,
                r.search_time_ratio,
                r.store_per_second,
                r.queries_per_second
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swann::index::lsh::{Filter, LshHash};

    /// Deterministic test data (SplitMix64 to uniform in [-1, 1)).
    fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n * dim)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn experiment_measures_what_it_says() {
        let (n, dim, k) = (400, 8, 5);
        // Positive data, so a one-bit hash with a positive direction puts every
        // vector in one bucket: the engine then is an exact search.
        let xs: Vec<f32> = data(n, dim, 41).iter().map(|x| x + 2.0).collect();
        let exact_engine = |nearest: usize| {
            Engine::builder(dim)
                .hash(LshHash::binary_from_matrix("one", dim, vec![1.0; dim]).unwrap())
                .filters([Filter::Unique, Filter::Nearest(nearest)])
                .build::<u32>()
                .unwrap()
        };
        // Queries from the base set: the query itself is left out, so k + 1 results
        // hold exactly the k true neighbours.
        let exp = Experiment::new(
            xs.clone(),
            dim,
            QuerySet::FromBase { count: 40 },
            k,
            Metric::L2,
        )
        .unwrap();
        assert_eq!(exp.query_count(), 40);
        assert!(!exp.truth(0).contains(&0));
        let r = exp
            .run("exact", &mut exact_engine(k + 1), StoreMode::Single, 1)
            .unwrap();
        assert_eq!((r.recall, r.precision, r.distance_ratio), (1.0, 1.0, 0.0));
        assert_eq!((r.result_size, r.candidates), ((k + 1) as f64, n as f64));
        // With k results one slot goes to the query itself: recall (k - 1) / k.
        let r = exp
            .run("k", &mut exact_engine(k), StoreMode::Batch(64), 1)
            .unwrap();
        assert!((r.recall - (k - 1) as f64 / k as f64).abs() < 1e-12);
        assert_eq!(r.precision, 1.0);

        // External queries, and an engine that returns far vectors: a positive
        // distance ratio and recall below 1.
        let queries: Vec<f32> = data(30, dim, 42).iter().map(|x| x + 2.0).collect();
        let exp =
            Experiment::new(xs.clone(), dim, QuerySet::External(queries), k, Metric::L2).unwrap();
        let r = exp
            .run("exact", &mut exact_engine(k), StoreMode::Single, 1)
            .unwrap();
        assert_eq!((r.recall, r.distance_ratio), (1.0, 0.0));
        let mut farthest = Engine::builder(dim)
            .hash(LshHash::binary_from_matrix("one", dim, vec![1.0; dim]).unwrap())
            .metric(Metric::Dot) // ranks by large dot product: not the L2 nearest
            .filters([Filter::Nearest(k)])
            .build::<u32>()
            .unwrap();
        let r = exp.run("dot", &mut farthest, StoreMode::Single, 1).unwrap();
        assert!(r.recall < 0.5 && r.distance_ratio > 0.0, "{r:?}");
        let lsh = &mut Engine::builder(dim)
            .hash(LshHash::random_binary("r", dim, 4, 1).unwrap())
            .build::<u32>()
            .unwrap();
        let r = exp.run("rbp4", lsh, StoreMode::Single, 1).unwrap();
        assert!(r.recall > 0.0 && r.candidates < n as f64, "{r:?}");
        let table = ExperimentResult::table(std::slice::from_ref(&r));
        assert!(table.contains("rbp4") && table.contains("recall"));
        assert_eq!(
            r.csv_row().split(',').count(),
            ExperimentResult::CSV_HEADER.split(',').count()
        );

        assert!(Experiment::new(
            xs.clone(),
            dim,
            QuerySet::FromBase { count: 0 },
            k,
            Metric::L2
        )
        .is_err());
        assert!(Experiment::new(
            xs[..3 * dim].to_vec(),
            dim,
            QuerySet::FromBase { count: 1 },
            k,
            Metric::L2
        )
        .is_err());
        assert!(Experiment::new(
            xs.clone(),
            dim,
            QuerySet::External(vec![1.0; 3]),
            k,
            Metric::L2
        )
        .is_err());
    }
}
