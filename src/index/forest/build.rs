//! Building one tree: recursive 2-means hyperplane splits (axis-aligned bit
//! splits for Hamming), the way Annoy does, written into a compact block.

use crate::kernels::{F32Kernel, KernelTable};
use crate::Metric;

use super::format::LEAF;
use super::rng::Rng;
use super::Geometry;

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

struct Work {
    rng: Rng,
    right: Vec<u32>,
    p: Vec<f32>,
    q: Vec<f32>,
    block: TreeBlock,
}

fn imbalance(left: usize, n: usize) -> f64 {
    let f = left as f64 / n.max(1) as f64;
    f.max(1.0 - f)
}

impl TreeCtx<'_> {
    /// Builds tree number `tree` (its random stream depends on the seed and
    /// this number only).
    pub(crate) fn build_tree(&self, tree: u64) -> TreeBlock {
        let mut ids = self.ids.to_vec();
        let mut w = Work {
            rng: Rng::for_tree(self.seed, tree),
            right: Vec::with_capacity(ids.len() / 2 + 1),
            p: vec![0.0; self.geo.comp],
            q: vec![0.0; self.geo.comp],
            block: TreeBlock::default(),
        };
        w.block.root = self.make(&mut w, &mut ids);
        w.block
    }

    #[inline]
    fn row(&self, id: u32) -> &[f32] {
        match self.rows {
            Rows::F32(v) => &v[id as usize * self.geo.row_words..][..self.geo.comp],
            Rows::Bits(_) => unreachable!("float row of a Hamming forest"),
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
        let s = w.block.n_splits();
        w.block.metas.extend_from_slice(&[0, 0, 0]);
        w.block
            .planes
            .resize(w.block.planes.len() + self.geo.plane_words, 0.0);
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
    fn partition(
        ids: &mut [u32],
        right: &mut Vec<u32>,
        mut side: impl FnMut(u32) -> bool,
    ) -> usize {
        right.clear();
        let mut n_left = 0;
        for i in 0..ids.len() {
            let id = ids[i];
            if side(id) {
                right.push(id);
            } else {
                ids[n_left] = id;
                n_left += 1;
            }
        }
        ids[n_left..].copy_from_slice(right);
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
            self.two_means(w, ids);
            let plane = &mut w.block.planes[s * pw..s * pw + comp];
            for ((x, &a), &b) in plane.iter_mut().zip(&w.p).zip(&w.q) {
                *x = a - b;
            }
            self.table.normalize(plane);
            bias = match self.metric {
                Metric::Euclidean | Metric::Manhattan => {
                    -plane
                        .iter()
                        .zip(w.p.iter().zip(&w.q))
                        .map(|(&n, (&a, &b))| n * (a + b))
                        .sum::<f32>()
                        / 2.0
                }
                _ => 0.0,
            };
            let plane = &w.block.planes[s * pw..s * pw + comp];
            let rng = &mut w.rng;
            n_left = Self::partition(ids, &mut w.right, |id| {
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
            let n_left = Self::partition(ids, &mut w.right, |_| rng.flip());
            if imbalance(n_left, ids.len()) <= 0.99 {
                return n_left;
            }
        }
    }

    /// Annoy's 2-means heuristic: start from two random items, then move the
    /// nearer centroid (weighted by its count) towards each of a few hundred
    /// random items. Leaves the centroids in `w.p` and `w.q`.
    fn two_means(&self, w: &mut Work, ids: &[u32]) {
        let n = ids.len();
        let cosine = matches!(self.metric, Metric::Angular | Metric::Dot);
        let i = w.rng.index(n);
        let mut j = w.rng.index(n - 1);
        j += (j >= i) as usize;
        w.p.copy_from_slice(self.row(ids[i]));
        w.q.copy_from_slice(self.row(ids[j]));
        if cosine {
            self.table.normalize(&mut w.p);
            self.table.normalize(&mut w.q);
        }
        let (mut ic, mut jc) = (1.0f32, 1.0f32);
        for _ in 0..TWO_MEANS_STEPS {
            let x = self.row(ids[w.rng.index(n)]);
            let di = ic * self.split_dist.eval(&w.p, x);
            let dj = jc * self.split_dist.eval(&w.q, x);
            let norm = if cosine { self.table.norm(x) } else { 1.0 };
            if !(norm > 0.0) {
                continue;
            }
            let (c, cnt) = if di < dj {
                (&mut w.p, &mut ic)
            } else if dj < di {
                (&mut w.q, &mut jc)
            } else {
                continue;
            };
            let k = *cnt;
            for (a, &b) in c.iter_mut().zip(x) {
                *a = (*a * k + b / norm) / (k + 1.0);
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
            n_left = Self::partition(ids, &mut w.right, |id| self.bit(id, bit));
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
