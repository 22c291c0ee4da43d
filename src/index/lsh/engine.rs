//! The engine: its configuration and builder, storing vectors in every
//! hash's bucket, and answering queries through the storage, the distance
//! and the filter chain.

use super::*;

/// What an engine can store next to a vector: anything cloneable that can be
/// compared and hashed (for [`Filter::Unique`] and [`Engine::delete`]). The
/// Redis storage also needs it to be `serde`-serializable.
pub trait Payload: Clone + Eq + Hash + Send + Sync + 'static {}
impl<T: Clone + Eq + Hash + Send + Sync + 'static> Payload for T {}

/// Buffers a query reuses: candidate locations, the filtered order,
/// distances, and the unique filter's table. One per thread, so concurrent
/// queries on a shared engine do not contend.
#[derive(Default)]
struct QueryScratch {
    /// The query, copied to a cache-line boundary.
    query: Vec<project::Line>,
    loc: Vec<(u32, u32)>,
    rows: Vec<u32>,
    order: Vec<u32>,
    dist: Vec<f32>,
    table: Vec<u32>,
    /// The nearest so far as (distance key, position), for a fused `Nearest`.
    top: Vec<(i32, u32)>,
}

thread_local! {
    static QUERY_SCRATCH: std::cell::RefCell<QueryScratch> =
        std::cell::RefCell::new(QueryScratch::default());
}

/// One result of [`Engine::neighbours`]: NearPy's `(vector, data, distance)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Neighbour<D> {
    /// The stored vector.
    pub vector: Vec<f32>,
    /// Its payload.
    pub data: D,
    /// Its distance to the query, or `None` when the engine has no distance.
    pub distance: Option<f32>,
}

/// Which distance an engine ranks by, as recorded in an [`EngineConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DistanceKind {
    /// One of the crate's metrics.
    Metric(Metric),
    /// A user type implementing [`Distance`] (not serializable: supply it
    /// again with [`EngineBuilder::distance`] when rebuilding).
    Custom,
    /// No distance: results come unranked, with `distance: None`.
    None,
}

/// Everything needed to rebuild an engine over the same storage: the
/// dimension, every hash with its projections (and tree counts), the
/// distance and the filter chain. Serializable with any `serde` format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Vector dimension.
    pub dim: usize,
    /// The hashes, in order.
    pub hashes: Vec<LshHash>,
    /// The distance.
    pub distance: DistanceKind,
    /// The filter chain, in order.
    pub filters: Vec<Filter>,
}

enum DistanceChoice {
    Metric(Metric),
    Custom(Box<dyn Distance>),
    None,
}

/// Builds an [`Engine`]; see [`Engine::builder`].
pub struct EngineBuilder {
    dim: usize,
    hashes: Vec<LshHash>,
    distance: DistanceChoice,
    filters: Vec<Filter>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("dim", &self.dim)
            .field("hashes", &self.hashes.len())
            .field("filters", &self.filters)
            .finish()
    }
}

impl EngineBuilder {
    /// Adds a hash. Hash names must differ (they namespace the buckets).
    pub fn hash(mut self, hash: LshHash) -> Self {
        self.hashes.push(hash);
        self
    }

    /// Adds several hashes.
    pub fn hashes(mut self, hashes: impl IntoIterator<Item = LshHash>) -> Self {
        self.hashes.extend(hashes);
        self
    }

    /// Ranks candidates by one of the crate's metrics (default: [`Metric::L2`]).
    pub fn metric(mut self, metric: Metric) -> Self {
        self.distance = DistanceChoice::Metric(metric);
        self
    }

    /// Ranks candidates by a user-supplied distance.
    pub fn distance(mut self, distance: impl Distance + 'static) -> Self {
        self.distance = DistanceChoice::Custom(Box::new(distance));
        self
    }

    /// No distance: `neighbours` returns candidates unranked. The filter
    /// chain may then only hold [`Filter::Unique`].
    pub fn no_distance(mut self) -> Self {
        self.distance = DistanceChoice::None;
        self
    }

    /// Replaces the filter chain (default: `[Unique, Nearest(10)]`, NearPy's
    /// default fetch and vector filters). An empty chain returns every
    /// candidate, duplicates included.
    pub fn filters(mut self, filters: impl IntoIterator<Item = Filter>) -> Self {
        self.filters = filters.into_iter().collect();
        self
    }

    /// Builds an engine on a fresh [`MemoryStorage`].
    ///
    /// # Errors
    /// As [`build_with_storage`](Self::build_with_storage).
    pub fn build<D: Payload>(self) -> Result<Engine<D>> {
        self.build_with_storage(MemoryStorage::new())
    }

    /// Builds an engine on `storage`, which may already hold buckets made by
    /// an engine with the same configuration (see [`Engine::config`]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when the dimension is 0, a hash has another
    /// dimension, two hashes share a name, a hash is malformed (a bad name,
    /// projections or bin width, as a hand-edited [`EngineConfig`] may hold),
    /// or a filter needs a distance the engine does not have (or has a NaN
    /// threshold); [`Error::UnsupportedMetric`] for [`Metric::Hamming`].
    pub fn build_with_storage<D: Payload, S: Storage<D>>(self, storage: S) -> Result<Engine<D, S>> {
        let dim = self.dim;
        if dim == 0 {
            return Err(Error::InvalidParameter(
                "engine dimension must be > 0".into(),
            ));
        }
        let mut hashes = self.hashes;
        if hashes.is_empty() {
            hashes.push(LshHash::random_binary("default", dim, 10, 0)?);
        }
        for (i, h) in hashes.iter().enumerate() {
            h.validate()?;
            if h.dim() != dim {
                return Err(Error::InvalidParameter(format!(
                    "hash {:?} has dimension {}, the engine {dim}",
                    h.name(),
                    h.dim()
                )));
            }
            if hashes[..i].iter().any(|o| o.name() == h.name()) {
                return Err(Error::InvalidParameter(format!(
                    "two hashes are named {:?}; names must differ",
                    h.name()
                )));
            }
        }
        let mut metric_distance = None;
        let (distance, kind): (Option<Box<dyn Distance>>, _) = match self.distance {
            DistanceChoice::Metric(m) => {
                let md = MetricDistance::new(m)?;
                metric_distance = Some(md);
                (Some(Box::new(md)), DistanceKind::Metric(m))
            }
            DistanceChoice::Custom(d) => (Some(d), DistanceKind::Custom),
            DistanceChoice::None => (None, DistanceKind::None),
        };
        for f in &self.filters {
            if f.needs_distance() && distance.is_none() {
                return Err(Error::InvalidParameter(format!(
                    "filter {f:?} needs a distance, and the engine has none"
                )));
            }
            if let Filter::DistanceThreshold(t) = f {
                if t.is_nan() {
                    return Err(Error::InvalidParameter("distance threshold is NaN".into()));
                }
            }
        }
        let plan = ProjectionPlan::new(dim, hashes.iter().map(LshHash::projection_parts));
        Ok(Engine {
            dim,
            plan,
            counts_stores: hashes.iter().any(LshHash::counts_stores),
            key_buffer: Vec::new(),
            hashes,
            storage,
            distance,
            metric_distance,
            distance_kind: kind,
            filters: self.filters,
            _payload: PhantomData,
        })
    }
}

/// NearPy's engine: hashes, a storage, a distance and a filter chain.
///
/// ```
/// use swann::index::lsh::{Engine, Filter, LshHash};
/// use swann::Metric;
///
/// let dim = 8;
/// let mut engine = Engine::builder(dim)
///     .hash(LshHash::random_binary("rbp", dim, 4, 1)?)
///     .metric(Metric::L2)
///     .filters([Filter::Unique, Filter::Nearest(3)])
///     .build::<u64>()?;
///
/// for i in 0..100u64 {
///     let v: Vec<f32> = (0..dim).map(|j| ((i * 7 + j as u64) % 13) as f32).collect();
///     engine.store(&v, i)?;
/// }
/// let query: Vec<f32> = (0..dim).map(|j| ((5 * 7 + j as u64) % 13) as f32).collect();
/// let found = engine.neighbours(&query)?;
/// // The stored copy of the query is in the query's bucket, at distance 0.
/// assert_eq!(found[0].distance, Some(0.0));
/// assert!(found.len() <= 3);
/// assert!(engine.candidate_count(&query)? >= 1);
///
/// // Bad input is a typed error, not a panic.
/// assert!(engine.store(&[1.0; 3], 0).is_err());
/// assert!(engine.neighbours(&[f32::NAN; 8]).is_err());
/// # Ok::<(), swann::Error>(())
/// ```
pub struct Engine<D: Payload, S: Storage<D> = MemoryStorage<D>> {
    dim: usize,
    /// Every hash's directions stacked, so one pass projects a vector for
    /// all hashes (hash `i` owns the next `projection_count()` projections).
    plan: ProjectionPlan,
    hashes: Vec<LshHash>,
    /// Whether a hash counts what is stored (the binary projection tree).
    counts_stores: bool,
    /// Reused by `store` for the vector's keys.
    key_buffer: Vec<BucketKey>,
    storage: S,
    distance: Option<Box<dyn Distance>>,
    /// The same distance when it is one of the crate's metrics, called
    /// directly (no virtual call) by the in-memory ranking loop.
    metric_distance: Option<MetricDistance>,
    distance_kind: DistanceKind,
    filters: Vec<Filter>,
    _payload: PhantomData<fn() -> D>,
}

impl<D: Payload, S: Storage<D>> std::fmt::Debug for Engine<D, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dim", &self.dim)
            .field(
                "hashes",
                &self.hashes.iter().map(|h| h.name()).collect::<Vec<_>>(),
            )
            .field("distance", &self.distance_kind)
            .field("filters", &self.filters)
            .finish()
    }
}

impl Engine<u64> {
    /// Starts building an engine for `dim`-dimensional vectors. Without a
    /// hash, the engine gets NearPy's default: random binary projections
    /// with 10 bits (named `default`, seed 0).
    pub fn builder(dim: usize) -> EngineBuilder {
        EngineBuilder {
            dim,
            hashes: Vec::new(),
            distance: DistanceChoice::Metric(Metric::L2),
            filters: vec![Filter::Unique, Filter::Nearest(10)],
        }
    }
}

impl<D: Payload, S: Storage<D>> Engine<D, S> {
    /// A builder preloaded with `config` (hashes with their projections and
    /// tree counts, distance, filters). A [`DistanceKind::Custom`] distance
    /// must be supplied again with [`EngineBuilder::distance`].
    pub fn builder_from_config(config: EngineConfig) -> EngineBuilder {
        let mut b = Engine::builder(config.dim)
            .hashes(config.hashes)
            .filters(config.filters);
        b.distance = match config.distance {
            DistanceKind::Metric(m) => DistanceChoice::Metric(m),
            DistanceKind::Custom | DistanceKind::None => DistanceChoice::None,
        };
        b
    }

    /// The configuration to rebuild this engine with (hashes included).
    pub fn config(&self) -> EngineConfig {
        EngineConfig {
            dim: self.dim,
            hashes: self.hashes.clone(),
            distance: self.distance_kind,
            filters: self.filters.clone(),
        }
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The hashes, in order.
    pub fn hashes(&self) -> &[LshHash] {
        &self.hashes
    }

    /// The filter chain.
    pub fn filters(&self) -> &[Filter] {
        &self.filters
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Hashes `vector` with every hash and appends `(vector, data)` to each
    /// bucket it lands in. The vector is stored as given (NearPy stores it
    /// normalized to unit length; normalize first to get that).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] or [`Error::NonFinite`] for a bad vector
    /// (nothing is stored); the storage's error if it fails.
    pub fn store(&mut self, vector: &[f32], data: D) -> Result<()> {
        check_vector(vector, self.dim)?;
        // The keys go to a buffer the engine keeps, and the bucket
        // references to the stack for up to `INLINE_HASHES` hashes: a store
        // allocates nothing itself.
        const INLINE_HASHES: usize = 8;
        let nh = self.hashes.len();
        let mut keys = std::mem::take(&mut self.key_buffer);
        keys.resize(nh, BucketKey::default());
        self.keys_for(vector, &mut keys);
        let mut inline_refs = [BucketRef {
            hash: "",
            key: &keys[0],
        }; INLINE_HASHES];
        let refs_vec: Vec<BucketRef<'_>>;
        let refs: &[BucketRef<'_>] = if nh <= INLINE_HASHES {
            for ((r, h), key) in inline_refs.iter_mut().zip(&self.hashes).zip(&keys) {
                *r = BucketRef {
                    hash: h.name(),
                    key,
                };
            }
            &inline_refs[..nh]
        } else {
            refs_vec = self
                .hashes
                .iter()
                .zip(&keys)
                .map(|(h, key)| BucketRef {
                    hash: h.name(),
                    key,
                })
                .collect();
            &refs_vec
        };
        let stored = self.storage.store(StoreEntry {
            buckets: refs,
            vector,
            data: &data,
        });
        if stored.is_ok() && self.counts_stores {
            for (h, key) in self.hashes.iter_mut().zip(&keys) {
                h.note_stored(key);
            }
        }
        self.key_buffer = keys;
        stored
    }

    /// The key of `vector` under every hash, from one projection pass.
    fn keys_for(&self, vector: &[f32], keys: &mut [BucketKey]) {
        self.plan.with_projection(vector, |p| {
            let mut start = 0;
            for (h, key) in self.hashes.iter().zip(keys.iter_mut()) {
                let n = h.projection_count();
                h.key_from_projections_into(&p[start..start + n], key);
                start += n;
            }
        });
    }

    /// Stores many vectors (`vectors` holds them row after row) with their
    /// payloads, in one storage batch (pipelined round trips for Redis).
    ///
    /// # Errors
    /// As [`Engine::store`], checked for every vector before anything is
    /// stored; [`Error::InvalidParameter`] when the number of payloads is
    /// not the number of vectors.
    pub fn store_batch(&mut self, vectors: &[f32], data: &[D]) -> Result<()> {
        let dim = self.dim;
        if vectors.len() != data.len() * dim {
            return Err(Error::InvalidParameter(format!(
                "{} values for {} payloads of dimension {dim}",
                vectors.len(),
                data.len()
            )));
        }
        for row in vectors.chunks_exact(dim) {
            check_vector(row, dim)?;
        }
        let nh = self.hashes.len();
        let mut keys = vec![BucketKey::default(); data.len() * nh];
        for (row, k) in vectors.chunks_exact(dim).zip(keys.chunks_exact_mut(nh)) {
            self.keys_for(row, k);
        }
        let refs: Vec<BucketRef<'_>> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| BucketRef {
                hash: self.hashes[i % nh].name(),
                key,
            })
            .collect();
        let entries: Vec<StoreEntry<'_, D>> = refs
            .chunks_exact(nh)
            .zip(vectors.chunks_exact(dim))
            .zip(data)
            .map(|((buckets, vector), data)| StoreEntry {
                buckets,
                vector,
                data,
            })
            .collect();
        self.storage.store_batch(&entries)?;
        for (i, key) in keys.iter().enumerate() {
            self.hashes[i % nh].note_stored(key);
        }
        Ok(())
    }

    fn query_keys(&self, query: &[f32]) -> Result<Vec<(usize, BucketKey)>> {
        check_vector(query, self.dim)?;
        let mut keys = Vec::with_capacity(self.hashes.len());
        let mut scratch = Vec::new();
        self.plan.with_projection(query, |p| {
            let mut start = 0;
            for (i, h) in self.hashes.iter().enumerate() {
                let n = h.projection_count();
                scratch.clear();
                h.query_keys_from_projections(&p[start..start + n], &mut scratch);
                keys.extend(scratch.drain(..).map(|k| (i, k)));
                start += n;
            }
        });
        Ok(keys)
    }

    /// The storage's names for `keys`, (hash index, key) pairs.
    fn bucket_refs<'k>(&'k self, keys: &'k [(usize, BucketKey)]) -> Vec<BucketRef<'k>> {
        keys.iter()
            .map(|(h, key)| BucketRef {
                hash: self.hashes[*h].name(),
                key,
            })
            .collect()
    }

    /// The number of entries in the buckets `query` reads, over all hashes,
    /// before any filter (a vector found by two hashes counts twice), as
    /// NearPy's `candidate_count`. Useful to tune hashes: a high count makes
    /// queries slow.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] or [`Error::NonFinite`] for a bad query;
    /// the storage's error if it fails ([`Error::Storage`] for Redis).
    pub fn candidate_count(&self, query: &[f32]) -> Result<usize> {
        let keys = self.query_keys(query)?;
        self.storage.count(&self.bucket_refs(&keys))
    }

    /// The candidates in `query`'s buckets, with their distances, after the
    /// filter chain (NearPy's `neighbours`).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] or [`Error::NonFinite`] for a bad query;
    /// the storage's error if it fails ([`Error::Storage`] for Redis, or for
    /// buckets whose vectors and payloads disagree);
    /// [`Error::InvalidParameter`] when the query's buckets hold `u32::MAX - 1`
    /// entries or more.
    pub fn neighbours(&self, query: &[f32]) -> Result<Vec<Neighbour<D>>> {
        let keys = self.query_keys(query)?;
        let buckets = self
            .storage
            .get_buckets(&self.bucket_refs(&keys), self.dim)?;
        QUERY_SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.rank_aligned(query, &buckets, &mut scratch),
            // Re-entered (a custom distance that queries an engine): fresh buffers.
            Err(_) => self.rank_aligned(query, &buckets, &mut QueryScratch::default()),
        })
    }

    /// [`Engine::rank`] on a copy of `query` that starts on a cache line:
    /// every distance reads the whole query again, and a query that
    /// straddles lines (a row of a `Vec` the allocator placed 16 bytes
    /// into a line, say) costs two loads per register each time.
    fn rank_aligned(
        &self,
        query: &[f32],
        buckets: &[BucketContents<'_, D>],
        scratch: &mut QueryScratch,
    ) -> Result<Vec<Neighbour<D>>> {
        let mut lines = std::mem::take(&mut scratch.query);
        lines.clear();
        lines.resize(
            query.len().div_ceil(project::PAD),
            project::Line([0.0; project::PAD]),
        );
        let aligned = &mut bytemuck::cast_slice_mut::<_, f32>(&mut lines)[..query.len()];
        aligned.copy_from_slice(query);
        let ranked = self.rank(aligned, buckets, scratch);
        scratch.query = lines;
        ranked
    }

    /// The distance and filter part of [`Engine::neighbours`], on the
    /// contents of the query's buckets.
    fn rank(
        &self,
        query: &[f32],
        buckets: &[BucketContents<'_, D>],
        scratch: &mut QueryScratch,
    ) -> Result<Vec<Neighbour<D>>> {
        if let Some((vectors, data)) = shared_arena(buckets, self.dim)? {
            return self.rank_arena(query, buckets, vectors, data, scratch);
        }
        let dim = self.dim;
        let QueryScratch {
            loc,
            order,
            dist,
            table,
            ..
        } = scratch;
        // Candidate i is loc[i] = (bucket, row in that bucket's arrays);
        // candidates are numbered bucket after bucket, in fetch order.
        let total: usize = buckets.iter().map(BucketContents::len).sum();
        if total >= u32::MAX as usize {
            return Err(too_many_candidates(total));
        }
        loc.clear();
        for (bi, b) in buckets.iter().enumerate() {
            // Rows are bounds-checked while they are copied, not in a pass
            // of their own.
            b.validate_sizes(dim)?;
            let arena = b.data.len();
            let mut bad = false;
            loc.extend((0..b.len()).map(|e| {
                let row = b.row(e);
                bad |= row >= arena;
                (bi as u32, row as u32)
            }));
            if bad {
                return Err(b.inconsistent(dim));
            }
        }
        let loc = &*loc;
        let vector = |i: u32| {
            let (b, r) = loc[i as usize];
            let r = r as usize;
            &buckets[b as usize].vectors[r * dim..(r + 1) * dim]
        };
        let data = |i: u32| {
            let (b, r) = loc[i as usize];
            &buckets[b as usize].data[r as usize]
        };
        order.clear();
        order.extend(0..total as u32);
        // Filters before the first one that needs distances (NearPy's fetch
        // filters, e.g. Unique) run first, so duplicates cost no distance.
        let split = self.distance_split();
        for f in &self.filters[..split] {
            f.apply(order, |_| f32::NAN, data, table);
        }
        dist.clear();
        if let Some(d) = &self.distance {
            dist.resize(total, f32::NAN);
            if buckets.iter().all(|b| b.rows.is_none()) {
                // Packed rows: the kept candidates form runs of consecutive
                // rows of one bucket (a filter only drops some), and each
                // run is one batch kernel call over contiguous memory,
                // which the hardware prefetcher streams.
                let mut k = 0;
                while k < order.len() {
                    let first = order[k];
                    let (b, row) = loc[first as usize];
                    let mut len = 1;
                    while k + len < order.len()
                        && order[k + len] == first + len as u32
                        && loc[(first as usize) + len].0 == b
                    {
                        len += 1;
                    }
                    let row = row as usize;
                    let rows = &buckets[b as usize].vectors[row * dim..(row + len) * dim];
                    d.distance_batch(query, rows, &mut dist[first as usize..first as usize + len]);
                    k += len;
                }
            } else {
                scattered_distances(&**d, query, order, vector, dist);
            }
        }
        Ok(self.finish(order, split, dist, vector, data, table))
    }

    /// Where the filter chain splits: filters before the first one that
    /// needs distances run before any distance is computed.
    fn distance_split(&self) -> usize {
        self.filters
            .iter()
            .position(Filter::needs_distance)
            .unwrap_or(self.filters.len())
    }

    /// The end of a ranking: the filters from `filters[from]` on, then the
    /// results (vector, payload, distance) of the candidates kept in `order`.
    fn finish<'v>(
        &self,
        order: &mut Vec<u32>,
        from: usize,
        dist: &[f32],
        vector: impl Fn(u32) -> &'v [f32],
        data: impl Fn(u32) -> &'v D,
        table: &mut Vec<u32>,
    ) -> Vec<Neighbour<D>>
    where
        D: 'v,
    {
        for f in &self.filters[from..] {
            f.apply(order, |i| dist[i as usize], &data, table);
        }
        order
            .iter()
            .map(|&i| Neighbour {
                vector: vector(i).to_vec(),
                data: data(i).clone(),
                distance: self.distance.as_ref().map(|_| dist[i as usize]),
            })
            .collect()
    }

    /// [`Engine::rank`] for buckets that all index one arena (the in-memory
    /// storage): candidate `i` is arena row `rows[i]`, with no per-bucket
    /// indirection. When the filters before the first distance filter are
    /// only `Unique` (NearPy's default chain), deduplication, distances and
    /// a first `Nearest(n)` are one pass: each candidate's payload is
    /// requested [`PAYLOAD_AHEAD`] candidates early and its row
    /// [`ROW_AHEAD`] candidates early (into L2, see `kernels::prefetch`),
    /// so the payload misses of the unique test overlap the row misses of
    /// the distances instead of taking a pass of their own. With a crate
    /// metric the candidates that pass the unique test are scored
    /// [`GATHER`] at a time by the metric's gather kernel
    /// ([`rank_gathered`]). With the storage's byte codes
    /// ([`Storage::screen`]) and a crate metric, that pass reads codes
    /// instead of rows and bounds each distance; only candidates whose lower
    /// bound is not above the n-th smallest upper bound have their rows
    /// read, in a second pass (at 100,000 SIFT vectors under four hashes,
    /// about 15 of 4,400).
    fn rank_arena(
        &self,
        query: &[f32],
        buckets: &[BucketContents<'_, D>],
        vectors: &[f32],
        data: &[D],
        scratch: &mut QueryScratch,
    ) -> Result<Vec<Neighbour<D>>> {
        let dim = self.dim;
        let QueryScratch {
            rows,
            order,
            dist,
            table,
            top,
            ..
        } = scratch;
        rows.clear();
        for b in buckets {
            if let Some(r) = &b.rows {
                rows.extend_from_slice(r);
            }
        }
        let total = rows.len();
        if total >= u32::MAX as usize {
            return Err(too_many_candidates(total));
        }
        let highest = rows.iter().fold(0u32, |m, &r| m.max(r));
        if total > 0 && highest as usize >= data.len() {
            let bad = buckets
                .iter()
                .find(|b| b.rows.as_ref().is_some_and(|r| r.contains(&highest)))
                .expect("the highest row came from a bucket");
            return Err(bad.inconsistent(dim));
        }
        let rows = &*rows;
        let vector = |i: u32| {
            let r = rows[i as usize] as usize;
            &vectors[r * dim..(r + 1) * dim]
        };
        let datum = |i: u32| &data[rows[i as usize] as usize];
        let split = self.distance_split();
        let pre = &self.filters[..split];
        order.clear();
        dist.clear();
        // Non-zero once the loop below applies `filters[split]`,
        // `Nearest(top_n)`, itself.
        let mut top_n = 0;
        match &self.distance {
            Some(d) if pre.iter().all(|f| *f == Filter::Unique) => {
                // A first distance filter `Nearest(n)` for small n runs in
                // the same loop too: each distance is compared, as an
                // integer key, with the n-th best so far as it comes, where
                // the filter would take a pass over all of them with an
                // indirect comparison each.
                if let Some(&Filter::Nearest(n)) = self.filters.get(split) {
                    if (1..=filter::SCAN_TOP_MAX).contains(&n) {
                        top_n = n;
                    }
                }
                top.clear();
                dist.resize(total, f32::NAN);
                let mut seen = (!pre.is_empty()).then(|| UniqueSet::new(table, total));
                // With the storage's byte codes, candidates are screened
                // first (see `screen`): only the rows of those that can
                // still make the n nearest are read.
                let screen = match &self.metric_distance {
                    Some(m) if top_n > 0 && QueryBound::supports(m.metric()) => self
                        .storage
                        .screen()
                        .filter(|codes| codes.dim() == dim && codes.rows() > highest as usize)
                        .and_then(|codes| Some((m, QueryBound::new(m.metric(), query)?, codes))),
                    _ => None,
                };
                if let Some((m, qb, codes)) = screen {
                    rank_screened(
                        Screened {
                            query,
                            rows,
                            data,
                            vectors,
                            dim,
                            m,
                            qb: &qb,
                            codes,
                            top_n,
                        },
                        seen,
                        order,
                        dist,
                        top,
                    );
                } else if let Some(m) = &self.metric_distance {
                    rank_gathered(
                        Gathered {
                            query,
                            rows,
                            data,
                            vectors,
                            dim,
                            m,
                            top_n,
                        },
                        seen,
                        order,
                        dist,
                        top,
                    );
                } else {
                    (0..total.min(ROW_AHEAD) as u32).for_each(|i| prefetch_row(vector(i)));
                    for k in 0..total {
                        if k + ROW_AHEAD < total {
                            prefetch_row(vector((k + ROW_AHEAD) as u32));
                        }
                        let i = k as u32;
                        if !first_unique(&mut seen, rows, data, k, &datum) {
                            continue;
                        }
                        let dk = d.distance(query, vector(i));
                        dist[i as usize] = dk;
                        if top_n == 0 {
                            order.push(i);
                            continue;
                        }
                        keep_top(top, top_n, total_order_key(dk), i);
                    }
                }
                order.extend(top.iter().map(|&(_, i)| i));
            }
            _ => {
                order.extend(0..total as u32);
                for f in pre {
                    f.apply(order, |_| f32::NAN, datum, table);
                }
                if let Some(d) = &self.distance {
                    dist.resize(total, f32::NAN);
                    scattered_distances(&**d, query, order, vector, dist);
                }
            }
        }
        let from = if top_n > 0 { split + 1 } else { split };
        Ok(self.finish(order, from, dist, vector, datum, table))
    }

    /// Removes every entry whose payload is `data` from every bucket of
    /// every hash (NearPy's `delete_vector(data)`): scans all buckets.
    /// Returns the number of entries removed (one per hash per stored copy).
    ///
    /// # Errors
    /// The storage's error if it fails ([`Error::Storage`] for Redis); the
    /// hashes done before the failure keep their removals.
    pub fn delete(&mut self, data: &D) -> Result<usize> {
        self.delete_in(data, None)
    }

    /// Removes every entry whose payload is `data` from the buckets `vector`
    /// hashes to (NearPy's `delete_vector(data, v)`): only those buckets are
    /// read, so give the vector that was stored with `data`.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] or [`Error::NonFinite`] for a bad `vector`
    /// (nothing is removed); otherwise as [`delete`](Self::delete).
    pub fn delete_near(&mut self, data: &D, vector: &[f32]) -> Result<usize> {
        check_vector(vector, self.dim)?;
        self.delete_in(data, Some(vector))
    }

    fn delete_in(&mut self, data: &D, vector: Option<&[f32]>) -> Result<usize> {
        let mut total = 0;
        let all_keys = vector.map(|v| {
            let mut keys = vec![BucketKey::default(); self.hashes.len()];
            self.keys_for(v, &mut keys);
            keys
        });
        for (i, h) in self.hashes.iter_mut().enumerate() {
            let keys = all_keys.as_ref().map(|k| vec![k[i].clone()]);
            let removed = self
                .storage
                .delete(h.name(), keys.as_deref(), data, self.dim)?;
            for (key, n) in removed {
                h.forget(&key, n);
                total += n;
            }
        }
        Ok(total)
    }

    /// Empties every bucket of every hash of this engine's storage.
    ///
    /// # Errors
    /// The storage's error if it fails ([`Error::Storage`] for Redis).
    pub fn clean_all_buckets(&mut self) -> Result<()> {
        self.storage.clean_all_buckets()?;
        self.hashes.iter_mut().for_each(|h| h.forget_all());
        Ok(())
    }

    /// Empties every bucket of the hash named `hash_name`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when the engine has no hash named
    /// `hash_name`; the storage's error if it fails ([`Error::Storage`] for
    /// Redis).
    pub fn clean_buckets(&mut self, hash_name: &str) -> Result<()> {
        let h = self
            .hashes
            .iter_mut()
            .find(|h| h.name() == hash_name)
            .ok_or_else(|| {
                Error::InvalidParameter(format!("the engine has no hash named {hash_name:?}"))
            })?;
        self.storage.clean_buckets(hash_name)?;
        h.forget_all();
        Ok(())
    }
}
