//! Searching on compact codes: an arena of 8-bit codes parallel to the
//! vector rows, searched with integer distance estimates, and an exact
//! rerank of the best candidates on the `f32` rows.
//!
//! The layout is glass's: code row `s` belongs to slot `s`, padded to whole
//! cache lines like the vector rows (128 bytes for 128 dimensions against
//! 512 for `f32`), with `|x^|^2` of each decoded row in a parallel array
//! (4 bytes per slot, loaded with the code row). The graph is built on
//! the exact vectors, so it is the graph an unquantized index has; only the
//! level-0 search of a query reads codes. The upper levels are searched on
//! the exact vectors (a few dozen distances per query).
//!
//! Codes are derived data: the grid ([`Sq8`]) is trained on the index's own
//! rows when it first holds [`MIN_TRAIN`] of them and again each time it
//! doubles until the training sample is full ([`TRAIN_SAMPLE`] rows), and
//! on [`HnswIndex::train_quantizer`](super::HnswIndex::train_quantizer) and
//! compaction; every insert codes its row on the current grid (values past a
//! grid's ends code as its ends; the rerank corrects their order). Until the
//! first training, searches run on the exact vectors.

use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;

use super::graph::{Cand, Graph};
use super::space::Space;
use crate::error::{Error, Result};
use crate::kernels::int8::MAX_INT_DIM;
use crate::kernels::prefetch::prefetch_read_l2;
use crate::kernels::KernelTable;
use crate::quant::{Sq8, Sq8Options, Sq8Query};
use crate::store::{RowArena, Slab};
use crate::Metric;

/// Rows an index needs before its first quantizer is trained.
pub const MIN_TRAIN: usize = 256;
/// Rows a quantizer is trained on (evenly spread over the slots).
pub const TRAIN_SAMPLE: usize = 20_000;

/// How an HNSW index over `f32` vectors codes its rows for search
/// ([`HnswBuilder::quantization`](super::HnswBuilder::quantization)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Quantization {
    /// No codes: every distance on the exact vectors.
    #[default]
    None,
    /// Scalar 8-bit codes on per-dimension grids ([`Sq8`]): one byte per
    /// component, a quarter of the `f32` row, distances estimated with one
    /// exact integer dot product per row (VNNI, AVX-VNNI or dotprod where
    /// the CPU has them), the best candidates reranked exactly.
    Sq8,
    /// 4-bit product codes ([`Pq4`](crate::quant::Pq4): half a byte per
    /// component up to 128 dimensions, a quarter up to 512, an eighth
    /// above) of each node's level-0 neighbours, kept inside the node's own
    /// record beside their ids (SymphonyQG's layout), the entries its links
    /// leave free filled with nearby nodes: expanding a node estimates all
    /// its neighbours with one FastScan kernel call on one contiguous
    /// record, and each expanded node gets its exact distance, so results
    /// carry exact distances without a separate rerank. The fastest scheme,
    /// and the largest: each node's record holds `m0` ids and `m0` codes
    /// (at M = 16, 2,176 bytes per node for 128 dimensions, 3,200 for 384),
    /// packed in memory from each node's code when an index is built,
    /// loaded or mapped (the file holds the codes and each record's ids,
    /// 4 bytes per entry), unless it was saved with
    /// [`SaveOptions::pq4_records`](super::SaveOptions::pq4_records): then
    /// the file holds the records too, and a mapped index searches them in
    /// place. Above 128 dimensions the records hold the codes of each
    /// neighbour's difference from the node (on a second quantizer trained
    /// on such differences), which the same bits code finer: on 384-d
    /// sentence embeddings the same recall at about two thirds of the
    /// `ef`. Squared L2 adds a 4-byte term per entry (3,328 bytes per
    /// record at M = 16 and 384 dimensions). Filtered searches run on the
    /// exact vectors.
    Pq4,
}

impl Quantization {
    /// Every scheme, `None` first, then the recommended one.
    pub const ALL: [Quantization; 3] = [Quantization::None, Quantization::Sq8, Quantization::Pq4];

    /// The scheme's name, as the CLI and the Python package spell it.
    pub fn name(self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::Sq8 => "sq8",
            Quantization::Pq4 => "pq4",
        }
    }

    /// The code stored in a file's header.
    pub(crate) fn code(self) -> u64 {
        match self {
            Quantization::None => 0,
            Quantization::Sq8 => 1,
            Quantization::Pq4 => 2,
        }
    }

    pub(crate) fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(Quantization::None),
            1 => Some(Quantization::Sq8),
            2 => Some(Quantization::Pq4),
            _ => None,
        }
    }

    /// Candidates reranked exactly when the caller does not say: half of
    /// the `ef` the search kept, and at least `3 k` and 20. Measured at
    /// k 10: on SIFT (byte-valued, which 8-bit grids code almost exactly)
    /// 16 reranks lose nothing at any ef; on 50,000 Gaussian-clustered 128-d
    /// rows at ef 64, 20 reranks keep recall@10 within 0.001 of all 64 (10
    /// lose 0.027); on 384-d sentence embeddings (`scripts/
    /// make_text_embeddings.py`) the codes misorder more, and at ef 256, 30
    /// reranks give 0.982, 100 give 0.994, all 256 give 0.995 (the exact
    /// index 0.997), at 6.2k, 5.4k and 4.8k queries/s: high recall needs
    /// reranks that grow with ef.
    pub(crate) fn default_rerank(self, k: usize, ef: usize) -> usize {
        (ef / 2).max(3 * k).max(20)
    }
}

impl std::str::FromStr for Quantization {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Quantization::ALL
            .into_iter()
            .find(|q| q.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = Quantization::ALL.iter().map(|q| q.name()).collect();
                Error::UnknownName {
                    kind: "quantization",
                    name: s.to_owned(),
                    expected: names.join(", "),
                }
            })
    }
}

impl std::fmt::Display for Quantization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The codes of a graph's rows under a trained [`Sq8`].
pub(crate) struct Codes {
    pub sq: Sq8,
    /// One code row per slot, padded to whole cache lines.
    pub rows: RowArena<u8>,
    /// `|x^|^2` of each slot's decoded row (`f32` bits).
    pub norms: Slab<AtomicU32>,
    /// Rows the grid was trained on.
    pub trained_on: usize,
    pub table: &'static KernelTable,
}

impl Codes {
    /// Codes `v` into slot `slot`'s row.
    ///
    /// # Safety
    /// No other thread reads or writes slot `slot`'s code row meanwhile (the
    /// caller owns the slot, not yet published, or holds `&mut`).
    pub unsafe fn write(&self, slot: usize, v: &[f32], buf: &mut Vec<u8>) {
        buf.resize(self.sq.dim(), 0);
        let norm = self.sq.encode(v, buf);
        // SAFETY: the caller's contract.
        unsafe { self.rows.write_row(slot, buf) };
        self.norms[slot].store(norm.to_bits(), Ordering::Release);
    }

    pub fn allocated_bytes(&self) -> usize {
        self.rows.allocated_bytes() + self.norms.allocated_bytes()
    }

    pub fn make_owned(&mut self) {
        self.rows.make_owned();
        self.norms.make_owned();
    }

    pub fn is_mapped(&self) -> bool {
        self.rows.is_mapped() || self.norms.is_mapped()
    }

    pub fn resize(&mut self, capacity: usize) {
        self.rows.resize(capacity);
        self.norms.resize_with(capacity, || AtomicU32::new(0));
    }
}

/// The `f32` view of a vector when the space's elements are `f32`.
#[inline]
pub(crate) fn as_f32<E: bytemuck::Pod>(v: &[E]) -> Option<&[f32]> {
    if std::any::TypeId::of::<E>() == std::any::TypeId::of::<f32>() {
        Some(bytemuck::cast_slice(v))
    } else {
        None
    }
}

/// A query prepared for one search on codes.
pub(crate) struct CodeQuery<'a> {
    codes: &'a Codes,
    q: Sq8Query,
}

impl CodeQuery<'_> {
    /// The estimated distance to slot `slot`.
    #[inline(always)]
    pub fn estimate(&self, slot: u32) -> f32 {
        let c = self.codes;
        let dot = c.table.dot_u8i8(self.q.codes(), c.rows.row(slot as usize));
        let norm = f32::from_bits(c.norms[slot as usize].load(Ordering::Relaxed));
        c.sq.estimate(&self.q, dot, norm)
    }

    /// Appends the estimated distances to `ids` to `out`.
    #[inline(always)]
    pub fn estimate_many(&self, ids: &[u32], out: &mut Vec<f32>, dots: &mut Vec<i32>) {
        let c = self.codes;
        dots.clear();
        dots.resize(ids.len(), 0);
        // SAFETY: every id is a published slot below the arena's row count
        // (search reads only linked slots, and a slot is linked after its
        // code row is written, which is never rewritten while `&self` is
        // shared); the query has the arena's dimension, within MAX_INT_DIM
        // (the grid's dimension is the index's, checked when it was built).
        unsafe {
            c.table.dot_u8i8_gather_raw(
                self.q.codes(),
                c.rows.row_ptr(0),
                c.rows.row_bytes(),
                ids,
                dots,
            )
        };
        out.extend(ids.iter().zip(dots.iter()).map(|(&n, &dot)| {
            let norm = f32::from_bits(c.norms[n as usize].load(Ordering::Relaxed));
            c.sq.estimate(&self.q, dot, norm)
        }));
    }

    /// Starts loading slot `slot`'s code row into L2.
    #[inline(always)]
    pub fn prefetch(&self, slot: u32) {
        let rows = &self.codes.rows;
        let p = rows.row_ptr(slot as usize);
        for i in 0..rows.row_bytes() / 64 {
            prefetch_read_l2(p.wrapping_add(i * 64));
        }
    }
}

impl<S: Space> Graph<S> {
    /// Whether searches of this graph run on codes now.
    #[inline]
    pub(crate) fn code_query(&self, q: &[S::Elem]) -> Option<CodeQuery<'_>> {
        let codes = self.codes.as_ref()?;
        let q = as_f32(q)?;
        let q = codes.sq.prepare(q, self.space.metric()).ok()?;
        Some(CodeQuery { codes, q })
    }

    /// Codes slot `slot`'s row if the graph has codes.
    ///
    /// # Safety
    /// As [`Codes::write`].
    pub(crate) unsafe fn write_code(&self, slot: u32, v: &[S::Elem]) {
        if let (Some(codes), Some(v)) = (&self.codes, as_f32(v)) {
            let mut buf = Vec::new();
            // SAFETY: the caller's contract.
            unsafe { codes.write(slot as usize, v, &mut buf) };
        }
        if let (Some(blocks), Some(v)) = (&self.blocks, as_f32(v)) {
            let mut buf = Vec::new();
            // SAFETY: the caller's contract.
            unsafe { blocks.write_code(slot as usize, v, &mut buf) };
            blocks.mark(slot);
        }
    }

    /// Whether the scheme wants a (new) grid now: none trained yet and
    /// enough rows, or the rows have doubled since a grid trained on fewer
    /// than a full sample.
    pub(crate) fn wants_training(&self) -> bool {
        if self.params.quantization == Quantization::None || self.space.kernels().is_none() {
            return false;
        }
        let live = self.len() - self.free.load(Ordering::Acquire);
        let trained_on = match self.params.quantization {
            Quantization::Pq4 => self.blocks.as_ref().map(|b| b.trained_on),
            _ => self.codes.as_ref().map(|c| c.trained_on),
        };
        match trained_on {
            None => live >= MIN_TRAIN,
            Some(t) => t < TRAIN_SAMPLE && live >= 2 * t,
        }
    }

    /// Trains a grid on up to [`TRAIN_SAMPLE`] of the graph's rows (evenly
    /// spread over the slots in use) and codes every row with it. O(n d).
    /// Does nothing for a graph without a scheme, not over `f32`, or with
    /// no row.
    pub(crate) fn train_codes(&mut self) -> Result<()> {
        let Some(table) = self.space.kernels() else {
            return Ok(());
        };
        if self.params.quantization == Quantization::None {
            self.codes = None;
            self.blocks = None;
            return Ok(());
        }
        let dim = self.space.vector_len();
        check_scheme(self.params.quantization, self.space.metric(), dim)?;
        let used: Vec<u32> = (0..self.len() as u32).filter(|&s| self.in_use(s)).collect();
        if used.is_empty() {
            return Ok(());
        }
        let take = used.len().min(TRAIN_SAMPLE);
        let mut sample = Vec::with_capacity(take * dim);
        for i in 0..take {
            let s = used[i * used.len() / take];
            sample.extend_from_slice(as_f32(self.vector(s)).expect("f32 space"));
        }
        if self.params.quantization == Quantization::Pq4 {
            self.codes = None;
            return self.train_blocks(&used, sample, take, table);
        }
        let sq = Sq8::train(&sample, dim, Sq8Options::default())?;
        drop(sample);
        let mut codes = Codes {
            sq,
            rows: RowArena::new(dim, 0),
            norms: Slab::default(),
            trained_on: take,
            table,
        };
        codes.resize(self.capacity());
        let this = &*self;
        used.par_iter().for_each_init(Vec::new, |buf, &s| {
            let v = as_f32(this.vector(s)).expect("f32 space");
            // SAFETY: `&mut self` excludes every other reader and writer,
            // `codes` is not shared yet, and each slot is coded once.
            unsafe { codes.write(s as usize, v, buf) };
        });
        self.codes = Some(codes);
        Ok(())
    }

    /// The first slot in use whose code row or norm differs from what its
    /// vector codes to under the graph's grid (a corrupt file): what
    /// `load` and `verify` check. O(n d), on rayon's threads (a `pq4` load
    /// spends most of its time here).
    pub(crate) fn first_miscoded(&self) -> Option<u32> {
        if let Some(b) = &self.blocks {
            let m = b.pq.subspaces();
            return self.first_slot_where(
                || vec![0u8; m],
                |buf, s, v| b.pq.encode(v, buf).is_err() || buf[..] != b.codes.row(s as usize)[..m],
            );
        }
        let codes = self.codes.as_ref()?;
        let dim = codes.sq.dim();
        self.first_slot_where(
            || vec![0u8; dim],
            |buf, s, v| {
                let norm = codes.sq.encode(v, buf);
                buf.as_slice() != codes.rows.row(s as usize)
                    || norm.to_bits() != codes.norms[s as usize].load(Ordering::Relaxed)
            },
        )
    }

    /// The lowest slot in use whose `f32` vector `wrong` holds for, given a
    /// scratch buffer from `init` (one per rayon job).
    fn first_slot_where<B>(
        &self,
        init: impl Fn() -> B + Sync + Send,
        wrong: impl Fn(&mut B, u32, &[f32]) -> bool + Sync + Send,
    ) -> Option<u32> {
        (0..self.len() as u32)
            .into_par_iter()
            .map_init(init, |buf, s| {
                let bad =
                    self.in_use(s) && as_f32(self.vector(s)).is_some_and(|v| wrong(buf, s, v));
                bad.then_some(s)
            })
            .find_first(Option::is_some)
            .flatten()
    }

    /// Reranks `found` (estimated distances, nearest first) exactly: the
    /// first `rerank` (at least `k`) get their exact distance, and the `k`
    /// nearest of those are returned, nearest first.
    pub(crate) fn rerank(
        &self,
        q: &[S::Elem],
        mut found: Vec<Cand>,
        k: usize,
        rerank: usize,
    ) -> Vec<Cand> {
        found.truncate(rerank.max(k));
        for c in &found {
            self.prefetch_row(c.slot);
        }
        for c in &mut found {
            c.dist = self.dist_to(q, c.slot);
        }
        found.sort_unstable();
        found.truncate(k);
        found
    }
}

/// Whether `q` can code vectors of `dim` components under `metric`.
pub(crate) fn check_scheme(q: Quantization, metric: Metric, dim: usize) -> Result<()> {
    if q == Quantization::None {
        return Ok(());
    }
    if !matches!(
        metric,
        Metric::L2 | Metric::InnerProduct | Metric::Dot | Metric::Cosine
    ) {
        return Err(Error::UnsupportedMetric {
            metric,
            index: match q {
                Quantization::Pq4 => "4-bit product quantization",
                _ => "8-bit scalar quantization",
            },
        });
    }
    if q == Quantization::Pq4 {
        return Ok(());
    }
    if dim > MAX_INT_DIM {
        return Err(Error::InvalidParameter(format!(
            "{q} quantization codes at most {MAX_INT_DIM} dimensions, not {dim}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Hnsw;
    use super::*;

    /// A file whose codes disagree with its rows (checksums intact, as a
    /// buggy writer would leave it) is refused by `load` and `verify`.
    #[test]
    fn load_and_verify_refuse_codes_that_are_not_the_rows() {
        let mut index = Hnsw::builder(8, Metric::L2)
            .quantization(Quantization::Sq8)
            .build()
            .unwrap();
        let rows: Vec<f32> = (0..8 * 400).map(|i| ((i * 37) % 101) as f32).collect();
        let labels: Vec<u64> = (0..400).collect();
        index.insert_batch(&labels, &rows).unwrap();
        assert_eq!(index.graph.first_miscoded(), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.swann");
        index.save(&path).unwrap();
        Hnsw::load(&path).unwrap().verify().unwrap();

        let codes = index.graph.codes.as_mut().unwrap();
        codes.rows.row_mut(7)[3] ^= 1;
        // The lowest corrupt slot is named, whichever thread checks it.
        codes.rows.row_mut(390)[0] ^= 1;
        assert_eq!(index.graph.first_miscoded(), Some(7));
        index.save(&path).unwrap();
        let err = Hnsw::load(&path).unwrap_err();
        assert!(err.to_string().contains("slot 7"), "{err}");
        let mapped = Hnsw::open_mmap(&path, crate::store::OpenOptions::default()).unwrap();
        assert!(mapped.verify().is_err());
    }

    /// An unfiltered query descends an 8-bit coded graph on the codes: the
    /// node it reaches carries its estimate, and none of that node's
    /// level-1 links estimates nearer (greedy descent's stopping rule on
    /// the estimates, which exact distances would not satisfy in general).
    #[test]
    fn unfiltered_descent_runs_on_the_codes() {
        let dim = 16;
        let mut index = Hnsw::builder(dim, Metric::L2)
            .quantization(Quantization::Sq8)
            .m(8)
            .build()
            .unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32
        };
        let rows: Vec<f32> = (0..dim * 3000).map(|_| next()).collect();
        let labels: Vec<u64> = (0..3000).collect();
        index.insert_batch(&labels, &rows).unwrap();
        let g = &index.graph;
        assert!(g.entry().unwrap().1 >= 2, "the test needs upper levels");
        let mut scratch = super::super::graph::Scratch::default();
        let mut links = Vec::new();
        let mut differs = 0;
        for _ in 0..200 {
            let q: Vec<f32> = (0..dim).map(|_| next()).collect();
            let cq = g.code_query(&q).unwrap();
            let got = g.descend_on_codes(&cq, &mut scratch).unwrap();
            assert_eq!(got.dist.to_bits(), cq.estimate(got.slot).to_bits());
            if g.levels[got.slot as usize] >= 1 {
                g.read_links(got.slot, 1, &mut links);
                for &n in &links {
                    assert!(
                        cq.estimate(n) >= got.dist,
                        "{n} estimates nearer than {got:?}"
                    );
                }
            }
            let exact = g.descend(&q, 0, &mut scratch).unwrap();
            assert_eq!(exact.dist, g.dist_to(&q, exact.slot));
            differs += usize::from(exact.dist != got.dist);
        }
        // The two descents score on different scales.
        assert!(differs > 150, "{differs}");
    }
}
