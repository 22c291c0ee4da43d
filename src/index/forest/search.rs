//! Searching a forest: one priority queue over every tree, candidates
//! deduplicated with a reusable bitset, exact distances, top-n selection.
//!
//! Scratch buffers live in a thread-local, so a query allocates only its
//! result, and the visited bitset is cleared bit by bit through the
//! candidate list instead of wholesale.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::kernels::prefetch::{prefetch_read, prefetch_read_l2};
use crate::kernels::{F32Kernel, KernelTable};
use crate::{Metric, Result};

use super::format::{TreeLayout, LEAF};
use super::{Geometry, Hit};

/// How many candidates ahead the scoring loop requests rows, into L2 (see
/// [`crate::kernels::prefetch`]). 200k SIFT rows, 100 trees, one thread,
/// two alternating rounds, queries/s at search_k 16,000: 1.19-1.33k with
/// rows four ahead into L1; 1.55k sixteen ahead into L2 (8: 1.42-1.54k,
/// 32: 1.28-1.55k).
const PREFETCH_AHEAD: usize = 16;

/// One entry of the search queue: the priority of the subtree (higher
/// first), and where it is.
#[derive(Clone, Copy, Debug)]
struct Entry {
    prio: f32,
    tree: u32,
    node: u32,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.prio
            .total_cmp(&other.prio)
            .then_with(|| other.tree.cmp(&self.tree))
            .then_with(|| other.node.cmp(&self.node))
    }
}

#[derive(Default)]
struct Scratch {
    heap: BinaryHeap<Entry>,
    cand: Vec<u32>,
    visited: Vec<u64>,
    scored: Vec<(f32, u32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A borrowed view of a built forest, cheap to make per query.
pub(crate) struct View<'a> {
    pub metric: Metric,
    pub geo: Geometry,
    pub words: &'a [u32],
    pub floats: &'a [f32],
    pub bits: &'a [u64],
    pub trees: &'a [TreeLayout],
    pub n_items: usize,
    /// Word offset of the vectors and of the norms (angular).
    pub vectors: usize,
    pub norms: usize,
    pub dot: F32Kernel,
    pub dist: F32Kernel,
    pub table: &'static KernelTable,
    pub name: &'a str,
}

/// The query as the search uses it.
pub(crate) enum QueryVec<'q> {
    /// `comp` floats (the dot metric's extra component already zero), and
    /// the squared norm for angular.
    F32(&'q [f32], f32),
    Bits(&'q [u64]),
}

impl View<'_> {
    fn corrupt(&self, what: &str) -> crate::Error {
        super::format::corrupt(self.name, format!("corrupt forest: {what}"))
    }

    /// Top `n` neighbours of `q`, nearest first, into `out` (cleared first).
    pub(crate) fn search(
        &self,
        q: QueryVec<'_>,
        n: usize,
        search_k: usize,
        out: &mut Vec<Hit>,
    ) -> Result<()> {
        out.clear();
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let s = &mut *guard;
            let words = self.n_items.div_ceil(64);
            if s.visited.len() < words {
                s.visited.resize(words, 0);
            }
            let res = self.collect(&q, search_k, s);
            // Whatever happened, leave the bitset all zero for the next query.
            for &id in &s.cand {
                s.visited[id as usize / 64] = 0;
            }
            res?;
            self.score(&q, s);
            let keep = n.min(s.scored.len());
            if keep > 0 && keep < s.scored.len() {
                s.scored.select_nth_unstable_by(keep - 1, |a, b| {
                    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
                });
                s.scored.truncate(keep);
            }
            s.scored
                .sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            out.extend(s.scored.iter().map(|&(key, id)| Hit {
                id,
                distance: self.report(key),
            }));
            Ok(())
        })
    }

    /// Walks the trees best-first until `search_k` candidates (counting
    /// repeats, as Annoy does) are gathered; keeps each item once.
    ///
    /// Entries are distinct and totally ordered (priority, then tree, then
    /// node), so the walk is fully determined: taking the nearer child
    /// directly when it beats the queue's best visits exactly the nodes, in
    /// exactly the order, that pushing and popping it would.
    fn collect(&self, q: &QueryVec<'_>, search_k: usize, s: &mut Scratch) -> Result<()> {
        s.heap.clear();
        s.cand.clear();
        let start = match q {
            QueryVec::F32(..) => f32::INFINITY,
            QueryVec::Bits(_) => 0.0,
        };
        for (t, tree) in self.trees.iter().enumerate() {
            self.prefetch_node(tree, tree.root);
            s.heap.push(Entry {
                prio: start,
                tree: t as u32,
                node: tree.root,
            });
        }
        let pw = self.geo.plane_words;
        let comp = self.geo.comp;
        let mut raw = 0usize;
        let mut carry: Option<Entry> = None;
        while raw < search_k {
            let Some(e) = carry.take().or_else(|| s.heap.pop()) else {
                break;
            };
            let tree = &self.trees[e.tree as usize];
            if e.node & LEAF != 0 {
                let off = (e.node & !LEAF) as usize;
                let at = tree.leaves + off;
                let count = *self
                    .words
                    .get(at)
                    .filter(|_| off < tree.leaf_words as usize)
                    .ok_or_else(|| self.corrupt("leaf reference out of bounds"))?
                    as usize;
                if at + 1 + count > tree.end() {
                    return Err(self.corrupt("leaf runs past its tree"));
                }
                for &id in &self.words[at + 1..at + 1 + count] {
                    let idx = id as usize;
                    if idx >= self.n_items {
                        return Err(self.corrupt("leaf holds an unknown item"));
                    }
                    let (wi, bit) = (idx / 64, 1u64 << (idx % 64));
                    if s.visited[wi] & bit == 0 {
                        s.visited[wi] |= bit;
                        s.cand.push(id);
                    }
                }
                raw += count.max(1);
            } else {
                let sp = e.node as usize;
                let meta = tree.metas + 3 * sp;
                let (word0, left, right) =
                    (self.words[meta], self.words[meta + 1], self.words[meta + 2]);
                for child in [left, right] {
                    let ok = if child & LEAF != 0 {
                        (child & !LEAF) < tree.leaf_words
                    } else {
                        child as usize > sp && child < tree.n_splits
                    };
                    if !ok {
                        return Err(self.corrupt("split child out of order or bounds"));
                    }
                }
                let (pl, pr) = match q {
                    QueryVec::F32(v, _) => {
                        let plane = &self.floats[tree.planes + sp * pw..][..comp];
                        let m = self.dot.eval(plane, v) + f32::from_bits(word0);
                        (e.prio.min(-m), e.prio.min(m))
                    }
                    QueryVec::Bits(v) => {
                        let bit = word0 as usize;
                        let set = v
                            .get(bit / 64)
                            .ok_or_else(|| self.corrupt("split bit out of range"))?
                            >> (bit % 64)
                            & 1
                            == 1;
                        if set {
                            (e.prio - 1.0, e.prio)
                        } else {
                            (e.prio, e.prio - 1.0)
                        }
                    }
                };
                let er = Entry {
                    prio: pr,
                    tree: e.tree,
                    node: right,
                };
                let el = Entry {
                    prio: pl,
                    tree: e.tree,
                    node: left,
                };
                let (near, far) = if er > el { (er, el) } else { (el, er) };
                // The nearer child is usually the next node taken.
                self.prefetch_node(tree, near.node);
                s.heap.push(far);
                // When the nearer child would be the next entry popped
                // anyway (it beats the queue's best), go down to it without
                // the push and pop: the same walk, with fewer heap moves.
                if s.heap.peek().is_none_or(|top| near > *top) {
                    carry = Some(near);
                } else {
                    s.heap.push(near);
                }
            }
        }
        Ok(())
    }

    /// Starts loading node `node` of `tree` into cache: a split's plane and
    /// its children, or the head of a leaf. The walk is a chain of
    /// dependent loads (pop, read the node, push its children), so fetching
    /// the node that will be popped next while the heap is updated hides
    /// part of each round trip.
    #[inline]
    fn prefetch_node(&self, tree: &TreeLayout, node: u32) {
        let base = self.words.as_ptr() as *const u8;
        if node & LEAF != 0 {
            let at = tree.leaves + (node & !LEAF) as usize;
            prefetch_read(base.wrapping_add(at * 4));
            prefetch_read(base.wrapping_add(at * 4 + 64));
        } else {
            let sp = node as usize;
            prefetch_read(base.wrapping_add((tree.metas + 3 * sp) * 4));
            let plane = base.wrapping_add((tree.planes + sp * self.geo.plane_words) * 4);
            for line in (0..self.geo.comp * 4).step_by(64) {
                prefetch_read(plane.wrapping_add(line));
            }
        }
    }

    /// Starts loading candidate `k`'s row (if there is one) into L2:
    /// candidates are scattered over the arena, and each would otherwise
    /// cost a memory round trip.
    #[inline]
    fn prefetch(&self, cand: &[u32], k: usize) {
        if let Some(&id) = cand.get(k) {
            let bytes = self.geo.row_words * 4;
            let p = (self.floats.as_ptr() as *const u8)
                .wrapping_add(self.vectors * 4 + id as usize * bytes);
            for line in (0..bytes).step_by(64) {
                prefetch_read_l2(p.wrapping_add(line));
            }
        }
    }

    /// Exact distances (as ranking keys: smaller is nearer) of every candidate.
    fn score(&self, q: &QueryVec<'_>, s: &mut Scratch) {
        s.scored.clear();
        s.scored.reserve(s.cand.len());
        for k in 0..PREFETCH_AHEAD.min(s.cand.len()) {
            self.prefetch(&s.cand, k);
        }
        let rw = self.geo.row_words;
        match *q {
            QueryVec::F32(v, qq) => {
                let comp = self.geo.comp;
                let rows = &self.floats[self.vectors..];
                match self.metric {
                    Metric::Angular => {
                        let norms = &self.floats[self.norms..self.norms + self.n_items];
                        for (k, &id) in s.cand.iter().enumerate() {
                            self.prefetch(&s.cand, k + PREFETCH_AHEAD);
                            let x = &rows[id as usize * rw..][..comp];
                            let pq = self.dot.eval(v, x);
                            let ppqq = qq * norms[id as usize];
                            let d = if ppqq > 0.0 {
                                2.0 - 2.0 * pq / ppqq.sqrt()
                            } else {
                                2.0
                            };
                            s.scored.push((d, id));
                        }
                    }
                    Metric::Dot => {
                        for (k, &id) in s.cand.iter().enumerate() {
                            self.prefetch(&s.cand, k + PREFETCH_AHEAD);
                            let x = &rows[id as usize * rw..][..comp];
                            s.scored.push((-self.dot.eval(v, x), id));
                        }
                    }
                    _ => {
                        for (k, &id) in s.cand.iter().enumerate() {
                            self.prefetch(&s.cand, k + PREFETCH_AHEAD);
                            let x = &rows[id as usize * rw..][..comp];
                            s.scored.push((self.dist.eval(v, x), id));
                        }
                    }
                }
            }
            QueryVec::Bits(v) => {
                let words = rw / 2;
                let start = self.vectors / 2;
                for (k, &id) in s.cand.iter().enumerate() {
                    self.prefetch(&s.cand, k + PREFETCH_AHEAD);
                    let x = &self.bits[start + id as usize * words..][..v.len()];
                    s.scored.push((self.table.hamming(v, x) as f32, id));
                }
            }
        }
    }

    /// The distance reported to the user for a ranking key (Annoy's conventions).
    pub(crate) fn report(&self, key: f32) -> f32 {
        report(self.metric, key)
    }
}

/// Annoy's "normalized distance": Euclidean and angular as the square root
/// of the ranking key, dot as the inner product itself.
pub(crate) fn report(metric: Metric, key: f32) -> f32 {
    match metric {
        Metric::Euclidean | Metric::Angular => key.max(0.0).sqrt(),
        Metric::Manhattan => key.max(0.0),
        Metric::Dot => -key,
        _ => key,
    }
}
