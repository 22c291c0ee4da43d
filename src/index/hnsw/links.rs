//! How link lists change without ever cutting a node off.
//!
//! Heuristic pruning drops links: a node whose every inbound link is
//! pruned can no longer be reached by any search, and a parallel build
//! makes that likelier (inserts that run together do not see each other).
//! The graph therefore keeps one invariant on every level:
//!
//! > Every node on a level, except the entry point, is linked from at least
//! > one node that joined that level before it.
//!
//! Each node has a *join order* (a `u64` taken when its insert publishes
//! its links; the entry point's is lower than every other node's). A link
//! `a -> b` with `order(a) < order(b)` is an *anchor* of `b`, and each
//! node's anchors are counted per level. Following anchors backwards
//! strictly lowers the order, so from any node it ends at the node of
//! lowest order, the entry point: every node is reachable from the entry
//! point on every level it is on, whatever the pruning and however many
//! threads build. The rules that keep it:
//!
//! - A list never drops a node's last anchor: [`Graph::commit_links`] puts
//!   such a link back in place of the farthest link that may go (one that
//!   is not an anchor, or whose target has another). The release is a
//!   compare-and-swap that only takes a count from above one, so two lists
//!   pruning the same node at once cannot both drop its last anchor.
//! - A new node is linked from the neighbours its search found, all of
//!   which joined before it. When the heuristic makes every one of them
//!   drop it, [`Graph::anchor_node`] links it from the nearest that can take
//!   it.
//! - A new entry point takes an order below every other node's and links
//!   to the previous entry point on every level they share.
//! - Removing a node re-anchors the nodes it was the last anchor of.
//!
//! Reachable is not yet findable. The heuristic drops `x` from `h`'s list
//! when a node `s` that `h` keeps is nearer `x` than `h` is: a search that
//! reaches `h` goes on to `s`, and finds `x` there only if `s` links to it.
//! Near the centre of a tight cluster every other member can be covered
//! that way, and a node on its rim ends up linked only from another
//! cluster: reachable, yet missed by a search for its own vector (hnswlib
//! shows the same: 3 in 400 builds of 1,000 clustered points at one thread,
//! 15 in 400 at 64). So on level 0 each node counts its inbound links from
//! its own neighbourhood ([`NearCounts`]); when a list drops the last of
//! them, or a new node's neighbours all turn it away, the node is handed
//! to the kept link that covered it ([`Handoff`]), which links it or hands
//! it on, nearer each time.
//!
//! Inserts also publish a node's links from level 0 upwards (they search
//! from the top down first): another insert can only reach a node on a
//! level once the node's lists on that level and every level below are
//! written, so it never starts a search from a node whose links are not
//! there yet.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;

use super::graph::{Cand, Graph, Scratch, FREE};
use super::space::Space;
use crate::store::Slab;

/// Most hand-offs in a row for one dropped link (each goes to a node
/// strictly nearer the dropped one, so the chain ends anyway).
pub(crate) const MAX_HANDOFFS: u8 = 4;

/// Level-0 in-links up to which [`Graph::reinforce`] checks a node.
pub(crate) const WEAK_INBOUND: u32 = 3;

/// Nodes that [`Graph::reinforce`] links a missed node from.
pub(crate) const REINFORCE_LINKS: usize = 2;

/// A dropped link to pass on: `to` should link to `node` (at distance
/// `dist`), because `to` is why the list that dropped `node` did so.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Handoff {
    pub node: u32,
    pub to: u32,
    pub dist: f32,
}

/// Where the counters of a record past the arena go (corrupt files only).
static SCRATCH: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];

/// The first ordinary join order; entry points count down from below it.
pub(crate) const ORDER_BASE: u64 = 1 << 63;

/// Per-record counters: how many lists hold a node on one level
/// (`inbound`) and how many of those belong to nodes that joined before it
/// (`anchors`).
#[derive(Default)]
pub(crate) struct LinkCounts {
    inbound: Slab<AtomicU32>,
    anchors: Slab<AtomicU32>,
}

/// Per slot, level 0 only: the node's neighbourhood radius (`f32` bits:
/// the distance to the `M`-th nearest node its search found when it
/// joined, lowered to [`NEAR_FACTOR`] times the distance of any much
/// nearer neighbour it links to later) and how many lists of nodes within
/// it hold the node. Within the radius lie the nodes a search for the
/// node's own vector expands.
#[derive(Default)]
pub(crate) struct NearCounts {
    pub(crate) radius: Slab<AtomicU32>,
    pub(crate) count: Slab<AtomicU32>,
}

impl NearCounts {
    /// Whether either array is a view of a file.
    pub(crate) fn is_mapped(&self) -> bool {
        self.radius.is_mapped() || self.count.is_mapped()
    }

    pub(crate) fn make_owned(&mut self) {
        self.radius.make_owned();
        self.count.make_owned();
    }

    /// Grows (new slots: no radius yet, no count) to `n` slots; never
    /// shrinks.
    pub(crate) fn resize(&mut self, n: usize) {
        if self.radius.len() >= n && self.count.len() >= n {
            return;
        }
        self.radius
            .resize_with(n, || AtomicU32::new(f32::INFINITY.to_bits()));
        self.count.resize_with(n, || AtomicU32::new(0));
    }

    pub(crate) fn allocated_bytes(&self) -> usize {
        self.radius.allocated_bytes() + self.count.allocated_bytes()
    }
}

/// A link more than this squared times nearer than a node's radius shows
/// the neighbourhood filled in since the node joined: the radius shrinks
/// to this times the link's length.
pub(crate) const NEAR_FACTOR: f32 = 2.0;

impl LinkCounts {
    /// Grows (new records zero) or shrinks to `n` records.
    pub(crate) fn resize(&mut self, n: usize) {
        self.inbound.resize_with(n, || AtomicU32::new(0));
        self.anchors.resize_with(n, || AtomicU32::new(0));
    }

    pub(crate) fn allocated_bytes(&self) -> usize {
        self.inbound.allocated_bytes() + self.anchors.allocated_bytes()
    }

    fn clear(&self) {
        for c in self.inbound.iter().chain(self.anchors.iter()) {
            c.store(0, Ordering::Relaxed);
        }
    }
}

impl<S: Space> Graph<S> {
    /// The counters of `slot`'s record on `level`: (inbound, anchors).
    #[inline]
    pub(crate) fn counters(&self, slot: u32, level: usize) -> (&AtomicU32, &AtomicU32) {
        let (c, i) = if level == 0 {
            (&self.counts0, slot as usize)
        } else {
            (
                &self.counts_up,
                self.upper_offset
                    .get(slot as usize)
                    .map_or(usize::MAX, |&o| (o as usize).saturating_add(level - 1)),
            )
        };
        match (c.inbound.get(i), c.anchors.get(i)) {
            (Some(a), Some(b)) => (a, b),
            // Only a graph read from a corrupt file names a record past
            // the arena: its counts land in a scratch pair, never out of
            // bounds (`load` rejects such files; a mapped view is checked
            // by `verify`).
            _ => (&SCRATCH[0], &SCRATCH[1]),
        }
    }

    /// How many lists on `level` hold `slot`.
    pub(crate) fn inbound(&self, slot: u32, level: usize) -> u32 {
        self.counters(slot, level).0.load(Ordering::Acquire)
    }

    /// How many lists of earlier-joined nodes on `level` hold `slot`.
    pub(crate) fn anchors(&self, slot: u32, level: usize) -> u32 {
        self.counters(slot, level).1.load(Ordering::Acquire)
    }

    /// Whether the metric's distances are non-negative, zero for a vector
    /// and itself, so a radius means a neighbourhood. Inner product and
    /// dot (`1 - a.b`) go negative: there the near counts are not kept and
    /// no node is handed off.
    #[inline]
    pub(crate) fn tracks_near(&self) -> bool {
        self.guards_reachability()
    }

    /// Whether lists keep every node's last anchor (the invariant above).
    /// Not under inner product or dot: there a vector inside the convex
    /// hull of the others is never any query's nearest, the heuristic
    /// rightly leaves many unlinked (31% of 10,000 points in 40 Gaussian
    /// clusters, as in hnswlib), and forcing links to them filled the
    /// lists of the large-norm nodes they hang off: recall@10 at ef 10 fell
    /// from 0.93 to 0.55. Those graphs keep hnswlib's behaviour, and the
    /// checker reports their unreachable nodes as it finds them.
    #[inline]
    pub(crate) fn guards_reachability(&self) -> bool {
        self.space.guards_reachability()
    }

    /// `slot`'s neighbourhood radius (level 0).
    #[inline]
    pub(crate) fn radius(&self, slot: u32) -> f32 {
        self.near0
            .radius
            .get(slot as usize)
            .map_or(f32::INFINITY, |r| f32::from_bits(r.load(Ordering::Relaxed)))
    }

    /// How many lists of nodes within its radius hold `slot` (level 0).
    #[inline]
    pub(crate) fn near_count(&self, slot: u32) -> u32 {
        self.near0
            .count
            .get(slot as usize)
            .map_or(0, |c| c.load(Ordering::Acquire))
    }

    /// Counts a new link into `target` from a node at `dist` (level 0).
    #[inline]
    fn near_link_added(&self, target: u32, dist: f32) {
        if self.tracks_near() && dist <= self.radius(target) {
            if let Some(c) = self.near0.count.get(target as usize) {
                c.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// Uncounts a dropped link into `target` from a node at `dist` (level
    /// 0); returns whether the target has no near inbound link counted
    /// now. The count may undercount (it restarts when the radius
    /// shrinks), never overcount; it stays at zero rather than wrap, and
    /// an undercount only makes hand-offs likelier.
    #[inline]
    pub(crate) fn near_link_dropped(&self, target: u32, dist: f32) -> bool {
        if !self.tracks_near() || dist > self.radius(target) {
            return false;
        }
        self.near0.count.get(target as usize).is_some_and(|c| {
            let before = c
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .unwrap_or(0);
            before <= 1
        })
    }

    /// After `owner`'s level-0 list (`ids`) gained a link at `nearest`:
    /// if that is nearer than its radius says, the radius shrinks to it
    /// and the near count restarts from the lists of the neighbours that
    /// are within the new radius and link back (links from elsewhere go
    /// uncounted until they change). If none does, `owner` is handed to its
    /// nearest neighbour.
    fn refresh_radius(&self, owner: u32, nearest: f32, ids: &[u32]) -> Option<Handoff> {
        if !self.tracks_near() || nearest * NEAR_FACTOR * NEAR_FACTOR >= self.radius(owner) {
            return None;
        }
        self.reset_near(owner, NEAR_FACTOR * nearest, ids)
    }

    /// Sets `owner`'s radius to `r` and restarts its near count from the
    /// lists of its neighbours (`ids`, its level-0 list) within `r` that
    /// link back; returns a hand-off to its nearest neighbour if none does.
    pub(crate) fn reset_near(&self, owner: u32, r: f32, ids: &[u32]) -> Option<Handoff> {
        if !self.tracks_near() {
            return None;
        }
        let count = self.near0.count.get(owner as usize)?;
        self.near0.radius[owner as usize].store(r.to_bits(), Ordering::Relaxed);
        let ov = self.vector(owner);
        let mut theirs = Vec::new();
        let mut n = 0;
        let mut closest: Option<(f32, u32)> = None;
        for &y in ids {
            let d = self.space.distance(ov, self.vector(y));
            if d <= r {
                self.read_links(y, 0, &mut theirs);
                n += u32::from(theirs.contains(&owner));
            }
            if closest.is_none_or(|(c, _)| d < c) {
                closest = Some((d, y));
            }
        }
        count.store(n, Ordering::Release);
        match (n, closest) {
            (0, Some((dist, to))) => Some(Handoff {
                node: owner,
                to,
                dist,
            }),
            _ => None,
        }
    }

    /// `slot`'s nearest level-0 link (distance, slot), if it has one.
    pub(crate) fn nearest_link(&self, slot: u32) -> Option<(f32, u32)> {
        let mut ids = Vec::new();
        self.read_links(slot, 0, &mut ids);
        let v = self.vector(slot);
        ids.iter()
            .filter(|&&t| self.in_use(t))
            .map(|&t| (self.space.distance(v, self.vector(t)), t))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// Sets `slot`'s radius.
    pub(crate) fn set_radius(&self, slot: u32, radius: f32) {
        if !self.tracks_near() {
            return;
        }
        if let Some(r) = self.near0.radius.get(slot as usize) {
            r.store(radius.to_bits(), Ordering::Relaxed);
        }
    }

    #[inline]
    pub(crate) fn order_of(&self, slot: u32) -> u64 {
        self.order[slot as usize].load(Ordering::Acquire)
    }

    /// Gives `slot` its join order: the next ordinary one, or for a new
    /// entry point one below every order handed out.
    pub(crate) fn assign_order(&self, slot: u32, root: bool) {
        let o = if root {
            self.next_root_order.fetch_sub(1, Ordering::AcqRel)
        } else {
            self.next_order.fetch_add(1, Ordering::AcqRel)
        };
        self.order[slot as usize].store(o, Ordering::Release);
    }

    /// Takes one anchor of `target` on `level` if it has more than one:
    /// whether the link holding it may be dropped.
    fn try_release(&self, target: u32, level: usize) -> bool {
        self.counters(target, level)
            .1
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                (a > 1).then(|| a - 1)
            })
            .is_ok()
    }

    /// Writes `owner`'s list on `level`: `old` is the list as read under
    /// the owner's lock (which the caller holds, or `&mut self`), `chosen`
    /// the new one, nearest first, at most the level's maximum and never
    /// naming `owner`. A dropped link that is the last anchor of its target
    /// is kept, in place of the farthest chosen link that may go (`pinned`
    /// only when nothing else may: see below); links to nodes for which
    /// `dying` is true (being removed) go without a check.
    ///
    /// `pinned` is a link the caller wants in the list. When it is new (not
    /// in `old`) and every other chosen link turns out to hold its target's
    /// last anchor (a target can lose another anchor between a caller's
    /// look at the counters and this call), it gives way: the list keeps
    /// every last anchor, and the caller finds `pinned` missing from
    /// `chosen`. Updates the targets' counters, and returns the
    /// dropped links to hand on (see the module documentation), which the
    /// caller passes to [`Graph::hand_off`] once it holds no lock.
    #[must_use]
    pub(crate) fn commit_links(
        &self,
        owner: u32,
        level: usize,
        old: &[u32],
        chosen: &mut Vec<Cand>,
        dying: &dyn Fn(u32) -> bool,
        pinned: Option<u32>,
    ) -> Vec<Handoff> {
        let max = self.max_links(level);
        debug_assert!(chosen.len() <= max);
        let owner_order = self.order_of(owner);
        let is_anchor = |t: u32| owner_order < self.order_of(t);
        // 1. Release the anchors the dropped links held; keep the last ones.
        let mut keep = Vec::new();
        for &x in old {
            if dying(x) || chosen.iter().any(|c| c.slot == x) {
                continue;
            }
            if is_anchor(x) && !self.try_release(x, level) {
                if self.guards_reachability() {
                    keep.push(x);
                } else {
                    self.counters(x, level).1.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        // 2. Put them back, in place of the farthest links that may go.
        // There is always one: at most `old.len() <= max` links are kept
        // this way or held by an anchor that cannot be released.
        if !keep.is_empty() {
            let ov = self.vector(owner);
            let mut fixed: Vec<u32> = keep.clone();
            fixed.extend(pinned);
            for x in keep {
                let cand = Cand {
                    dist: self.space.distance(ov, self.vector(x)),
                    slot: x,
                };
                if chosen.len() < max {
                    chosen.push(cand);
                    continue;
                }
                let mut placed = false;
                for i in (0..chosen.len()).rev() {
                    let y = chosen[i].slot;
                    if fixed.contains(&y) {
                        continue;
                    }
                    let was_linked = old.contains(&y) && !dying(y);
                    if !was_linked || !is_anchor(y) || self.try_release(y, level) {
                        chosen[i] = cand;
                        placed = true;
                        break;
                    }
                    // `y` holds its target's last anchor now: it stays too.
                    fixed.push(y);
                }
                // Every other link is a last anchor: the new pinned link
                // gives way (it is not counted yet). There is then room:
                // without it the list holds at most `old.len() <= max` links
                // that must stay.
                if !placed {
                    if let Some(i) = pinned
                        .filter(|p| !old.contains(p))
                        .and_then(|p| chosen.iter().position(|c| c.slot == p))
                    {
                        chosen[i] = cand;
                        placed = true;
                    }
                }
                debug_assert!(placed, "a list holds more last anchors than links");
            }
            chosen.sort_unstable();
        }
        // 3. Count the new links, uncount the dropped ones, write.
        for c in chosen.iter() {
            if !old.contains(&c.slot) {
                let (inbound, anchors) = self.counters(c.slot, level);
                inbound.fetch_add(1, Ordering::AcqRel);
                if is_anchor(c.slot) {
                    anchors.fetch_add(1, Ordering::AcqRel);
                }
                if level == 0 {
                    self.near_link_added(c.slot, c.dist);
                }
            }
        }
        let mut handoffs = Vec::new();
        for &x in old {
            if !dying(x) && !chosen.iter().any(|c| c.slot == x) {
                self.counters(x, level).0.fetch_sub(1, Ordering::AcqRel);
                if level == 0 {
                    let d = self.space.distance(self.vector(owner), self.vector(x));
                    if self.near_link_dropped(x, d) {
                        handoffs.extend(self.coverer(owner, x, chosen));
                    }
                }
            }
        }
        let ids: Vec<u32> = chosen.iter().map(|c| c.slot).collect();
        self.set_links(owner, level, &ids);
        if level == 0 {
            if let Some(first) = chosen.first() {
                handoffs.extend(self.refresh_radius(owner, first.dist, &ids));
            }
        }
        handoffs
    }

    /// The node of `kept` nearest `x`: the one a search for `x` follows
    /// from `owner`. When the heuristic dropped `x` it is nearer `x` than
    /// `owner` (it covered `x`); when the full list had no room for `x` it
    /// may not be, and the hand-off depth bounds the chain.
    pub(crate) fn coverer(&self, owner: u32, x: u32, kept: &[Cand]) -> Option<Handoff> {
        let xv = self.vector(x);
        kept.iter()
            .filter(|c| c.slot != x && c.slot != owner)
            .map(|c| (self.space.distance(xv, self.vector(c.slot)), c.slot))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(dist, to)| Handoff { node: x, to, dist })
    }

    /// Appends `to` to `owner`'s list on `level` if there is room (the
    /// caller holds the owner's lock and has read the list into `old`).
    /// A radius it shrinks may leave `owner` a hand-off, added to `handoffs`.
    pub(crate) fn push_link(
        &self,
        owner: u32,
        level: usize,
        old: &[u32],
        to: u32,
        dist: f32,
        handoffs: &mut Vec<Handoff>,
    ) -> bool {
        if old.len() >= self.max_links(level) {
            return false;
        }
        let (inbound, anchors) = self.counters(to, level);
        inbound.fetch_add(1, Ordering::AcqRel);
        if self.order_of(owner) < self.order_of(to) {
            anchors.fetch_add(1, Ordering::AcqRel);
        }
        if level == 0 {
            self.near_link_added(to, dist);
        }
        let mut ids = old.to_vec();
        ids.push(to);
        self.set_links(owner, level, &ids);
        if level == 0 {
            handoffs.extend(self.refresh_radius(owner, dist, &ids));
        }
        true
    }

    /// `owner`'s links `ids` as candidates ranked by their distance from
    /// `owner`, nearest first (the order `commit_links` expects). Their rows
    /// are requested first so that the misses overlap.
    pub(crate) fn ranked_links(&self, owner: u32, ids: &[u32]) -> Vec<Cand> {
        for &y in ids {
            self.prefetch_row(y);
        }
        let ov = self.vector(owner);
        let mut ranked: Vec<Cand> = ids
            .iter()
            .map(|&y| Cand {
                dist: self.space.distance(ov, self.vector(y)),
                slot: y,
            })
            .collect();
        ranked.sort_unstable();
        ranked
    }

    /// Links `owner -> x` on `level` (`old`: the list as read under the
    /// owner's lock, which the caller holds; `dist`: their distance): where
    /// the list is full, in place of the farthest link that is not its
    /// target's last anchor. Returns whether `x` is linked: a list of
    /// nothing but last anchors (near duplicates of each other make such
    /// lists) has no room. Hand-offs go to `handoffs`, for
    /// [`Graph::hand_off`] once no lock is held.
    fn link_or_replace(
        &self,
        owner: u32,
        level: usize,
        old: &[u32],
        x: u32,
        dist: f32,
        handoffs: &mut Vec<Handoff>,
    ) -> bool {
        if self.push_link(owner, level, old, x, dist, handoffs) {
            return true;
        }
        let o = self.order_of(owner);
        let mut chosen = self.ranked_links(owner, old);
        let victim = chosen
            .iter()
            .rposition(|y| o > self.order_of(y.slot) || self.anchors(y.slot, level) > 1);
        let Some(i) = victim else {
            return false;
        };
        chosen[i] = Cand { dist, slot: x };
        chosen.sort_unstable();
        // If the victim's target lost another anchor meanwhile, commit keeps
        // it and displaces another link instead, or `x` where every other
        // link is a last anchor.
        handoffs.extend(self.commit_links(owner, level, old, &mut chosen, &|_| false, Some(x)));
        chosen.iter().any(|c| c.slot == x)
    }

    /// Links `x` on `level` from one of `cands` (nearest first) that
    /// joined before it: from the first whose list has room or holds a link
    /// that may go (the farthest such is replaced). Returns whether one
    /// took it.
    pub(crate) fn anchor_node(&self, x: u32, level: usize, cands: &[Cand]) -> bool {
        let xo = self.order_of(x);
        let xv = self.vector(x);
        let mut old = Vec::new();
        for c in cands {
            let o = self.order_of(c.slot);
            if c.slot == x
                || o == 0
                || o >= xo
                || usize::from(self.levels[c.slot as usize]) < level
                || self.flags[c.slot as usize].load(Ordering::Acquire) & FREE != 0
            {
                continue;
            }
            let _g = self.locks[c.slot as usize].lock();
            self.read_links(c.slot, level, &mut old);
            if old.contains(&x) {
                return true;
            }
            let d = self.space.distance(self.vector(c.slot), xv);
            let mut handoffs = Vec::new();
            let linked = self.link_or_replace(c.slot, level, &old, x, d, &mut handoffs);
            drop(_g);
            self.hand_off(level, &handoffs, 0);
            if linked {
                return true;
            }
        }
        false
    }

    /// The nearest nodes on `level` to a node's own vector `q`, as an
    /// insert searches for them (descent, then `ef_construction`, at least
    /// `m0`); `None` in an empty graph.
    fn search_own(&self, q: &[S::Elem], level: usize, scratch: &mut Scratch) -> Option<Vec<Cand>> {
        let start = self.descend(q, level, scratch)?;
        let mut visited = self.visited.get(self.capacity());
        Some(self.search_level::<fn(u32) -> bool>(
            q,
            start,
            self.params.ef_construction.max(self.params.m0),
            level,
            &mut visited,
            scratch,
            None,
        ))
    }

    /// Searches `level` for `x`'s nearest earlier-joined nodes and anchors
    /// `x` from one of them (the entry point last: it joined before every
    /// node and is on every level). Returns whether it succeeded.
    pub(crate) fn reanchor(&self, x: u32, level: usize, scratch: &mut Scratch) -> bool {
        if !self.guards_reachability()
            || self.entry().is_some_and(|(ep, _)| ep == x)
            || self.anchors(x, level) > 0
        {
            return true;
        }
        let q = self.vector(x).to_vec();
        let Some(mut cands) = self.search_own(&q, level, scratch) else {
            return false;
        };
        if let Some((ep, _)) = self.entry() {
            if !cands.iter().any(|c| c.slot == ep) {
                cands.push(Cand {
                    dist: self.dist_to(&q, ep),
                    slot: ep,
                });
            }
        }
        self.anchor_node(x, level, &cands)
    }

    /// Checks the weakly linked nodes among `slots` (just inserted) and
    /// links each that its own search misses from the nearest nodes that
    /// search found. Returns how many it linked.
    ///
    /// Hand-offs keep a node findable while it has near in-links, but a
    /// node far from the rest (few of its neighbours keep a link to it:
    /// the heuristic finds each covered by a nearer one) has few in-links
    /// at all, and a parallel build, whose inserts do not see each other,
    /// leaves it fewer: on 1,000 uniform 64-d points such a node (two or
    /// three in-links) was missed by its own search at ef 100 in 2 of 100
    /// builds on 4 threads, never in serial ones (five in-links there). So
    /// each node with at most [`WEAK_INBOUND`] in-links on level 0 is
    /// searched for with its own vector at `ef_construction`, as a query
    /// would; a miss ends at nodes whose lists all lack it, and the nearest
    /// [`REINFORCE_LINKS`] of them take a link to it (in place of their
    /// farthest link that may go, if full). About one node in fifty is
    /// checked, so this costs a few percent of a build. Only for metrics
    /// where a vector is its own nearest (not inner product or dot).
    pub(crate) fn reinforce(&self, slots: &[u32]) -> usize {
        if !self.tracks_near() || self.len() < 2 {
            return 0;
        }
        let ep = self.entry().map(|(ep, _)| ep);
        let weak: Vec<u32> = slots
            .iter()
            .copied()
            .filter(|&s| {
                (s as usize) < self.capacity()
                    && self.in_use(s)
                    && Some(s) != ep
                    && self.inbound(s, 0) <= WEAK_INBOUND
            })
            .collect();
        let linked = std::sync::atomic::AtomicUsize::new(0);
        weak.par_iter()
            .for_each_init(Scratch::default, |scratch, &x| {
                if self.reinforce_one(x, scratch) {
                    linked.fetch_add(1, Ordering::Relaxed);
                }
            });
        let linked = linked.into_inner();
        self.reinforced.fetch_add(linked as u64, Ordering::Relaxed);
        linked
    }

    /// [`Graph::reinforce`] for one node: whether it was missed and linked.
    fn reinforce_one(&self, x: u32, scratch: &mut Scratch) -> bool {
        let q = self.vector(x).to_vec();
        let Some(cands) = self.search_own(&q, 0, scratch) else {
            return false;
        };
        // Found, or an exact duplicate ties with it.
        if cands.first().is_none_or(|c| c.slot == x || c.dist <= 0.0) {
            return false;
        }
        let mut old = Vec::new();
        let mut taken = 0;
        for c in &cands {
            if taken == REINFORCE_LINKS {
                break;
            }
            if c.slot == x || !self.in_use(c.slot) {
                continue;
            }
            let _g = self.locks[c.slot as usize].lock();
            self.read_links(c.slot, 0, &mut old);
            if old.contains(&x) {
                taken += 1;
                continue;
            }
            let mut handoffs = Vec::new();
            let linked = self.link_or_replace(c.slot, 0, &old, x, c.dist, &mut handoffs);
            drop(_g);
            self.hand_off(0, &handoffs, 0);
            taken += usize::from(linked);
        }
        true
    }

    /// Lists node levels that found no anchor (see `stranded`).
    pub(crate) fn strand(&self, levels: impl IntoIterator<Item = (u32, u8)>) {
        let mut list = self.stranded.lock();
        let before = list.len();
        list.extend(levels);
        self.stranded_seen
            .fetch_add((list.len() - before) as u64, Ordering::Relaxed);
    }

    /// Retries the node levels left without an anchor (see `stranded`);
    /// those that still find none stay listed (and [`Graph::check`] shows
    /// them if they became unreachable).
    pub(crate) fn repair_stranded(&self) {
        let list = std::mem::take(&mut *self.stranded.lock());
        let mut scratch = Scratch::default();
        let mut left = Vec::new();
        for (slot, level) in list {
            if self.flags[slot as usize].load(Ordering::Acquire) & FREE != 0 {
                continue;
            }
            if !self.reanchor(slot, usize::from(level), &mut scratch) {
                left.push((slot, level));
            }
        }
        self.stranded.lock().extend(left);
    }

    /// [`Graph::repair_stranded`], then, for the node levels that still
    /// find no earlier-joined node to anchor them, the fallback that always
    /// exists with no insert running (`&mut self`): the node moves to the
    /// latest join order. Then every node that links to it joined before it,
    /// so each of its in-links anchors it (its anchors become its inbound
    /// count on every level), and the links it holds stop anchoring their
    /// targets (each loses one; those left with none are re-anchored the
    /// same way). A node level with no in-link at all is anchored from the
    /// nearest node that can take it, every node now qualifying.
    pub(crate) fn repair_stranded_exclusive(&mut self) {
        self.repair_stranded();
        let mut work = std::mem::take(&mut *self.stranded.lock());
        let mut scratch = Scratch::default();
        let mut ids = Vec::new();
        // Each pass moves nodes to the end of the order; a target that loses
        // its last anchor is handled in the next pass. Bounded: a node that
        // is already the latest cannot lose an anchor to a later move of
        // itself, and passes stop when nothing is left.
        for _ in 0..64 {
            if work.is_empty() {
                break;
            }
            let mut next = Vec::new();
            work.sort_unstable();
            work.dedup_by_key(|(s, _)| *s);
            for (x, _) in work {
                if self.flags[x as usize].load(Ordering::Acquire) & FREE != 0
                    || self.entry().is_some_and(|(ep, _)| ep == x)
                {
                    continue;
                }
                let top = usize::from(self.levels[x as usize]);
                if (0..=top).all(|l| self.anchors(x, l) > 0) {
                    continue;
                }
                let old = self.order_of(x);
                self.assign_order(x, false);
                self.order_moves.fetch_add(1, Ordering::Relaxed);
                for l in 0..=top {
                    self.read_links(x, l, &mut ids);
                    for &t in &ids {
                        if t != x
                            && old < self.order_of(t)
                            && self.counters(t, l).1.fetch_sub(1, Ordering::AcqRel) == 1
                        {
                            next.push((t, l as u8));
                        }
                    }
                    let inbound = self.inbound(x, l);
                    self.counters(x, l).1.store(inbound, Ordering::Release);
                    if inbound == 0 && !self.reanchor(x, l, &mut scratch) {
                        self.stranded.lock().push((x, l as u8));
                    }
                }
            }
            work = next
                .into_iter()
                .filter(|&(t, l)| !self.reanchor(t, usize::from(l), &mut scratch))
                .collect();
        }
        // What is left found no earlier-joined node near it that could take
        // a link: near duplicates of each other make groups whose lists hold
        // only each other, a search from one never leaves its group, and
        // moving group members to the end of the order only passes the
        // missing anchor around the group. Any earlier-joined node outside
        // will do: the nearest that can take the link, found by a scan.
        let mut left = std::mem::take(&mut *self.stranded.lock());
        left.extend(work);
        left.sort_unstable();
        left.dedup();
        left.retain(|&(x, l)| {
            let l = usize::from(l);
            self.flags[x as usize].load(Ordering::Acquire) & FREE == 0
                && self.entry().is_none_or(|(ep, _)| ep != x)
                && self.anchors(x, l) == 0
                && !self.anchor_by_scan(x, l)
        });
        self.stranded.lock().extend(left);
    }

    /// Anchors `x` on `level` from the nearest earlier-joined node that can
    /// take the link, among every node (O(n): the last resort of
    /// [`Graph::repair_stranded_exclusive`]). Returns whether one did.
    fn anchor_by_scan(&self, x: u32, level: usize) -> bool {
        let xo = self.order_of(x);
        let xv = self.vector(x);
        let mut cands: Vec<Cand> = (0..self.len() as u32)
            .filter(|&c| {
                c != x
                    && self.in_use(c)
                    && usize::from(self.levels[c as usize]) >= level
                    && self.order_of(c) != 0
                    && self.order_of(c) < xo
            })
            .map(|c| Cand {
                dist: self.space.distance(xv, self.vector(c)),
                slot: c,
            })
            .collect();
        cands.sort_unstable();
        self.anchor_node(x, level, &cands)
    }

    /// Derives every node's level-0 radius (from its nearest link: the
    /// join-time search is gone) and near count from the links: one
    /// distance per level-0 link.
    pub(crate) fn derive_near(&mut self) {
        let n = self.capacity();
        self.near0 = NearCounts::default();
        self.near0.resize(n);
        if !self.tracks_near() {
            return;
        }
        let mut ids = Vec::new();
        for s in 0..self.len() as u32 {
            if !self.in_use(s) {
                continue;
            }
            self.read_links(s, 0, &mut ids);
            let sv = self.vector(s);
            let nearest = ids
                .iter()
                .map(|&t| self.space.distance(sv, self.vector(t)))
                .fold(f32::INFINITY, f32::min);
            self.set_radius(s, NEAR_FACTOR * nearest);
        }
        for s in 0..self.len() as u32 {
            if !self.in_use(s) {
                continue;
            }
            self.read_links(s, 0, &mut ids);
            let sv = self.vector(s);
            for &t in &ids {
                if self.in_use(t) {
                    self.near_link_added(t, self.space.distance(sv, self.vector(t)));
                }
            }
        }
    }

    /// Recounts every node's inbound links and anchors from the lists.
    pub(crate) fn rebuild_counts(&mut self) {
        let records = self.upper.records();
        self.counts0.resize(self.capacity());
        self.counts_up.resize(records);
        self.recount();
    }

    /// [`Graph::rebuild_counts`] on arrays already sized.
    fn recount(&self) {
        self.counts0.clear();
        self.counts_up.clear();
        let mut ids = Vec::new();
        for s in 0..self.len() as u32 {
            if !self.in_use(s) {
                continue;
            }
            let so = self.order_of(s);
            for l in 0..=usize::from(self.levels[s as usize]) {
                self.read_links(s, l, &mut ids);
                for &t in &ids {
                    if !self.in_use(t) || usize::from(self.levels[t as usize]) < l {
                        continue;
                    }
                    let (inbound, anchors) = self.counters(t, l);
                    inbound.fetch_add(1, Ordering::Relaxed);
                    if so < self.order_of(t) {
                        anchors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Whether every node level but the entry point's has an anchor (the
    /// invariant; the counters must be current).
    pub(crate) fn anchors_hold(&self) -> bool {
        let ep = self.entry().map(|(ep, _)| ep);
        (0..self.len() as u32).all(|s| {
            !self.in_use(s)
                || Some(s) == ep
                || (self.order_of(s) != 0
                    && (0..=usize::from(self.levels[s as usize])).all(|l| self.anchors(s, l) > 0))
        })
    }

    /// Sets the order counters past the orders the slots hold.
    pub(crate) fn resume_order_counters(&mut self) {
        let (mut lo, mut hi) = (ORDER_BASE, ORDER_BASE - 1);
        for s in 0..self.len() as u32 {
            let o = self.order_of(s);
            if o != 0 {
                lo = lo.min(o);
                hi = hi.max(o);
            }
        }
        self.next_order
            .store(hi.max(ORDER_BASE - 1) + 1, Ordering::Relaxed);
        self.next_root_order.store(lo - 1, Ordering::Relaxed);
    }

    /// For a graph read from a file without join orders (older files,
    /// hnswlib's): derives orders (breadth-first from the entry point on
    /// level 0, the entry point lowest), recounts, and anchors every node
    /// level that has no anchor. Runs once, before the first change to the
    /// links; later calls return at once.
    pub(crate) fn ensure_anchored(&self) {
        let mut pending = self.unanchored.lock();
        if !*pending {
            return;
        }
        let n = self.len();
        for s in 0..n {
            self.order[s].store(0, Ordering::Relaxed);
        }
        let mut next = ORDER_BASE;
        if let Some((ep, _)) = self.entry() {
            self.order[ep as usize].store(ORDER_BASE - 1, Ordering::Relaxed);
            let mut queue = VecDeque::from([ep]);
            let mut ids = Vec::new();
            while let Some(s) = queue.pop_front() {
                self.read_links(s, 0, &mut ids);
                for &t in &ids {
                    if self.in_use(t) && self.order_of(t) == 0 {
                        self.order[t as usize].store(next, Ordering::Relaxed);
                        next += 1;
                        queue.push_back(t);
                    }
                }
            }
        }
        for s in 0..n as u32 {
            if self.in_use(s) && self.order_of(s) == 0 {
                self.order[s as usize].store(next, Ordering::Relaxed);
                next += 1;
            }
        }
        self.next_order.store(next, Ordering::Relaxed);
        self.next_root_order
            .store(ORDER_BASE - 2, Ordering::Relaxed);
        self.recount();
        let mut scratch = Scratch::default();
        for s in 0..n as u32 {
            if !self.in_use(s) {
                continue;
            }
            for l in 0..=usize::from(self.levels[s as usize]) {
                if !self.reanchor(s, l, &mut scratch) {
                    self.strand([(s, l as u8)]);
                }
            }
        }
        *pending = false;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Hnsw, HnswIndex};
    use super::*;
    use crate::Metric;

    fn build(n: u64) -> HnswIndex<super::super::F32Space> {
        let mut index = Hnsw::builder(8, Metric::L2)
            .m(4)
            .ef_construction(32)
            .seed(11)
            .build()
            .unwrap();
        let rows = uniform(0x9e37_79b9_7f4a_7c15, n as usize * 8);
        for (i, v) in rows.chunks_exact(8).enumerate() {
            index.insert(i as u64, v).unwrap();
        }
        index
    }

    /// `len` values uniform in [0, 1) from an xorshift generator started at
    /// `state`.
    fn uniform(mut state: u64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    fn counts<S: Space>(g: &Graph<S>) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for s in 0..g.len() as u32 {
            for l in 0..=usize::from(g.levels[s as usize]) {
                out.push((g.inbound(s, l), g.anchors(s, l)));
            }
        }
        out
    }

    /// The state the `&mut` fallback exists for, made on purpose: a node
    /// level with no in-link at all, and no earlier-joined node to anchor
    /// it from (here: the node is made the earliest joined, so none is).
    /// Re-anchoring from earlier nodes must fail; the exclusive repair must
    /// move the node to the latest order, anchor it from its nearest node,
    /// re-anchor the nodes whose anchor its own links were, and leave the
    /// counters as a recount from the lists gives them.
    #[test]
    fn exclusive_repair_anchors_a_level_nothing_earlier_can_anchor() {
        let mut index = build(600);
        let g = &mut index.graph;
        let (ep, _) = g.entry().unwrap();
        let x = (0..g.len() as u32)
            .find(|&s| s != ep && g.levels[s as usize] >= 1 && !g.links(s, 1).is_empty())
            .expect("a node on level 1 with links");
        for s in 0..g.len() as u32 {
            if g.levels[s as usize] >= 1 {
                let ids = g.links(s, 1);
                if ids.contains(&x) {
                    let kept: Vec<u32> = ids.into_iter().filter(|&t| t != x).collect();
                    g.set_links(s, 1, &kept);
                }
            }
        }
        g.order[x as usize].store(1, Ordering::Release);
        g.recount();
        let before = g.check();
        assert_eq!(
            before.levels[1].nodes - before.levels[1].reachable,
            1,
            "{before}"
        );
        assert!(!g.reanchor(x, 1, &mut Scratch::default()));
        // Nodes that only `x`, now the earliest, anchored on some level.
        let dependants = (0..g.len() as u32)
            .filter(|&t| {
                t != ep
                    && (0..=usize::from(g.levels[t as usize]))
                        .any(|l| g.anchors(t, l) == 1 && g.links(x, l).contains(&t))
            })
            .count();
        g.strand([(x, 1)]);
        let moves = g.order_moves.load(Ordering::Relaxed);
        g.repair_stranded_exclusive();
        assert!(g.stranded.lock().is_empty());
        assert!(g.order_moves.load(Ordering::Relaxed) > moves);
        let latest = (0..g.len() as u32).map(|s| g.order_of(s)).max().unwrap();
        assert!(
            g.order_of(x) == latest || dependants > 0,
            "x moved to the latest order (or a dependant moved after it)"
        );
        let after = g.check();
        assert!(after.is_ok(), "{after}");
        assert!(g.anchors_hold());
        let kept = counts(g);
        g.recount();
        assert_eq!(kept, counts(g), "counters drifted from the lists");
        // And the index still finds `x` by its own vector.
        let q = index.get_vector(index.graph.label(x)).unwrap();
        let hits = index.search(&q, 1, 64).unwrap();
        assert_eq!(hits[0].label, index.graph.label(x));
    }

    /// A list whose every link holds its target's last anchor has no room
    /// for a new pinned link, which happens when another thread takes the
    /// other anchor of the link `anchor_node` chose to replace between its
    /// look at the counters and its commit. `commit_links` must keep every
    /// last anchor, leave the pinned link out (the caller then tries its
    /// next candidate) and leave the counters as they were.
    #[test]
    fn a_pinned_link_gives_way_to_last_anchors() {
        let index = build(600);
        let g = &index.graph;
        let (first, _) = g.entry().unwrap();
        let ep = (0..g.len() as u32)
            .find(|&s| s != first && g.links(s, 0).len() == g.max_links(0))
            .expect("a node with a full list");
        let old = g.links(ep, 0);
        // Made the earliest joined after the entry point, each of its links
        // is an anchor; make each the last one of its target.
        g.order[ep as usize].store(1, Ordering::Release);
        for &t in &old {
            g.counters(t, 0).1.store(1, Ordering::Release);
        }
        let x = (0..g.len() as u32)
            .find(|&s| s != ep && s != first && !old.contains(&s))
            .unwrap();
        let before = counts(g);
        // `x` in place of the farthest link, as `anchor_node` would put it
        // had that link's target still had two anchors.
        let mut chosen = g.ranked_links(ep, &old);
        let last = chosen.len() - 1;
        chosen[last] = Cand {
            dist: g.space.distance(g.vector(ep), g.vector(x)),
            slot: x,
        };
        chosen.sort_unstable();
        let handoffs = g.commit_links(ep, 0, &old, &mut chosen, &|_| false, Some(x));
        assert!(handoffs.is_empty());
        assert!(chosen.iter().all(|c| c.slot != x), "x gave way");
        let (mut now, mut was) = (g.links(ep, 0), old.clone());
        now.sort_unstable();
        was.sort_unstable();
        assert_eq!(now, was, "every last anchor stayed");
        assert_eq!(counts(g), before, "no counter moved");
    }

    /// A node linked only from far away, as a parallel build can leave an
    /// outlier: reachable (the checker passes), yet its own search ends
    /// among its neighbours, none of which links to it. `reinforce` must
    /// find the miss, link it from there, and keep the counters true.
    #[test]
    fn reinforce_links_a_node_its_own_search_misses() {
        let index = build(600);
        let g = &index.graph;
        let (ep, _) = g.entry().unwrap();
        let mut done = false;
        for x in (0..g.len() as u32).rev() {
            if x == ep || g.levels[x as usize] != 0 {
                continue;
            }
            // Cut every level-0 link to `x`, then link it from the node
            // farthest from it, in place of that node's farthest link.
            let xv = g.vector(x).to_vec();
            let mut far = (f32::NEG_INFINITY, 0u32);
            for s in 0..g.len() as u32 {
                let ids = g.links(s, 0);
                if ids.contains(&x) {
                    let kept: Vec<u32> = ids.into_iter().filter(|&t| t != x).collect();
                    g.set_links(s, 0, &kept);
                }
                let d = g.space.distance(&xv, g.vector(s));
                if s != x && s != ep && d > far.0 {
                    far = (d, s);
                }
            }
            let mut ids = g.links(far.1, 0);
            if ids.len() == g.max_links(0) {
                ids.pop();
            }
            ids.push(x);
            g.set_links(far.1, 0, &ids);
            g.recount();
            assert!(g.check().is_ok(), "{}", g.check());
            let q = index.get_vector(g.label(x)).unwrap();
            if index.search(&q, 1, 32).unwrap()[0].label == g.label(x) {
                continue;
            }
            assert!(g.inbound(x, 0) <= WEAK_INBOUND);
            let before = g.reinforced.load(Ordering::Relaxed);
            assert_eq!(g.reinforce(&[x]), 1);
            assert_eq!(g.reinforced.load(Ordering::Relaxed), before + 1);
            assert!(g.inbound(x, 0) >= 2, "linked from the search's nearest");
            assert_eq!(index.search(&q, 1, 32).unwrap()[0].label, g.label(x));
            // Found now: a second pass links nothing.
            assert_eq!(g.reinforce(&[x]), 0);
            let report = g.check();
            assert!(report.is_ok(), "{report}");
            assert!(g.anchors_hold());
            let kept = counts(g);
            g.recount();
            assert_eq!(kept, counts(g), "counters drifted from the lists");
            done = true;
            break;
        }
        assert!(done, "no node was missed after its in-links were cut");
    }

    /// `InsertOrder::Locality` puts rows spread over the batch first, and
    /// they must all join before the region-sorted rest starts, however
    /// many threads insert (entry points, which take orders below every
    /// other node's, aside).
    #[test]
    fn a_parallel_batch_joins_its_seed_rows_first() {
        let n = 2048usize;
        let dim = 8;
        let data = uniform(0x2545_f491_4f6c_dd1d, n * dim);
        let labels: Vec<u64> = (0..n as u64).collect();
        let mut index = Hnsw::builder(dim, Metric::L2)
            .m(8)
            .ef_construction(32)
            .seed(3)
            .build()
            .unwrap();
        assert_eq!(index.insert_order(), super::super::InsertOrder::Locality);
        rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap()
            .install(|| index.insert_batch(&labels, &data))
            .unwrap();
        let g = &index.graph;
        // `locality_order`'s seeds for an empty index: a quarter, evenly spread.
        let seeds = n / 4;
        let is_seed = |l: usize| (0..seeds).any(|j| j * n / seeds == l);
        let (mut last_seed, mut first_rest) = (0u64, u64::MAX);
        for l in 0..n {
            let o = g.order_of(g.slot_of(l as u64).unwrap());
            if o < ORDER_BASE {
                continue;
            }
            if is_seed(l) {
                last_seed = last_seed.max(o);
            } else {
                first_rest = first_rest.min(o);
            }
        }
        assert!(
            last_seed < first_rest,
            "seed rows joined up to order {last_seed}, the rest from {first_rest}"
        );
    }
}
