//! Building one tree: recursive 2-means hyperplane splits (axis-aligned bit
//! splits for Hamming), the way Annoy does, written into a compact block.

use crate::kernels::prefetch::prefetch_read;
use crate::kernels::{F32Kernel, KernelTable};
use crate::Metric;

use super::format::{TreeEntry, LEAF};
use super::Geometry;
use crate::rng::Rng;

/// How many items ahead the partition loop prefetches rows: enough to cover
/// a memory round trip at a few dozen cycles per item.
const PREFETCH_AHEAD: usize = 6;

/// Nodes with more items than this are split breadth-first, for several
/// trees in one pass over the items (see [`TreeCtx::build_group`]); smaller
/// ones depth-first, one tree at a time, their rows then sitting in cache.
const LOCKSTEP_MIN: usize = 1024;

/// Rounds of the 2-means heuristic per split (Annoy's value).
const TWO_MEANS_STEPS: usize = 200;
/// Attempts at a hyperplane before falling back to a random split.
const SPLIT_ATTEMPTS: usize = 3;
/// Random bits tried per Hamming split before scanning all of them (Annoy's value).
const HAMMING_TRIES: usize = 20;

/// One tree, before it is placed in the image.
#[derive(Default)]
pub(crate) struct TreeBlock {
    /// `n_splits * plane_words` floats: each split's unit normal (padded).
    pub planes: Vec<f32>,
    /// `n_splits * 3` words: bias bits (or bit index), left ref, right ref.
    pub metas: Vec<u32>,
    /// Leaf records: `[count, ids...]`.
    pub leaves: Vec<u32>,
    pub root: u32,
}

impl TreeBlock {
    pub(crate) fn n_splits(&self) -> usize {
        self.metas.len() / 3
    }

    /// Bytes the block takes in the image (padded to a cache line).
    pub(crate) fn bytes(&self) -> usize {
        (4 * (self.planes.len() + self.metas.len() + self.leaves.len())).div_ceil(64) * 64
    }

    /// Its directory entry, placed at byte `base` of the image.
    pub(crate) fn entry(&self, base: usize) -> TreeEntry {
        TreeEntry {
            base: base as u64,
            n_splits: self.n_splits() as u32,
            leaf_words: self.leaves.len() as u32,
            root: self.root,
            _pad: 0,
        }
    }
}

/// The item rows a build reads.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    F32(&'a [f32]),
    Bits(&'a [u64]),
}

/// Everything every tree of one build shares.
pub(crate) struct TreeCtx<'a> {
    pub metric: Metric,
    pub geo: Geometry,
    pub leaf_max: usize,
    pub seed: u64,
    pub rows: Rows<'a>,
    /// The items to index, ascending.
    pub ids: &'a [u32],
    pub dot: F32Kernel,
    /// The distance 2-means assigns points by.
    pub split_dist: F32Kernel,
    pub table: &'static KernelTable,
}

/// Where a subtree's reference goes once it exists.
#[derive(Clone, Copy)]
enum Link {
    Root,
    Child { split: usize, side: usize },
}

/// A node of the breadth-first phase: its items are `cur[start..end]` of
/// its tree's [`Lane`].
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    link: Link,
}

/// A split of the breadth-first phase whose plane is chosen and whose items
/// are being assigned sides.
struct Active {
    split: usize,
    bias: f32,
    start: usize,
    end: usize,
    /// Items the assignment pass sent right.
    n_right: usize,
}

/// No node: an item whose node in this tree is no longer split breadth-first.
const NONE: u32 = u32::MAX;

/// One tree of a group in the breadth-first phase.
struct Lane {
    work: Work,
    /// The tree's items, each node of the current level one contiguous span.
    cur: Vec<u32>,
    /// Where the next level's spans are written (then swapped with `cur`).
    next: Vec<u32>,
    /// The current level's nodes; node `k` is the `k`-th (for a level below
    /// the root: child `k % 2` of active split `k / 2` of the level above).
    frontier: Vec<Span>,
    /// Small nodes, built depth-first once the breadth-first phase ends;
    /// their items stay put in both order buffers.
    deferred: Vec<Span>,
    active: Vec<Active>,
    /// Node `k` of the current level → its index in `active`, or [`NONE`].
    remap: Vec<u32>,
    /// Bit `id`: the side the assignment pass sent item `id` to.
    sides: Vec<u64>,
}

fn link(block: &mut TreeBlock, link: Link, node: u32) {
    match link {
        Link::Root => block.root = node,
        Link::Child { split, side } => block.metas[3 * split + 1 + side] = node,
    }
}

struct Work {
    rng: Rng,
    right: Vec<u32>,
    /// The two 2-means centroids, back to back (`comp` floats each), so
    /// one batch kernel call gives a point's distance to both.
    pq: Vec<f32>,
    block: TreeBlock,
}

fn imbalance(left: usize, n: usize) -> f64 {
    let f = left as f64 / n.max(1) as f64;
    f.max(1.0 - f)
}

impl TreeCtx<'_> {
    fn work(&self, tree: u64) -> Work {
        Work {
            rng: tree_rng(self.seed, tree),
            right: Vec::new(),
            pq: vec![0.0; 2 * self.geo.comp],
            block: TreeBlock::default(),
        }
    }

    /// Builds trees `trees` (each one's random stream depends on the seed
    /// and its number only, so a tree is the same whatever group builds it).
    ///
    /// The top of every tree, where nodes hold more than [`LOCKSTEP_MIN`]
    /// items, is built level by level for all the group's trees at once:
    /// one sequential pass over the item rows per level assigns every item
    /// its side in every tree, so each row is read from memory once per
    /// level instead of once per level and tree. Below that, nodes are built
    /// depth-first, where their rows stay in cache.
    ///
    /// The pass keeps, per item and tree, the item's node of the level in
    /// `node_of` (item-major, so the pass reads it sequentially) and writes
    /// each side as one bit of a per-tree bitset small enough to stay in
    /// cache; each node's items are then split by those bits into the next
    /// level's spans, in order, with no branch on the side.
    pub(crate) fn build_group(&self, trees: std::ops::Range<u64>) -> Vec<TreeBlock> {
        let n_ids = self.ids.len();
        let words = self.ids.last().map_or(0, |&m| m as usize / 64 + 1);
        let mut lanes: Vec<Lane> = trees
            .map(|t| Lane {
                work: self.work(t),
                cur: self.ids.to_vec(),
                next: vec![0; n_ids],
                frontier: vec![Span {
                    start: 0,
                    end: n_ids,
                    link: Link::Root,
                }],
                deferred: Vec::new(),
                active: Vec::new(),
                remap: Vec::new(),
                sides: vec![0; words],
            })
            .collect();
        let g_count = lanes.len();
        let lockstep = matches!(self.rows, Rows::F32(_));
        let n_slots = self.ids.last().map_or(0, |&m| m as usize + 1) * g_count;
        let mut node_of: Vec<u32> = Vec::new();
        loop {
            // Plan: choose the plane of every large node of this level.
            for lane in &mut lanes {
                lane.active.clear();
                lane.remap.clear();
                for sp in std::mem::take(&mut lane.frontier) {
                    let len = sp.end - sp.start;
                    if !lockstep || len <= LOCKSTEP_MIN.max(self.leaf_max) {
                        // Both buffers keep its items where they are.
                        lane.next[sp.start..sp.end].copy_from_slice(&lane.cur[sp.start..sp.end]);
                        lane.deferred.push(sp);
                        lane.remap.push(NONE);
                        continue;
                    }
                    let w = &mut lane.work;
                    let split = self.alloc_split(w);
                    link(&mut w.block, sp.link, split as u32);
                    let bias = self.choose_plane(w, &lane.cur[sp.start..sp.end], split);
                    lane.remap.push(lane.active.len() as u32);
                    lane.active.push(Active {
                        split,
                        bias,
                        start: sp.start,
                        end: sp.end,
                        n_right: 0,
                    });
                }
            }
            if lanes.iter().all(|l| l.active.is_empty()) {
                break;
            }
            // Assign: one pass over the rows, every tree's side for each.
            if node_of.is_empty() {
                node_of = vec![0; n_slots];
            }
            for lane in &mut lanes {
                lane.sides.fill(0);
            }
            let pw = self.geo.plane_words;
            let comp = self.geo.comp;
            for (i, &id) in self.ids.iter().enumerate() {
                if let Some(&ahead) = self.ids.get(i + PREFETCH_AHEAD) {
                    self.prefetch(ahead);
                }
                let row = self.row(id);
                let slots = &mut node_of[id as usize * g_count..(id as usize + 1) * g_count];
                for (lane, sl) in lanes.iter_mut().zip(slots.iter_mut()) {
                    if *sl == NONE {
                        continue;
                    }
                    let a = lane.remap[*sl as usize];
                    *sl = a;
                    if a == NONE {
                        continue;
                    }
                    let act = &mut lane.active[a as usize];
                    let planes = &lane.work.block.planes;
                    let plane = &planes[act.split * pw..act.split * pw + comp];
                    let m = self.dot.eval(plane, row) + act.bias;
                    let right = if m != 0.0 {
                        m > 0.0
                    } else {
                        lane.work.rng.flip()
                    };
                    *sl = 2 * a + right as u32;
                    act.n_right += right as usize;
                    lane.sides[id as usize / 64] |= (right as u64) << (id % 64);
                }
            }
            // Partition each node's span into its children's, in order.
            for (g, lane) in lanes.iter_mut().enumerate() {
                let Lane {
                    work: w,
                    cur,
                    next,
                    frontier,
                    active,
                    sides,
                    ..
                } = lane;
                for (a, act) in active.iter().enumerate() {
                    let (s, e) = (act.start, act.end);
                    let n = e - s;
                    let mut n_left = n - act.n_right;
                    let bias = if imbalance(n_left, n) < 0.95 {
                        let (mut l, mut r) = (s, s + n_left);
                        for &id in &cur[s..e] {
                            let right = (sides[id as usize / 64] >> (id % 64) & 1) as usize;
                            next[if right == 1 { r } else { l }] = id;
                            l += 1 - right;
                            r += right;
                        }
                        act.bias
                    } else {
                        // Too lopsided: retry on this node alone, as the
                        // depth-first path does, and move its items to the
                        // children that retry chose.
                        next[s..e].copy_from_slice(&cur[s..e]);
                        let (left, bias) = self.split_f32(w, &mut next[s..e], act.split);
                        n_left = left;
                        for (k, &id) in next[s..e].iter().enumerate() {
                            node_of[id as usize * g_count + g] =
                                2 * a as u32 + (k >= n_left) as u32;
                        }
                        f32::from_bits(bias)
                    };
                    w.block.metas[3 * act.split] = bias.to_bits();
                    for (side, (start, end)) in
                        [(s, s + n_left), (s + n_left, e)].into_iter().enumerate()
                    {
                        frontier.push(Span {
                            start,
                            end,
                            link: Link::Child {
                                split: act.split,
                                side,
                            },
                        });
                    }
                }
                std::mem::swap(cur, next);
            }
        }
        drop(node_of);
        lanes
            .into_iter()
            .map(|mut lane| {
                let w = &mut lane.work;
                w.right.reserve(LOCKSTEP_MIN);
                for sp in lane.deferred {
                    let node = self.make(w, &mut lane.cur[sp.start..sp.end]);
                    link(&mut w.block, sp.link, node);
                }
                lane.work.block
            })
            .collect()
    }

    /// Appends a split with a zero plane and returns its index.
    fn alloc_split(&self, w: &mut Work) -> usize {
        let s = w.block.n_splits();
        w.block.metas.extend_from_slice(&[0, 0, 0]);
        w.block
            .planes
            .resize(w.block.planes.len() + self.geo.plane_words, 0.0);
        s
    }

    /// Runs 2-means on `ids` and writes the separating plane of split `s`;
    /// returns its bias.
    fn choose_plane(&self, w: &mut Work, ids: &[u32], s: usize) -> f32 {
        let pw = self.geo.plane_words;
        let comp = self.geo.comp;
        self.two_means(w, ids);
        let plane = &mut w.block.planes[s * pw..s * pw + comp];
        let (p, q) = w.pq.split_at(comp);
        for ((x, &a), &b) in plane.iter_mut().zip(p).zip(q) {
            *x = a - b;
        }
        self.table.normalize(plane);
        match self.metric {
            Metric::Euclidean | Metric::Manhattan => {
                -plane
                    .iter()
                    .zip(p.iter().zip(q))
                    .map(|(&n, (&a, &b))| n * (a + b))
                    .sum::<f32>()
                    / 2.0
            }
            _ => 0.0,
        }
    }

    #[inline]
    fn row(&self, id: u32) -> &[f32] {
        match self.rows {
            Rows::F32(v) => &v[id as usize * self.geo.row_words..][..self.geo.comp],
            Rows::Bits(_) => unreachable!("float row of a Hamming forest"),
        }
    }

    /// Starts loading item `id`'s row into cache (a hint: rows of items far
    /// apart in a node would otherwise cost a memory round trip each).
    #[inline]
    fn prefetch(&self, id: u32) {
        let bytes = self.geo.row_words * 4;
        let start = id as usize * bytes;
        let p = match self.rows {
            Rows::F32(v) => v.as_ptr() as *const u8,
            Rows::Bits(v) => v.as_ptr() as *const u8,
        };
        for line in (0..bytes).step_by(64) {
            prefetch_read(p.wrapping_add(start + line));
        }
    }

    #[inline]
    fn bit(&self, id: u32, bit: u32) -> bool {
        match self.rows {
            Rows::Bits(v) => {
                let words = self.geo.row_words / 2;
                v[id as usize * words + (bit / 64) as usize] >> (bit % 64) & 1 == 1
            }
            Rows::F32(_) => unreachable!("bit of a float forest"),
        }
    }

    fn make(&self, w: &mut Work, ids: &mut [u32]) -> u32 {
        if ids.len() <= self.leaf_max {
            let at = w.block.leaves.len() as u32;
            w.block.leaves.push(ids.len() as u32);
            w.block.leaves.extend_from_slice(ids);
            return LEAF | at;
        }
        let s = self.alloc_split(w);
        let (n_left, word0) = match self.rows {
            Rows::F32(_) => self.split_f32(w, ids, s),
            Rows::Bits(_) => self.split_bits(w, ids),
        };
        let (left, right) = ids.split_at_mut(n_left);
        let l = self.make(w, left);
        let r = self.make(w, right);
        w.block.metas[3 * s..3 * s + 3].copy_from_slice(&[word0, l, r]);
        s as u32
    }

    /// Moves the items for which `side` is false to the front, keeping the
    /// order on both sides; returns how many went left.
    ///
    /// Each item is written to both sides' next slots and only one side's
    /// count advances, so the loop has no branch on the side (which is a
    /// coin toss the predictor would miss half the time).
    fn partition(
        &self,
        ids: &mut [u32],
        right: &mut Vec<u32>,
        mut side: impl FnMut(u32) -> bool,
    ) -> usize {
        if right.len() < ids.len() {
            right.resize(ids.len(), 0);
        }
        let (mut n_left, mut n_right) = (0, 0);
        for i in 0..ids.len() {
            if let Some(&ahead) = ids.get(i + PREFETCH_AHEAD) {
                self.prefetch(ahead);
            }
            let id = ids[i];
            let r = side(id) as usize;
            // `n_left <= i`: slot `n_left` was read already.
            ids[n_left] = id;
            right[n_right] = id;
            n_left += 1 - r;
            n_right += r;
        }
        ids[n_left..].copy_from_slice(&right[..n_right]);
        n_left
    }

    /// Splits by a hyperplane through the middle of two 2-means centroids;
    /// writes the unit normal into split `s`'s plane and returns (items
    /// left, bias bits).
    fn split_f32(&self, w: &mut Work, ids: &mut [u32], s: usize) -> (usize, u32) {
        let comp = self.geo.comp;
        let pw = self.geo.plane_words;
        let mut n_left = 0;
        let mut bias = 0.0f32;
        for _ in 0..SPLIT_ATTEMPTS {
            bias = self.choose_plane(w, ids, s);
            let plane = &w.block.planes[s * pw..s * pw + comp];
            let rng = &mut w.rng;
            n_left = self.partition(ids, &mut w.right, |id| {
                let m = self.dot.eval(plane, self.row(id)) + bias;
                if m != 0.0 {
                    m > 0.0
                } else {
                    rng.flip()
                }
            });
            if imbalance(n_left, ids.len()) < 0.95 {
                return (n_left, bias.to_bits());
            }
        }
        if imbalance(n_left, ids.len()) > 0.99 {
            // No hyperplane separates these (duplicates, say): split at
            // random, with a zero plane so a search visits both sides alike.
            w.block.planes[s * pw..(s + 1) * pw].fill(0.0);
            bias = 0.0;
            n_left = self.random_split(w, ids);
        }
        (n_left, bias.to_bits())
    }

    fn random_split(&self, w: &mut Work, ids: &mut [u32]) -> usize {
        loop {
            let rng = &mut w.rng;
            let n_left = self.partition(ids, &mut w.right, |_| rng.flip());
            if imbalance(n_left, ids.len()) <= 0.99 {
                return n_left;
            }
        }
    }

    /// Annoy's 2-means heuristic: start from two random items, then move the
    /// nearer centroid (weighted by its count) towards each of a few hundred
    /// random items. Leaves the centroids in `w.pq`.
    fn two_means(&self, w: &mut Work, ids: &[u32]) {
        let n = ids.len();
        let cosine = matches!(self.metric, Metric::Angular | Metric::Dot);
        let i = w.rng.index(n);
        let mut j = w.rng.index(n - 1);
        j += (j >= i) as usize;
        let comp = self.geo.comp;
        let (p, q) = w.pq.split_at_mut(comp);
        p.copy_from_slice(self.row(ids[i]));
        q.copy_from_slice(self.row(ids[j]));
        if cosine {
            self.table.normalize(p);
            self.table.normalize(q);
        }
        let mut d = [0.0f32; 2];
        let (mut ic, mut jc) = (1.0f32, 1.0f32);
        // Draw the sample first (the same stream as drawing as we go) so
        // that its rows can be fetched ahead: they are scattered over memory.
        let mut sample = [0u32; TWO_MEANS_STEPS];
        for k in sample.iter_mut() {
            *k = ids[w.rng.index(n)];
        }
        for &id in &sample[..PREFETCH_AHEAD.min(TWO_MEANS_STEPS)] {
            self.prefetch(id);
        }
        for step in 0..TWO_MEANS_STEPS {
            if let Some(&ahead) = sample.get(step + PREFETCH_AHEAD) {
                self.prefetch(ahead);
            }
            let x = self.row(sample[step]);
            self.split_dist.eval_batch(x, &w.pq, comp, &mut d);
            let (di, dj) = (ic * d[0], jc * d[1]);
            let norm = if cosine { self.table.norm(x) } else { 1.0 };
            if norm.is_nan() || norm <= 0.0 {
                continue;
            }
            let (p, q) = w.pq.split_at_mut(comp);
            let (c, cnt) = if di < dj {
                (p, &mut ic)
            } else if dj < di {
                (q, &mut jc)
            } else {
                continue;
            };
            // c = (c k + x / norm) / (k + 1), with the divisions hoisted.
            let k = *cnt;
            let keep = k / (k + 1.0);
            let add = 1.0 / (norm * (k + 1.0));
            for (a, &b) in c.iter_mut().zip(x) {
                *a = *a * keep + b * add;
            }
            *cnt += 1.0;
        }
    }

    /// Splits on one bit that separates the items (Annoy's Hamming split);
    /// returns (items left, bit index).
    fn split_bits(&self, w: &mut Work, ids: &mut [u32]) -> (usize, u32) {
        let dim = self.geo.dim;
        let n = ids.len();
        let splits = |ids: &[u32], b: u32| {
            let c = ids.iter().filter(|&&id| self.bit(id, b)).count();
            c > 0 && c < n
        };
        let mut n_left = 0;
        let mut bit = 0u32;
        for _ in 0..SPLIT_ATTEMPTS {
            let mut found = None;
            for _ in 0..HAMMING_TRIES {
                let b = w.rng.index(dim) as u32;
                if splits(ids, b) {
                    found = Some(b);
                    break;
                }
            }
            bit = found
                .or_else(|| (0..dim as u32).find(|&b| splits(ids, b)))
                .unwrap_or(0);
            n_left = self.partition(ids, &mut w.right, |id| self.bit(id, bit));
            if imbalance(n_left, n) < 0.95 {
                return (n_left, bit);
            }
        }
        if imbalance(n_left, n) > 0.99 {
            n_left = self.random_split(w, ids);
        }
        (n_left, bit)
    }
}

/// The random stream of tree `tree` of a forest seeded with `seed`: each
/// tree has its own, so the trees do not depend on which thread builds them
/// or in which order.
pub(super) fn tree_rng(seed: u64, tree: u64) -> Rng {
    Rng::new(seed ^ tree.wrapping_mul(0xD1B5_4A32_D192_ED03))
}
