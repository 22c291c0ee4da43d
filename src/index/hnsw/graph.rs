//! The HNSW graph: storage layout, insertion, search.
//!
//! # Layout
//!
//! Every node has a dense `u32` slot. Per slot:
//!
//! - its vector, a row of [`RowArena`]: 64-byte aligned, padded to whole
//!   cache lines;
//! - its level-0 links, a record of [`LinkArena`] (`2*M` ids, also 64-byte
//!   aligned; unused entries hold `EMPTY`, so no separate count is read);
//! - its upper-level links, `level * M` ids in a second, compact
//!   [`LinkArena`] of `M`-id records, found through `upper_offset`;
//! - its label, flags (deleted / not yet published) and lock.
//!
//! Vectors live in a parallel arena rather than inline after the links: the
//! rows are plain `f32` data written once and fed straight to the SIMD
//! kernels, while link words are atomics rewritten under per-node locks;
//! keeping them apart keeps both cache-line aligned without padding the
//! pair (`2*M` ids = 128 bytes plus a 512-byte SIFT row fill exactly ten
//! lines either way), and the search prefetches both for the candidates it
//! is about to score, so the split costs no extra miss.
//!
//! A node's level is a pure function of the seed and its slot, so the levels
//! (and hence the upper-link offsets) of every slot up to the capacity are
//! known when the capacity is set: inserting never allocates.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

use parking_lot::{Mutex, RwLock};

use super::blocks::Blocks;
use super::filter::{Filter, FilterStrategy};
use super::links::{LinkCounts, NearCounts, ORDER_BASE};
use super::pool::{LivePool, Pool};
use super::quant::{CodeQuery, Codes, Quantization};
use super::space::Space;
use super::visited::{PooledVisited, VisitedPool};
use crate::error::{Error, Result};
use crate::index::Neighbor;
use crate::kernels::prefetch::{prefetch_read, prefetch_read_l2};
use crate::rng::splitmix64;
use crate::store::{LinkArena, RowArena, Slab};

/// Flag: the node is marked deleted (still routes, never returned).
pub(crate) const DELETED: u8 = 1;
/// Flag: the node's slot is taken but its insert has not finished.
pub(crate) const PENDING: u8 = 2;
/// Flag: the slot holds no node (its node was removed); it waits for reuse.
pub(crate) const FREE: u8 = 4;
/// Flag (with `DELETED`): the node was removed, its label forgotten, but it
/// still routes until a sweep unlinks it (see `remove::Graph::remove_slots`).
pub(crate) const RETIRED: u8 = 8;

pub(crate) const NO_ENTRY: u64 = u64::MAX;
/// Levels are capped so that `level * M` stays small; with `mult = 1/ln(M)`
/// a level past 16 has probability below `M^-16`.
pub(crate) const MAX_LEVEL: u8 = 16;

/// A (distance, slot) pair ordered by distance, then slot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cand {
    pub dist: f32,
    pub slot: u32,
}

impl Eq for Cand {}

impl Ord for Cand {
    #[inline]
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.slot.cmp(&other.slot))
    }
}

impl PartialOrd for Cand {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

/// Min-heap adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Nearest(std::cmp::Reverse<Cand>);

/// How a node's links are chosen among the candidates a search found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NeighborSelection {
    /// The paper's heuristic (algorithm 4, as hnswlib): walk the candidates
    /// nearest first and keep one if it is closer to the node than to every
    /// candidate kept so far, which spreads links across directions. N2's
    /// `"heuristic"`.
    #[default]
    Heuristic,
    /// The nearest candidates (algorithm 3). N2's `"naive"`.
    Simple,
    /// The heuristic, then the nearest of the candidates it pruned fill the
    /// list up to its maximum (algorithm 4 with `keepPrunedConnections`).
    /// N2's `"heuristic_save_remains"`.
    HeuristicKeepPruned,
}

impl NeighborSelection {
    /// Its code in an index file's header.
    pub(crate) fn code(self) -> u64 {
        match self {
            NeighborSelection::Heuristic => 0,
            NeighborSelection::Simple => 1,
            NeighborSelection::HeuristicKeepPruned => 2,
        }
    }

    /// The selection a header code stands for.
    pub(crate) fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(NeighborSelection::Heuristic),
            1 => Some(NeighborSelection::Simple),
            2 => Some(NeighborSelection::HeuristicKeepPruned),
            _ => None,
        }
    }
}

/// Build parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub m: usize,
    pub m0: usize,
    pub ef_construction: usize,
    pub seed: u64,
    /// Level multiplier: a node's level is `floor(-ln(u) * mult)`.
    pub mult: f64,
    pub selection: NeighborSelection,
    /// Codes searched instead of the vectors (see the `quant` module).
    pub quantization: Quantization,
}

/// The paper's level multiplier for `M` links per node: `1 / ln(M)`.
pub(crate) fn default_mult(m: usize) -> f64 {
    1.0 / (m as f64).ln()
}

/// The level of `slot`: `floor(-ln(u) * mult)` with `u` uniform in (0, 1]
/// drawn from the seed and the slot; the paper's `mult` is `1 / ln(M)`
/// (section 4, [`default_mult`]).
pub(crate) fn level_for(seed: u64, slot: u32, mult: f64) -> u8 {
    let r = splitmix64(seed ^ splitmix64(u64::from(slot)));
    // 53 random bits -> (0, 1]
    let u = ((r >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let level = (-u.ln() * mult).floor();
    level.min(f64::from(MAX_LEVEL)) as u8
}

pub(crate) struct Graph<S: Space> {
    pub(crate) space: S,
    pub(crate) params: Params,
    pub(crate) vectors: RowArena<S::Elem>,
    /// Codes of the rows, once the quantizer is trained (see `quant`).
    pub(crate) codes: Option<Codes>,
    /// Neighbour records on 4-bit codes, once trained (see `blocks`).
    pub(crate) blocks: Option<Blocks>,
    /// Candidates a search on codes reranks exactly (0: the scheme's default).
    pub(crate) rerank: AtomicUsize,
    pub(crate) links0: LinkArena,
    pub(crate) upper: LinkArena,
    /// Per slot: level (0 = only on level 0).
    pub(crate) levels: Slab<u8>,
    /// Per slot: index of its first `M`-record in `upper`.
    pub(crate) upper_offset: Slab<u32>,
    pub(crate) labels: Slab<AtomicU64>,
    pub(crate) flags: Slab<AtomicU8>,
    /// Per slot: the node's join order (see the `links` module), 0 for a
    /// slot that holds no node.
    pub(crate) order: Slab<AtomicU64>,
    /// Per level-0 record and per upper record: how many lists hold the
    /// node on that level, and how many of those belong to earlier-joined
    /// nodes (its anchors). Empty while the graph is a read-only view.
    pub(crate) counts0: LinkCounts,
    pub(crate) counts_up: LinkCounts,
    /// Per slot: level-0 neighbourhood radius and near inbound links.
    pub(crate) near0: NearCounts,
    /// Per slot (empty while the graph is a read-only file view).
    pub(crate) locks: Vec<Mutex<()>>,
    /// Built on first use (a file view opens without reading every label).
    label_map: OnceLock<RwLock<HashMap<u64, u32>>>,
    /// The arrays are views of a file: nothing may be written through
    /// `&self`; `&mut self` operations first copy them ([`Graph::make_owned`]).
    pub(crate) read_only: bool,
    /// Slots handed out (published, being inserted, or free again): the
    /// slot range every per-slot loop covers.
    pub(crate) len: AtomicUsize,
    /// Labels marked deleted (retired nodes not included).
    pub(crate) deleted: AtomicUsize,
    /// Nodes retired (removed but not yet unlinked).
    pub(crate) retired: AtomicUsize,
    /// Slots below `len` that hold no node (removed), for reuse.
    pub(crate) free_slots: Mutex<Vec<u32>>,
    /// `free_slots.len()`, readable without the lock.
    pub(crate) free: AtomicUsize,
    /// `(max_level << 32) | entry slot`, or `NO_ENTRY`.
    pub(crate) entry: AtomicU64,
    pub(crate) entry_lock: Mutex<()>,
    /// Serializes the first inserts (see `warmup_len`).
    pub(crate) warmup_lock: Mutex<()>,
    /// The nodes that most recently finished joining level 0 (see
    /// `connect_new`).
    pub(crate) recent: Mutex<RecentJoins>,
    pub(crate) visited: VisitedPool,
    /// Slots marked deleted, for reuse (`None` until first needed; may hold
    /// slots unmarked since, which are skipped and pruned).
    deleted_slots: Mutex<Option<Vec<u32>>>,
    /// Next join order for an ordinary node (counts up from `ORDER_BASE`)
    /// and for a new entry point (counts down from it).
    pub(crate) next_order: AtomicU64,
    pub(crate) next_root_order: AtomicU64,
    /// Whether the join orders and anchors still have to be established
    /// (a graph read from a file that did not record them); done before
    /// the first change to the links.
    pub(crate) unanchored: Mutex<bool>,
    /// Node levels that lost their last anchor and found no new one (see
    /// the `links` module); re-anchored at the end of a batch.
    pub(crate) stranded: Mutex<Vec<(u32, u8)>>,
    /// Node levels put on `stranded` (each time one was), and nodes moved
    /// to the latest join order to anchor them, since this graph was built
    /// or read: how often the fallbacks run (see [`super::HnswStats`]).
    pub(crate) stranded_seen: AtomicU64,
    pub(crate) order_moves: AtomicU64,
    /// Nodes [`Graph::reinforce`] linked (see `HnswStats::reinforced`).
    pub(crate) reinforced: AtomicU64,
    /// Whether the level-0 radii and near counts still have to be derived
    /// from the links (a file that did not record them).
    near_unknown: Mutex<bool>,
    /// Tells this graph's [`LabelSet`](super::LabelSet)s from others'.
    pub(crate) graph_id: u64,
    /// Bumped whenever a slot changes hands (a freed slot reused, a deleted
    /// label replaced), which makes older label sets stale.
    pub(crate) slot_epoch: AtomicU64,
    /// Nanoseconds per distance (`f64` bits), timed on first use by the
    /// filter planner; 0 until then.
    pub(crate) distance_ns: AtomicU64,
}

/// A fresh [`Graph::graph_id`].
fn next_graph_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The arrays and counts a [`Graph`] is rebuilt from (a file's sections,
/// or a compacted copy). The caller has checked that every per-slot array
/// has `capacity` entries (the link arenas `capacity` and
/// `upper_offset[capacity-1] + levels[capacity-1]` records), that
/// `len <= capacity`, that `entry` is `(slot, level)` with `slot < len`,
/// and that `deleted` counts the deleted flags. Link ids and upper offsets
/// need no checking: reads are bounded.
pub(crate) struct GraphParts<S: Space> {
    pub space: S,
    pub params: Params,
    pub vectors: RowArena<S::Elem>,
    /// Codes of the rows under the params' scheme (the caller checked
    /// their sizes); `None` to train them later.
    pub codes: Option<Codes>,
    /// 4-bit codes of the rows under the params' scheme (records are
    /// packed when the graph is made); `None` to train them later.
    pub blocks: Option<Blocks>,
    pub links0: LinkArena,
    pub upper: LinkArena,
    pub levels: Slab<u8>,
    pub upper_offset: Slab<u32>,
    pub labels: Slab<AtomicU64>,
    pub flags: Slab<AtomicU8>,
    /// Join orders; `None` where the file did not record them (they are
    /// derived before the first change to the links).
    pub order: Option<Slab<AtomicU64>>,
    /// Level-0 radii and near counts; `None` to derive them from the links.
    pub near: Option<NearCounts>,
    pub len: usize,
    pub deleted: usize,
    pub entry: Option<(u32, usize)>,
}

/// A ring of the last [`RecentJoins::LEN`] nodes to join level 0, with a
/// running count, so an insert can list the nodes that joined while it
/// searched.
pub(crate) struct RecentJoins {
    ring: Vec<u32>,
    joined: u64,
}

impl Default for RecentJoins {
    fn default() -> Self {
        RecentJoins {
            ring: vec![u32::MAX; Self::LEN],
            joined: 0,
        }
    }
}

impl RecentJoins {
    /// Joins remembered: more than inserts run at once.
    pub(crate) const LEN: usize = 1024;

    /// The running count (to pass to [`RecentJoins::since`] later).
    pub(crate) fn mark(&self) -> u64 {
        self.joined
    }

    /// Appends to `out` the nodes that joined since `mark` (the last `LEN`
    /// at most), then records `slot` as joined.
    pub(crate) fn since_then_join(&mut self, mark: u64, slot: u32, out: &mut Vec<u32>) {
        let from = mark.max(self.joined.saturating_sub(Self::LEN as u64));
        for t in from..self.joined {
            out.push(self.ring[(t % Self::LEN as u64) as usize]);
        }
        self.ring[(self.joined % Self::LEN as u64) as usize] = slot;
        self.joined += 1;
    }
}

/// Scratch buffers for one insert or search.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) ids: Vec<u32>,
    pub(crate) fresh: Vec<u32>,
    /// Distances of `fresh`, and integer kernel results behind them.
    pub(crate) dists: Vec<f32>,
    pub(crate) dots: Vec<i32>,
    /// A query's FastScan table (searches on neighbour records).
    pub(crate) pq4: crate::quant::Pq4Lut,
    /// A code unpacked from a neighbour record.
    pub(crate) code: Vec<u8>,
}

impl<S: Space> Graph<S> {
    pub(crate) fn new(space: S, params: Params, capacity: usize) -> Self {
        let mut g = Graph {
            vectors: RowArena::new(space.vector_len(), 0),
            codes: None,
            blocks: None,
            rerank: AtomicUsize::new(0),
            links0: LinkArena::new(params.m0, 0),
            upper: LinkArena::new(params.m, 0),
            space,
            params,
            levels: Slab::default(),
            upper_offset: Slab::default(),
            labels: Slab::default(),
            flags: Slab::default(),
            order: Slab::default(),
            counts0: LinkCounts::default(),
            counts_up: LinkCounts::default(),
            near0: NearCounts::default(),
            locks: Vec::new(),
            label_map: OnceLock::from(RwLock::new(HashMap::new())),
            read_only: false,
            len: AtomicUsize::new(0),
            deleted: AtomicUsize::new(0),
            retired: AtomicUsize::new(0),
            free_slots: Mutex::new(Vec::new()),
            free: AtomicUsize::new(0),
            entry: AtomicU64::new(NO_ENTRY),
            entry_lock: Mutex::new(()),
            warmup_lock: Mutex::new(()),
            recent: Mutex::new(RecentJoins::default()),
            visited: VisitedPool::default(),
            deleted_slots: Mutex::new(None),
            next_order: AtomicU64::new(ORDER_BASE),
            next_root_order: AtomicU64::new(ORDER_BASE - 1),
            unanchored: Mutex::new(false),
            stranded: Mutex::new(Vec::new()),
            stranded_seen: AtomicU64::new(0),
            order_moves: AtomicU64::new(0),
            reinforced: AtomicU64::new(0),
            near_unknown: Mutex::new(false),
            graph_id: next_graph_id(),
            slot_epoch: AtomicU64::new(0),
            distance_ns: AtomicU64::new(0),
        };
        g.resize(capacity);
        g
    }

    /// A graph over arrays read from a file or rebuilt (owned or views);
    /// see [`GraphParts`] for what the caller has checked. Views make the
    /// graph read-only until [`Graph::make_owned`].
    pub(crate) fn from_parts(parts: GraphParts<S>) -> Self {
        let GraphParts {
            space,
            params,
            vectors,
            codes,
            blocks,
            links0,
            upper,
            levels,
            upper_offset,
            labels,
            flags,
            order,
            near,
            len,
            deleted,
            entry,
        } = parts;
        let near_known = near.is_some();
        let read_only = vectors.is_mapped()
            || codes.as_ref().is_some_and(|c| c.is_mapped())
            || blocks.as_ref().is_some_and(|b| b.is_mapped())
            || links0.is_mapped()
            || upper.is_mapped()
            || levels.is_mapped()
            || upper_offset.is_mapped()
            || labels.is_mapped()
            || flags.is_mapped()
            || order.as_ref().is_some_and(|o| o.is_mapped())
            || near.as_ref().is_some_and(|n| n.is_mapped());
        let unanchored = order.is_none();
        let capacity = levels.len();
        let mut g = Graph {
            space,
            params,
            vectors,
            codes,
            blocks,
            rerank: AtomicUsize::new(0),
            links0,
            upper,
            levels,
            upper_offset,
            labels,
            flags,
            order: order.unwrap_or_else(|| {
                Slab::from_vec((0..capacity).map(|_| AtomicU64::new(0)).collect())
            }),
            counts0: LinkCounts::default(),
            counts_up: LinkCounts::default(),
            near0: near.unwrap_or_default(),
            locks: Vec::new(),
            label_map: OnceLock::new(),
            read_only,
            len: AtomicUsize::new(len),
            deleted: AtomicUsize::new(deleted),
            retired: AtomicUsize::new(0),
            free_slots: Mutex::new(Vec::new()),
            free: AtomicUsize::new(0),
            entry: AtomicU64::new(match entry {
                Some((slot, level)) => ((level as u64) << 32) | u64::from(slot),
                None => NO_ENTRY,
            }),
            entry_lock: Mutex::new(()),
            warmup_lock: Mutex::new(()),
            recent: Mutex::new(RecentJoins::default()),
            visited: VisitedPool::default(),
            deleted_slots: Mutex::new(None),
            next_order: AtomicU64::new(ORDER_BASE),
            next_root_order: AtomicU64::new(ORDER_BASE - 1),
            unanchored: Mutex::new(unanchored),
            stranded: Mutex::new(Vec::new()),
            stranded_seen: AtomicU64::new(0),
            order_moves: AtomicU64::new(0),
            reinforced: AtomicU64::new(0),
            near_unknown: Mutex::new(false),
            graph_id: next_graph_id(),
            slot_epoch: AtomicU64::new(0),
            distance_ns: AtomicU64::new(0),
        };
        g.collect_free_slots();
        if unanchored {
            // Until the orders are derived, no slot counts as joined.
        } else {
            g.resume_order_counters();
        }
        *g.near_unknown.get_mut() = !near_known;
        if !read_only {
            g.own_bookkeeping();
        }
        g
    }

    /// Copies every array that is a file view into owned memory, so the
    /// graph can be modified. No-op for an owned graph.
    pub(crate) fn make_owned(&mut self) {
        if !self.read_only {
            return;
        }
        self.vectors.make_owned();
        if let Some(c) = &mut self.codes {
            c.make_owned();
        }
        if let Some(b) = &mut self.blocks {
            b.make_owned();
        }
        self.links0.make_owned();
        self.upper.make_owned();
        self.levels.make_owned();
        self.upper_offset.make_owned();
        self.labels.make_owned();
        self.flags.make_owned();
        self.order.make_owned();
        self.near0.make_owned();
        self.read_only = false;
        self.own_bookkeeping();
    }

    /// Sets up what only a writable graph keeps: the per-slot locks and
    /// the link counters (O(links): every list is read once). Under
    /// derived orders (see `unanchored`) the counters are rebuilt again
    /// once the orders exist.
    fn own_bookkeeping(&mut self) {
        let n = self.levels.len();
        self.locks.resize_with(n, || Mutex::new(()));
        self.rebuild_counts();
        if std::mem::take(self.near_unknown.get_mut()) {
            self.derive_near();
        }
        self.near0.resize(n);
        if !*self.unanchored.get_mut() && self.guards_reachability() && !self.anchors_hold() {
            // Orders read from a file that do not anchor every node: derive
            // them anew before the links change.
            *self.unanchored.get_mut() = true;
        }
    }

    /// Rebuilds the free-slot list from the flags.
    pub(crate) fn collect_free_slots(&mut self) {
        let n = self.len();
        let free: Vec<u32> = (0..n as u32)
            .rev()
            .filter(|&s| self.flags[s as usize].load(Ordering::Relaxed) & FREE != 0)
            .collect();
        self.free.store(free.len(), Ordering::Relaxed);
        *self.free_slots.get_mut() = free;
        let retired = (0..n)
            .filter(|&s| self.flags[s].load(Ordering::Relaxed) & RETIRED != 0)
            .count();
        self.retired.store(retired, Ordering::Relaxed);
    }

    /// Fails on a read-only file view (which `&self` must never write).
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::InvalidState(
                "the index is a read-only memory-mapped view; load() it, or call a \
                 `&mut self` method (which copies it), to modify it"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Label -> slot map, built on first use.
    pub(crate) fn label_map(&self) -> &RwLock<HashMap<u64, u32>> {
        self.label_map.get_or_init(|| {
            let n = self.len();
            let mut map = HashMap::with_capacity(n);
            for slot in 0..n as u32 {
                if self.flags[slot as usize].load(Ordering::Relaxed) & (FREE | RETIRED) == 0 {
                    map.insert(self.label(slot), slot);
                }
            }
            RwLock::new(map)
        })
    }

    /// Whether `slot` holds a published node (live or marked deleted).
    #[inline(always)]
    pub(crate) fn in_use(&self, slot: u32) -> bool {
        self.flags[slot as usize].load(Ordering::Acquire) & (PENDING | FREE) == 0
    }

    /// Whether `slot` has been claimed by an insert that has not finished.
    pub(crate) fn is_pending(&self, slot: u32) -> bool {
        self.flags[slot as usize].load(Ordering::Acquire) & PENDING != 0
    }

    /// Current entry point and top level (for saving).
    pub(crate) fn entry_raw(&self) -> Option<(u32, usize)> {
        self.entry()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.levels.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Grows every per-slot array to `capacity` slots (never shrinks below `len`).
    pub(crate) fn resize(&mut self, capacity: usize) {
        let old = self.levels.len();
        if capacity <= old {
            return;
        }
        self.make_owned();
        let mult = self.params.mult;
        let seed = self.params.seed;
        let mut next_upper = match old {
            0 => 0,
            _ => self.upper_offset[old - 1] + u32::from(self.levels[old - 1]),
        };
        let (levels, upper_offset) = (&mut self.levels, &mut self.upper_offset);
        levels.with_vec(|levels| {
            upper_offset.with_vec(|upper_offset| {
                levels.reserve_exact(capacity - old);
                upper_offset.reserve_exact(capacity - old);
                for slot in old..capacity {
                    let level = level_for(seed, slot as u32, mult);
                    levels.push(level);
                    upper_offset.push(next_upper);
                    next_upper += u32::from(level);
                }
            })
        });
        self.vectors.resize(capacity);
        if let Some(c) = &mut self.codes {
            c.resize(capacity);
        }
        if let Some(b) = &mut self.blocks {
            b.resize(capacity);
        }
        self.links0.resize(capacity);
        self.upper.resize(next_upper as usize);
        self.labels
            .with_vec(|v| v.resize_with(capacity, || AtomicU64::new(0)));
        self.flags
            .with_vec(|v| v.resize_with(capacity, || AtomicU8::new(0)));
        self.order
            .with_vec(|v| v.resize_with(capacity, || AtomicU64::new(0)));
        self.counts0.resize(capacity);
        self.counts_up.resize(next_upper as usize);
        self.near0.resize(capacity);
        self.locks.resize_with(capacity, || Mutex::new(()));
    }

    #[inline(always)]
    pub(crate) fn vector(&self, slot: u32) -> &[S::Elem] {
        self.vectors.row(slot as usize)
    }

    #[inline(always)]
    pub(crate) fn label(&self, slot: u32) -> u64 {
        self.labels[slot as usize].load(Ordering::Relaxed)
    }

    /// Whether `slot` holds a retired node.
    #[inline]
    pub(crate) fn is_retired(&self, slot: u32) -> bool {
        self.flags[slot as usize].load(Ordering::Acquire) & RETIRED != 0
    }

    /// Whether some node is deleted or retired (so not every node a search
    /// meets is a result).
    #[inline]
    pub(crate) fn has_deleted(&self) -> bool {
        self.deleted.load(Ordering::Relaxed) > 0 || self.retired.load(Ordering::Relaxed) > 0
    }

    #[inline(always)]
    pub(crate) fn is_deleted(&self, slot: u32) -> bool {
        self.flags[slot as usize].load(Ordering::Relaxed) & DELETED != 0
    }

    #[inline(always)]
    pub(crate) fn dist_to(&self, q: &[S::Elem], slot: u32) -> f32 {
        self.space.distance(q, self.vector(slot))
    }

    /// Reads the links of `slot` on `level` into `out`. Ids at or past the
    /// capacity, and records past the arena, are skipped, so a graph read
    /// from an unchecked file can mislead a search but never index out of
    /// bounds.
    #[inline(always)]
    pub(crate) fn read_links(&self, slot: u32, level: usize, out: &mut Vec<u32>) {
        let limit = self.levels.len() as u32;
        if level == 0 {
            self.links0.read_into_bounded(slot as usize, out, limit);
        } else {
            let rec = self.upper_offset[slot as usize] as usize + level - 1;
            self.upper.read_into_bounded(rec, out, limit);
        }
    }

    pub(crate) fn set_links(&self, slot: u32, level: usize, ids: &[u32]) {
        if level == 0 {
            self.links0.set(slot as usize, ids);
            if let Some(b) = &self.blocks {
                b.mark(slot);
            }
        } else {
            let rec = self.upper_offset[slot as usize] as usize + level - 1;
            self.upper.set(rec, ids);
        }
    }

    pub(crate) fn max_links(&self, level: usize) -> usize {
        if level == 0 {
            self.params.m0
        } else {
            self.params.m
        }
    }

    pub(crate) fn entry(&self) -> Option<(u32, usize)> {
        let e = self.entry.load(Ordering::Acquire);
        (e != NO_ENTRY).then_some((e as u32, (e >> 32) as usize))
    }

    /// Most lines of one row requested ahead (1 KiB): past them, the
    /// hardware prefetcher follows the kernel's sequential reads.
    const MAX_ROW_LINES: usize = 16;

    /// Starts loading `slot`'s row into L2 (see [`crate::kernels::prefetch`]):
    /// a search requests the rows of all of a node's unvisited neighbours at
    /// once, and into L1 they would fill its few miss buffers. Measured on
    /// 200k SIFT rows (512 bytes = 8 lines), one thread, the same graph,
    /// four alternating rounds, queries/s at ef 64: 8.3-9.1k requesting two
    /// lines per row into L1 up front and the rest one neighbour ahead;
    /// 11.8-12.9k with the first line into L1 and the rest into L2, then
    /// into L1 one neighbour ahead; 14.7-15.8k with whole rows into L2 and
    /// no L1 requests (the kernel's loads then hit L2).
    #[inline(always)]
    pub(crate) fn prefetch_row(&self, slot: u32) {
        let p = self.vectors.row_ptr(slot as usize);
        let lines = (self.vectors.row_bytes() / 64).min(Self::MAX_ROW_LINES);
        for i in 0..lines {
            prefetch_read_l2(p.wrapping_add(i * 64));
        }
    }

    /// Greedy descent from `cur` on `level` (ef = 1, as the paper's upper
    /// layers), scoring nodes with `dist` after `prefetch` has requested
    /// all of a node's neighbours.
    fn greedy_by(
        &self,
        mut cur: Cand,
        level: usize,
        ids: &mut Vec<u32>,
        prefetch: &impl Fn(u32),
        dist: &impl Fn(u32) -> f32,
    ) -> Cand {
        loop {
            let mut changed = false;
            self.read_links(cur.slot, level, ids);
            for &n in ids.iter() {
                prefetch(n);
            }
            for &n in ids.iter() {
                let d = dist(n);
                if d < cur.dist {
                    cur = Cand { dist: d, slot: n };
                    changed = true;
                }
            }
            if !changed {
                return cur;
            }
        }
    }

    /// Descends greedily from the entry point through `level + 1`... down
    /// to `stop_level` with distances from `dist` and returns the closest
    /// node found there (its distance from `dist`).
    fn descend_by(
        &self,
        stop_level: usize,
        scratch: &mut Scratch,
        prefetch: impl Fn(u32),
        dist: impl Fn(u32) -> f32,
    ) -> Option<Cand> {
        let (ep, max_level) = self.entry()?;
        let mut cur = Cand {
            dist: dist(ep),
            slot: ep,
        };
        let mut level = max_level;
        while level > stop_level {
            cur = self.greedy_by(cur, level, &mut scratch.ids, &prefetch, &dist);
            level -= 1;
        }
        Some(cur)
    }

    /// Descends from the entry point to `level + 1`... down to `stop_level`
    /// and returns the closest node found there, with its exact distance.
    pub(crate) fn descend(
        &self,
        q: &[S::Elem],
        stop_level: usize,
        scratch: &mut Scratch,
    ) -> Option<Cand> {
        self.descend_by(stop_level, scratch, |_| {}, |n| self.dist_to(q, n))
    }

    /// The descent to level 0 of an unfiltered query on an 8-bit coded
    /// graph, on the codes as its level-0 search: a code row is a quarter
    /// of a row's bytes, and an index whose rows stay in a mapped file then
    /// reads rows only to rerank. The returned distance is an estimate;
    /// [`search_base`](Self::search_base) on the codes scores its start
    /// itself.
    pub(crate) fn descend_on_codes(
        &self,
        cq: &CodeQuery<'_>,
        scratch: &mut Scratch,
    ) -> Option<Cand> {
        self.descend_by(0, scratch, |n| cq.prefetch(n), |n| cq.estimate(n))
    }

    /// Best-first search on one level (paper, algorithm 2), hnswlib-style:
    /// every node routes; only nodes that pass `accept` enter the results.
    /// Returns up to `ef` results, nearest first.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn search_level<F: Fn(u32) -> bool>(
        &self,
        q: &[S::Elem],
        entry: Cand,
        ef: usize,
        level: usize,
        visited: &mut PooledVisited<'_>,
        scratch: &mut Scratch,
        accept: Option<&F>,
    ) -> Vec<Cand> {
        self.search_level_by(
            |ids, out, _| out.extend(ids.iter().map(|&n| self.dist_to(q, n))),
            |n| self.prefetch_row(n),
            entry,
            ef,
            level,
            visited,
            scratch,
            accept,
        )
    }

    /// [`Graph::search_level`] with distances from `score` (exact, or
    /// estimated from codes), which appends the distances of its first
    /// argument's nodes to its second (the third is integer scratch), and
    /// rows loaded ahead by `prefetch`. `entry`'s distance must be on
    /// `score`'s scale.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn search_level_by<F: Fn(u32) -> bool>(
        &self,
        score: impl Fn(&[u32], &mut Vec<f32>, &mut Vec<i32>),
        prefetch: impl Fn(u32),
        entry: Cand,
        ef: usize,
        level: usize,
        visited: &mut PooledVisited<'_>,
        scratch: &mut Scratch,
        accept: Option<&F>,
    ) -> Vec<Cand> {
        let filtering = accept.is_some() || self.has_deleted();
        // Without deletions or a filter every node is a result: skip reading
        // its flags (a likely cache miss per candidate).
        let ok = |slot: u32| -> bool {
            !filtering || (!self.is_deleted(slot) && accept.is_none_or(|f| f(slot)))
        };
        if !filtering {
            // Every node is a result: the best `ef` seen are the candidates
            // to expand too, one sorted pool (see `Pool`).
            let mut pool = Pool::new(ef);
            visited.check_and_mark(entry.slot);
            pool.push(entry);
            while let Some(u) = pool.pop() {
                self.score_unvisited(u, level, visited, scratch, &score, &prefetch);
                for (&n, &d) in scratch.fresh.iter().zip(&scratch.dists) {
                    if pool.admits(d) {
                        pool.push(Cand { dist: d, slot: n });
                    }
                }
                let mut upcoming = pool.upcoming();
                if let Some(next) = upcoming.next() {
                    prefetch_read(self.links0.record_ptr(next as usize));
                    if let Some(after) = upcoming.next() {
                        prefetch_read(self.links0.record_ptr(after as usize));
                    }
                }
            }
            return pool.into_sorted();
        }
        let mut results: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
        let mut frontier: BinaryHeap<Nearest> = BinaryHeap::with_capacity(ef * 2);
        visited.check_and_mark(entry.slot);
        let mut bound = f32::INFINITY;
        if ok(entry.slot) {
            results.push(entry);
            bound = entry.dist;
        }
        frontier.push(Nearest(std::cmp::Reverse(entry)));

        while let Some(&Nearest(std::cmp::Reverse(c))) = frontier.peek() {
            if c.dist > bound && (results.len() >= ef || !filtering) {
                break;
            }
            frontier.pop();
            self.score_unvisited(c.slot, level, visited, scratch, &score, &prefetch);
            for (&n, &d) in scratch.fresh.iter().zip(&scratch.dists) {
                if results.len() < ef || d < bound {
                    let cand = Cand { dist: d, slot: n };
                    frontier.push(Nearest(std::cmp::Reverse(cand)));
                    if ok(n) {
                        results.push(cand);
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                    if let Some(top) = results.peek() {
                        bound = top.dist;
                    }
                }
            }
            if let Some(&Nearest(std::cmp::Reverse(next))) = frontier.peek() {
                prefetch_read(self.links0.record_ptr(next.slot as usize));
            }
        }
        let mut out = results.into_vec();
        out.sort_unstable();
        out
    }

    /// Expands `u` on `level` for a best-first search: its unvisited
    /// neighbours, now marked, into `scratch.fresh` and their distances
    /// from `score` into `scratch.dists`. Pass 1 drops the visited ones and
    /// starts loading the rest (`prefetch`), so their memory latencies
    /// overlap instead of queueing one by one; pass 2 scores them.
    #[inline(always)]
    fn score_unvisited(
        &self,
        u: u32,
        level: usize,
        visited: &mut PooledVisited<'_>,
        scratch: &mut Scratch,
        score: &impl Fn(&[u32], &mut Vec<f32>, &mut Vec<i32>),
        prefetch: &impl Fn(u32),
    ) {
        self.read_links(u, level, &mut scratch.ids);
        scratch.fresh.clear();
        for &n in &scratch.ids {
            if !visited.check_and_mark(n) {
                scratch.fresh.push(n);
                prefetch(n);
            }
        }
        scratch.dists.clear();
        score(&scratch.fresh, &mut scratch.dists, &mut scratch.dots);
    }

    /// Chooses up to `m` links among `cands` (sorted nearest first) by the
    /// index's [`NeighborSelection`]; `out` is sorted nearest first.
    pub(crate) fn select_neighbors(&self, cands: &[Cand], m: usize, out: &mut Vec<Cand>) {
        match self.params.selection {
            NeighborSelection::Heuristic => self.select_heuristic(cands, m, out),
            NeighborSelection::Simple => {
                out.clear();
                out.extend(cands.iter().take(m));
            }
            NeighborSelection::HeuristicKeepPruned => {
                self.select_heuristic(cands, m, out);
                if out.len() < m {
                    // `out` is a subsequence of `cands`: walk both in step
                    // and add the nearest candidates the heuristic pruned.
                    let before = out.len();
                    let mut kept = 0;
                    for c in cands {
                        if out.len() >= m {
                            break;
                        }
                        if kept < before && out[kept] == *c {
                            kept += 1;
                        } else {
                            out.push(*c);
                        }
                    }
                    out.sort_unstable();
                }
            }
        }
    }

    /// Neighbour selection heuristic (paper, algorithm 4, without extending
    /// or keeping pruned candidates, as hnswlib does): walk candidates
    /// nearest first, keep one if it is closer to the base than to every
    /// neighbour kept so far. `cands` must be sorted nearest first.
    fn select_heuristic(&self, cands: &[Cand], m: usize, out: &mut Vec<Cand>) {
        out.clear();
        if cands.len() <= m {
            out.extend_from_slice(cands);
            return;
        }
        for &c in cands {
            if out.len() >= m {
                break;
            }
            let cv = self.vector(c.slot);
            let good = out
                .iter()
                .all(|s| self.space.distance(cv, self.vector(s.slot)) >= c.dist);
            if good {
                out.push(c);
            }
        }
    }

    /// The level-0 search of a query from `start`: on the codes with an
    /// exact rerank where the graph has codes (`cq`, the query prepared for
    /// them by [`Graph::code_query`]), else on the vectors. At most `k`
    /// results (more are fine: callers take `k`), nearest first, exact
    /// distances.
    #[allow(clippy::too_many_arguments)]
    fn search_base<F: Fn(u32) -> bool>(
        &self,
        q: &[S::Elem],
        cq: Option<&CodeQuery<'_>>,
        start: Cand,
        k: usize,
        ef: usize,
        visited: &mut PooledVisited<'_>,
        scratch: &mut Scratch,
        accept: Option<&F>,
    ) -> Vec<Cand> {
        if accept.is_none() && self.blocks.is_some() {
            let found = match self.has_deleted() {
                true => self.search_blocks::<LivePool>(q, start, k, ef, visited, scratch),
                false => self.search_blocks::<Pool>(q, start, k, ef, visited, scratch),
            };
            if let Some(found) = found {
                return found;
            }
        }
        if let Some(cq) = cq {
            let start = Cand {
                dist: cq.estimate(start.slot),
                slot: start.slot,
            };
            let found = self.search_level_by(
                |ids, out, dots| cq.estimate_many(ids, out, dots),
                |n| cq.prefetch(n),
                start,
                ef,
                0,
                visited,
                scratch,
                accept,
            );
            let rerank = match self.rerank.load(Ordering::Relaxed) {
                0 => self.params.quantization.default_rerank(k, ef),
                r => r,
            };
            return self.rerank(q, found, k, rerank);
        }
        self.search_level(q, start, ef, 0, visited, scratch, accept)
    }

    /// k nearest non-deleted nodes that `filter` allows, found by `plan`'s
    /// strategy (not `Auto`).
    pub(crate) fn knn_filtered(
        &self,
        q: &[S::Elem],
        k: usize,
        ef: usize,
        filter: &Filter<'_>,
        plan: FilterStrategy,
        scratch: &mut Scratch,
    ) -> Vec<Neighbor> {
        let accept = |slot: u32| match filter {
            Filter::Set(set) => set.contains_slot(slot),
            Filter::Fn(f) => f(self.label(slot)),
        };
        let ef = ef.max(k);
        let found = match plan {
            FilterStrategy::Scan => self.scan_filtered(q, k, filter),
            FilterStrategy::Walk | FilterStrategy::Auto | FilterStrategy::TwoHop => {
                let Some(start) = self.descend(q, 0, scratch) else {
                    return Vec::new();
                };
                let cq = self.code_query(q);
                let mut visited = self.visited.get(self.capacity());
                if plan == FilterStrategy::TwoHop {
                    let found = self.search_two_hop(q, start, ef, &mut visited, scratch, &accept);
                    if found.len() >= ef {
                        return self.neighbors(found, k);
                    }
                    // Two hops ran out of allowed nodes before `ef` of them
                    // were found: what they reached is cut off from the
                    // rest of the allowed set (or is all of it), and the
                    // plain walk, which routes through rejected nodes, is
                    // the search that reaches every allowed node.
                    drop(visited);
                    visited = self.visited.get(self.capacity());
                }
                self.search_base(
                    q,
                    cq.as_ref(),
                    start,
                    k,
                    ef,
                    &mut visited,
                    scratch,
                    Some(&accept),
                )
            }
        };
        self.neighbors(found, k)
    }

    /// k nearest non-deleted nodes to the prepared query `q` (filtered
    /// searches go through [`Graph::knn_filtered`]).
    pub(crate) fn knn(
        &self,
        q: &[S::Elem],
        k: usize,
        ef: usize,
        scratch: &mut Scratch,
    ) -> Vec<Neighbor> {
        let cq = self.code_query(q);
        let start = match &cq {
            Some(cq) => self.descend_on_codes(cq, scratch),
            None => self.descend(q, 0, scratch),
        };
        let Some(start) = start else {
            return Vec::new();
        };
        let ef = ef.max(k);
        let mut visited = self.visited.get(self.capacity());
        let found = self.search_base::<fn(u32) -> bool>(
            q,
            cq.as_ref(),
            start,
            k,
            ef,
            &mut visited,
            scratch,
            None,
        );
        self.neighbors(found, k)
    }

    /// The `k` nearest to the stored vector of `slot`, the level-0 search
    /// starting at the slot itself (N2's search by id): a live item is
    /// always among its own results, whatever `ef`.
    pub(crate) fn knn_from_slot(
        &self,
        slot: u32,
        k: usize,
        ef: usize,
        scratch: &mut Scratch,
    ) -> Vec<Neighbor> {
        let q = self.vector(slot).to_vec();
        let start = Cand {
            dist: self.dist_to(&q, slot),
            slot,
        };
        let mut visited = self.visited.get(self.capacity());
        let found = self.search_level::<fn(u32) -> bool>(
            &q,
            start,
            ef.max(k),
            0,
            &mut visited,
            scratch,
            None,
        );
        self.neighbors(found, k)
    }

    /// The first `k` of `found` (nearest first) with their labels.
    fn neighbors(&self, found: Vec<Cand>, k: usize) -> Vec<Neighbor> {
        found
            .into_iter()
            .take(k)
            .map(|c| Neighbor {
                label: self.label(c.slot),
                distance: c.dist,
            })
            .collect()
    }

    /// Approximate heap bytes held by the graph.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.vectors.allocated_bytes()
            + self.codes.as_ref().map_or(0, Codes::allocated_bytes)
            + self.blocks.as_ref().map_or(0, Blocks::allocated_bytes)
            + self.links0.allocated_bytes()
            + self.upper.allocated_bytes()
            + self.capacity() * (1 + 4 + 8 + 1 + 8 + std::mem::size_of::<Mutex<()>>())
            + self.counts0.allocated_bytes()
            + self.counts_up.allocated_bytes()
            + self.near0.allocated_bytes()
            + self.label_map.get().map_or(0, |m| m.read().capacity() * 16)
    }

    /// Label -> slot, if present and published.
    pub(crate) fn slot_of(&self, label: u64) -> Option<u32> {
        let slot = *self.label_map().read().get(&label)?;
        (self.flags[slot as usize].load(Ordering::Acquire) & PENDING == 0).then_some(slot)
    }

    /// The stored vector of a published slot.
    pub(crate) fn row(&self, slot: u32) -> &[S::Elem] {
        self.vector(slot)
    }

    /// A slot marked deleted, to reuse, or `None` when there is none.
    /// Amortized O(1): the first call scans the flags once.
    pub(crate) fn take_deleted_slot(&self) -> Option<u32> {
        let mut list = self.deleted_slots.lock();
        let list = list.get_or_insert_with(|| {
            (0..self.len() as u32)
                .rev()
                .filter(|&s| self.is_marked_deleted(s))
                .collect()
        });
        while let Some(slot) = list.pop() {
            if self.is_marked_deleted(slot) {
                return Some(slot);
            }
        }
        None
    }

    /// Whether `slot` holds a label marked deleted (not a retired node).
    fn is_marked_deleted(&self, slot: u32) -> bool {
        self.flags[slot as usize].load(Ordering::Acquire) & (DELETED | RETIRED | FREE | PENDING)
            == DELETED
    }

    pub(crate) fn set_deleted(&self, slot: u32, deleted: bool) -> bool {
        let f = &self.flags[slot as usize];
        let was = if deleted {
            f.fetch_or(DELETED, Ordering::AcqRel)
        } else {
            f.fetch_and(!DELETED, Ordering::AcqRel)
        };
        let changed = (was & DELETED != 0) != deleted;
        if changed {
            if deleted {
                let now = self.deleted.fetch_add(1, Ordering::AcqRel) + 1;
                if let Some(list) = self.deleted_slots.lock().as_mut() {
                    list.push(slot);
                    // Marking and unmarking the same labels over and over
                    // leaves stale entries: prune them before they outgrow
                    // the deleted count.
                    if list.len() > 2 * now + 1024 {
                        list.retain(|&s| self.is_deleted(s));
                        list.sort_unstable();
                        list.dedup();
                    }
                }
            } else {
                self.deleted.fetch_sub(1, Ordering::AcqRel);
            }
        }
        changed
    }

    /// Counts over the published slots: (nodes, level-0 links, nodes on
    /// level 1 or above, upper-level links).
    pub(crate) fn shape(&self) -> (usize, usize, usize, usize) {
        let (mut nodes, mut links0, mut upper_nodes, mut upper_links) = (0, 0, 0, 0);
        let mut ids = Vec::new();
        for slot in 0..self.len() as u32 {
            if !self.in_use(slot) {
                continue;
            }
            nodes += 1;
            self.read_links(slot, 0, &mut ids);
            links0 += ids.len();
            let level = usize::from(self.levels[slot as usize]);
            if level > 0 {
                upper_nodes += 1;
            }
            for l in 1..=level {
                self.read_links(slot, l, &mut ids);
                upper_links += ids.len();
            }
        }
        (nodes, links0, upper_nodes, upper_links)
    }

    /// Links of `slot` on `level` (for tests and saving).
    pub(crate) fn links(&self, slot: u32, level: usize) -> Vec<u32> {
        let mut v = Vec::new();
        self.read_links(slot, level, &mut v);
        v
    }

    pub(crate) fn entry_point(&self) -> Option<(u32, usize)> {
        self.entry()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's level is a pure function of the seed and its slot; saved
    /// seeds must keep giving the same levels.
    #[test]
    fn levels_are_pinned() {
        let levels: Vec<u8> = (0..8).map(|s| level_for(42, s, 2.0)).collect();
        assert_eq!(levels, [2, 1, 4, 2, 1, 0, 3, 1]);
    }
}
