//! Inserting nodes and replacing their vectors.

use std::sync::atomic::Ordering;

use super::graph::{Cand, Graph, Scratch, FREE, PENDING};
use super::links::{Handoff, MAX_HANDOFFS};
use super::space::Space;
use crate::error::{Error, Result};

impl<S: Space> Graph<S> {
    /// Reserves a slot for `label` (a free one first): fails if the label
    /// exists or the index is full.
    pub(crate) fn claim_slot(&self, label: u64) -> Result<u32> {
        self.check_writable()?;
        self.ensure_anchored();
        let mut map = self.label_map().write();
        if map.contains_key(&label) {
            return Err(Error::InvalidState(format!(
                "label {label} is already in the index"
            )));
        }
        let reused = self.free_slots.lock().pop();
        let slot = match reused {
            Some(s) => {
                self.free.fetch_sub(1, Ordering::AcqRel);
                self.slot_epoch.fetch_add(1, Ordering::AcqRel);
                s as usize
            }
            None => {
                let cap = self.capacity();
                self.len
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < cap).then_some(n + 1)
                    })
                    .map_err(|_| Error::CapacityExceeded { capacity: cap })?
            }
        };
        self.flags[slot].store(PENDING, Ordering::Release);
        self.labels[slot].store(label, Ordering::Relaxed);
        map.insert(label, slot as u32);
        Ok(slot as u32)
    }

    /// Inserts a prepared vector into a freshly claimed slot.
    ///
    /// # Safety
    /// `slot` must come from [`Graph::claim_slot`] and not have been inserted yet,
    /// so no other thread reads its row.
    pub(crate) unsafe fn insert_claimed(&self, slot: u32, v: &[S::Elem], scratch: &mut Scratch) {
        // SAFETY: the caller owns the freshly claimed slot; no node links to
        // it (a new slot never was linked, a freed one was unlinked by the
        // removal that freed it, under `&mut`), so no search reads the row.
        unsafe { self.vectors.write_row(slot as usize, v) };
        // SAFETY: as above, for the slot's code row.
        unsafe { self.write_code(slot, v) };
        self.connect_new(slot, scratch);
        self.flags[slot as usize].fetch_and(!PENDING, Ordering::Release);
    }

    fn connect_new(&self, slot: u32, scratch: &mut Scratch) {
        // While the graph is small, inserts run one at a time: a search
        // cannot see the inserts running beside it, and when those are a
        // large part of a small graph a node links to the one or two nodes
        // that were there and stays hard to find (seen at 16 and 50
        // threads on 2,000 points: nodes with one link each way, missed by
        // their own search even at ef 400). Past `warmup_len` nodes (a
        // search's whole candidate pool) each search sees enough of the
        // graph; 32 nodes already sufficed there.
        let _warmup = (self.len() - self.free.load(Ordering::Acquire) <= self.warmup_len())
            .then(|| self.warmup_lock.lock());
        let level = usize::from(self.levels[slot as usize]);
        // An insert that raises the top level holds the entry lock
        // throughout, so the entry point and top level change under one
        // lock and two raising inserts never interleave.
        let mut entry_guard = None;
        let mut entry = self.entry();
        if entry.is_none_or(|(_, max)| level > max) {
            entry_guard = Some(self.entry_lock.lock());
            entry = self.entry();
            if entry.is_some_and(|(_, max)| level <= max) {
                entry_guard = None;
            }
        }
        let Some((ep, max_level)) = entry else {
            // First node: it is the entry point.
            self.assign_order(slot, true);
            self.entry
                .store(((level as u64) << 32) | u64::from(slot), Ordering::Release);
            return;
        };
        let raising = level > max_level;
        let top = level.min(max_level);
        let mark = self.recent.lock().mark();
        // Search every level first, top down, publishing nothing: until
        // its lists are written the node must stay out of reach.
        let q = self.vector(slot);
        let mut cur = self.descend(q, top, scratch).expect("entry point exists");
        let mut found: Vec<Vec<Cand>> = vec![Vec::new(); top + 1];
        for l in (0..=top).rev() {
            let mut visited = self.visited.get(self.capacity());
            let cands = self.search_level::<fn(u32) -> bool>(
                q,
                cur,
                self.params.ef_construction,
                l,
                &mut visited,
                scratch,
                None,
            );
            drop(visited);
            let cands: Vec<Cand> = cands.into_iter().filter(|c| c.slot != slot).collect();
            if let Some(&best) = cands.first() {
                cur = best;
            }
            found[l] = cands;
        }
        // Then publish bottom up (see the `links` module): once another
        // insert can reach the node on level `l`, its lists on every level
        // up to `l` are written, so no search starts from an empty list.
        // Every node the searches found has joined already, so its order
        // is below the one taken here, and its links to this node anchor it.
        self.assign_order(slot, raising);
        let level0 = &found[0];
        if let Some(c) = level0.get(self.params.m.min(level0.len()).wrapping_sub(1)) {
            self.set_radius(slot, c.dist);
        }
        let mut selected = Vec::with_capacity(self.params.m0);
        for (l, cands) in found.iter().enumerate() {
            self.select_neighbors(cands, self.params.m, &mut selected);
            // A new entry point links to the old one on every level they
            // share: the old one's anchor, now that it no longer is the lowest.
            let pinned = raising.then_some(ep);
            self.set_own_links(slot, l, &selected, pinned, scratch);
            for c in &selected {
                self.add_reverse_link(c.slot, slot, c.dist, l, scratch);
            }
            if !raising
                && self.guards_reachability()
                && self.anchors(slot, l) == 0
                && !self.anchor_node(slot, l, cands)
            {
                self.strand([(slot, l as u8)]);
            }
            if l == 0 {
                self.link_concurrent_joins(slot, mark, cands, scratch);
            }
        }
        if raising {
            self.entry
                .store(((level as u64) << 32) | u64::from(slot), Ordering::Release);
        }
        drop(entry_guard);
    }

    /// Links a node that just joined level 0 with the nodes that joined
    /// level 0 while it searched (since `mark`), which its search could not
    /// see, and which could not see it: those among its nearest (nearer
    /// than the `M`-th candidate its search found) are linked both ways, as
    /// if each had found the other. Of two inserts that overlap, the one
    /// that takes the lock second lists the first, so no pair is missed.
    fn link_concurrent_joins(&self, slot: u32, mark: u64, cands: &[Cand], scratch: &mut Scratch) {
        let mut joined = Vec::new();
        self.recent.lock().since_then_join(mark, slot, &mut joined);
        if joined.is_empty() {
            return;
        }
        let bound = cands
            .get(self.params.m.saturating_sub(1))
            .map_or(f32::INFINITY, |c| c.dist);
        let q = self.vector(slot);
        let mut handoffs = Vec::new();
        for y in joined {
            if y == slot
                || y as usize >= self.capacity()
                || self.order_of(y) == 0
                || self.flags[y as usize].load(Ordering::Acquire) & FREE != 0
            {
                continue;
            }
            let d = self.space.distance(q, self.vector(y));
            if d >= bound {
                continue;
            }
            self.link_into(slot, y, d, 0, &mut scratch.ids, &mut handoffs);
            self.link_into(y, slot, d, 0, &mut scratch.ids, &mut handoffs);
        }
        self.hand_off(0, &handoffs, 0);
    }

    /// Nodes up to which inserts take the warm-up lock (see `connect_new`).
    pub(crate) fn warmup_len(&self) -> usize {
        self.params.ef_construction.max(self.params.m0)
    }

    /// Sets a node's own links on `level` to `selected` (plus `pinned`).
    /// Links already in the list (added by other inserts) are kept when
    /// there is room; past the level's maximum the heuristic chooses.
    fn set_own_links(
        &self,
        slot: u32,
        level: usize,
        selected: &[Cand],
        pinned: Option<u32>,
        scratch: &mut Scratch,
    ) {
        let _g = self.locks[slot as usize].lock();
        self.read_links(slot, level, &mut scratch.ids);
        let old = std::mem::take(&mut scratch.ids);
        let v = self.vector(slot);
        let mut cands: Vec<Cand> = selected.to_vec();
        for n in old.iter().copied().chain(pinned) {
            if n != slot && !cands.iter().any(|c| c.slot == n) {
                cands.push(Cand {
                    dist: self.space.distance(v, self.vector(n)),
                    slot: n,
                });
            }
        }
        cands.sort_unstable();
        let max = self.max_links(level);
        let mut chosen = Vec::with_capacity(max);
        if cands.len() <= max {
            chosen = cands;
        } else {
            self.select_neighbors(&cands, max, &mut chosen);
            if let Some(p) = pinned {
                if !chosen.iter().any(|c| c.slot == p) {
                    let pc = *cands.iter().find(|c| c.slot == p).expect("added above");
                    if chosen.len() == max {
                        chosen.pop();
                    }
                    chosen.push(pc);
                    chosen.sort_unstable();
                }
            }
        }
        let handoffs = self.commit_links(slot, level, &old, &mut chosen, &|_| false, pinned);
        scratch.ids = old;
        drop(_g);
        self.hand_off(level, &handoffs, 0);
        // The pinned link gave way to last anchors (see `commit_links`):
        // the old entry point has no anchor on this level yet.
        if let Some(p) = pinned {
            if !chosen.iter().any(|c| c.slot == p) && self.anchors(p, level) == 0 {
                self.strand([(p, level as u8)]);
            }
        }
    }

    /// Links `from -> to` on `level`, shrinking `from`'s list with the
    /// heuristic when it is full (never dropping a last anchor).
    fn add_reverse_link(&self, from: u32, to: u32, dist: f32, level: usize, scratch: &mut Scratch) {
        let mut handoffs = Vec::new();
        self.link_into(from, to, dist, level, &mut scratch.ids, &mut handoffs);
        self.hand_off(level, &handoffs, 0);
    }

    /// Passes each dropped link on to the node that covered it (see the
    /// `links` module), `depth` hand-offs deep already.
    pub(crate) fn hand_off(&self, level: usize, handoffs: &[Handoff], depth: u8) {
        if handoffs.is_empty() || depth >= MAX_HANDOFFS {
            return;
        }
        let mut ids = Vec::new();
        for h in handoffs {
            if self.flags[h.node as usize].load(Ordering::Acquire) & FREE != 0 {
                continue;
            }
            let mut next = Vec::new();
            self.link_into(h.to, h.node, h.dist, level, &mut ids, &mut next);
            // Only what this hand-off dropped goes on, one level deeper.
            self.hand_off(level, &next, depth + 1);
        }
    }

    /// [`Graph::add_reverse_link`]'s work under `from`'s lock; the dropped
    /// links to hand on are added to `handoffs`.
    fn link_into(
        &self,
        from: u32,
        to: u32,
        dist: f32,
        level: usize,
        ids: &mut Vec<u32>,
        handoffs: &mut Vec<Handoff>,
    ) {
        let _g = self.locks[from as usize].lock();
        self.read_links(from, level, ids);
        if ids.contains(&to) || self.push_link(from, level, ids, to, dist, handoffs) {
            return;
        }
        // The full list is re-ranked from `from`, with `to` among it.
        let mut cands = self.ranked_links(from, ids);
        let to_cand = Cand { dist, slot: to };
        cands.insert(cands.partition_point(|c| *c < to_cand), to_cand);
        let mut kept = Vec::with_capacity(self.max_links(level));
        self.select_neighbors(&cands, self.max_links(level), &mut kept);
        handoffs.extend(self.commit_links(from, level, ids, &mut kept, &|_| false, None));
        // Turned away with no link from its neighbourhood yet: hand it on.
        if level == 0
            && self.tracks_near()
            && !kept.iter().any(|c| c.slot == to)
            && dist <= self.radius(to)
            && self.near_count(to) == 0
        {
            handoffs.extend(self.coverer(from, to, &kept));
        }
    }

    /// Rewrites `owner`'s list on `level` as the heuristic's choice among
    /// `pool` (any order; `owner` and duplicates are skipped), keeping last
    /// anchors.
    pub(crate) fn reselect(
        &self,
        owner: u32,
        level: usize,
        pool: &[u32],
        cap: usize,
        dying: &dyn Fn(u32) -> bool,
    ) {
        let _g = self.locks[owner as usize].lock();
        let mut old = Vec::new();
        self.read_links(owner, level, &mut old);
        let ov = self.vector(owner);
        let mut cands: Vec<Cand> = Vec::with_capacity(pool.len());
        for &c in pool {
            if c != owner && !dying(c) && !cands.iter().any(|x: &Cand| x.slot == c) {
                cands.push(Cand {
                    dist: self.space.distance(ov, self.vector(c)),
                    slot: c,
                });
            }
        }
        cands.sort_unstable();
        cands.truncate(cap.max(self.max_links(level)));
        let mut kept = Vec::new();
        self.select_neighbors(&cands, self.max_links(level), &mut kept);
        let handoffs = self.commit_links(owner, level, &old, &mut kept, dying, None);
        drop(_g);
        self.hand_off(level, &handoffs, 0);
    }

    /// Replaces the vector of a published slot and repairs the links around
    /// it (hnswlib's `updatePoint`): every old neighbour re-selects its links
    /// from its neighbours and the node's, and the node re-selects its own
    /// links by searching the graph again.
    pub(crate) fn update_vector(&mut self, slot: u32, v: &[S::Elem]) {
        self.make_owned();
        self.ensure_anchored();
        self.vectors.row_mut(slot as usize).copy_from_slice(v);
        // SAFETY: `&mut self`: nothing else reads or writes the row.
        unsafe { self.write_code(slot, v) };
        if let Some(b) = &self.blocks {
            b.recoded(slot);
        }
        let level = usize::from(self.levels[slot as usize]);
        let Some((ep, max_level)) = self.entry() else {
            return;
        };
        if ep == slot && self.len() - self.free.load(Ordering::Acquire) == 1 {
            return;
        }
        let mut scratch = Scratch::default();
        let mut hood = Vec::new();
        let mut theirs = Vec::new();
        let no_dying = |_: u32| false;
        for l in 0..=level.min(max_level) {
            // 1. Neighbours of the node re-select among the 2-hop neighbourhood.
            self.read_links(slot, l, &mut hood);
            let one_hop = hood.clone();
            for &n in &one_hop {
                self.read_links(n, l, &mut theirs);
                for &t in &theirs {
                    if !hood.contains(&t) {
                        hood.push(t);
                    }
                }
            }
            if !hood.contains(&slot) {
                hood.push(slot);
            }
            for &n in &one_hop {
                self.reselect(n, l, &hood, usize::MAX, &no_dying);
            }
        }
        // 2. The node re-selects its own links from a fresh search.
        let q = self.vector(slot).to_vec();
        let Some(mut cur) = self.descend(&q, level, &mut scratch) else {
            return;
        };
        if cur.slot == slot {
            // Start from a neighbour so the search does not only see itself.
            self.read_links(slot, level.min(max_level), &mut hood);
            if let Some(&n) = hood.first() {
                cur = Cand {
                    dist: self.dist_to(&q, n),
                    slot: n,
                };
            }
        }
        for l in (0..=level.min(max_level)).rev() {
            let mut visited = self.visited.get(self.capacity());
            let cands = self.search_level::<fn(u32) -> bool>(
                &q,
                cur,
                self.params.ef_construction,
                l,
                &mut visited,
                &mut scratch,
                None,
            );
            drop(visited);
            let cands: Vec<Cand> = cands.into_iter().filter(|c| c.slot != slot).collect();
            let mut kept = Vec::new();
            self.select_neighbors(&cands, self.params.m, &mut kept);
            // Links that are some node's last anchor stay (commit_links).
            let mut old = Vec::new();
            self.read_links(slot, l, &mut old);
            let reverse = kept.clone();
            let handoffs = self.commit_links(slot, l, &old, &mut kept, &no_dying, None);
            self.hand_off(l, &handoffs, 0);
            for c in &reverse {
                self.add_reverse_link(c.slot, slot, c.dist, l, &mut scratch);
            }
            if l == 0 {
                // The node moved: its neighbourhood is the one just searched.
                if let Some(c) = cands.get(self.params.m.min(cands.len()).wrapping_sub(1)) {
                    self.read_links(slot, 0, &mut old);
                    let h = self.reset_near(slot, c.dist, &old);
                    self.hand_off(0, h.as_slice(), 0);
                }
            }
            if self.guards_reachability()
                && self.anchors(slot, l) == 0
                && ep != slot
                && !self.anchor_node(slot, l, &cands)
            {
                self.strand([(slot, l as u8)]);
            }
            if let Some(&best) = cands.first() {
                cur = best;
            }
        }
        if !self.stranded.lock().is_empty() {
            self.repair_stranded_exclusive();
        }
    }
}
