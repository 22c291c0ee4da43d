//! Taking nodes out of the graph, and compacting it.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use rayon::prelude::*;

use super::graph::{Graph, Scratch, DELETED, FREE, NO_ENTRY};
use super::space::Space;
use crate::store::{LinkArena, RowArena, Slab};

/// Removals above this share of the nodes on a level find the lists that
/// link to them with one scan of every list, not neighbourhood by
/// neighbourhood.
const SCAN_SHARE: usize = 64;

impl<S: Space> Graph<S> {
    /// Takes the nodes in `slots` (published, distinct) out of the graph.
    /// Every list that links to one is re-selected by the heuristic from
    /// its other links and the removed node's neighbours (hnswlib's repair
    /// of an updated node, applied to the nodes that pointed at it); nodes
    /// that lose their last anchor get a new one; the slots are freed for
    /// reuse and their labels forgotten.
    pub(crate) fn remove_slots(&mut self, slots: &[u32]) {
        if slots.is_empty() {
            return;
        }
        self.make_owned();
        self.ensure_anchored();
        let n = self.len();
        let mut mask = vec![false; n];
        for &s in slots {
            mask[s as usize] = true;
        }
        let this = &*self;
        let dying = |s: u32| mask.get(s as usize).copied().unwrap_or(false);
        if this.entry().is_some_and(|(ep, _)| dying(ep)) {
            this.promote_entry(&dying);
        }
        let top = slots
            .iter()
            .map(|&s| usize::from(this.levels[s as usize]))
            .max()
            .unwrap_or(0);
        let mut orphaned: Vec<(u32, usize)> = Vec::new();
        for l in 0..=top {
            let victims: Vec<u32> = slots
                .iter()
                .copied()
                .filter(|&s| usize::from(this.levels[s as usize]) >= l)
                .collect();
            let holders = this.lists_holding(&victims, l, &dying);
            let cap = 2 * this.max_links(l);
            holders.par_iter().for_each(|&p| {
                let mut pool = Vec::new();
                this.read_links(p, l, &mut pool);
                let mut ids = Vec::new();
                for i in 0..pool.len() {
                    if dying(pool[i]) {
                        this.read_links(pool[i], l, &mut ids);
                        pool.extend_from_slice(&ids);
                    }
                }
                // Only this task writes `p`'s list; others only read it.
                this.reselect(p, l, &pool, cap, &dying);
            });
            // The removed nodes' own links go; their targets lose a link,
            // and an anchor where the removed node joined first.
            let mut ids = Vec::new();
            for &x in &victims {
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
                }
                this.set_links(x, l, &[]);
            }
        }
        // Free the slots.
        {
            let mut map = this.label_map().write();
            let mut free = this.free_slots.lock();
            for &x in slots {
                map.remove(&this.label(x));
                let was = this.flags[x as usize].swap(FREE, Ordering::AcqRel);
                if was & DELETED != 0 {
                    this.deleted.fetch_sub(1, Ordering::AcqRel);
                }
                this.order[x as usize].store(0, Ordering::Release);
                for l in 0..=usize::from(this.levels[x as usize]) {
                    let (inbound, anchors) = this.counters(x, l);
                    inbound.store(0, Ordering::Release);
                    anchors.store(0, Ordering::Release);
                }
                free.push(x);
            }
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
        this.stranded.lock().extend(left);
    }

    /// The nodes on `level`, not being removed, whose lists hold one of
    /// `victims`. Each victim's neighbours and their neighbours are looked
    /// at first (links mostly run both ways); when that does not account
    /// for every inbound link the counters record, or the victims are many,
    /// every list on the level is scanned.
    fn lists_holding(
        &self,
        victims: &[u32],
        level: usize,
        dying: &(dyn Fn(u32) -> bool + Sync),
    ) -> Vec<u32> {
        let holds = |p: u32, ids: &mut Vec<u32>| {
            self.read_links(p, level, ids);
            ids.iter().any(|&t| dying(t))
        };
        let n = self.len();
        let mut out = Vec::new();
        let mut scan = victims.len() * SCAN_SHARE > n;
        if !scan {
            let mut ids = Vec::new();
            let mut near = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for &x in victims {
                let need = self.inbound(x, level) as usize;
                let mut found = 0;
                // Lists of other removed nodes count toward the inbound
                // links but need no repair.
                let mut check = |p: u32, ids: &mut Vec<u32>, out: &mut Vec<u32>| -> usize {
                    if p == x {
                        return 0;
                    }
                    self.read_links(p, level, ids);
                    if !ids.contains(&x) {
                        return 0;
                    }
                    if !dying(p) && seen.insert(p) {
                        out.push(p);
                    }
                    1
                };
                self.read_links(x, level, &mut near);
                let one_hop = near.clone();
                let mut checked = std::collections::HashSet::new();
                for &p in &one_hop {
                    if checked.insert(p) {
                        found += check(p, &mut ids, &mut out);
                    }
                }
                if found < need {
                    for &h in &one_hop {
                        self.read_links(h, level, &mut near);
                        for &p in &near.clone() {
                            if checked.insert(p) {
                                found += check(p, &mut ids, &mut out);
                            }
                        }
                    }
                }
                if found < need {
                    scan = true;
                    break;
                }
            }
        }
        if scan {
            out = (0..n as u32)
                .into_par_iter()
                .filter(|&p| {
                    self.in_use(p) && !dying(p) && usize::from(self.levels[p as usize]) >= level
                })
                .filter(|&p| holds(p, &mut Vec::new()))
                .collect();
        }
        out
    }

    /// Makes the highest node that is not being removed the entry point
    /// (lowest slot among equals), with an order below every other node's.
    fn promote_entry(&self, dying: &dyn Fn(u32) -> bool) {
        let mut best: Option<(u32, u8)> = None;
        for s in 0..self.len() as u32 {
            if !self.in_use(s) || dying(s) {
                continue;
            }
            let l = self.levels[s as usize];
            if best.is_none_or(|(_, b)| l > b) {
                best = Some((s, l));
            }
        }
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
        Graph::from_parts(
            self.space.clone(),
            self.params,
            vectors,
            links0,
            upper,
            Slab::from_vec(levels),
            Slab::from_vec(upper_offset),
            Slab::from_vec(labels),
            Slab::from_vec(flags),
            Some(Slab::from_vec(order)),
            count,
            deleted,
            entry,
        )
    }
}
