//! Filtered search: which labels may be returned, and how the search
//! finds them.
//!
//! A walk that routes through rejected nodes (hnswlib's way) spends most
//! of its distances on nodes it may not return: with a share `f` of labels
//! allowed it scores about `1/f` nodes per result, and below a few percent
//! it collapses (on 200,000 SIFT rows at 1% allowed: 1,200 queries/s at
//! recall 0.996, against 33,000 for an exact scan of the allowed rows).
//! So a filtered search is planned. The share of allowed labels is counted
//! (a [`LabelSet`]) or estimated (a predicate, tested on 256 labels, which
//! also times a call), and the planner compares the cost of
//!
//! - a walk ([`FilterStrategy::Walk`]): about `M0 / 2` distances and
//!   predicate calls per `f`-th of a result, `ef` results;
//! - an exact scan of the allowed rows ([`FilterStrategy::Scan`]): one
//!   distance per allowed row, plus one call per label for a predicate;
//!
//! and, for a batch of queries under one predicate, the one-off cost of
//! turning the predicate into a [`LabelSet`] (a call per label) that every
//! query then tests with one bit.
//!
//! [`FilterStrategy::TwoHop`] walks allowed nodes only, looking through a
//! rejected neighbour to its own neighbours (ACORN-1's expansion). On a
//! graph built for unfiltered search (M = 16 on 200,000 SIFT rows) it
//! trailed the plain walk at every share measured (at 10%: recall 0.97 at
//! 7,500 queries/s, where the walk reached 0.997 at 4,900 and 0.983 at
//! 8,000; at 1% its recall stalled at 0.87), because two hops of 32 links
//! do not keep a sparse allowed set connected. The planner therefore never
//! picks it; it stays available for graphs built denser.
//!
//! The choice comes back as a [`FilterPlan`], and a caller may force one.

use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;

use super::graph::{Cand, Graph, Scratch};
use super::space::Space;
use super::visited::PooledVisited;

/// The labels a filtered search may return.
#[derive(Clone, Copy)]
pub enum Filter<'a> {
    /// Labels for which the function returns true. It is called from the
    /// searching thread, possibly many times per query, and must be cheap.
    Fn(&'a (dyn Fn(u64) -> bool + Sync)),
    /// The labels of a [`LabelSet`] built for this index.
    Set(&'a LabelSet),
}

impl std::fmt::Debug for Filter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filter::Fn(_) => f.write_str("Filter::Fn(..)"),
            Filter::Set(s) => write!(f, "Filter::Set({} labels)", s.len()),
        }
    }
}

/// How a filtered search finds its results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FilterStrategy {
    /// Let the planner choose from the share of allowed labels.
    #[default]
    Auto,
    /// Walk the graph, rejected nodes included (they route but are never
    /// returned): hnswlib's filtered search. Best when most labels pass.
    Walk,
    /// Walk allowed nodes only; a rejected neighbour is looked through to
    /// its own neighbours (ACORN-1's two-hop expansion); when that runs out
    /// of allowed nodes before finding `ef` of them (the allowed nodes two
    /// hops reach are not connected to the rest), the plain walk follows,
    /// so an `ef` above the number of allowed labels gives the exact
    /// answer. Never planned on its own (see the module documentation).
    TwoHop,
    /// Score every allowed row: exact, and cheapest when few are allowed.
    Scan,
}

/// What a filtered search did, from
/// [`HnswIndex::search_filtered`](super::HnswIndex::search_filtered) or
/// [`HnswIndex::plan_filter`](super::HnswIndex::plan_filter).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FilterPlan {
    /// The strategy used (never [`FilterStrategy::Auto`]).
    pub strategy: FilterStrategy,
    /// The share of the index's labels the filter allows.
    pub allowed_fraction: f64,
    /// Whether that share was counted (a [`LabelSet`]) rather than
    /// estimated from a sample of labels (a predicate).
    pub exact_fraction: bool,
    /// Whether a predicate was evaluated once for every label and the
    /// queries tested the resulting set (batches only).
    pub materialized: bool,
}

/// A set of labels of one index, kept as a bitmap over its slots (one bit
/// per slot, plus the list of allowed slots for scans), so a filtered
/// search tests a node with one bit. Build it with
/// [`HnswIndex::label_set`](super::HnswIndex::label_set) and reuse it for
/// every query with the same filter. It stays valid while no slot changes
/// hands (inserts are fine; a removed or replaced label whose slot is
/// reused makes it stale, and a search with it then fails).
#[derive(Clone, Debug)]
pub struct LabelSet {
    bits: Vec<u64>,
    slots: Vec<u32>,
    graph_id: u64,
    epoch: u64,
}

impl LabelSet {
    /// Labels in the set that the index held when it was built.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the set holds none of the index's labels.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    #[inline(always)]
    pub(crate) fn contains_slot(&self, slot: u32) -> bool {
        self.bits
            .get(slot as usize / 64)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }
}

/// Labels tested to estimate a predicate's share.
const SAMPLE: usize = 256;
/// Distances timed to price a distance against a predicate call.
const TIMED_DISTANCES: usize = 32;

/// What the planner needs to know about a filter.
struct FilterCosts {
    /// Share of labels allowed.
    fraction: f64,
    exact: bool,
    /// Nanoseconds per distance and per predicate call (0 for a set).
    distance_ns: f64,
    call_ns: f64,
}

impl<S: Space> Graph<S> {
    /// A [`LabelSet`] of the labels for which `f` is true (one call per
    /// label, on this thread: a predicate that takes a lock, such as a
    /// Python callable taking the GIL, gains nothing from more).
    pub(crate) fn label_set_where(&self, f: &(dyn Fn(u64) -> bool + Sync)) -> LabelSet {
        let n = self.len();
        let slots: Vec<u32> = (0..n as u32)
            .filter(|&s| self.in_use(s) && !self.is_retired(s) && f(self.label(s)))
            .collect();
        let mut bits = vec![0u64; n.div_ceil(64)];
        for &s in &slots {
            bits[s as usize / 64] |= 1 << (s % 64);
        }
        LabelSet {
            bits,
            slots,
            graph_id: self.graph_id,
            epoch: self.slot_epoch.load(Ordering::Acquire),
        }
    }

    /// A [`LabelSet`] of the given labels (labels not in the index, or
    /// retired, are left out).
    pub(crate) fn label_set(&self, labels: &mut dyn Iterator<Item = u64>) -> LabelSet {
        let n = self.len();
        let mut bits = vec![0u64; n.div_ceil(64)];
        let mut slots = Vec::new();
        let map = self.label_map().read();
        for l in labels {
            if let Some(&s) = map.get(&l) {
                let (w, b) = (s as usize / 64, 1u64 << (s % 64));
                if bits[w] & b == 0 {
                    bits[w] |= b;
                    slots.push(s);
                }
            }
        }
        slots.sort_unstable();
        LabelSet {
            bits,
            slots,
            graph_id: self.graph_id,
            epoch: self.slot_epoch.load(Ordering::Acquire),
        }
    }

    /// The share of labels `filter` allows, and whether it is exact.
    pub(crate) fn allowed_fraction(&self, filter: &Filter<'_>) -> (f64, bool) {
        let live = (self.len() - self.free.load(Ordering::Acquire)).max(1);
        match filter {
            Filter::Set(s) => ((s.len() as f64 / live as f64).min(1.0), true),
            Filter::Fn(f) => {
                let n = self.len();
                if n == 0 {
                    return (1.0, false);
                }
                // Slots at a fixed odd stride through the whole range: the
                // same sample every time, spread over every insert batch.
                let step = (n / SAMPLE).max(1) | 1;
                let (mut seen, mut passed) = (0usize, 0usize);
                let mut s = 0usize;
                for _ in 0..SAMPLE.min(n) {
                    let slot = s as u32;
                    if self.in_use(slot) && !self.is_deleted(slot) {
                        seen += 1;
                        passed += usize::from(f(self.label(slot)));
                    }
                    s = (s + step) % n;
                }
                if seen == 0 {
                    return (1.0, false);
                }
                // None of the sample passing means "under 1/seen", not zero.
                let f = (passed as f64).max(0.5) / seen as f64;
                (f.min(1.0), false)
            }
        }
    }

    /// The share `filter` allows, and the time of a distance and of a
    /// predicate call on this machine now.
    fn costs(&self, filter: &Filter<'_>) -> FilterCosts {
        let started = std::time::Instant::now();
        let (fraction, exact) = self.allowed_fraction(filter);
        let call_ns = match filter {
            Filter::Set(_) => 0.0,
            Filter::Fn(_) => started.elapsed().as_nanos() as f64 / SAMPLE as f64,
        };
        FilterCosts {
            fraction,
            exact,
            distance_ns: self.distance_ns(),
            call_ns,
        }
    }

    /// Nanoseconds per distance between rows spread over the index (as a
    /// walk reads them): timed once per index, on first use.
    fn distance_ns(&self) -> f64 {
        let known = self.distance_ns.load(Ordering::Relaxed);
        if known != 0 {
            return f64::from_bits(known);
        }
        let n = self.len();
        let mut distance_ns = 50.0;
        if n >= 2 {
            let step = (n / TIMED_DISTANCES).max(1);
            let started = std::time::Instant::now();
            let mut sum = 0.0f32;
            for i in 0..TIMED_DISTANCES.min(n - 1) {
                let (a, b) = ((i * step) % n, (i * step + n / 2) % n);
                sum += self
                    .space
                    .distance(self.vector(a as u32), self.vector(b as u32));
            }
            std::hint::black_box(sum);
            distance_ns = (started.elapsed().as_nanos() as f64 / TIMED_DISTANCES as f64).max(1.0);
            self.distance_ns
                .store(distance_ns.to_bits(), Ordering::Relaxed);
        }
        distance_ns
    }

    /// The plan for `queries` queries under `filter` at this `ef`
    /// (`forced` unless it is `Auto`; a batch may turn a predicate into a
    /// set first).
    pub(crate) fn plan(
        &self,
        filter: &Filter<'_>,
        ef: usize,
        forced: FilterStrategy,
        queries: usize,
    ) -> FilterPlan {
        let c = self.costs(filter);
        let live = (self.len() - self.free.load(Ordering::Acquire)) as f64;
        let allowed = c.fraction * live;
        let walk_visits = self.params.m0 as f64 / 2.0 * ef as f64 / c.fraction;
        // Per query: a walk pays a distance and a test per node it visits;
        // a scan a distance per allowed row and a test per label.
        let per_query = |call_ns: f64| {
            let walk = walk_visits * (c.distance_ns + call_ns);
            let scan = allowed * c.distance_ns + live * call_ns;
            if scan <= walk {
                (FilterStrategy::Scan, scan)
            } else {
                (FilterStrategy::Walk, walk)
            }
        };
        let (mut strategy, direct) = per_query(c.call_ns);
        let mut materialized = false;
        if matches!(filter, Filter::Fn(_)) && queries > 1 {
            let (set_strategy, set_cost) = per_query(0.0);
            if live * c.call_ns + queries as f64 * set_cost < queries as f64 * direct {
                materialized = true;
                strategy = set_strategy;
            }
        }
        if forced != FilterStrategy::Auto {
            strategy = forced;
            materialized = materialized && forced != FilterStrategy::Walk;
        }
        FilterPlan {
            strategy,
            allowed_fraction: c.fraction,
            exact_fraction: c.exact,
            materialized,
        }
    }

    /// The `k` nearest allowed, non-deleted nodes by an exact scan of the
    /// allowed rows, nearest first.
    pub(crate) fn scan_filtered(&self, q: &[S::Elem], k: usize, filter: &Filter<'_>) -> Vec<Cand> {
        let mut top: BinaryHeap<Cand> = BinaryHeap::with_capacity(k + 1);
        let mut consider = |slot: u32| {
            if !self.in_use(slot) || self.is_deleted(slot) {
                return;
            }
            let d = self.dist_to(q, slot);
            if top.len() < k {
                top.push(Cand { dist: d, slot });
            } else if top.peek().is_some_and(|t| d < t.dist) {
                top.pop();
                top.push(Cand { dist: d, slot });
            }
        };
        match filter {
            Filter::Set(s) => {
                for (i, &slot) in s.slots.iter().enumerate() {
                    if let Some(&next) = s.slots.get(i + 4) {
                        self.prefetch_row(next);
                    }
                    if (slot as usize) < self.len() {
                        consider(slot);
                    }
                }
            }
            Filter::Fn(f) => {
                for slot in 0..self.len() as u32 {
                    if self.in_use(slot) && f(self.label(slot)) {
                        consider(slot);
                    }
                }
            }
        }
        let mut out = top.into_vec();
        out.sort_unstable();
        out
    }

    /// Best-first search on level 0 that scores and queues allowed nodes
    /// only: a rejected neighbour is marked visited and its own neighbours
    /// are looked at instead (ACORN-1's two-hop expansion). Deleted nodes
    /// are treated as rejected. Returns up to `ef` results, nearest first.
    pub(crate) fn search_two_hop(
        &self,
        q: &[S::Elem],
        entry: Cand,
        ef: usize,
        visited: &mut PooledVisited<'_>,
        scratch: &mut Scratch,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Cand> {
        let ok = |slot: u32| !self.is_deleted(slot) && accept(slot);
        let mut results: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
        let mut frontier: BinaryHeap<std::cmp::Reverse<Cand>> = BinaryHeap::with_capacity(ef * 2);
        visited.check_and_mark(entry.slot);
        // The entry routes even when rejected: it is where the descent
        // through the upper levels ended.
        frontier.push(std::cmp::Reverse(entry));
        if ok(entry.slot) {
            results.push(entry);
        }
        let mut second = Vec::new();
        while let Some(std::cmp::Reverse(c)) = frontier.pop() {
            if results.len() >= ef && results.peek().is_some_and(|t| c.dist > t.dist) {
                break;
            }
            self.read_links(c.slot, 0, &mut scratch.ids);
            scratch.fresh.clear();
            for &n in &scratch.ids {
                if visited.check_and_mark(n) {
                    continue;
                }
                if ok(n) {
                    scratch.fresh.push(n);
                    self.prefetch_row(n);
                } else {
                    self.read_links(n, 0, &mut second);
                    for &m in &second {
                        if ok(m) && !visited.check_and_mark(m) {
                            scratch.fresh.push(m);
                            self.prefetch_row(m);
                        }
                    }
                }
            }
            for &n in &scratch.fresh {
                let d = self.dist_to(q, n);
                if results.len() < ef || results.peek().is_some_and(|t| d < t.dist) {
                    let cand = Cand { dist: d, slot: n };
                    frontier.push(std::cmp::Reverse(cand));
                    results.push(cand);
                    if results.len() > ef {
                        results.pop();
                    }
                }
            }
        }
        let mut out = results.into_vec();
        out.sort_unstable();
        out
    }
}

impl LabelSet {
    /// Whether the set was built for this graph, and no slot has changed
    /// hands since.
    pub(crate) fn fits<S: Space>(&self, g: &Graph<S>) -> bool {
        self.graph_id == g.graph_id && self.epoch == g.slot_epoch.load(Ordering::Acquire)
    }
}
