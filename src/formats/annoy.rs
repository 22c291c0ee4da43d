//! Reading index files written by Annoy 1.17 (`AnnoyIndex.save`), memory
//! mapped, searched the way Annoy searches them.
//!
//! Annoy stores one array of fixed-size nodes (`annoylib.h`). Every node
//! starts with `n_descendants: i32`; what follows depends on the metric
//! (`f` is the dimension, `T` the component type):
//!
//! | metric | layout | `offsetof(v)` |
//! |---|---|---|
//! | angular | `n_descendants, children[2], v[f]` (in items `children[0]` holds the squared norm) | 12 |
//! | dot | `n_descendants, children[2], dot_factor, v[f]` | 16 |
//! | euclidean, manhattan | `n_descendants, a, children[2], v[f]` | 16 |
//! | hamming | `n_descendants, children[2], (pad), v[f] (u64 words)` | 16 |
//!
//! The node size is `offsetof(v) + f * sizeof(T)`. Nodes `0..n_items` are the
//! items (`n_descendants == 1`). Other nodes are leaves, listing up to
//! `K = (size - offsetof(children)) / 4` ids from `children` on, when
//! `n_descendants <= K`, and splits otherwise (`v` the normal, `a` or
//! `dot_factor` the offset term). The roots (whose `n_descendants` is the
//! item count) are copied to the end of the file; Annoy finds them by
//! scanning back from the end while the count repeats, and so does this.
//!
//! Annoy writes children before their parent, so a split's children have
//! smaller indices than the split: the search checks that at every step,
//! so a corrupt file gives an error rather than a loop or a panic.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::Path;

use memmap2::Mmap;

use crate::kernels::{self, F32Kernel, F32Op, KernelTable};
use crate::{Error, Metric, Result};

use crate::index::forest::format::corrupt;
use crate::index::forest::search::report;
use crate::index::forest::Hit;
use crate::store::map_readonly;

/// An Annoy 1.17 index file, memory-mapped read-only.
///
/// ```no_run
/// use swann::index::forest::AnnoyIndex;
/// use swann::Metric;
///
/// let index = AnnoyIndex::open("vectors.ann", 40, Metric::Angular)?;
/// let hits = index.nns_by_item(0, 10, None)?;
/// println!("{} items, {} trees, nearest to 0: {:?}", index.n_items(), index.n_trees(), hits);
/// # Ok::<(), swann::Error>(())
/// ```
pub struct AnnoyIndex {
    map: Mmap,
    metric: Metric,
    dim: usize,
    /// Components per vector: `f32`s, or `u64` words for Hamming.
    comp: usize,
    /// Node size in 4-byte words.
    node_words: usize,
    /// Word offsets inside a node.
    v_off: usize,
    children_off: usize,
    k: usize,
    n_nodes: usize,
    n_items: usize,
    roots: Vec<i32>,
    table: &'static KernelTable,
    dot: F32Kernel,
    dist: F32Kernel,
    name: String,
}

impl std::fmt::Debug for AnnoyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnoyIndex")
            .field("path", &self.name)
            .field("metric", &self.metric)
            .field("dim", &self.dim)
            .field("n_items", &self.n_items)
            .field("n_trees", &self.roots.len())
            .finish()
    }
}

#[derive(Clone, Copy)]
struct Entry(f32, i32);
impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // `std::priority_queue<pair<T, S>>`: larger priority first, then larger node.
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

#[derive(Default)]
struct Scratch {
    heap: BinaryHeap<Entry>,
    nns: Vec<i32>,
    scored: Vec<(f32, i32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

enum Query<'a> {
    F32(&'a [f32], f32),
    Bits(&'a [u64]),
}

impl AnnoyIndex {
    /// Maps the Annoy file at `path`, built with dimension `dim` (bits for
    /// Hamming) and `metric` (angular, euclidean, manhattan, dot, hamming):
    /// Annoy's files do not record either, so they must match how it was built.
    ///
    /// # Errors
    /// As [`open_with`](Self::open_with).
    pub fn open(path: impl AsRef<Path>, dim: usize, metric: Metric) -> Result<Self> {
        Self::open_with(path, dim, metric, false)
    }

    /// [`AnnoyIndex::open`], optionally reading every page in at open.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a dimension of 0 or above 2^24;
    /// [`Error::UnsupportedMetric`] for a metric Annoy does not have (`L2`,
    /// `InnerProduct`, `Cosine`); [`Error::Io`] when the file cannot be opened
    /// or mapped; [`Error::BadDataFile`] for a file whose size is not a
    /// positive multiple of the node size for `dim` and `metric` (the usual
    /// sign of a wrong dimension or metric), with more nodes than Annoy can
    /// address, or whose roots give an item count out of range.
    pub fn open_with(
        path: impl AsRef<Path>,
        dim: usize,
        metric: Metric,
        prefault: bool,
    ) -> Result<Self> {
        let path = path.as_ref();
        let name = path.display().to_string();
        if dim == 0 || dim > (1 << 24) {
            return Err(Error::InvalidParameter(format!(
                "dimension {dim} out of range"
            )));
        }
        // (offsetof(v), offsetof(children), component count, component bytes)
        let (v_bytes, children_bytes, comp, elem) = match metric {
            Metric::Angular => (12, 4, dim, 4),
            Metric::Dot => (16, 4, dim, 4),
            Metric::Euclidean | Metric::Manhattan => (16, 8, dim, 4),
            Metric::Hamming => (16, 4, dim.div_ceil(64), 8),
            other => {
                return Err(Error::UnsupportedMetric {
                    metric: other,
                    index: "annoy",
                })
            }
        };
        let node_bytes = v_bytes + comp * elem;
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len() as usize;
        if len == 0 || !len.is_multiple_of(node_bytes) {
            return Err(corrupt(
                &name,
                format!(
                    "size {len} is not a positive multiple of the node size {node_bytes}: \
                     not an Annoy index of dimension {dim} and metric {metric}"
                ),
            ));
        }
        let map = map_readonly(&file, prefault)?;
        let table = kernels::active();
        let node_words = node_bytes / 4;
        let n_nodes = len / node_bytes;
        if n_nodes > i32::MAX as usize {
            return Err(corrupt(&name, "more nodes than Annoy can address"));
        }
        let mut idx = AnnoyIndex {
            map,
            metric,
            dim,
            comp,
            node_words,
            v_off: v_bytes / 4,
            children_off: children_bytes / 4,
            k: (node_bytes - children_bytes) / 4,
            n_nodes,
            n_items: 0,
            roots: Vec::new(),
            table,
            dot: table.f32_kernel(F32Op::Dot),
            dist: table.f32_kernel(metric.f32_op().unwrap_or(F32Op::Dot)),
            name,
        };
        // Annoy's `load`: the roots are the trailing nodes that share the
        // largest n_descendants; the last real root precedes the copies.
        let mut m = -1i32;
        for i in (0..n_nodes).rev() {
            let k = idx.n_desc(i);
            if m == -1 || k == m {
                idx.roots.push(i as i32);
                m = k;
            } else {
                break;
            }
        }
        if idx.roots.len() > 1 {
            let front = idx.children(idx.roots[0] as usize)[0];
            let back = idx.children(*idx.roots.last().expect("non-empty") as usize)[0];
            if front == back {
                idx.roots.pop();
            }
        }
        if m < 0 || m as usize > n_nodes {
            return Err(corrupt(&idx.name, "root item count out of range"));
        }
        idx.n_items = m as usize;
        Ok(idx)
    }

    fn words(&self) -> &[i32] {
        bytemuck::cast_slice(&self.map[..])
    }

    fn n_desc(&self, i: usize) -> i32 {
        self.words()[i * self.node_words]
    }

    fn children(&self, i: usize) -> &[i32] {
        let at = i * self.node_words + self.children_off;
        &self.words()[at..(i + 1) * self.node_words]
    }

    fn v(&self, i: usize) -> &[f32] {
        let at = i * self.node_words + self.v_off;
        &bytemuck::cast_slice(&self.map[..])[at..at + self.comp]
    }

    fn bits(&self, i: usize) -> &[u64] {
        let at = (i * self.node_words + self.v_off) / 2;
        &bytemuck::cast_slice(&self.map[..])[at..at + self.comp]
    }

    /// Word 1 of a node as a float: `a` (euclidean, manhattan) or the
    /// stored squared norm (angular items); `dot_factor` is word 3.
    fn word_f32(&self, i: usize, w: usize) -> f32 {
        f32::from_bits(self.words()[i * self.node_words + w] as u32)
    }

    /// Writes the file's bytes to `path` atomically (a temporary file,
    /// synced, then renamed): an Annoy file again, as Annoy's `save` of a
    /// loaded index writes it.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a path with no file name; I/O errors
    /// (the temporary file is removed, `path` untouched).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::store::write_bytes_atomic(path.as_ref(), &self.map)
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The dimension given at open.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The number of items (Annoy's `get_n_items`: one more than the largest id).
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// The number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    fn corrupt(&self, what: &str) -> Error {
        corrupt(&self.name, format!("corrupt Annoy index: {what}"))
    }

    fn check_item(&self, id: u32) -> Result<()> {
        if (id as usize) < self.n_items && self.n_desc(id as usize) == 1 {
            Ok(())
        } else {
            Err(Error::UnknownLabel(id as u64))
        }
    }

    fn check_n(n: usize) -> Result<()> {
        if n == 0 {
            Err(Error::ZeroK)
        } else {
            Ok(())
        }
    }

    /// Item `id`'s vector (for Hamming, one 0.0/1.0 per bit).
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] when `id` is not an item of the file.
    pub fn item_vector(&self, id: u32) -> Result<Vec<f32>> {
        self.check_item(id)?;
        Ok(match self.metric {
            Metric::Hamming => {
                let w = self.bits(id as usize);
                (0..self.dim)
                    .map(|i| (w[i / 64] >> (i % 64) & 1) as f32)
                    .collect()
            }
            _ => self.v(id as usize).to_vec(),
        })
    }

    /// The distance between items `i` and `j`, as Annoy's `get_distance`.
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] when `i` or `j` is not an item of the file.
    pub fn distance(&self, i: u32, j: u32) -> Result<f32> {
        self.check_item(i)?;
        self.check_item(j)?;
        let q = self.query_of(i as usize);
        Ok(report(self.metric, self.key(&q, j as usize)))
    }

    fn query_of(&self, i: usize) -> Query<'_> {
        match self.metric {
            Metric::Hamming => Query::Bits(self.bits(i)),
            _ => Query::F32(self.v(i), self.sq_norm(i)),
        }
    }

    fn sq_norm(&self, i: usize) -> f32 {
        let stored = if self.metric == Metric::Angular {
            self.word_f32(i, 1)
        } else {
            0.0
        };
        if stored != 0.0 {
            stored
        } else {
            self.table.norm_sq(self.v(i))
        }
    }

    /// The ranking key between a query and item `j` (Annoy's `D::distance`).
    fn key(&self, q: &Query<'_>, j: usize) -> f32 {
        match *q {
            Query::Bits(b) => self.table.hamming(b, self.bits(j)) as f32,
            Query::F32(v, qq) => match self.metric {
                Metric::Angular => {
                    let ppqq = qq * self.sq_norm(j);
                    if ppqq > 0.0 {
                        2.0 - 2.0 * self.dot.eval(v, self.v(j)) / ppqq.sqrt()
                    } else {
                        2.0
                    }
                }
                Metric::Dot => -self.dot.eval(v, self.v(j)),
                _ => self.dist.eval(v, self.v(j)),
            },
        }
    }

    /// The `n` nearest items to item `id`, as Annoy's `get_nns_by_item`.
    ///
    /// # Errors
    /// [`Error::ZeroK`] for `n == 0`; [`Error::UnknownLabel`] when
    /// `id` is not an item of the file; [`Error::BadDataFile`] when the search
    /// meets a corrupt node (a cycle, a negative count, a child or leaf id out
    /// of bounds, a split bit out of range).
    pub fn nns_by_item(&self, id: u32, n: usize, search_k: Option<usize>) -> Result<Vec<Hit>> {
        Self::check_n(n)?;
        self.check_item(id)?;
        self.search(self.query_of(id as usize), n, search_k)
    }

    /// The `n` nearest items to `v`, as Annoy's `get_nns_by_vector`
    /// (`search_k` defaults to `n * n_trees`). For Hamming, `v` holds one
    /// value per bit, set when above 0.5.
    ///
    /// # Errors
    /// [`Error::ZeroK`] for `n == 0`; [`Error::DimensionMismatch`]
    /// for a `v` whose length is not the dimension; [`Error::NonFinite`] for
    /// NaN or infinite components; [`Error::BadDataFile`] when the search meets
    /// a corrupt node, as in [`nns_by_item`](Self::nns_by_item).
    pub fn nns_by_vector(&self, v: &[f32], n: usize, search_k: Option<usize>) -> Result<Vec<Hit>> {
        Self::check_n(n)?;
        crate::error::check_vector(v, self.dim)?;
        match self.metric {
            Metric::Hamming => {
                let mut packed = vec![0u64; self.comp];
                for (i, &x) in v.iter().enumerate() {
                    if x > 0.5 {
                        packed[i / 64] |= 1 << (i % 64);
                    }
                }
                self.search(Query::Bits(&packed), n, search_k)
            }
            _ => self.search(Query::F32(v, self.table.norm_sq(v)), n, search_k),
        }
    }

    /// Annoy's `_get_all_nns`, with its priorities and tie order.
    fn search(&self, q: Query<'_>, n: usize, search_k: Option<usize>) -> Result<Vec<Hit>> {
        let search_k = search_k.unwrap_or(n.saturating_mul(self.roots.len()));
        SCRATCH.with(|cell| {
            let s = &mut *cell.borrow_mut();
            s.heap.clear();
            s.nns.clear();
            let start = match q {
                Query::F32(..) => f32::INFINITY,
                Query::Bits(_) => 0.0,
            };
            for &r in &self.roots {
                s.heap.push(Entry(start, r));
            }
            // Annoy writes children before their parent, but older Annoy
            // wrote split nodes first (its own `test/test.tree`), so child
            // indices may point either way. In a tree every node has one
            // parent, so a search pops each node at most once per root it
            // is under: more pops than nodes and roots means a cycle, which
            // a corrupt file could hold (Annoy would loop forever).
            let mut budget = self.n_nodes + self.roots.len();
            while s.nns.len() < search_k {
                let Some(Entry(d, i)) = s.heap.pop() else {
                    break;
                };
                if budget == 0 {
                    return Err(self.corrupt("split nodes form a cycle"));
                }
                budget -= 1;
                let iu = i as usize;
                let nd = self.n_desc(iu);
                if nd == 1 && iu < self.n_items {
                    s.nns.push(i);
                } else if nd >= 0 && nd as usize <= self.k {
                    s.nns.extend_from_slice(&self.children(iu)[..nd as usize]);
                } else if nd < 0 {
                    return Err(self.corrupt("negative descendant count"));
                } else {
                    let c = self.children(iu);
                    let (c0, c1) = (c[0], c[1]);
                    let n = self.n_nodes as i32;
                    if c0 < 0 || c1 < 0 || c0 >= n || c1 >= n || c0 == i || c1 == i {
                        return Err(self.corrupt("child index out of bounds"));
                    }
                    let (p0, p1) = match q {
                        Query::F32(v, _) => {
                            let dot = self.dot.eval(self.v(iu), v);
                            let m = match self.metric {
                                Metric::Angular => dot,
                                Metric::Dot => {
                                    let f = self.word_f32(iu, 3);
                                    dot + f * f
                                }
                                _ => self.word_f32(iu, 1) + dot,
                            };
                            (d.min(-m), d.min(m))
                        }
                        Query::Bits(b) => {
                            let bit = self.bits(iu)[0];
                            let word = b
                                .get((bit / 64) as usize)
                                .ok_or_else(|| self.corrupt("split bit out of range"))?;
                            let set = word & (1u64 << (63 - bit % 64)) != 0;
                            // Annoy: distance - (margin != child_nr).
                            (d - set as u8 as f32, d - (!set) as u8 as f32)
                        }
                    };
                    s.heap.push(Entry(p1, c1));
                    s.heap.push(Entry(p0, c0));
                }
            }
            s.nns.sort_unstable();
            s.nns.dedup();
            s.scored.clear();
            for &j in &s.nns {
                if j < 0 || j as usize >= self.n_nodes {
                    return Err(self.corrupt("leaf holds an id past the end"));
                }
                let ju = j as usize;
                // Annoy's guard (#284): only item nodes get a distance.
                if ju < self.n_items && self.n_desc(ju) == 1 {
                    s.scored.push((self.key(&q, ju), j));
                }
            }
            let cmp = |a: &(f32, i32), b: &(f32, i32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            let keep = n.min(s.scored.len());
            if keep > 0 && keep < s.scored.len() {
                s.scored.select_nth_unstable_by(keep - 1, cmp);
                s.scored.truncate(keep);
            }
            s.scored.sort_unstable_by(cmp);
            Ok(s.scored
                .iter()
                .map(|&(key, id)| Hit {
                    id: id as u32,
                    distance: report(self.metric, key),
                })
                .collect())
        })
    }
}

/// Opens an Annoy 1.17 index file; see [`AnnoyIndex::open`].
///
/// # Errors
/// As [`AnnoyIndex::open`].
pub fn open_annoy(path: impl AsRef<Path>, dim: usize, metric: Metric) -> Result<AnnoyIndex> {
    AnnoyIndex::open(path, dim, metric)
}
