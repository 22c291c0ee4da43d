//! Hierarchical navigable small-world graphs (Malkov & Yashunin,
//! arXiv:1603.09320), the index hnswlib and N2 implement.
//!
//! - [`Hnsw`]: `f32` vectors under squared L2, inner product (`1 - a.b`,
//!   hnswlib's `ip`; [`Metric::Dot`] is the same ranking, read back with
//!   [`Neighbor::dot_score`]) or cosine (vectors normalized on insert).
//! - [`BinaryHnsw`]: bit-packed binary vectors under Hamming distance.
//!
//! Both are [`HnswIndex`] over a [`Space`]; the graph layout is described in
//! the `graph` module's documentation.
//!
//! # Concurrency
//!
//! Searches take `&self` and run in parallel with each other and with
//! [`HnswIndex::try_insert`], which adds new labels through `&self` into the
//! reserved capacity (per-node locks guard link lists; the entry point has
//! its own lock). Operations that move or overwrite existing data (growth,
//! replacing a label's vector, reusing deleted slots) take `&mut self`, so
//! the borrow checker rules out running them beside a search.
//!
//! ```
//! use swann::index::hnsw::Hnsw;
//! use swann::Metric;
//!
//! let mut index = Hnsw::builder(3, Metric::L2).m(8).ef_construction(64).build()?;
//! index.insert(10, &[0.0, 0.0, 1.0])?;
//! index.insert(20, &[0.0, 1.0, 0.0])?;
//! index.insert(30, &[1.0, 0.0, 0.0])?;
//! let hits = index.search(&[0.1, 0.9, 0.0], 2, 16)?;
//! assert_eq!(hits[0].label, 20);
//! assert_eq!(hits.len(), 2);
//! # Ok::<(), swann::Error>(())
//! ```

mod blocks;
mod check;
mod filter;
mod graph;
mod insert;
mod links;
mod persist;
mod pool;
mod quant;
mod remove;

use self::remove::Removal;
mod space;
mod visited;

use std::sync::atomic::Ordering;

use rayon::prelude::*;

pub use check::{GraphProblem, GraphReport, LevelReport};
pub use filter::{Filter, FilterPlan, FilterStrategy, LabelSet};
#[cfg(feature = "sharded")]
pub(crate) use persist::live_labels;
pub use persist::{section, SaveOptions, StoredSpace};
pub use quant::Quantization;
pub use space::{BitSpace, F32Space, Space};

pub use self::graph::NeighborSelection;
use self::graph::{default_mult, Graph, Params, Scratch};
use crate::error::{check_k, check_rows, Error, Result};
use crate::index::Neighbor;
use crate::kernels::{self, KernelTable};
use crate::Metric;

impl Neighbor {
    /// The dot product `a.b` for an index under [`Metric::InnerProduct`] or
    /// [`Metric::Dot`] (whose distance is `1 - a.b`): larger is closer, as N2
    /// reports it.
    pub fn dot_score(&self) -> f32 {
        1.0 - self.distance
    }
}

/// An HNSW index over `f32` vectors.
pub type Hnsw = HnswIndex<F32Space>;
/// An HNSW index over bit-packed binary vectors under Hamming distance.
pub type BinaryHnsw = HnswIndex<BitSpace>;

/// Configuration of a new index; see [`Hnsw::builder`] and [`BinaryHnsw::builder`].
#[derive(Clone, Debug)]
pub struct HnswBuilder<S> {
    dim: usize,
    metric: Metric,
    m: usize,
    m0: Option<usize>,
    ef_construction: usize,
    capacity: usize,
    seed: u64,
    level_mult: Option<f64>,
    selection: NeighborSelection,
    quantization: Quantization,
    table: Option<&'static KernelTable>,
    /// A user's space ([`HnswIndex::builder_with_space`]), else `make`
    /// creates the built-in one from `dim`, `metric` and the kernel table.
    space: Option<S>,
    make: fn(usize, Metric, &'static KernelTable) -> Result<S>,
}

/// The shape of a graph, from [`HnswIndex::stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnswStats {
    /// Nodes (deleted ones included).
    pub nodes: usize,
    /// Links on level 0, summed over nodes.
    pub level0_links: usize,
    /// Nodes on level 1 or above.
    pub upper_nodes: usize,
    /// Links on levels 1 and above, summed over nodes and levels.
    pub upper_links: usize,
    /// The top level (0 for an empty index).
    pub max_level: usize,
    /// Times a node level was left with no anchor by the insert, removal
    /// or repair that should have given it one (so it joined the list of
    /// levels to re-anchor), since the index was built or read. Rare: it
    /// takes every nearby earlier-joined node's list to be full of links
    /// that are themselves last anchors.
    pub stranded_levels: u64,
    /// Nodes moved to the latest join order to anchor such a level when
    /// re-anchoring it from an earlier-joined node failed again (the
    /// fallback of the `links` module), since the index was built or read.
    pub order_moves: u64,
    /// Weakly linked nodes of batch inserts that their own search at
    /// `ef_construction` missed, so the nearest nodes it found were linked
    /// to them (see [`HnswIndex::insert_batch`]), since the index was
    /// built or read.
    pub reinforced: u64,
    /// Node levels still waiting to be re-anchored; 0 after any `&mut`
    /// operation (insert, batch insert, removal, compaction, reserve).
    pub pending_repairs: usize,
}

/// Most links a node may keep on level 0 ([`HnswBuilder::m0`]).
pub const MAX_M0: usize = 1024;

impl<S> HnswBuilder<S> {
    fn new(
        dim: usize,
        metric: Metric,
        make: fn(usize, Metric, &'static KernelTable) -> Result<S>,
    ) -> Self {
        HnswBuilder {
            dim,
            metric,
            m: 16,
            m0: None,
            ef_construction: 200,
            capacity: 0,
            seed: 100,
            level_mult: None,
            selection: NeighborSelection::Heuristic,
            quantization: Quantization::None,
            table: None,
            space: None,
            make,
        }
    }

    /// Links per node on the upper levels (`2*M` on level 0). Default 16; 2..=127.
    pub fn m(mut self, m: usize) -> Self {
        self.m = m;
        self
    }

    /// Most links per node on level 0 (N2's `max_m0`). Default `2 * M`, as
    /// the paper and hnswlib; 2..=[`MAX_M0`]. A new node links to `M`
    /// neighbours on every level; links from later nodes fill level 0 up to
    /// this maximum.
    pub fn m0(mut self, m0: usize) -> Self {
        self.m0 = Some(m0);
        self
    }

    /// Level multiplier (N2's `mult`): a node's top level is
    /// `floor(-ln(u) * mult)` for `u` uniform in (0, 1]. Default `1 / ln(M)`
    /// (the paper's choice); larger values give taller graphs. Finite and
    /// positive.
    pub fn level_mult(mut self, mult: f64) -> Self {
        self.level_mult = Some(mult);
        self
    }

    /// How links are chosen among candidates (N2's `neighbor_selecting`).
    /// Default [`NeighborSelection::Heuristic`].
    pub fn selection(mut self, selection: NeighborSelection) -> Self {
        self.selection = selection;
        self
    }

    /// Size of the candidate list while inserting. Default 200.
    pub fn ef_construction(mut self, ef: usize) -> Self {
        self.ef_construction = ef;
        self
    }

    /// Slots to allocate up front (the index grows past it on demand).
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// Seed of the level generator. With one thread and a fixed seed the
    /// build is deterministic. Default 100 (hnswlib's).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Searches on compact codes of the vectors, with exact distances in
    /// the results (default [`Quantization::None`]; the schemes, their
    /// speed and their memory: [`Quantization`]). Saved in the file. The graph is built on the exact vectors either way; the codes
    /// are trained on the index's own rows once it holds a few hundred (see
    /// [`HnswIndex::train_quantizer`]), and until then searches are exact.
    /// Only the built-in `f32` spaces ([`Hnsw`]) can be quantized.
    ///
    /// ```
    /// use swann::index::hnsw::{Hnsw, Quantization};
    /// use swann::Metric;
    ///
    /// let mut index = Hnsw::builder(4, Metric::L2)
    ///     .quantization(Quantization::Sq8)
    ///     .build()?;
    /// let rows: Vec<f32> = (0..1000)
    ///     .flat_map(|i| [i as f32, (i % 7) as f32, (i % 13) as f32, (i % 17) as f32])
    ///     .collect();
    /// let labels: Vec<u64> = (0..1000).collect();
    /// index.insert_batch(&labels, &rows)?;
    /// assert!(index.is_quantized());
    /// let hit = index.search(&rows[40..44], 1, 32)?;
    /// assert_eq!(hit[0].label, 10);
    /// assert_eq!(hit[0].distance, 0.0); // reranked: exact distances
    /// # Ok::<(), swann::Error>(())
    /// ```
    pub fn quantization(mut self, q: Quantization) -> Self {
        self.quantization = q;
        self
    }

    /// Kernels to use instead of [`kernels::active`] (e.g. to compare ISAs).
    /// A user's space ([`HnswIndex::builder_with_space`]) brings its own
    /// distance, so this does not apply to it.
    pub fn kernels(mut self, table: &'static KernelTable) -> Self {
        self.table = Some(table);
        self
    }

    fn params(&self) -> Result<Params> {
        if !(2..=127).contains(&self.m) {
            return Err(Error::InvalidParameter(format!(
                "M must be in 2..=127, got {}",
                self.m
            )));
        }
        if self.ef_construction == 0 {
            return Err(Error::InvalidParameter(
                "ef_construction must be at least 1".into(),
            ));
        }
        if self.capacity > u32::MAX as usize - 1 {
            return Err(Error::InvalidParameter(format!(
                "capacity {} exceeds the u32 slot range",
                self.capacity
            )));
        }
        let m0 = self.m0.unwrap_or(2 * self.m);
        if !(2..=MAX_M0).contains(&m0) {
            return Err(Error::InvalidParameter(format!(
                "M0 must be in 2..={MAX_M0}, got {m0}"
            )));
        }
        let mult = self.level_mult.unwrap_or_else(|| default_mult(self.m));
        if !(mult.is_finite() && mult > 0.0) {
            return Err(Error::InvalidParameter(format!(
                "the level multiplier must be finite and positive, got {mult}"
            )));
        }
        Ok(Params {
            m: self.m,
            m0,
            ef_construction: self.ef_construction,
            seed: self.seed,
            mult,
            selection: self.selection,
            quantization: self.quantization,
        })
    }
}

impl<S: Space> HnswBuilder<S> {
    /// Builds the empty index.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for parameters out of range (M, M0,
    /// `ef_construction`, capacity, level multiplier), and the built-in
    /// spaces' own: a zero dimension, or a metric HNSW does not support
    /// ([`Error::UnsupportedMetric`]).
    pub fn build(self) -> Result<HnswIndex<S>> {
        let params = self.params()?;
        let space = match self.space {
            Some(space) => space,
            None => {
                let table = self.table.unwrap_or_else(kernels::active);
                (self.make)(self.dim, self.metric, table)?
            }
        };
        if params.quantization != Quantization::None {
            if space.kernels().is_none() {
                return Err(Error::InvalidParameter(format!(
                    "{} quantization needs a built-in f32 space",
                    params.quantization
                )));
            }
            quant::check_scheme(params.quantization, space.metric(), space.vector_len())?;
        }
        Ok(HnswIndex::from_graph(Graph::new(
            space,
            params,
            self.capacity,
        )))
    }
}

impl Hnsw {
    /// Starts configuring an index of `dim`-dimensional vectors under
    /// `metric` (`L2`, `InnerProduct`, `Cosine` or `Dot`).
    pub fn builder(dim: usize, metric: Metric) -> HnswBuilder<F32Space> {
        HnswBuilder::new(dim, metric, F32Space::new)
    }
}

impl BinaryHnsw {
    /// Starts configuring an index of `bits`-bit vectors (packed into
    /// `bits.div_ceil(64)` `u64` words) under Hamming distance.
    pub fn builder(bits: usize) -> HnswBuilder<BitSpace> {
        HnswBuilder::new(bits, Metric::Hamming, |bits, _, table| {
            BitSpace::new(bits, table)
        })
    }
}

/// An HNSW index over the vectors of space `S`; use the aliases [`Hnsw`] and
/// [`BinaryHnsw`].
pub struct HnswIndex<S: Space> {
    graph: Graph<S>,
    /// The file a read-only index views (kept for `verify`).
    source: Option<std::sync::Arc<crate::store::IndexFile>>,
    /// The capacity recorded in the file it was opened from.
    source_capacity: u64,
    /// Whether `insert_batch` groups nearby rows ([`HnswIndex::set_insert_order`]).
    insert_order: InsertOrder,
}

/// The order in which [`HnswIndex::insert_batch`] inserts a batch's rows.
/// The default is [`InsertOrder::Locality`] under L2, cosine and Hamming,
/// and [`InsertOrder::AsGiven`] under inner product and dot, where the
/// nearest pivot is not a neighbourhood (large-norm pivots draw most rows):
/// there grouping cost recall (ef 80 on 40 Gaussian clusters, 6 seeds:
/// 0.971 against 0.980), while under L2 it matched or raised it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertOrder {
    /// Nearby rows one after another. Rows evenly spread over the batch
    /// go first, in the given order, until a quarter of the final index is
    /// in (they lay down the long-range links); the rest are assigned to
    /// the nearest of `len / 128` pivot rows (at most 256, evenly spaced in
    /// the batch) and inserted pivot by pivot, so consecutive inserts
    /// search the same region of the graph while its rows and links are
    /// still cached. See the README for what it measured.
    Locality,
    /// The order of the batch (hnswlib's).
    AsGiven,
}

impl InsertOrder {
    /// The default order under `metric`.
    pub fn default_for(metric: Metric) -> Self {
        match metric {
            Metric::InnerProduct | Metric::Dot => InsertOrder::AsGiven,
            _ => InsertOrder::Locality,
        }
    }
}

impl<S: Space> std::fmt::Debug for HnswIndex<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("space", &self.graph.space)
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("m", &self.graph.params.m)
            .field("m0", &self.graph.params.m0)
            .field("ef_construction", &self.graph.params.ef_construction)
            .finish()
    }
}

impl<S: Space> HnswIndex<S> {
    /// Starts configuring an index over a user-defined [`Space`]: any
    /// element type and distance (hnswlib's custom spaces). Every index
    /// operation works on it; saving needs [`StoredSpace`], which only the
    /// built-in spaces implement.
    ///
    /// ```
    /// use swann::index::hnsw::{HnswIndex, Space};
    /// use swann::Metric;
    ///
    /// /// L1 distance with a weight per component.
    /// #[derive(Clone, Debug)]
    /// struct WeightedL1 {
    ///     weights: Vec<f32>,
    /// }
    ///
    /// impl Space for WeightedL1 {
    ///     type Elem = f32;
    ///     fn vector_len(&self) -> usize {
    ///         self.weights.len()
    ///     }
    ///     fn metric(&self) -> Metric {
    ///         Metric::Manhattan
    ///     }
    ///     fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
    ///         let terms = self.weights.iter().zip(a.iter().zip(b));
    ///         terms.map(|(w, (x, y))| w * (x - y).abs()).sum()
    ///     }
    ///     fn prepare(&self, v: &[f32], out: &mut Vec<f32>) -> swann::Result<()> {
    ///         if v.len() != self.weights.len() {
    ///             return Err(swann::Error::DimensionMismatch {
    ///                 expected: self.weights.len(),
    ///                 got: v.len(),
    ///             });
    ///         }
    ///         out.clear();
    ///         out.extend_from_slice(v);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// // The second component counts ten times as much as the first.
    /// let space = WeightedL1 { weights: vec![1.0, 10.0] };
    /// let mut index = HnswIndex::builder_with_space(space).m(8).build()?;
    /// index.insert(1, &[5.0, 0.0])?; // 5 from the query
    /// index.insert(2, &[0.0, 1.0])?; // 10 from the query
    /// index.insert(3, &[3.0, 0.0])?; // 3 from the query
    /// let hits = index.search(&[0.0, 0.0], 3, 16)?;
    /// let labels: Vec<u64> = hits.iter().map(|h| h.label).collect();
    /// assert_eq!(labels, [3, 1, 2]);
    /// assert_eq!(hits[2].distance, 10.0);
    /// assert!(index.insert(4, &[1.0]).is_err());
    /// # Ok::<(), swann::Error>(())
    /// ```
    pub fn builder_with_space(space: S) -> HnswBuilder<S> {
        let len = space.vector_len();
        let metric = space.metric();
        let mut b = HnswBuilder::new(len, metric, |_, _, _| {
            Err(Error::InvalidState(
                "a builder made with a space never creates one".into(),
            ))
        });
        b.space = Some(space);
        b
    }

    fn from_graph(graph: Graph<S>) -> Self {
        HnswIndex {
            insert_order: InsertOrder::default_for(graph.space.metric()),
            graph,
            source: None,
            source_capacity: 0,
        }
    }

    /// Number of labels in the index (marked-deleted ones included,
    /// removed ones not).
    pub fn len(&self) -> usize {
        self.graph.len()
            - self.graph.free.load(Ordering::Acquire)
            - self.graph.retired.load(Ordering::Acquire)
    }

    /// Slots taken: labels plus removed nodes not yet unlinked.
    fn occupied(&self) -> usize {
        self.len() + self.graph.retired.load(Ordering::Acquire)
    }

    /// Whether the index holds no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots allocated; inserting past it grows the index ([`HnswIndex::insert`])
    /// or fails ([`HnswIndex::try_insert`]).
    pub fn capacity(&self) -> usize {
        self.graph.capacity()
    }

    /// Elements per vector: components for `f32`, `u64` words for binary.
    pub fn dim(&self) -> usize {
        self.graph.space.vector_len()
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.graph.space.metric()
    }

    /// `M`: links per node on the upper levels.
    pub fn m(&self) -> usize {
        self.graph.params.m
    }

    /// `M0`: most links per node on level 0.
    pub fn m0(&self) -> usize {
        self.graph.params.m0
    }

    /// The level multiplier.
    pub fn level_mult(&self) -> f64 {
        self.graph.params.mult
    }

    /// How links are chosen.
    pub fn selection(&self) -> NeighborSelection {
        self.graph.params.selection
    }

    /// Node and link counts per level group, e.g. to check the mean degree
    /// a build reached. Reads every link list: O(n * M0).
    pub fn stats(&self) -> HnswStats {
        let (nodes, level0_links, upper_nodes, upper_links) = self.graph.shape();
        HnswStats {
            nodes,
            level0_links,
            upper_nodes,
            upper_links,
            max_level: self.graph.entry_point().map_or(0, |(_, l)| l),
            stranded_levels: self.graph.stranded_seen.load(Ordering::Relaxed),
            order_moves: self.graph.order_moves.load(Ordering::Relaxed),
            reinforced: self.graph.reinforced.load(Ordering::Relaxed),
            pending_repairs: self.graph.stranded.lock().len(),
        }
    }

    /// Checks the graph's structure and reachability (see [`GraphReport`]):
    /// links out of range or to free slots, self-links, duplicates, lists
    /// over their level's maximum, links to nodes not on the level, the
    /// entry point, and nodes a search cannot reach from the entry point on
    /// each level. Reads every link list and walks every level: O(n * M0).
    /// Never panics, on any graph (a mapped file's included); run it while
    /// no insert is under way, or it may report the insert's half-made links.
    ///
    /// ```
    /// use swann::index::hnsw::Hnsw;
    /// use swann::Metric;
    ///
    /// let mut index = Hnsw::builder(2, Metric::L2).build()?;
    /// for i in 0..100u64 {
    ///     index.insert(i, &[i as f32, (i % 7) as f32])?;
    /// }
    /// let report = index.check();
    /// assert!(report.is_ok(), "{report}");
    /// assert_eq!(report.levels[0].reachable, 100);
    /// # Ok::<(), swann::Error>(())
    /// ```
    pub fn check(&self) -> GraphReport {
        self.graph.check()
    }

    /// The index's [`Quantization`] scheme.
    pub fn quantization(&self) -> Quantization {
        self.graph.params.quantization
    }

    /// Whether searches run on codes now: the index has a scheme and its
    /// grid is trained (see [`HnswBuilder::quantization`]).
    pub fn is_quantized(&self) -> bool {
        self.graph.codes.is_some() || self.graph.blocks.is_some()
    }

    /// Sets how many of a search's candidates (the nearest by estimate) are
    /// reranked on the exact vectors when it runs on codes: 0 (the default)
    /// means half of `ef`, at least `3 k` and 20; at least `k` always are,
    /// and never more than the search kept (`ef`). A runtime setting, not saved. Fewer
    /// reranks cost less and lose recall once the estimates misorder
    /// candidates beyond the reranked ones; more help where the codes are
    /// coarse for the data. [`Quantization::Pq4`] takes the exact distance
    /// of every node it expands and does not use this setting.
    pub fn set_rerank(&self, candidates: usize) {
        self.graph.rerank.store(candidates, Ordering::Relaxed);
    }

    /// The rerank setting ([`HnswIndex::set_rerank`]).
    pub fn rerank(&self) -> usize {
        self.graph.rerank.load(Ordering::Relaxed)
    }

    /// Trains the quantizer's grid on up to 20,000 of the index's rows
    /// (evenly spread) and recodes every row: for data whose range has
    /// moved since the grid was trained (inserts past the grid's ends are
    /// coded as its ends). The index retrains by itself at a few hundred
    /// rows and each time it doubles up to 20,000, and on
    /// [`HnswIndex::compact`]. O(n * dim). No-op without a scheme.
    ///
    /// # Errors
    /// [`Error::UnsupportedMetric`] or [`Error::InvalidParameter`] for a scheme
    /// the index's metric or dimension does not allow, which building and
    /// loading already refuse: an index that was built or loaded does not fail
    /// here.
    pub fn train_quantizer(&mut self) -> Result<()> {
        self.graph.make_owned();
        self.source = None;
        self.graph.train_codes()
    }

    /// `ef_construction`.
    pub fn ef_construction(&self) -> usize {
        self.graph.params.ef_construction
    }

    /// The level generator's seed.
    pub fn seed(&self) -> u64 {
        self.graph.params.seed
    }

    /// Whether `label` is in the index (deleted or not).
    pub fn contains(&self, label: u64) -> bool {
        self.graph.slot_of(label).is_some()
    }

    /// Whether `label` is marked deleted.
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] when the index does not hold `label`.
    pub fn is_deleted(&self, label: u64) -> Result<bool> {
        let slot = self
            .graph
            .slot_of(label)
            .ok_or(Error::UnknownLabel(label))?;
        Ok(self.graph.is_deleted(slot))
    }

    /// The stored vector of `label` (normalized, for cosine).
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] when the index does not hold `label`.
    pub fn get_vector(&self, label: u64) -> Result<Vec<S::Elem>> {
        let slot = self
            .graph
            .slot_of(label)
            .ok_or(Error::UnknownLabel(label))?;
        Ok(self.graph.row(slot).to_vec())
    }

    /// Every label in the index, in slot order (marked-deleted ones included).
    pub fn labels(&self) -> Vec<u64> {
        (0..self.graph.len() as u32)
            .filter(|&s| self.graph.in_use(s) && !self.graph.is_retired(s))
            .map(|s| self.graph.label(s))
            .collect()
    }

    /// Number of labels marked deleted.
    pub fn deleted_count(&self) -> usize {
        self.graph.deleted.load(Ordering::Acquire)
    }

    /// Approximate heap bytes held by the index.
    pub fn memory_bytes(&self) -> usize {
        self.graph.memory_bytes()
    }

    /// Makes room for `additional` more labels without reallocating later.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when the slots taken plus `additional` would
    /// reach `u32::MAX`.
    pub fn reserve(&mut self, additional: usize) -> Result<()> {
        let need = |s: &Self| {
            s.occupied()
                .checked_add(additional)
                .filter(|&n| n < u32::MAX as usize)
                .ok_or_else(|| {
                    Error::InvalidParameter("capacity exceeds the u32 slot range".into())
                })
        };
        if need(self)? > self.capacity() && self.graph.retired.load(Ordering::Acquire) > 0 {
            // Unlink the removed nodes first: their slots may be enough.
            self.graph.remove_slots(&[], Removal::Complete);
            self.graph.repair_stranded_exclusive();
            self.graph.refresh_blocks();
        }
        let need = need(self)?;
        if need > self.capacity() {
            self.graph.resize(need);
        }
        Ok(())
    }

    /// Sets the capacity to `capacity` slots (hnswlib's `resize_index`); it
    /// cannot drop below the current number of labels.
    ///
    /// # Errors
    /// [`Error::CapacityTooSmall`] for a capacity below [`len`](Self::len);
    /// [`Error::InvalidParameter`] for one of at least `u32::MAX`.
    pub fn resize(&mut self, capacity: usize) -> Result<()> {
        if capacity < self.len() {
            return Err(Error::CapacityTooSmall {
                requested: capacity,
                len: self.len(),
            });
        }
        if capacity >= u32::MAX as usize {
            return Err(Error::InvalidParameter(
                "capacity exceeds the u32 slot range".into(),
            ));
        }
        self.graph.resize(capacity);
        Ok(())
    }

    fn prepare(&self, v: &[S::Elem]) -> Result<Vec<S::Elem>> {
        let mut out = Vec::with_capacity(v.len());
        self.graph.space.prepare(v, &mut out)?;
        Ok(out)
    }

    /// Inserts `label` with vector `v`, growing the index when it is full.
    /// If `label` is already present its vector is replaced and the links
    /// around it repaired (hnswlib's update); a deleted label stays deleted.
    ///
    /// # Errors
    /// The space's errors for `v` ([`Space::prepare`]): for `f32` vectors
    /// [`Error::DimensionMismatch`] for the wrong length and
    /// [`Error::NonFinite`] for NaN or infinite components (also after
    /// normalizing, for cosine); for binary vectors
    /// [`Error::DimensionMismatch`] for the wrong number of words and
    /// [`Error::InvalidParameter`] for bits set past the last one.
    /// [`Error::InvalidParameter`] when growing a full index would pass the
    /// `u32` slot range. The index is unchanged on error.
    pub fn insert(&mut self, label: u64, v: &[S::Elem]) -> Result<()> {
        let p = self.prepare(v)?;
        self.insert_prepared(label, &p)
    }

    /// [`HnswIndex::insert`] of a vector already prepared.
    fn insert_prepared(&mut self, label: u64, p: &[S::Elem]) -> Result<()> {
        self.graph.make_owned();
        self.source = None;
        if let Some(slot) = self.graph.slot_of(label) {
            self.graph.update_vector(slot, p);
            self.graph.refresh_blocks();
            return Ok(());
        }
        if self.occupied() == self.capacity() {
            let grow = (self.capacity() / 2).max(1024);
            self.reserve(grow)?;
        }
        self.insert_new(label, p, &mut Scratch::default())?;
        self.after_inserts()
    }

    /// What every `&mut` insert ends with: re-anchoring the node levels
    /// the inserts left without an anchor (see
    /// [`HnswStats::stranded_levels`]), with the fallback only exclusive
    /// access allows, so every node level is anchored again; and a new
    /// quantizer grid when the index has grown enough to want one.
    fn after_inserts(&mut self) -> Result<()> {
        if !self.graph.stranded.lock().is_empty() {
            self.graph.repair_stranded_exclusive();
        }
        if self.graph.wants_training() {
            self.graph.train_codes()?;
        }
        self.graph.refresh_blocks();
        Ok(())
    }

    fn insert_new(&self, label: u64, prepared: &[S::Elem], scratch: &mut Scratch) -> Result<()> {
        let slot = self.graph.claim_slot(label)?;
        // SAFETY: `slot` was just claimed by this call and is inserted once.
        unsafe { self.graph.insert_claimed(slot, prepared, scratch) };
        Ok(())
    }

    /// Inserts a new `label` through a shared reference, so inserts can run
    /// beside searches and each other. Fails with
    /// [`Error::CapacityExceeded`] when the index is full (reserve first) and
    /// with [`Error::InvalidState`] when the label exists (replacing needs
    /// [`HnswIndex::insert`]).
    ///
    /// # Errors
    /// The space's errors for `v`, as in [`insert`](Self::insert);
    /// [`Error::InvalidState`] when `label` is already present, or the index is
    /// a read-only memory-mapped view ([`open_mmap`](Self::open_mmap));
    /// [`Error::CapacityExceeded`] when every slot is taken.
    pub fn try_insert(&self, label: u64, v: &[S::Elem]) -> Result<()> {
        let p = self.prepare(v)?;
        self.insert_new(label, &p, &mut Scratch::default())?;
        // Other inserts may be running: retry what can be retried now; the
        // rest waits for the next `&mut` operation.
        if !self.graph.stranded.lock().is_empty() {
            self.graph.repair_stranded();
        }
        Ok(())
    }

    /// Inserts many vectors (`data` holds `labels.len()` rows of
    /// [`HnswIndex::dim`] elements) on rayon's thread pool. New labels are
    /// inserted in parallel; labels already present are replaced afterwards,
    /// one at a time. If a label appears twice, the later row wins. Every
    /// row is validated before anything is inserted. New rows go in in the
    /// [`HnswIndex::insert_order`] (by default nearby rows together). The
    /// new nodes left with few level-0 in-links are then searched for with
    /// their own vectors, and one that is missed is linked from where its
    /// search ended ([`HnswStats::reinforced`]).
    ///
    /// # Errors
    /// As [`insert_batch_with_progress`](Self::insert_batch_with_progress).
    pub fn insert_batch(&mut self, labels: &[u64], data: &[S::Elem]) -> Result<()> {
        self.insert_batch_with_progress(labels, data, |_| {})
    }

    /// [`HnswIndex::insert_batch`] that calls `progress(done)` from the
    /// worker threads as new rows are inserted (`done` counts new rows
    /// inserted so far, in no particular order between threads), e.g. to
    /// drive a progress bar without splitting the batch, which would
    /// split the [`InsertOrder::Locality`] grouping too.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when `data` does not hold `labels.len()`
    /// rows, or when the new labels would take the index past the `u32` slot
    /// range; the space's errors for any row, as in [`insert`](Self::insert).
    /// Every row is checked first, so the index is unchanged on error.
    pub fn insert_batch_with_progress(
        &mut self,
        labels: &[u64],
        data: &[S::Elem],
        progress: impl Fn(usize) + Sync,
    ) -> Result<()> {
        let dim = self.dim();
        if data.len() != labels.len() * dim {
            return Err(Error::InvalidParameter(format!(
                "{} labels need {} elements, got {}",
                labels.len(),
                labels.len() * dim,
                data.len()
            )));
        }
        // Validate every row before inserting any (a bad row leaves the
        // index untouched); rows are prepared again, one at a time, as they
        // are inserted, so a large batch is never held twice in memory.
        let space = &self.graph.space;
        data.par_chunks(dim.max(1))
            .try_for_each_init(Vec::new, |buf, row| space.prepare(row, buf))?;
        // A mapped index is copied into memory before it changes, as
        // `insert` does (new labels may fit the free slots without a resize).
        self.graph.make_owned();
        self.source = None;
        // The last occurrence of each label wins.
        let mut last = std::collections::HashMap::with_capacity(labels.len());
        for (i, &l) in labels.iter().enumerate() {
            last.insert(l, i);
        }
        let mut fresh = Vec::new();
        let mut existing = Vec::new();
        for (i, &l) in labels.iter().enumerate() {
            if last[&l] != i {
                continue;
            }
            if self.graph.slot_of(l).is_some() {
                existing.push(i);
            } else {
                fresh.push(i);
            }
        }
        // Free the map before inserting: by the end of a large batch the
        // arenas are resident and this would add to the peak.
        drop(last);
        self.reserve(fresh.len())?;
        let this = &*self;
        let row = |i: usize| &data[i * dim..(i + 1) * dim];
        let seeds = if self.insert_order == InsertOrder::Locality {
            this.locality_order(&mut fresh, &row)?
        } else {
            0
        };
        let done = std::sync::atomic::AtomicUsize::new(0);
        // The seed rows go in before the rest: one parallel loop over the
        // whole order would start the region-sorted rows beside them (each
        // thread takes its own part of the order from the start).
        let (first, rest) = fresh.split_at(seeds);
        let inserted = [first, rest].into_iter().try_for_each(|part| {
            part.par_iter().try_for_each_init(
                || (Scratch::default(), Vec::with_capacity(dim)),
                |(scratch, buf), &i| {
                    this.graph.space.prepare(row(i), buf)?;
                    this.insert_new(labels[i], buf, scratch)?;
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                    Ok::<(), Error>(())
                },
            )
        });
        // Also after a failed row: the rows before it are in the graph.
        // Nodes the batch left with few in-links get their own search, and
        // a link from the nodes it ends at if it misses them (see
        // `Graph::reinforce`): inserts that ran side by side did not see
        // each other.
        let slots: Vec<u32> = fresh
            .iter()
            .filter_map(|&i| self.graph.slot_of(labels[i]))
            .collect();
        self.graph.reinforce(&slots);
        let after = self.after_inserts();
        inserted?;
        after?;
        let mut buf = Vec::with_capacity(dim);
        for i in existing {
            self.graph.space.prepare(row(i), &mut buf)?;
            let slot = self.graph.slot_of(labels[i]).expect("present");
            self.graph.update_vector(slot, &buf);
        }
        self.graph.refresh_blocks();
        Ok(())
    }

    /// Reorders a batch's rows for [`InsertOrder::Locality`]: seed rows
    /// first, then the others grouped by their nearest pivot row.
    fn locality_order<'d>(
        &self,
        fresh: &mut Vec<usize>,
        row: &(impl Fn(usize) -> &'d [S::Elem] + Sync),
    ) -> Result<usize> {
        const ROWS_PER_PIVOT: usize = 128;
        const MAX_PIVOTS: usize = 256;
        let pivots = (fresh.len() / ROWS_PER_PIVOT).min(MAX_PIVOTS);
        if pivots < 2 {
            return Ok(0);
        }
        let space = &self.graph.space;
        let mut pivot_rows = Vec::with_capacity(pivots);
        for p in 0..pivots {
            let mut buf = Vec::new();
            space.prepare(row(fresh[p * fresh.len() / pivots]), &mut buf)?;
            pivot_rows.push(buf);
        }
        let keys: Vec<u32> = fresh
            .par_iter()
            .map_init(Vec::new, |buf, &i| -> Result<u32> {
                space.prepare(row(i), buf)?;
                let mut best = (f32::INFINITY, 0u32);
                for (p, pv) in pivot_rows.iter().enumerate() {
                    let d = space.distance(buf, pv);
                    if d < best.0 {
                        best = (d, p as u32);
                    }
                }
                Ok(best.1)
            })
            .collect::<Result<_>>()?;
        // Rows evenly spread over the batch go first, in the given order,
        // until a quarter of the final index is in: they lay down the
        // graph's long-range links, which inserting region by region from
        // an empty graph would leave sparse (on 40 Gaussian clusters
        // recall at ef 80 fell from 0.997 to 0.987 without them).
        let n = fresh.len();
        let seeds = ((self.len() + n) / 4).saturating_sub(self.len()).min(n);
        let mut is_seed = vec![false; n];
        for j in 0..seeds {
            is_seed[j * n / seeds] = true;
        }
        let mut rest: Vec<usize> = (0..n).filter(|&j| !is_seed[j]).collect();
        rest.sort_by_key(|&j| keys[j]);
        let order: Vec<usize> = (0..n)
            .filter(|&j| is_seed[j])
            .chain(rest)
            .map(|j| fresh[j])
            .collect();
        *fresh = order;
        Ok(seeds)
    }

    /// Sets the order in which [`HnswIndex::insert_batch`] inserts rows
    /// (default [`InsertOrder::default_for`] the metric). A runtime
    /// setting, not saved.
    pub fn set_insert_order(&mut self, order: InsertOrder) {
        self.insert_order = order;
    }

    /// The order [`HnswIndex::insert_batch`] inserts rows in.
    pub fn insert_order(&self) -> InsertOrder {
        self.insert_order
    }

    /// Marks `label` deleted: it keeps routing searches but is never returned.
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] when the index does not hold `label`;
    /// [`Error::InvalidState`] when it is already deleted, or the index is a
    /// read-only memory-mapped view.
    pub fn mark_deleted(&self, label: u64) -> Result<()> {
        self.graph.check_writable()?;
        let slot = self
            .graph
            .slot_of(label)
            .ok_or(Error::UnknownLabel(label))?;
        if !self.graph.set_deleted(slot, true) {
            return Err(Error::InvalidState(format!(
                "label {label} is already deleted"
            )));
        }
        Ok(())
    }

    /// Clears the deleted mark of `label`.
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] when the index does not hold `label`;
    /// [`Error::InvalidState`] when it is not deleted, or the index is a
    /// read-only memory-mapped view.
    pub fn unmark_deleted(&self, label: u64) -> Result<()> {
        self.graph.check_writable()?;
        let slot = self
            .graph
            .slot_of(label)
            .ok_or(Error::UnknownLabel(label))?;
        if !self.graph.set_deleted(slot, false) {
            return Err(Error::InvalidState(format!("label {label} is not deleted")));
        }
        Ok(())
    }

    /// Takes `label` out of the index for good, unlike
    /// [`HnswIndex::mark_deleted`]: every list that linked to it is
    /// re-selected through its neighbours (the same heuristic as an insert),
    /// the nodes it was the last anchor of are linked anew, and its slot is
    /// freed for the next insert. Works on marked-deleted labels too.
    ///
    /// Cost: the lists of its neighbours and their neighbours are read to
    /// find those that link to it (the link counters say when all are
    /// found; rarely every list is scanned), and each is re-selected, so a
    /// removal costs about as much as an insert.
    ///
    /// ```
    /// use swann::index::hnsw::Hnsw;
    /// use swann::Metric;
    ///
    /// let mut index = Hnsw::builder(2, Metric::L2).build()?;
    /// for i in 0..50u64 {
    ///     index.insert(i, &[i as f32, 0.0])?;
    /// }
    /// index.remove(7)?;
    /// assert!(!index.contains(7));
    /// assert_eq!(index.len(), 49);
    /// assert!(index.check().is_ok());
    /// index.insert(100, &[7.0, 0.0])?; // reuses the freed slot
    /// assert_eq!(index.capacity(), 1024);
    /// # Ok::<(), swann::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] when the index does not hold `label`.
    pub fn remove(&mut self, label: u64) -> Result<()> {
        self.remove_batch(&[label])
    }

    /// Removes every label of `labels` ([`HnswIndex::remove`]) in one pass:
    /// many removals share one scan for the lists that link to them, and
    /// the repairs run on rayon's thread pool. Fails with
    /// [`Error::UnknownLabel`] before removing anything if a label is not
    /// in the index; a label given twice is removed once.
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] for the first label of `labels` the index does
    /// not hold; nothing is removed then.
    pub fn remove_batch(&mut self, labels: &[u64]) -> Result<()> {
        let mut slots = Vec::with_capacity(labels.len());
        for &l in labels {
            slots.push(self.graph.slot_of(l).ok_or(Error::UnknownLabel(l))?);
        }
        slots.sort_unstable();
        slots.dedup();
        self.source = None;
        // Removing every label unlinks everything now: no retired node is
        // left as the entry point of an index without labels.
        let mode = match slots.len() == self.len() {
            true => Removal::Complete,
            false => Removal::MayRetire,
        };
        self.graph.remove_slots(&slots, mode);
        self.graph.repair_stranded_exclusive();
        self.graph.refresh_blocks();
        Ok(())
    }

    /// Rewrites the index without marked-deleted labels (they are removed,
    /// as by [`HnswIndex::remove`]) and without free slots: every node is
    /// renumbered into a dense range and the capacity shrinks to the number
    /// of labels, so memory and the saved file shrink to what a fresh build
    /// of the same labels takes. Searches and links are unchanged for the
    /// labels that stay, except that nodes the removals left with few
    /// in-links and that their own search then misses are linked from where
    /// it ends, as after [`insert_batch`](Self::insert_batch). O(n * M0)
    /// plus the removals and those searches.
    ///
    /// # Errors
    /// Only those of retraining the quantizer
    /// ([`train_quantizer`](Self::train_quantizer)), which an index that was
    /// built or loaded does not return.
    pub fn compact(&mut self) -> Result<()> {
        self.graph.make_owned();
        self.graph.ensure_anchored();
        let deleted: Vec<u32> = (0..self.graph.len() as u32)
            .filter(|&s| self.graph.in_use(s) && self.graph.is_deleted(s))
            .collect();
        self.graph.remove_slots(&deleted, Removal::Complete);
        self.graph.repair_stranded_exclusive();
        // Unlinking takes in-links from the removed nodes' neighbours: the
        // ones left weakly linked get the batch insert's check.
        if !deleted.is_empty() {
            let live: Vec<u32> = (0..self.graph.len() as u32)
                .filter(|&s| self.graph.in_use(s))
                .collect();
            self.graph.reinforce(&live);
        }
        let rerank = self.graph.rerank.load(Ordering::Relaxed);
        self.graph = self.graph.compacted();
        // Runtime settings carry over to the rewritten graph.
        self.graph.rerank.store(rerank, Ordering::Relaxed);
        self.source = None;
        // The copy has no codes: a grid trained on what is left.
        self.graph.train_codes()
    }

    /// Inserts `label`, reusing the slot of a deleted label when there is one
    /// (hnswlib's `replace_deleted`): the old label disappears, the new one
    /// takes its slot, vector and repaired links. Without deleted slots (or
    /// when `label` is already present) it is [`HnswIndex::insert`].
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn insert_replacing_deleted(&mut self, label: u64, v: &[S::Elem]) -> Result<()> {
        self.graph.make_owned();
        if self.graph.slot_of(label).is_some() {
            return self.insert(label, v);
        }
        let p = self.prepare(v)?;
        let Some(slot) = self.graph.take_deleted_slot() else {
            return self.insert_prepared(label, &p);
        };
        let old = self.graph.label(slot);
        {
            let mut map = self.graph.label_map().write();
            map.remove(&old);
            map.insert(label, slot);
        }
        self.graph.labels[slot as usize].store(label, Ordering::Release);
        self.graph.slot_epoch.fetch_add(1, Ordering::AcqRel);
        self.graph.update_vector(slot, &p);
        self.graph.set_deleted(slot, false);
        self.graph.refresh_blocks();
        Ok(())
    }

    fn check_search(&self, q: &[S::Elem], k: usize) -> Result<Vec<S::Elem>> {
        check_k(k)?;
        self.prepare(q)
    }

    /// The `k` nearest labels to `query`, nearest first, exploring `ef`
    /// candidates (raised to `k` if smaller). An empty index gives no results.
    ///
    /// # Errors
    /// [`Error::ZeroK`] for `k == 0`; the space's errors for
    /// `query`, as in [`insert`](Self::insert) ([`Error::DimensionMismatch`],
    /// [`Error::NonFinite`], ...).
    pub fn search(&self, query: &[S::Elem], k: usize, ef: usize) -> Result<Vec<Neighbor>> {
        let q = self.check_search(query, k)?;
        Ok(self.graph.knn(&q, k, ef, &mut Scratch::default()))
    }

    /// The `k` nearest labels to the stored vector of `label`, nearest
    /// first, exploring `ef` candidates (raised to `k`). The level-0 search
    /// starts at the item itself, as N2's search by id does, so a live item
    /// is always among its own results (first, unless others lie at the
    /// same distance) however small `ef` is; a search by its vector from the
    /// entry point may miss it on a hard graph.
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] when the index does not hold `label`,
    /// [`Error::ZeroK`] for `k == 0`.
    pub fn search_by_label(&self, label: u64, k: usize, ef: usize) -> Result<Vec<Neighbor>> {
        check_k(k)?;
        let slot = self
            .graph
            .slot_of(label)
            .ok_or(Error::UnknownLabel(label))?;
        Ok(self
            .graph
            .knn_from_slot(slot, k, ef, &mut Scratch::default()))
    }

    /// Like [`HnswIndex::search`], returning only labels for which `accept`
    /// is true: [`HnswIndex::search_filtered`] with a predicate, planned
    /// ([`FilterStrategy::Auto`]).
    ///
    /// # Errors
    /// As [`search`](Self::search).
    pub fn search_with_filter<F: Fn(u64) -> bool + Sync>(
        &self,
        query: &[S::Elem],
        k: usize,
        ef: usize,
        accept: F,
    ) -> Result<Vec<Neighbor>> {
        let filter = Filter::Fn(&accept);
        Ok(self
            .search_filtered(query, k, ef, &filter, FilterStrategy::Auto)?
            .0)
    }

    /// A [`LabelSet`] of `labels` for filtered searches of this index
    /// (labels it does not hold are left out). Build it once per filter;
    /// testing it costs one bit per node, where a predicate costs a call.
    pub fn label_set(&self, labels: impl IntoIterator<Item = u64>) -> LabelSet {
        self.graph.label_set(&mut labels.into_iter())
    }

    /// The strategy [`HnswIndex::search_filtered`] would choose for
    /// `filter` at `ef`, and the share of labels it allows (counted for a
    /// set, estimated from 256 labels for a predicate).
    pub fn plan_filter(&self, filter: &Filter<'_>, ef: usize) -> FilterPlan {
        self.graph.plan(filter, ef, FilterStrategy::Auto, 1)
    }

    /// The plan [`HnswIndex::search_batch_filtered`] would follow for
    /// `queries` queries: under a predicate it says whether calling it once
    /// per label first ([`FilterPlan::materialized`]) costs less than
    /// calling it as every query walks.
    pub fn plan_filter_batch(&self, filter: &Filter<'_>, ef: usize, queries: usize) -> FilterPlan {
        self.graph.plan(filter, ef, FilterStrategy::Auto, queries)
    }

    /// The `k` nearest labels to `query` that `filter` allows, nearest
    /// first, exploring `ef` candidates, found by `strategy`
    /// ([`FilterStrategy::Auto`]: planned from the share of labels allowed;
    /// see the `filter` module). Returns the plan it followed.
    ///
    /// # Errors
    /// [`Error::ZeroK`] for `k == 0`; [`Error::DimensionMismatch`]
    /// or [`Error::NonFinite`] for a bad query; [`Error::InvalidState`] for
    /// a [`LabelSet`] of another index or built before a slot changed hands.
    ///
    /// ```
    /// use swann::index::hnsw::{Filter, FilterStrategy, Hnsw};
    /// use swann::Metric;
    ///
    /// let mut index = Hnsw::builder(2, Metric::L2).build()?;
    /// for i in 0..1000u64 {
    ///     index.insert(i, &[(i % 40) as f32, (i / 40) as f32])?;
    /// }
    /// // Only multiples of 100 may be returned: few enough to scan.
    /// let set = index.label_set((0..1000).step_by(100));
    /// let (hits, plan) =
    ///     index.search_filtered(&[0.0, 10.0], 3, 32, &Filter::Set(&set), FilterStrategy::Auto)?;
    /// assert_eq!(plan.strategy, FilterStrategy::Scan);
    /// assert!(hits.iter().all(|h| h.label % 100 == 0));
    /// assert_eq!(hits[0].label, 400);
    /// // A predicate; the walk forced.
    /// let odd = |l: u64| l % 2 == 1;
    /// let (hits, plan) =
    ///     index.search_filtered(&[0.0, 10.0], 3, 32, &Filter::Fn(&odd), FilterStrategy::Walk)?;
    /// assert_eq!(plan.strategy, FilterStrategy::Walk);
    /// assert!(hits.iter().all(|h| h.label % 2 == 1));
    /// # Ok::<(), swann::Error>(())
    /// ```
    pub fn search_filtered(
        &self,
        query: &[S::Elem],
        k: usize,
        ef: usize,
        filter: &Filter<'_>,
        strategy: FilterStrategy,
    ) -> Result<(Vec<Neighbor>, FilterPlan)> {
        let q = self.check_search(query, k)?;
        self.check_label_set(filter)?;
        let plan = self.graph.plan(filter, ef.max(k), strategy, 1);
        let hits =
            self.graph
                .knn_filtered(&q, k, ef, filter, plan.strategy, &mut Scratch::default());
        Ok((hits, plan))
    }

    fn check_label_set(&self, filter: &Filter<'_>) -> Result<()> {
        match filter {
            Filter::Set(set) if !set.fits(&self.graph) => Err(Error::InvalidState(
                "the label set belongs to another index, or slots changed hands since it was \
                 built (a removed or deleted label's slot reused); build it again"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// [`HnswIndex::search_filtered`] for every row of `queries` (row-major)
    /// on rayon's thread pool, planned once for the batch. Under a
    /// predicate the planner may call it once per label first and test
    /// the resulting [`LabelSet`] in every query, when that costs less than
    /// calling it during every query ([`FilterPlan::materialized`]).
    ///
    /// # Errors
    /// As [`HnswIndex::search_filtered`], and [`Error::RaggedData`]
    /// when `queries` is not a whole number of rows.
    pub fn search_batch_filtered(
        &self,
        queries: &[S::Elem],
        k: usize,
        ef: usize,
        filter: &Filter<'_>,
        strategy: FilterStrategy,
    ) -> Result<(Vec<Vec<Neighbor>>, FilterPlan)> {
        let dim = self.dim();
        check_rows("query data", queries.len(), dim)?;
        check_k(k)?;
        self.check_label_set(filter)?;
        let plan = self
            .graph
            .plan(filter, ef.max(k), strategy, queries.len() / dim.max(1));
        let set;
        let filter = match filter {
            Filter::Fn(f) if plan.materialized => {
                set = self.graph.label_set_where(*f);
                Filter::Set(&set)
            }
            f => *f,
        };
        let hits = queries
            .par_chunks(dim.max(1))
            .map_init(Scratch::default, |scratch, q| {
                let q = self.check_search(q, k)?;
                Ok(self
                    .graph
                    .knn_filtered(&q, k, ef, &filter, plan.strategy, scratch))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((hits, plan))
    }

    /// Searches every row of `queries` (row-major, [`HnswIndex::dim`]
    /// elements each) on rayon's thread pool.
    ///
    /// # Errors
    /// [`Error::RaggedData`] when `queries` is not a whole number of
    /// rows, [`Error::ZeroK`] for `k == 0` (given at least one query); the space's errors for
    /// a query, as in [`search`](Self::search).
    pub fn search_batch(
        &self,
        queries: &[S::Elem],
        k: usize,
        ef: usize,
    ) -> Result<Vec<Vec<Neighbor>>> {
        let dim = self.dim();
        check_rows("query data", queries.len(), dim)?;
        queries
            .par_chunks(dim)
            .map_init(Scratch::default, |scratch, q| {
                let q = self.check_search(q, k)?;
                Ok(self.graph.knn(&q, k, ef, scratch))
            })
            .collect()
    }

    /// Level-0 neighbours of `label` (for inspection and tests).
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] when the index does not hold `label`.
    pub fn neighbors(&self, label: u64) -> Result<Vec<u64>> {
        let slot = self
            .graph
            .slot_of(label)
            .ok_or(Error::UnknownLabel(label))?;
        Ok(self
            .graph
            .links(slot, 0)
            .into_iter()
            .map(|s| self.graph.label(s))
            .collect())
    }

    /// The entry point's label and the top level, if the index is not empty.
    pub fn entry_point(&self) -> Option<(u64, usize)> {
        self.graph
            .entry_point()
            .map(|(slot, level)| (self.graph.label(slot), level))
    }
}
