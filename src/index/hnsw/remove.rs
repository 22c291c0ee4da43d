//! Taking nodes out of the graph, and compacting it.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use rayon::prelude::*;

use super::graph::{Cand, Graph, GraphParts, Scratch, DELETED, FREE, NO_ENTRY, RETIRED};
use super::links::{Handoff, NearCounts};
use super::space::Space;
use crate::store::{LinkArena, RowArena, Slab};

/// Removals above this share of the nodes find the lists that link to
/// them with one scan of every list, not neighbourhood by neighbourhood.
const SCAN_SHARE: usize = 64;
/// Retired nodes wait until there are this many, or one per
/// [`SCAN_SHARE`] nodes, and then go in one scan.
const RETIRED_MIN: usize = 256;

/// Whether a removal may leave nodes retired (see [`Graph::remove_slots`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Retire the nodes whose inbound links are not all found nearby.
    MayRetire,
    /// Scan for every inbound link now.
    Complete,
}

impl<S: Space> Graph<S> {
    /// Takes the nodes in `slots` (published or retired, distinct) out of
    /// the graph. Every list that links to one gets the removed node's
    /// neighbours in its place ([`Graph::repair_list`]); nodes that lose
    /// their last anchor get a new one; the slots are freed for reuse and
    /// their labels forgotten.
    ///
    /// The lists that link to a node are found among its neighbours and
    /// theirs, until the inbound count is met. About one node in three also
    /// has a link from farther away (on 20,000 SIFT rows, 11% of inbound
    /// links come from outside two hops, and some from past a node's 400
    /// nearest), and only a scan of every list finds those. Under
    /// [`Removal::MayRetire`] such a node is *retired* instead: its label
    /// is forgotten and it is never returned, but it keeps routing until
    /// enough are retired to pay for one scan for all of them (see
    /// [`RETIRED_MIN`]); many removals at once are scanned for at once.
    pub(crate) fn remove_slots(&mut self, slots: &[u32], mode: Removal) {
        if slots.is_empty() && mode == Removal::MayRetire {
            return;
        }
        self.make_owned();
        self.ensure_anchored();
        if let Some(b) = &self.blocks {
            b.removed();
        }
        let n = self.len();
        let scan_all = slots.len() * SCAN_SHARE > n;
        let mut now: Vec<u32> = Vec::with_capacity(slots.len());
        let mut holders: Vec<Vec<u32>> = Vec::new();
        let mut later = Vec::new();
        if scan_all {
            now.extend_from_slice(slots);
        } else {
            for &x in slots {
                match self.nearby_holders(x) {
                    Some(per_level) => {
                        for (l, hs) in per_level.into_iter().enumerate() {
                            if holders.len() <= l {
                                holders.resize_with(l + 1, Vec::new);
                            }
                            holders[l].extend(hs);
                        }
                        now.push(x);
                    }
                    None => later.push(x),
                }
            }
        }
        let retired = self.retired.load(Ordering::Acquire);
        let sweep = match mode {
            Removal::Complete => true,
            Removal::MayRetire => retired + later.len() >= RETIRED_MIN.max(n / SCAN_SHARE),
        };
        if !sweep {
            // The entry point is never retired: it goes now, with a scan.
            let ep = self.entry().map(|(ep, _)| ep);
            let (go, wait): (Vec<u32>, Vec<u32>) = later.iter().partition(|&&x| Some(x) == ep);
            self.retire(&wait);
            later = go;
        } else if retired > 0 {
            // Every retired node goes in the same scan.
            later.extend(
                (0..n as u32)
                    .filter(|&s| self.flags[s as usize].load(Ordering::Acquire) & RETIRED != 0),
            );
        }
        let mut scanned = if scan_all { now.clone() } else { later.clone() };
        now.extend_from_slice(&later);
        now.sort_unstable();
        now.dedup();
        scanned.sort_unstable();
        scanned.dedup();
        if !now.is_empty() {
            self.unlink(&now, &scanned, holders);
        }
    }

    /// Marks `slots` retired: their labels are forgotten and they are
    /// never returned, but they stay in the graph until a later removal
    /// sweeps them.
    fn retire(&self, slots: &[u32]) {
        let mut map = self.label_map().write();
        for &x in slots {
            map.remove(&self.label(x));
            let was = self.flags[x as usize].fetch_or(DELETED | RETIRED, Ordering::AcqRel);
            if was & DELETED != 0 {
                self.deleted.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.retired.fetch_add(slots.len(), Ordering::AcqRel);
    }

    /// The nodes whose lists hold `x`, per level, found among `x`'s
    /// neighbours and theirs; `None` when they do not account for every
    /// inbound link the counters record.
    fn nearby_holders(&self, x: u32) -> Option<Vec<Vec<u32>>> {
        let mut out = Vec::new();
        let mut ids = Vec::new();
        let mut near = Vec::new();
        for level in 0..=usize::from(self.levels[x as usize]) {
            let need = self.inbound(x, level) as usize;
            let mut found = Vec::new();
            let mut checked = std::collections::HashSet::new();
            checked.insert(x);
            self.read_links(x, level, &mut near);
            let one_hop = near.clone();
            let mut look = |p: u32, ids: &mut Vec<u32>, found: &mut Vec<u32>| {
                if checked.insert(p) {
                    self.read_links(p, level, ids);
                    if ids.contains(&x) {
                        found.push(p);
                    }
                }
            };
            for &p in &one_hop {
                look(p, &mut ids, &mut found);
            }
            if found.len() < need {
                for &h in &one_hop {
                    self.read_links(h, level, &mut near);
                    for &p in &near.clone() {
                        look(p, &mut ids, &mut found);
                    }
                    if found.len() >= need {
                        break;
                    }
                }
            }
            if found.len() < need {
                return None;
            }
            out.push(found);
        }
        Some(out)
    }

    /// Unlinks and frees `victims`: `holders[l]` lists nodes known to link
    /// to them on level `l`; for those in `scanned`, every list is scanned.
    fn unlink(&mut self, victims: &[u32], scanned: &[u32], mut holders: Vec<Vec<u32>>) {
        let n = self.len();
        let mut mask = vec![false; n];
        for &s in victims {
            mask[s as usize] = true;
        }
        let this = &*self;
        let dying = |s: u32| mask.get(s as usize).copied().unwrap_or(false);
        if this.entry().is_some_and(|(ep, _)| dying(ep)) {
            this.promote_entry(&dying);
        }
        let top = victims
            .iter()
            .map(|&s| usize::from(this.levels[s as usize]))
            .max()
            .unwrap_or(0);
        holders.resize_with(top + 1, Vec::new);
        let mut orphaned: Vec<(u32, usize)> = Vec::new();
        let mut far: Vec<u32> = Vec::new();
        for (l, level_holders) in holders.iter_mut().enumerate() {
            if scanned
                .iter()
                .any(|&s| usize::from(this.levels[s as usize]) >= l)
            {
                level_holders.extend(this.scan_holders(l, &dying));
            }
            level_holders.retain(|&p| !dying(p));
            level_holders.sort_unstable();
            level_holders.dedup();
            level_holders
                .par_iter()
                .for_each(|&p| this.repair_list(p, l, &dying));
            // The removed nodes' own links go; their targets lose a link,
            // and an anchor where the removed node joined first.
            let mut ids = Vec::new();
            for &x in victims {
                if usize::from(this.levels[x as usize]) < l {
                    continue;
                }
                this.read_links(x, l, &mut ids);
                let xo = this.order_of(x);
                for &t in &ids {
                    if dying(t) {
                        continue;
                    }
                    let (inbound, anchors) = this.counters(t, l);
                    inbound.fetch_sub(1, Ordering::AcqRel);
                    if xo < this.order_of(t) && anchors.fetch_sub(1, Ordering::AcqRel) == 1 {
                        orphaned.push((t, l));
                    }
                    if l == 0 {
                        let d = this.space.distance(this.vector(x), this.vector(t));
                        if this.near_link_dropped(t, d) {
                            far.push(t);
                        }
                    }
                }
                this.set_links(x, l, &[]);
            }
        }
        // Free the slots.
        {
            let mut map = this.label_map().write();
            let mut free = this.free_slots.lock();
            let mut retired = 0;
            for &x in victims {
                let was = this.flags[x as usize].swap(FREE, Ordering::AcqRel);
                if was & RETIRED != 0 {
                    retired += 1;
                } else {
                    map.remove(&this.label(x));
                    if was & DELETED != 0 {
                        this.deleted.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                this.order[x as usize].store(0, Ordering::Release);
                for l in 0..=usize::from(this.levels[x as usize]) {
                    let (inbound, anchors) = this.counters(x, l);
                    inbound.store(0, Ordering::Release);
                    anchors.store(0, Ordering::Release);
                }
                free.push(x);
            }
            this.retired.fetch_sub(retired, Ordering::AcqRel);
            this.free.store(free.len(), Ordering::Release);
        }
        // Re-anchor the nodes whose last anchor was a removed node's link.
        let left: Vec<(u32, u8)> = orphaned
            .par_iter()
            .map_init(Scratch::default, |scratch, &(t, l)| {
                if this.reanchor(t, l, scratch) {
                    None
                } else {
                    Some((t, l as u8))
                }
            })
            .flatten()
            .collect();
        this.strand(left);
        // Nodes left with no inbound link from their neighbourhood go to
        // their nearest neighbour (see the `links` module).
        far.sort_unstable();
        far.dedup();
        let handoffs: Vec<_> = far
            .iter()
            .filter(|&&t| this.in_use(t) && this.near_count(t) == 0)
            .filter_map(|&t| {
                this.nearest_link(t)
                    .map(|(dist, to)| Handoff { node: t, to, dist })
            })
            .collect();
        this.hand_off(0, &handoffs, 0);
    }

    /// Every node on `level`, not itself dying, whose list holds a dying
    /// node: one parallel scan of the level's lists.
    fn scan_holders(&self, level: usize, dying: &(dyn Fn(u32) -> bool + Sync)) -> Vec<u32> {
        (0..self.len() as u32)
            .into_par_iter()
            .filter(|&p| {
                self.in_use(p) && !dying(p) && usize::from(self.levels[p as usize]) >= level
            })
            .filter(|&p| {
                let mut ids = Vec::new();
                self.read_links(p, level, &mut ids);
                ids.iter().any(|&t| dying(t))
            })
            .collect()
    }

    /// Replaces the links of `p`'s list on `level` that point at removed
    /// nodes with links to those nodes' neighbours, keeping the rest: the
    /// list keeps its length, as the inserts that built it left it (a
    /// heuristic re-selection of the whole list would prune it to its most
    /// diverse links: on 20,000 SIFT rows with 30% removed and refilled,
    /// 14% fewer level-0 links and recall@10 0.02 below a fresh build at ef
    /// 10-16). Replacements are taken as the heuristic would add them to
    /// the links that stay, nearest first, then the nearest of the rest.
    fn repair_list(&self, p: u32, level: usize, dying: &(dyn Fn(u32) -> bool + Sync)) {
        let _g = self.locks[p as usize].lock();
        let mut old = Vec::new();
        self.read_links(p, level, &mut old);
        let pv = self.vector(p);
        let mut kept: Vec<Cand> = Vec::with_capacity(old.len());
        let mut pool: Vec<u32> = Vec::new();
        let mut ids = Vec::new();
        for &x in &old {
            if dying(x) {
                self.read_links(x, level, &mut ids);
                pool.extend_from_slice(&ids);
            } else {
                kept.push(Cand {
                    dist: self.space.distance(pv, self.vector(x)),
                    slot: x,
                });
            }
        }
        let target = old.len().min(self.max_links(level));
        let mut cands: Vec<Cand> = Vec::with_capacity(pool.len());
        for c in pool {
            if c != p
                && !dying(c)
                && !kept.iter().any(|k| k.slot == c)
                && !cands.iter().any(|k: &Cand| k.slot == c)
            {
                cands.push(Cand {
                    dist: self.space.distance(pv, self.vector(c)),
                    slot: c,
                });
            }
        }
        cands.sort_unstable();
        let mut taken = vec![false; cands.len()];
        for (i, c) in cands.iter().enumerate() {
            if kept.len() >= target {
                break;
            }
            let cv = self.vector(c.slot);
            if kept
                .iter()
                .all(|k| self.space.distance(cv, self.vector(k.slot)) >= c.dist)
            {
                kept.push(*c);
                taken[i] = true;
            }
        }
        for (i, c) in cands.iter().enumerate() {
            if kept.len() >= target {
                break;
            }
            if !taken[i] {
                kept.push(*c);
            }
        }
        kept.sort_unstable();
        let handoffs = self.commit_links(p, level, &old, &mut kept, dying, None);
        drop(_g);
        self.hand_off(level, &handoffs, 0);
    }

    /// Makes the highest node that is not being removed the entry point
    /// (lowest slot among equals), with an order below every other node's.
    fn promote_entry(&self, dying: &dyn Fn(u32) -> bool) {
        // A retired node only if nothing else is left.
        let mut best: Option<(u32, u8, bool)> = None;
        for s in 0..self.len() as u32 {
            if !self.in_use(s) || dying(s) {
                continue;
            }
            let (l, live) = (self.levels[s as usize], !self.is_retired(s));
            if best.is_none_or(|(_, b, b_live)| (live, l) > (b_live, b)) {
                best = Some((s, l, live));
            }
        }
        let best = best.map(|(s, l, _)| (s, l));
        let Some((e, level)) = best else {
            self.entry.store(NO_ENTRY, Ordering::Release);
            return;
        };
        let old = self.order_of(e);
        let mut ids = Vec::new();
        for l in 0..=usize::from(level) {
            // Its links now anchor every target; links into it anchor nothing.
            self.read_links(e, l, &mut ids);
            for &t in &ids {
                if !dying(t) && old > self.order_of(t) {
                    self.counters(t, l).1.fetch_add(1, Ordering::AcqRel);
                }
            }
            self.counters(e, l).1.store(0, Ordering::Release);
        }
        self.assign_order(e, true);
        self.entry
            .store((u64::from(level) << 32) | u64::from(e), Ordering::Release);
    }

    /// A copy of the graph holding only the slots in use, renumbered in
    /// slot order, with exactly as many slots as nodes: what a fresh build
    /// of the same nodes allocates. Levels, links, labels, deleted marks and
    /// join orders carry over. `&mut self` callers only (no insert runs),
    /// after [`Graph::ensure_anchored`].
    pub(crate) fn compacted(&self) -> Graph<S> {
        let n = self.len();
        let live: Vec<u32> = (0..n as u32).filter(|&s| self.in_use(s)).collect();
        let mut new_slot = vec![u32::MAX; n];
        for (i, &s) in live.iter().enumerate() {
            new_slot[s as usize] = i as u32;
        }
        let count = live.len();
        let mut levels = Vec::with_capacity(count);
        let mut upper_offset = Vec::with_capacity(count);
        let mut next_upper = 0u32;
        for &s in &live {
            let l = self.levels[s as usize];
            levels.push(l);
            upper_offset.push(next_upper);
            next_upper += u32::from(l);
        }
        let mut vectors = RowArena::new(self.space.vector_len(), count);
        let links0 = LinkArena::new(self.params.m0, count);
        let upper = LinkArena::new(self.params.m, next_upper as usize);
        let mut ids = Vec::new();
        for (i, &s) in live.iter().enumerate() {
            vectors.row_mut(i).copy_from_slice(self.vector(s));
            for l in 0..=usize::from(levels[i]) {
                self.read_links(s, l, &mut ids);
                let mapped: Vec<u32> = ids
                    .iter()
                    .map(|&t| new_slot[t as usize])
                    .filter(|&t| t != u32::MAX)
                    .collect();
                if l == 0 {
                    links0.set(i, &mapped);
                } else {
                    upper.set(upper_offset[i] as usize + l - 1, &mapped);
                }
            }
        }
        let labels = live
            .iter()
            .map(|&s| AtomicU64::new(self.label(s)))
            .collect();
        let flags = live
            .iter()
            .map(|&s| AtomicU8::new(self.flags[s as usize].load(Ordering::Acquire) & DELETED))
            .collect();
        let order = live
            .iter()
            .map(|&s| AtomicU64::new(self.order_of(s)))
            .collect();
        let deleted = self.deleted.load(Ordering::Acquire);
        let entry = self
            .entry()
            .map(|(ep, level)| (new_slot[ep as usize], level));
        let radius = live
            .iter()
            .map(|&s| AtomicU32::new(self.radius(s).to_bits()))
            .collect();
        let near = live
            .iter()
            .map(|&s| AtomicU32::new(self.near_count(s)))
            .collect();
        Graph::from_parts(GraphParts {
            space: self.space.clone(),
            params: self.params,
            vectors,
            codes: None,
            blocks: None,
            links0,
            upper,
            levels: Slab::from_vec(levels),
            upper_offset: Slab::from_vec(upper_offset),
            labels: Slab::from_vec(labels),
            flags: Slab::from_vec(flags),
            order: Some(Slab::from_vec(order)),
            near: Some(NearCounts {
                radius: Slab::from_vec(radius),
                count: Slab::from_vec(near),
            }),
            len: count,
            deleted,
            entry,
        })
    }
}
