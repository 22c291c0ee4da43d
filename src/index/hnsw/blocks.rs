//! Searching on 4-bit product codes kept inside each node's level-0
//! record, SymphonyQG's layout with a product quantizer.
//!
//! Every slot has a record of its own: the ids of its level-0 neighbours
//! (`m0` of them, unused entries [`EMPTY`], padded to a cache line), then
//! the neighbours' 4-bit codes ([`Pq4`]) as FastScan blocks of 32
//! ([`crate::kernels::fastscan`]). Expanding a node during a search reads
//! that one contiguous record and estimates all its neighbours with one
//! kernel call, instead of fetching each neighbour's row from a different
//! place. The search keeps a pool of the `ef` best estimates; each node it
//! expands gets its exact distance from its `f32` row (one row per
//! expansion, loaded ahead while the previous node is expanded), and only
//! exact distances enter the results: the rerank is implicit.
//!
//! Above 128 components (where a code has several, [`uses_residuals`]) a
//! record holds each neighbour's code of `neighbour - node` instead, on a
//! second quantizer trained on such differences along the links
//! ([`Residual`]): neighbours lie close to their node, so the differences
//! spread less than the rows and the same 16 centroids per sub-space code
//! them finer. Expanding node `u` then takes its exact distance first and
//! estimates neighbour `x = u + r` from `<q, r^>`: squared L2 as
//! `d(q, u) - 2 <q, r^> + |r|^2 + 2 <u, r^>` (the last two terms stored per
//! entry, 128 bytes per 32), the inner product as `d(q, u) - <q, r^>`; only
//! `<q - u, r - r^>` is estimated. Each slot's own code (on the first
//! quantizer) stays for the first estimates and the file.
//!
//! A record has room for `m0` neighbours, and the FastScan block scores
//! all 32 entries whatever the links fill, so the entries the links leave
//! free (about a third at M = 16 on SIFT) are filled with the nearest of
//! the node's neighbours' neighbours: extra edges for the search at almost
//! no cost per expansion. On 200,000 SIFT rows they raised recall@10 at ef
//! 24 from 0.93 to 0.95 and at ef 64 from 0.986 to 0.990.
//!
//! The records are derived data: a copy of the links (and the extra
//! entries) and the neighbours' codes. Each slot's own code is kept too (one byte per sub-space), written
//! when its vector is. Changing a node's level-0 links marks its record
//! stale (a bit per slot); every `&mut` operation ends by repacking the
//! stale records ([`Graph::refresh_blocks`]), and a search expands a stale
//! record (left by inserts through `&self` beside it) from the live links,
//! estimating each neighbour from its own code. A node whose vector is
//! replaced has its code rewritten, and every record holding it is repacked
//! at the next refresh. A file holds the centroids, each slot's code and
//! each record's ids ([`Graph::record_ids`]); opening it packs the records
//! from those ids where they still fit the links
//! ([`Graph::adopt_record_ids`]), so the extra entries are not searched for
//! again, and derives the rest.

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rayon::prelude::*;

use super::graph::{Cand, Graph, Scratch};
use super::pool::Beam;
use super::space::Space;
use super::visited::PooledVisited;
use crate::kernels::fastscan::{self, BLOCK};
use crate::kernels::prefetch::prefetch_read_l2;
use crate::kernels::KernelTable;
use crate::quant::{Pq4, Pq4Lut};
use crate::store::RowArena;
use crate::Metric;

/// An unused neighbour entry of a record.
pub(crate) const EMPTY: u32 = u32::MAX;

/// Components per sub-space of the 4-bit codes for vectors of `dim`
/// components. A search ranks neighbours by the estimates alone, so they
/// must order close rows well. With one component per code (16 levels
/// each) recall at a given `ef` on 128-d SIFT is that of the exact index,
/// and sift-real at recall 0.95 ran at 57k queries/s against 48k with two
/// components per code (0.99: 26k against 20k); on 32-d clustered data two
/// per code lost 0.09 of recall@10 at ef 128. Above 128 dimensions the
/// errors of many sub-spaces average out: on 384-d LSA embeddings two per
/// code beat three (0.95 at ef 56 against ef 110), and keep records at
/// 3 KiB; four above 512 dimensions.
pub(crate) fn subspace_dims_for(dim: usize) -> usize {
    match dim {
        0..=128 => 1,
        129..=512 => 2,
        _ => 4,
    }
}

/// Whether records of `dim`-dimensional rows hold residual codes (codes of
/// `neighbour - node`, see the module documentation): where a code has
/// several components ([`subspace_dims_for`]). Neighbours lie close to
/// their node, so their differences spread less than the rows and the
/// same 16 centroids per sub-space code them finer. On 384-d LSA
/// embeddings (133,081 rows, the same graph) recall@10 at ef 32 rose from
/// 0.896 to 0.944 and at ef 64 from 0.971 to 0.983; on 128-d SIFT, one
/// component per code already searches like the exact index (recall at
/// ef 16, 24 and 48 within 0.003 either way), and the residuals would
/// only cost their coding.
pub(crate) fn uses_residuals(dim: usize) -> bool {
    subspace_dims_for(dim) > 1
}

/// A query's byte table (own codes) is capped at this many times the
/// margin of the rows near the query over the table's floor
/// ([`Pq4::lut_into_near`], [`Graph::near_codes`]). Heavy-tailed components
/// give some sub-spaces centroids far out, and an uncapped table's step,
/// set by their partial distances, rounded away the differences between
/// close rows: on 30,000 rows of 128 squared Student-t components (3
/// degrees of freedom), recall@10 at ef 64 and 128 was 0.32 and 0.37
/// against 0.988 and 0.996 for the exact index; capped at 2, 4 and 8 times
/// the margin, 0.981, 0.986 and 0.981 at ef 64 and 0.993, 0.996 and 0.993
/// at ef 128. On 200,000 SIFT rows recall moved by at most 0.0005.
/// Residual tables stay whole: on 256-d rows of the same kind, capping
/// them near the start's first record entries moved recall@10 at ef 128
/// only within the spread between builds (0.78 to 0.80 at 4 times, 0.75 at
/// 16): the residual codes lose that recall, not their table.
const TABLE_SPAN: f32 = 4.0;

/// Mixed into the index's seed for the residual quantizer's training.
const RESIDUAL_SEED: u64 = 0x7265_7369_6475_616c;

/// Links of each neighbour a record's free entries are filled from (see
/// [`Graph::derive_record_ids`]): a neighbour's first links are its nearest, and
/// on 200,000 SIFT rows taking 8 of them kept recall@10 at ef 24 and 64
/// within 0.005 of taking all (0.946 and 0.990) and halved the time of the
/// fill (0.8 s instead of 1.9 s on 2 threads).
const FILL_FROM: usize = 8;

/// The quantizer of a graph whose records hold residual codes (see the
/// module documentation): its centroids code `neighbour - node`.
pub(crate) struct Residual {
    pub pq: Pq4,
    /// Whether each entry carries its `f32` term (squared L2; the inner
    /// product needs none).
    pub terms: bool,
}

/// The neighbour records of a graph and the codes they are packed from.
pub(crate) struct Blocks {
    pub pq: Pq4,
    /// Sub-spaces of a code.
    m: usize,
    /// Per slot: its own code, one byte per sub-space.
    pub codes: RowArena<u8>,
    /// Per slot: `m0` neighbour ids, then `ceil(m0 / 32)` FastScan blocks.
    records: RowArena<u8>,
    /// Bytes of a record's id part (`4 * m0`, padded to a cache line).
    ids_bytes: usize,
    /// FastScan blocks per record.
    nblocks: usize,
    /// Neighbour entries per record (`m0`).
    m0: usize,
    /// One bit per slot: the record no longer matches the links.
    stale: Vec<AtomicU64>,
    /// Slots whose code was rewritten in place: the records that hold them
    /// are repacked at the next refresh.
    recoded: Mutex<Vec<u32>>,
    /// Whether nodes were removed since the last refresh.
    removed: Mutex<bool>,
    /// Rows the centroids were trained on.
    pub trained_on: usize,
    pub table: &'static KernelTable,
    /// With residual records: their quantizer.
    pub resid: Option<Residual>,
}

impl Blocks {
    /// Empty records and codes for `capacity` slots.
    pub fn new(
        pq: Pq4,
        resid: Option<Residual>,
        m0: usize,
        capacity: usize,
        trained_on: usize,
        table: &'static KernelTable,
    ) -> Self {
        let m = pq.subspaces();
        let codes = RowArena::new(m, capacity);
        Self::with_codes(pq, resid, m0, codes, trained_on, table)
    }

    /// Records for the slots of `codes` (every one stale until packed).
    pub fn with_codes(
        pq: Pq4,
        resid: Option<Residual>,
        m0: usize,
        codes: RowArena<u8>,
        trained_on: usize,
        table: &'static KernelTable,
    ) -> Self {
        let capacity = codes.rows();
        let terms = resid.as_ref().is_some_and(|r| r.terms);
        let records = RowArena::new(Self::record_len_for(pq.subspaces(), m0, terms), 0);
        let mut b = Self::from_parts(pq, resid, m0, codes, records, trained_on, table);
        b.resize(capacity);
        b
    }

    /// `codes` and `records` (as many rows each) as they are, none stale.
    fn from_parts(
        pq: Pq4,
        resid: Option<Residual>,
        m0: usize,
        codes: RowArena<u8>,
        records: RowArena<u8>,
        trained_on: usize,
        table: &'static KernelTable,
    ) -> Self {
        let stale = (0..records.rows().div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect();
        Blocks {
            m: pq.subspaces(),
            pq,
            codes,
            records,
            ids_bytes: Self::ids_bytes_for(m0),
            nblocks: m0.div_ceil(BLOCK),
            m0,
            stale,
            recoded: Mutex::new(Vec::new()),
            removed: Mutex::new(false),
            trained_on,
            table,
            resid,
        }
    }

    /// Grows (or shrinks) to `capacity` slots; new records are empty.
    pub fn resize(&mut self, capacity: usize) {
        if self.codes.rows() != capacity {
            self.codes.resize(capacity);
        }
        let old = self.records.rows();
        self.records.resize(capacity);
        for slot in old..capacity {
            self.clear_record(slot);
        }
        self.stale
            .resize_with(capacity.div_ceil(64), || AtomicU64::new(0));
    }

    fn clear_record(&mut self, slot: usize) {
        let ids_bytes = self.ids_bytes;
        let rec = self.records.row_mut(slot);
        rec[..ids_bytes].fill(0xff);
    }

    /// Records for the slots of `codes` viewed from a file's packed
    /// records (`records`, one row per slot, as [`Graph::packed_records`]
    /// wrote them): none stale, none packed here. `None` when `records`
    /// does not have the row length and count this quantizer and `m0` give.
    pub fn with_records(
        pq: Pq4,
        resid: Option<Residual>,
        m0: usize,
        codes: RowArena<u8>,
        records: RowArena<u8>,
        trained_on: usize,
        table: &'static KernelTable,
    ) -> Option<Self> {
        let terms = resid.as_ref().is_some_and(|r| r.terms);
        let fits = records.dim() == Self::record_len_for(pq.subspaces(), m0, terms)
            && records.rows() == codes.rows();
        fits.then(|| Self::from_parts(pq, resid, m0, codes, records, trained_on, table))
    }

    /// Bytes of a record's id part: `4 m0` padded to a cache line.
    fn ids_bytes_for(m0: usize) -> usize {
        (4 * m0).div_ceil(64) * 64
    }

    /// Bytes of a record (before padding to whole lines) for codes of `m`
    /// sub-spaces and `m0` neighbours: the ids, `4 m0` bytes padded to a
    /// line, then `ceil(m0 / 32)` FastScan blocks of `16 m` bytes, then
    /// with `terms` one `f32` per entry of those blocks.
    pub fn record_len_for(m: usize, m0: usize, terms: bool) -> usize {
        let blocks = m0.div_ceil(BLOCK);
        Self::ids_bytes_for(m0) + blocks * m * 16 + if terms { blocks * BLOCK * 4 } else { 0 }
    }

    /// Bytes of this graph's records (before padding).
    fn record_len(&self) -> usize {
        self.records.dim()
    }

    /// Where a record's terms start.
    fn terms_offset(&self) -> usize {
        self.ids_bytes + self.nblocks * self.m * 16
    }

    pub fn make_owned(&mut self) {
        self.codes.make_owned();
        self.records.make_owned();
    }

    pub fn is_mapped(&self) -> bool {
        self.codes.is_mapped() || self.records.is_mapped()
    }

    /// Whether the records are a view of a file's packed records (checked
    /// by [`Graph::first_misrecorded`], not derived here).
    pub fn records_from_file(&self) -> bool {
        self.records.is_mapped()
    }

    pub fn allocated_bytes(&self) -> usize {
        self.codes.allocated_bytes()
            + self.records.allocated_bytes()
            + self.stale.len() * std::mem::size_of::<AtomicU64>()
    }

    /// Marks slot `slot`'s record stale (its level-0 links changed).
    #[inline]
    pub fn mark(&self, slot: u32) {
        if let Some(w) = self.stale.get(slot as usize / 64) {
            w.fetch_or(1 << (slot % 64), Ordering::Release);
        }
    }

    /// Marks every record stale.
    pub fn mark_all(&mut self) {
        for w in &mut self.stale {
            *w.get_mut() = u64::MAX;
        }
    }

    /// Marks slot `slot`'s record current.
    fn unmark(&self, slot: u32) {
        if let Some(w) = self.stale.get(slot as usize / 64) {
            w.fetch_and(!(1 << (slot % 64)), Ordering::Release);
        }
    }

    #[inline(always)]
    fn is_stale(&self, slot: u32) -> bool {
        self.stale
            .get(slot as usize / 64)
            .is_none_or(|w| w.load(Ordering::Acquire) & (1 << (slot % 64)) != 0)
    }

    /// Notes that slot `slot`'s code was rewritten in place.
    pub fn recoded(&self, slot: u32) {
        self.recoded.lock().push(slot);
    }

    /// Notes that nodes were removed (their slots freed).
    pub fn removed(&self) {
        *self.removed.lock() = true;
    }

    /// Codes `v` into slot `slot`'s code row.
    ///
    /// # Safety
    /// No other thread reads or writes slot `slot`'s code row meanwhile (the
    /// caller owns the slot, not yet published, or holds `&mut`).
    pub unsafe fn write_code(&self, slot: usize, v: &[f32], buf: &mut Vec<u8>) {
        buf.resize(self.m, 0);
        // The vector was checked against the index's dimension, which is
        // the quantizer's, and is finite: encoding cannot fail.
        if self.pq.encode(v, buf).is_err() {
            buf.fill(0);
        }
        // SAFETY: the caller's contract.
        unsafe { self.codes.write_row(slot, buf) };
    }

    /// The ids of slot `slot`'s record (entries past its neighbours are
    /// [`EMPTY`]).
    #[inline(always)]
    fn ids(&self, slot: u32) -> &[u32] {
        let rec = self.records.row(slot as usize);
        bytemuck::cast_slice(&rec[..4 * self.m0])
    }

    #[inline(always)]
    fn code_blocks(&self, slot: u32) -> &[u8] {
        &self.records.row(slot as usize)[self.ids_bytes..]
    }

    /// Starts loading slot `slot`'s record into L2.
    #[inline(always)]
    fn prefetch_record(&self, slot: u32) {
        let p = self.records.row_ptr(slot as usize);
        for i in 0..self.records.row_bytes() / 64 {
            prefetch_read_l2(p.wrapping_add(i * 64));
        }
    }

    /// Starts loading every cache line of the code rows of `ids` (`m` bytes
    /// each), not only the first: packing a record waits on these reads,
    /// not on its stores. Any id is accepted (an address past the arena is
    /// not requested).
    #[inline(always)]
    fn prefetch_codes(&self, ids: &[u32]) {
        for &id in ids {
            let p = self.codes.row_ptr(id as usize);
            if p.is_null() {
                continue;
            }
            for off in (0..self.m).step_by(64) {
                prefetch_read_l2(p.wrapping_add(off));
            }
        }
    }

    /// The record of neighbours `ids` (at most `m0`, each with a code row):
    /// the ids, then their codes in FastScan blocks (the layout of
    /// [`fastscan::pack_blocks`], written here directly from the code rows;
    /// entries past `ids` are code 0 and never read, their ids being
    /// [`EMPTY`]).
    fn record_bytes(&self, ids: &[u32], out: &mut Vec<u8>) {
        self.prefetch_codes(ids);
        out.clear();
        out.resize(self.ids_bytes, 0xff);
        for (dst, &id) in out.chunks_exact_mut(4).zip(ids) {
            dst.copy_from_slice(&id.to_ne_bytes());
        }
        let m = self.m;
        out.resize(self.ids_bytes + self.nblocks * fastscan::block_bytes(m), 0);
        let blocks = &mut out[self.ids_bytes..];
        for (r, &id) in ids.iter().enumerate() {
            // Codes are below 16 unless a file was corrupted (which `load`
            // and `verify` report): such a code is searched as its low bits.
            fastscan::put_codes(blocks, m, r, &self.codes.row(id as usize)[..m]);
        }
    }

    /// The estimate of slot `slot` from its own code (a scalar lookup per
    /// sub-space).
    #[inline]
    fn estimate_one(&self, lut: &Pq4Lut, slot: u32) -> f32 {
        let code = &self.codes.row(slot as usize)[..self.m];
        let bytes = lut.bytes();
        let sum: u32 = code
            .iter()
            .enumerate()
            .map(|(j, &c)| u32::from(bytes[j * 16 + usize::from(c & 15)]))
            .sum();
        lut.estimate(sum)
    }
}

impl<S: Space> Graph<S> {
    /// Slot `s`'s record for neighbours `ids` (at most `m0`, each a slot
    /// with a row): [`Blocks::record_bytes`], or with residual records the
    /// ids, then each neighbour's code of `neighbour - node` on the
    /// residual quantizer in FastScan blocks, then (squared L2) each entry's
    /// term `|r|^2 + 2 <node, r^>` (`r` the residual, `r^` what its code
    /// decodes to; 0 past `ids`). With `reuse` (the slots whose vectors
    /// changed since the record was packed, `s` not among them), an entry
    /// whose neighbour the current record already holds and whose vector
    /// did not change keeps its code and term: repacking after an insert
    /// codes only the new entries. The same bytes either way.
    fn pack_record(
        &self,
        b: &Blocks,
        s: u32,
        ids: &[u32],
        reuse: Option<&std::collections::HashSet<u32>>,
        out: &mut Vec<u8>,
    ) {
        let Some(r) = &b.resid else {
            return b.record_bytes(ids, out);
        };
        out.clear();
        out.resize(b.record_len(), 0);
        out[..b.ids_bytes].fill(0xff);
        for (dst, &id) in out.chunks_exact_mut(4).zip(ids) {
            dst.copy_from_slice(&id.to_ne_bytes());
        }
        if ids.is_empty() {
            return;
        }
        // The neighbours' rows are read once each, in order, and a
        // record's coding waits on these reads: each row is requested whole
        // `AHEAD` entries before it is coded (all of them at once would
        // overrun the core's outstanding misses on long rows).
        const AHEAD: usize = 2;
        let fetch = |id: u32| {
            let p = self.vectors.row_ptr(id as usize);
            for line in 0..self.vectors.row_bytes().div_ceil(64) {
                crate::kernels::prefetch::prefetch_read_l2(p.wrapping_add(64 * line));
            }
        };
        ids.iter().take(AHEAD).for_each(|&id| fetch(id));
        let old = reuse.map(|changed| (b.records.row(s as usize), b.ids(s), changed));
        let node = super::quant::as_f32(self.vector(s)).expect("f32 space");
        let (m, dim) = (b.m, node.len());
        let terms_at = b.terms_offset();
        let (mut res, mut dec, mut code) = (vec![0.0f32; dim], vec![0.0f32; dim], vec![0u8; m]);
        for (i, &id) in ids.iter().enumerate() {
            if let Some(&next) = ids.get(i + AHEAD) {
                fetch(next);
            }
            let kept = old.and_then(|(row, old_ids, changed)| {
                let j = old_ids.iter().position(|&x| x == id)?;
                (!changed.contains(&id)).then(|| {
                    fastscan::get_codes(&row[b.ids_bytes..terms_at], m, j, &mut code);
                    r.terms.then(|| {
                        let t = &row[terms_at + 4 * j..][..4];
                        [t[0], t[1], t[2], t[3]]
                    })
                })
            });
            let term = match kept {
                Some(term) => term,
                None => {
                    let v = super::quant::as_f32(self.vector(id)).expect("f32 space");
                    for ((d, &a), &c) in res.iter_mut().zip(v).zip(node) {
                        *d = a - c;
                    }
                    // A residual past f32 (rows near its ends) codes as 0:
                    // its estimates are off, its exact distance is not.
                    if r.pq.encode(&res, &mut code).is_err() {
                        code.fill(0);
                    }
                    r.terms.then(|| {
                        let mut t = 0.0f32;
                        if r.pq.decode(&code, &mut dec).is_ok() {
                            let rr: f32 = res.iter().map(|x| x * x).sum();
                            let ur: f32 = node.iter().zip(&dec).map(|(a, b)| a * b).sum();
                            t = rr + 2.0 * ur;
                        }
                        t.to_ne_bytes()
                    })
                }
            };
            fastscan::put_codes(&mut out[b.ids_bytes..terms_at], m, i, &code);
            if let Some(t) = term {
                out[terms_at + 4 * i..][..4].copy_from_slice(&t);
            }
        }
    }

    /// Repacks every stale record, and every record that holds a slot
    /// whose code was rewritten, from the current links. O(stale records)
    /// plus, after rewritten codes, a scan of every record's ids.
    pub(crate) fn refresh_blocks(&mut self) {
        let Some(b) = &self.blocks else {
            return;
        };
        let recoded = std::mem::take(&mut *b.recoded.lock());
        let n = self.len().min(b.records.rows());
        // A record's extra entries (see `derive_record_ids`) are its neighbours'
        // neighbours, so a node removed or recoded can sit in records whose
        // own links never changed: those are found by their ids.
        let removed = std::mem::take(&mut *b.removed.lock());
        let set: std::collections::HashSet<u32> = recoded.into_iter().collect();
        if !set.is_empty() || removed {
            (0..n as u32).into_par_iter().for_each(|s| {
                if b.ids(s)
                    .iter()
                    .any(|&id| id != EMPTY && (set.contains(&id) || (removed && !self.in_use(id))))
                {
                    b.mark(s);
                }
            });
        }
        let stale: Vec<u32> = b
            .stale
            .iter()
            .enumerate()
            .flat_map(|(w, bits)| {
                let bits = bits.load(Ordering::Acquire);
                (0..64u32)
                    .filter(move |i| bits & (1 << i) != 0)
                    .map(move |i| w as u32 * 64 + i)
            })
            .filter(|&s| (s as usize) < b.records.rows())
            .collect();
        if stale.is_empty() {
            return;
        }
        let this = &*self;
        stale.par_iter().for_each_init(
            || (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            |(ids, rec, hop, cands), &s| {
                ids.clear();
                if (s as usize) < n && this.in_use(s) {
                    this.derive_record_ids(s, b.m0, ids, hop, cands);
                }
                // A residual entry keeps its code while neither its node's
                // vector nor the neighbour's changed (`set`).
                let reuse = (!set.contains(&s)).then_some(&set);
                this.pack_record(b, s, ids, reuse, rec);
                // SAFETY: `&mut self` (held by the caller through `this`)
                // excludes searches and inserts, and each stale slot is
                // written by one task.
                unsafe { b.records.write_row(s as usize, rec) };
            },
        );
        for w in &b.stale {
            w.store(0, Ordering::Release);
        }
    }

    /// The ids of the first `n` slots' records for a file
    /// ([`section::PQ4_RECORDS`](super::persist::section::PQ4_RECORDS)),
    /// `m0` per slot, [`EMPTY`] after the last (and for a slot not in use):
    /// a stale record's are the ids a refresh would pack. Empty without
    /// records. The caller keeps inserts out (as a save does).
    pub(crate) fn record_ids(&self, n: usize) -> Vec<u32> {
        let Some(b) = &self.blocks else {
            return Vec::new();
        };
        let m0 = b.m0;
        let mut out = vec![EMPTY; n * m0];
        out.par_chunks_mut(m0).enumerate().for_each_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(ids, hop, cands), (s, dst)| {
                let s = s as u32;
                if s as usize >= b.records.rows() || !self.in_use(s) {
                    return;
                }
                if b.is_stale(s) {
                    self.derive_record_ids(s, m0, ids, hop, cands);
                    dst[..ids.len()].copy_from_slice(ids);
                } else {
                    dst.copy_from_slice(b.ids(s));
                }
            },
        );
        out
    }

    /// Packs the records of the first `stored.len() / m0` slots from
    /// `stored` (a file's record ids, see [`Graph::record_ids`]), each
    /// whose ids are the slot's live level-0 links followed by distinct
    /// slots in use that are neither the slot nor among its links; every
    /// other record stays stale, for [`Graph::refresh_blocks`] to derive.
    /// The extra entries only steer searches, so a file's, checked this
    /// far, is as good as a fresh one, and opening skips the search of the
    /// neighbours' neighbours (most of the time an open took).
    pub(crate) fn adopt_record_ids(&mut self, stored: &[u32]) {
        let Some(b) = &self.blocks else {
            return;
        };
        let m0 = b.m0;
        let n = (stored.len() / m0).min(self.len()).min(b.records.rows());
        let this = &*self;
        (0..n as u32).into_par_iter().for_each_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(links, extra, rec), s| {
                if !this.in_use(s) {
                    return;
                }
                let row = &stored[s as usize * m0..][..m0];
                // The next slot is most often this task's next one: its
                // rows load while this record is checked and packed.
                if let Some(next) = stored.get((s as usize + 1) * m0..(s as usize + 2) * m0) {
                    b.prefetch_codes(next);
                }
                let Some(ids) = this.fitting_record_ids(s, row, n, links, extra) else {
                    return;
                };
                this.pack_record(b, s, ids, None, rec);
                // SAFETY: `&mut self` (held by the caller through `this`)
                // excludes searches and inserts, and each slot is written by
                // one task.
                unsafe { b.records.write_row(s as usize, rec) };
                b.unmark(s);
            },
        );
    }

    /// The ids of `row` (a record's `m0` entries, [`EMPTY`] after the last)
    /// up to the first [`EMPTY`], when they may be slot `s`'s record: they
    /// start with its live level-0 links (at most `m0`), and the rest are
    /// distinct slots below `n`, in use, neither `s` nor among the links.
    fn fitting_record_ids<'r>(
        &self,
        s: u32,
        row: &'r [u32],
        n: usize,
        links: &mut Vec<u32>,
        extra: &mut Vec<u32>,
    ) -> Option<&'r [u32]> {
        let used = row.iter().position(|&id| id == EMPTY).unwrap_or(row.len());
        let ids = &row[..used];
        links.clear();
        self.read_links(s, 0, links);
        links.truncate(row.len());
        if !ids.starts_with(links) || row[used..].iter().any(|&id| id != EMPTY) {
            return None;
        }
        extra.clear();
        extra.extend_from_slice(&ids[links.len()..]);
        extra.sort_unstable();
        let fits = extra.windows(2).all(|w| w[0] != w[1])
            && extra
                .iter()
                .all(|&x| (x as usize) < n && x != s && self.in_use(x) && !links.contains(&x));
        fits.then_some(ids)
    }

    /// The first `n` slots' records as a file's packed rows
    /// ([`section::PQ4_PACKED`](super::persist::section::PQ4_PACKED)):
    /// one padded row per slot, a current record as it is, a stale one as a
    /// refresh would pack it, a slot not in use as an empty record. Borrowed
    /// from the records when every one is already so (after any `&mut`
    /// operation), else copied. Empty without records. The caller keeps
    /// inserts out (as a save does).
    pub(crate) fn packed_records(&self, n: usize) -> std::borrow::Cow<'_, [u8]> {
        let Some(b) = &self.blocks else {
            return std::borrow::Cow::Borrowed(&[]);
        };
        let n = n.min(b.records.rows());
        let row_bytes = b.records.row_bytes();
        let len = b.records.dim();
        let mut empty = Vec::new();
        self.pack_record(b, 0, &[], None, &mut empty);
        let needs = |s: u32| {
            if self.in_use(s) {
                b.is_stale(s)
            } else {
                b.records.row(s as usize) != &empty[..]
            }
        };
        let all = &b.records.as_bytes()[..n * row_bytes];
        if !(0..n as u32).into_par_iter().any(needs) {
            return std::borrow::Cow::Borrowed(all);
        }
        let mut out = all.to_vec();
        let m0 = b.m0;
        out.par_chunks_mut(row_bytes).enumerate().for_each_init(
            || (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            |(ids, hop, cands, rec), (s, dst)| {
                let s = s as u32;
                if !needs(s) {
                    return;
                }
                ids.clear();
                if self.in_use(s) {
                    self.derive_record_ids(s, m0, ids, hop, cands);
                }
                self.pack_record(b, s, ids, None, rec);
                dst[..len].copy_from_slice(rec);
            },
        );
        std::borrow::Cow::Owned(out)
    }

    /// With records viewed from a file's packed rows, the first slot whose
    /// record is not what [`Graph::packed_records`] would write for it
    /// (ids that [`Graph::fitting_record_ids`] refuses, blocks that are not
    /// its neighbours' codes, or a slot not in use whose record is not
    /// empty): what `load` and `verify` check. `None` for records derived
    /// here. O(n m0 m).
    pub(crate) fn first_misrecorded(&self) -> Option<u32> {
        let b = self.blocks.as_ref().filter(|b| b.records_from_file())?;
        let n = self.len().min(b.records.rows());
        (0..n as u32)
            .into_par_iter()
            .map_init(
                || (Vec::new(), Vec::new(), Vec::new()),
                |(links, extra, rec), s| {
                    let row = b.records.row(s as usize);
                    let ids: &[u32] = bytemuck::cast_slice(&row[..4 * b.m0]);
                    let ok = if self.in_use(s) {
                        self.fitting_record_ids(s, ids, n, links, extra)
                            .is_some_and(|ids| {
                                self.pack_record(b, s, ids, None, rec);
                                rec[..] == row[..]
                            })
                    } else {
                        self.pack_record(b, s, &[], None, rec);
                        rec[..] == row[..]
                    };
                    (!ok).then_some(s)
                },
            )
            .find_first(Option::is_some)
            .flatten()
    }

    /// The ids of slot `s`'s record derived from the graph into `ids`: its
    /// first `m0` level-0 links, then, in the entries they leave free, the
    /// nearest of its neighbours' neighbours that it does not link to. The
    /// FastScan block scores 32 neighbours whether the links fill it or
    /// not, so these extra edges cost a search almost nothing.
    fn derive_record_ids(
        &self,
        s: u32,
        m0: usize,
        ids: &mut Vec<u32>,
        hop: &mut Vec<u32>,
        cands: &mut Vec<Cand>,
    ) {
        self.read_links(s, 0, ids);
        ids.truncate(m0);
        if ids.len() >= m0 || ids.is_empty() {
            return;
        }
        hop.clear();
        let mut links = Vec::new();
        for &n in ids.iter() {
            self.read_links(n, 0, &mut links);
            hop.extend_from_slice(&links[..links.len().min(FILL_FROM)]);
        }
        hop.sort_unstable();
        hop.dedup();
        hop.retain(|x| *x != s && !ids.contains(x) && self.in_use(*x) && !self.is_deleted(*x));
        for &x in hop.iter() {
            self.prefetch_row(x);
        }
        let v = self.vector(s);
        cands.clear();
        cands.extend(hop.iter().map(|&x| Cand {
            dist: self.space.distance(v, self.vector(x)),
            slot: x,
        }));
        let want = m0 - ids.len();
        if cands.len() > want {
            cands.select_nth_unstable(want);
            cands.truncate(want);
        }
        cands.sort_unstable();
        ids.extend(cands.iter().map(|c| c.slot));
    }

    /// The level-0 search on the neighbour records (see the module
    /// documentation), unfiltered: up to `k` results, nearest first, exact
    /// distances. `None` when the query cannot be coded (the caller falls
    /// back to the exact search).
    ///
    /// Each record entry is estimated from its FastScan sum as
    /// `base + term + per_sum * sum`. With the neighbours' own codes that
    /// is the table's estimate (`base` its bias, no term), and the node
    /// expanded takes its exact distance last, its row having had the
    /// record scan's time to arrive. With residual records the node `u`
    /// takes its exact distance first and each neighbour `x = u + r` is
    /// estimated from the inner products `<q, r^>` the sums give: squared
    /// L2 as `d(q, u) - 2 <q, r^> + term` (the term, `|r|^2 + 2 <u, r^>`,
    /// is stored per entry: only `<q - u, r - r^>` is left out), the
    /// inner-product distance as `d(q, u) - <q, r^>`; `start` enters with
    /// its exact distance. A stale record (left by inserts through `&self`)
    /// is expanded from the live links, scored from their own codes, or
    /// exactly where records hold residuals.
    ///
    /// Deleted nodes route but are not results, and do not count towards
    /// `ef` (as in the searches on the vectors): without that, a query among
    /// many deleted nodes would fill its pool with them and return fewer
    /// live results than it could reach. The caller passes a [`LivePool`]
    /// type where the graph has deleted nodes, else the faster [`Pool`].
    ///
    /// [`LivePool`]: super::pool::LivePool
    /// [`Pool`]: super::pool::Pool
    pub(crate) fn search_blocks<B: Beam>(
        &self,
        q: &[S::Elem],
        start: Cand,
        k: usize,
        ef: usize,
        visited: &mut PooledVisited<'_>,
        scratch: &mut Scratch,
    ) -> Option<Vec<Cand>> {
        let b = self.blocks.as_ref()?;
        let qf = super::quant::as_f32(q)?;
        let resid = b.resid.as_ref();
        // What the start needs loads while the query's table is built: its
        // record (for the table's cap and to expand it), and its own code
        // (the cap and its estimate) or, with residuals, its row.
        b.prefetch_record(start.slot);
        match resid {
            None => b.prefetch_codes(&[start.slot]),
            Some(_) => self.prefetch_row(start.slot),
        }
        // Own codes: squared L2, or the inner product of the (for cosine,
        // normalized) vectors the graph stores. Residuals: inner products.
        let (pq, metric) = match (resid, self.space.metric()) {
            (Some(r), _) => (&r.pq, Metric::InnerProduct),
            (None, Metric::L2) => (&b.pq, Metric::L2),
            (None, _) => (&b.pq, Metric::InnerProduct),
        };
        // Own codes: the table is capped near the start and its nearest
        // neighbour ([`TABLE_SPAN`]). Residual tables are left whole.
        let near_codes;
        let near: &[&[u8]] = match resid {
            None => {
                near_codes = self.near_codes(b, start.slot, &mut scratch.ids, &mut scratch.code);
                &near_codes
            }
            Some(_) => &[],
        };
        let (values, lut) = (&mut scratch.dists, &mut scratch.pq4);
        pq.lut_into_near(b.table, qf, metric, near, TABLE_SPAN, values, lut)
            .ok()?;
        let lut = &scratch.pq4;
        // An inner-product table estimates `1 - <q, r^>`: squared L2 adds
        // twice `-<q, r^>`, the inner product once.
        let terms = resid.is_some_and(|r| r.terms);
        let (per_sum, offset) = match resid {
            None => (lut.step(), lut.bias()),
            Some(_) if terms => (2.0 * lut.step(), 2.0 * (lut.bias() - 1.0)),
            Some(_) => (lut.step(), lut.bias() - 1.0),
        };
        let filtering = B::MIXED;
        let push = |beam: &mut B, c: Cand| beam.offer(c, !filtering || !self.is_deleted(c.slot));
        let ef = ef.max(k);
        let mut results: BinaryHeap<Cand> = BinaryHeap::with_capacity(k + 1);
        let mut beam = B::with_ef(ef);
        let sums_all = &mut scratch.dots;
        sums_all.clear();
        sums_all.resize(b.nblocks * BLOCK, 0);
        let limit = self.capacity() as u32;
        let block_bytes = b.m * 16;
        let terms_at = b.terms_offset() - b.ids_bytes;
        let zeros = [0.0f32; BLOCK];
        let mut ests = [0.0f32; BLOCK];

        visited.check_and_mark(start.slot);
        match resid {
            Some(_) => push(&mut beam, start),
            None => push(
                &mut beam,
                Cand {
                    dist: b.estimate_one(lut, start.slot),
                    slot: start.slot,
                },
            ),
        }
        while let Some(u) = beam.pop() {
            // With residuals the estimates need it now; its row was
            // requested when it became the next node to expand.
            let du = resid.map(|_| self.dist_to(q, u));
            if b.is_stale(u) {
                self.read_links(u, 0, &mut scratch.ids);
                for &n in &scratch.ids {
                    let d = match resid {
                        Some(_) => self.dist_to(q, n),
                        None => b.estimate_one(lut, n),
                    };
                    if beam.admits(d) && !visited.check_and_mark(n) {
                        push(&mut beam, Cand { dist: d, slot: n });
                    }
                }
            } else {
                let ids = b.ids(u);
                let blocks = b.code_blocks(u);
                let used = ids.iter().position(|&id| id == EMPTY).unwrap_or(ids.len());
                let nblocks = used.div_ceil(BLOCK);
                // The sums land in `i32` scratch reinterpreted as `u32`.
                let out: &mut [u32] = bytemuck::cast_slice_mut(&mut sums_all[..nblocks * BLOCK]);
                if nblocks > 0 {
                    b.table
                        .fastscan_u4(lut.bytes(), &blocks[..nblocks * block_bytes], b.m, out);
                }
                let bound = match beam.full() {
                    true => beam.bound(),
                    false => f32::INFINITY,
                };
                let base = du.unwrap_or(0.0) + offset;
                for (chunk, sums) in out.chunks_exact(BLOCK).enumerate() {
                    let terms: &[f32] = if terms {
                        bytemuck::cast_slice(&blocks[terms_at + chunk * BLOCK * 4..][..BLOCK * 4])
                    } else {
                        &zeros
                    };
                    // All 32 estimates, compared before any visited tag is
                    // read (a likely cache miss): most neighbours cost no
                    // more than that comparison.
                    let mut mask = 0u32;
                    for (i, ((e, &sum), &t)) in ests.iter_mut().zip(sums).zip(terms).enumerate() {
                        *e = base + t + per_sum * sum as f32;
                        mask |= u32::from(*e < bound) << i;
                    }
                    while mask != 0 {
                        let j = mask.trailing_zeros() as usize;
                        mask &= mask - 1;
                        let i = chunk * BLOCK + j;
                        if i >= used {
                            break;
                        }
                        let n = ids[i];
                        if n < limit && beam.admits(ests[j]) && !visited.check_and_mark(n) {
                            push(
                                &mut beam,
                                Cand {
                                    dist: ests[j],
                                    slot: n,
                                },
                            );
                        }
                    }
                }
            }
            // Load the next node's record and row while this one's are
            // used, and the record of the one likely after it.
            let mut next = beam.upcoming();
            if let Some(n) = next.next() {
                b.prefetch_record(n);
                self.prefetch_row(n);
                if let Some(n) = next.next() {
                    b.prefetch_record(n);
                }
            }
            if !filtering || !self.is_deleted(u) {
                let d = du.unwrap_or_else(|| self.dist_to(q, u));
                if results.len() < k || d < results.peek().map_or(f32::INFINITY, |c| c.dist) {
                    results.push(Cand { dist: d, slot: u });
                    if results.len() > k {
                        results.pop();
                    }
                }
            }
        }
        let mut out = results.into_vec();
        out.sort_unstable();
        Some(out)
    }

    /// The own code of `start` and the code of its first level-0 neighbour
    /// (its nearest when the links were chosen, which keeps a scale where
    /// the query coincides with the start): the rows a query's byte table
    /// is capped near ([`Pq4::lut_into_near`], [`TABLE_SPAN`]). The
    /// neighbour's code is unpacked from the start's record (into `code`),
    /// which the search reads next anyway; a stale record's links name it.
    fn near_codes<'a>(
        &self,
        b: &'a Blocks,
        start: u32,
        ids: &mut Vec<u32>,
        code: &'a mut Vec<u8>,
    ) -> [&'a [u8]; 2] {
        let own = &b.codes.row(start as usize)[..b.m];
        let next = if b.is_stale(start) {
            self.read_links(start, 0, ids);
            ids.first().map(|&n| &b.codes.row(n as usize)[..b.m])
        } else if b.ids(start).first().is_some_and(|&id| id != EMPTY) {
            code.resize(b.m, 0);
            let block = &b.code_blocks(start)[..fastscan::block_bytes(b.m)];
            fastscan::get_codes(block, b.m, 0, code);
            Some(&code[..])
        } else {
            None
        };
        [own, next.unwrap_or(own)]
    }

    /// The residual quantizer for records of `used`'s slots when codes of
    /// this dimension have several components ([`uses_residuals`]): trained
    /// on up to [`TRAIN_SAMPLE`](super::quant::TRAIN_SAMPLE) differences
    /// `neighbour - node` along level-0 links, one per node of an even
    /// spread. `None` below that dimension or without a link.
    fn train_residual(
        &self,
        used: &[u32],
        opts: crate::quant::Pq4Options,
    ) -> crate::Result<Option<Residual>> {
        let dim = self.space.vector_len();
        if !uses_residuals(dim) || used.is_empty() {
            return Ok(None);
        }
        let take = used.len().min(super::quant::TRAIN_SAMPLE);
        let mut sample = Vec::with_capacity(take * dim);
        let mut links = Vec::new();
        for i in 0..take {
            let s = used[i * used.len() / take];
            self.read_links(s, 0, &mut links);
            let Some(&t) = links.get(i % links.len().max(1)) else {
                continue;
            };
            let (a, b) = (
                super::quant::as_f32(self.vector(t)).expect("f32 space"),
                super::quant::as_f32(self.vector(s)).expect("f32 space"),
            );
            sample.extend(a.iter().zip(b).map(|(x, y)| x - y));
        }
        if sample.is_empty() {
            return Ok(None);
        }
        let opts = crate::quant::Pq4Options {
            seed: opts.seed ^ RESIDUAL_SEED,
            ..opts
        };
        Ok(Some(Residual {
            pq: Pq4::train(&sample, dim, opts)?,
            terms: self.space.metric() == Metric::L2,
        }))
    }

    /// Trains a [`Pq4`] on up to `sample` of `used`'s rows and codes and
    /// packs every slot with it.
    pub(crate) fn train_blocks(
        &mut self,
        used: &[u32],
        sample: Vec<f32>,
        take: usize,
        table: &'static KernelTable,
    ) -> crate::Result<()> {
        let dim = self.space.vector_len();
        let opts = crate::quant::Pq4Options {
            subspace_dims: subspace_dims_for(dim),
            seed: self.params.seed,
            ..Default::default()
        };
        let pq = Pq4::train(&sample, dim, opts)?;
        drop(sample);
        let resid = self.train_residual(used, opts)?;
        let blocks = Blocks::new(pq, resid, self.params.m0, self.capacity(), take, table);
        let this = &*self;
        used.par_iter().for_each_init(Vec::new, |buf, &s| {
            let v = super::quant::as_f32(this.vector(s)).expect("f32 space");
            // SAFETY: `&mut self` excludes every other reader and writer,
            // `blocks` is not shared yet, and each slot is coded once.
            unsafe { blocks.write_code(s as usize, v, buf) };
        });
        let mut blocks = blocks;
        blocks.mark_all();
        self.blocks = Some(blocks);
        self.refresh_blocks();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Hnsw, Quantization};
    use super::BLOCK;
    use crate::Metric;

    /// An empty 8-dimensional `pq4` index.
    fn pq4_index() -> Hnsw {
        Hnsw::builder(8, Metric::L2)
            .quantization(Quantization::Pq4)
            .build()
            .unwrap()
    }

    /// `n` rows of 8 pseudo-random components in `[0, 2^14)` from `seed`.
    fn random_rows(seed: u64, n: usize) -> Vec<f32> {
        let mut x = seed;
        (0..8 * n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 40) as f32 / 1024.0
            })
            .collect()
    }

    /// `n` rows of `dim` components near a 6-dimensional subspace (6
    /// uniform latent factors through a fixed random basis, plus noise a
    /// twentieth of a factor's scale), from `seed`: rows with meaningful
    /// nearest neighbours, as embeddings have.
    fn clustered_rows(seed: u64, n: usize, dim: usize) -> Vec<f32> {
        let mut x = 0x5eed_u64;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let basis: Vec<f32> = (0..6 * dim).map(|_| next()).collect();
        let mut next = {
            let mut x = seed;
            move || {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            }
        };
        (0..n)
            .flat_map(|_| {
                let z: Vec<f32> = (0..6).map(|_| 4.0 * next()).collect();
                (0..dim)
                    .map(|d| (0..6).map(|f| z[f] * basis[f * dim + d]).sum::<f32>() + 0.1 * next())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every record of `index` is what packing it afresh gives (no entry
    /// kept from an earlier record).
    fn assert_records_are_fresh(index: &Hnsw) {
        let g = &index.graph;
        let b = g.blocks.as_ref().unwrap();
        let mut rec = Vec::new();
        for s in 0..g.len() as u32 {
            assert!(!b.is_stale(s));
            let ids: Vec<u32> = b
                .ids(s)
                .iter()
                .copied()
                .take_while(|&i| i != super::EMPTY)
                .collect();
            g.pack_record(b, s, &ids, None, &mut rec);
            assert!(b.records.row(s as usize) == &rec[..], "record {s}");
        }
    }

    /// Above 128 components the records hold residual codes: each entry's
    /// code is the residual quantizer's code of `neighbour - node`, its
    /// term (squared L2) `|r|^2 + 2 <node, r^>`; searches return exact
    /// distances and find the true neighbours; the inner product and cosine
    /// carry no terms.
    #[test]
    fn residual_records_hold_each_neighbours_residual_code_and_term() {
        let dim = 160;
        let rows = clustered_rows(7, 1500, dim);
        let labels: Vec<u64> = (0..1500).collect();
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let mut index = Hnsw::builder(dim, metric)
                .quantization(Quantization::Pq4)
                .build()
                .unwrap();
            index.insert_batch(&labels, &rows).unwrap();
            let g = &index.graph;
            let b = g.blocks.as_ref().unwrap();
            let r = b
                .resid
                .as_ref()
                .expect("residual records above 128 components");
            assert_eq!(r.terms, metric == Metric::L2, "{metric:?}");
            let terms_len = if r.terms { BLOCK * 4 } else { 0 };
            assert_eq!(b.records.dim(), b.ids_bytes + b.m * 16 + terms_len);
            let mut code = vec![0u8; b.m];
            let mut dec = vec![0.0f32; dim];
            for s in (0..g.len() as u32).step_by(97) {
                let node = super::super::quant::as_f32(g.vector(s)).unwrap();
                let row = b.records.row(s as usize);
                let ids = b.ids(s);
                let used = ids
                    .iter()
                    .position(|&i| i == super::EMPTY)
                    .unwrap_or(ids.len());
                assert!(used > 0);
                for (i, &id) in ids[..used].iter().enumerate() {
                    let v = super::super::quant::as_f32(g.vector(id)).unwrap();
                    let res: Vec<f32> = v.iter().zip(node).map(|(a, c)| a - c).collect();
                    r.pq.encode(&res, &mut code).unwrap();
                    let (lane, shift) = (i % 16, 4 * ((i % BLOCK) / 16));
                    for (k, &c) in code.iter().enumerate() {
                        let got = (row[b.ids_bytes + 16 * k + lane] >> shift) & 15;
                        assert_eq!(got, c, "slot {s} entry {i} sub-space {k}");
                    }
                    if r.terms {
                        r.pq.decode(&code, &mut dec).unwrap();
                        let rr: f32 = res.iter().map(|x| x * x).sum();
                        let ur: f32 = node.iter().zip(&dec).map(|(a, b)| a * b).sum();
                        let at = b.terms_offset() + 4 * i;
                        let got = f32::from_ne_bytes(row[at..at + 4].try_into().unwrap());
                        assert_eq!(
                            got.to_bits(),
                            (rr + 2.0 * ur).to_bits(),
                            "slot {s} entry {i}"
                        );
                    }
                }
            }
            assert_records_are_fresh(&index);

            let mut exact = Hnsw::builder(dim, metric).build().unwrap();
            exact.insert_batch(&labels, &rows).unwrap();
            let (mut hits, mut total) = (0, 0);
            for q in clustered_rows(99, 50, dim).chunks(dim) {
                let got = index.search(q, 10, 24).unwrap();
                let want = exact.search(q, 10, 400).unwrap();
                total += 10;
                for n in &got {
                    // Exact distances: a label both find has one distance.
                    if let Some(w) = want.iter().find(|w| w.label == n.label) {
                        hits += 1;
                        let tol = 1e-4 * w.distance.abs().max(1.0);
                        assert!((n.distance - w.distance).abs() <= tol, "{metric:?}");
                    }
                }
            }
            let recall = hits as f64 / total as f64;
            assert!(recall >= 0.9, "{metric:?}: recall@10 {recall}");
        }
    }

    /// Residual records through saving, loading, mapping, inserts (which
    /// keep the codes of unchanged entries), updates and removals stay
    /// exactly what packing afresh gives; a file without the residual
    /// quantizer (written before residual records) opens with records of
    /// the neighbours' own codes and answers as it did; a packed file with
    /// a wrong term is refused.
    #[test]
    fn residual_records_survive_files_and_changes() {
        use super::super::SaveOptions;
        use crate::store::OpenOptions;
        let dim = 136;
        let rows = clustered_rows(11, 1300, dim);
        let labels: Vec<u64> = (0..1000).collect();
        let mut index = Hnsw::builder(dim, Metric::L2)
            .quantization(Quantization::Pq4)
            .build()
            .unwrap();
        index.insert_batch(&labels, &rows[..1000 * dim]).unwrap();
        for i in 1000..1100u64 {
            index.insert(i, &rows[i as usize * dim..][..dim]).unwrap();
        }
        index.insert(3, &rows[1200 * dim..][..dim]).unwrap();
        index.remove(17).unwrap();
        assert_records_are_fresh(&index);
        index.reserve(200).unwrap();
        for i in 1100..1200u64 {
            index
                .try_insert(i, &rows[i as usize * dim..][..dim])
                .unwrap();
        }
        let b = index.graph.blocks.as_ref().unwrap();
        assert!((0..index.graph.len() as u32).any(|s| b.is_stale(s)));

        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.swann");
        let packed = dir.path().join("packed.swann");
        index.save(&plain).unwrap();
        index
            .save_with(&packed, SaveOptions::default().pq4_records(true))
            .unwrap();
        let loaded = Hnsw::load(&plain).unwrap();
        assert!(loaded.graph.blocks.as_ref().unwrap().resid.is_some());
        assert_records_are_fresh(&loaded);
        let mapped = Hnsw::open_mmap(&packed, OpenOptions::default()).unwrap();
        assert!(mapped.graph.blocks.as_ref().unwrap().records_from_file());
        mapped.verify().unwrap();
        let reloaded = Hnsw::load(&packed).unwrap();
        let queries = clustered_rows(5, 40, dim);
        for q in queries.chunks(dim) {
            let want = loaded.search(q, 10, 48).unwrap();
            assert_eq!(mapped.search(q, 10, 48).unwrap(), want);
            assert_eq!(reloaded.search(q, 10, 48).unwrap(), want);
        }

        // A wrong term in a packed row: refused, the slot named.
        let mut bad = Hnsw::load(&plain).unwrap();
        {
            let b = bad.graph.blocks.as_mut().unwrap();
            let at = b.terms_offset();
            let row = b.records.row_mut(9);
            row[at] ^= 1;
        }
        let broken = dir.path().join("broken.swann");
        bad.save_with(&broken, SaveOptions::default().pq4_records(true))
            .unwrap();
        let err = Hnsw::load(&broken).unwrap_err();
        assert!(err.to_string().contains("slot 9"), "{err}");

        // Records of the neighbours' own codes, as files before residual
        // records hold them: saved without the residual quantizer, opened
        // as such, same answers as before saving.
        let mut old = Hnsw::load(&plain).unwrap();
        {
            let b = old.graph.blocks.as_mut().unwrap();
            let (pq, m0, table) = (b.pq.clone(), b.m0, b.table);
            let codes = std::mem::replace(&mut b.codes, crate::store::RowArena::new(1, 0));
            let mut fresh = super::Blocks::with_codes(pq, None, m0, codes, b.trained_on, table);
            fresh.mark_all();
            old.graph.blocks = Some(fresh);
            old.graph.refresh_blocks();
        }
        let old_path = dir.path().join("old.swann");
        old.save(&old_path).unwrap();
        let reopened = Hnsw::load(&old_path).unwrap();
        assert!(reopened.graph.blocks.as_ref().unwrap().resid.is_none());
        for q in queries.chunks(dim) {
            assert_eq!(
                reopened.search(q, 10, 48).unwrap(),
                old.search(q, 10, 48).unwrap()
            );
        }
    }

    /// A file whose 4-bit codes disagree with its rows (checksums intact,
    /// as a buggy writer would leave it), even codes that do not fit four
    /// bits, is refused by `load` and `verify`; mapping it does not panic.
    #[test]
    fn load_and_verify_refuse_codes_that_are_not_the_rows() {
        let mut index = pq4_index();
        let rows: Vec<f32> = (0..8 * 400).map(|i| ((i * 37) % 101) as f32).collect();
        let labels: Vec<u64> = (0..400).collect();
        index.insert_batch(&labels, &rows).unwrap();
        assert!(index.is_quantized());
        assert_eq!(index.graph.first_miscoded(), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.swann");
        index.save(&path).unwrap();
        Hnsw::load(&path).unwrap().verify().unwrap();

        for bad in [0x80u8, 1] {
            let blocks = index.graph.blocks.as_mut().unwrap();
            let c = &mut blocks.codes.row_mut(7)[3];
            *c = if bad == 1 { (*c + 1) % 16 } else { bad };
            assert_eq!(index.graph.first_miscoded(), Some(7));
            index.save(&path).unwrap();
            let err = Hnsw::load(&path).unwrap_err();
            assert!(err.to_string().contains("slot 7"), "{err}");
            let mapped = Hnsw::open_mmap(&path, crate::store::OpenOptions::default()).unwrap();
            assert!(mapped.verify().is_err());
            assert_eq!(mapped.search(&rows[..8], 1, 16).unwrap().len(), 1);
            index.train_quantizer().unwrap();
        }
    }

    /// A file saved with its packed records is mapped without packing any:
    /// the mapped index views the file's rows, which equal the records of
    /// the index that saved them, and answers every query as that index
    /// does; `load` and `verify` accept them; changing the mapped index
    /// copies it first. Records stale when saving (inserts through `&self`)
    /// and slots freed by removals are written as a refresh would leave
    /// them.
    #[test]
    fn packed_records_in_the_file_are_mapped_as_saved() {
        use super::super::SaveOptions;
        use crate::store::OpenOptions;
        let mut index = pq4_index();
        let rows = random_rows(4242, 900);
        let labels: Vec<u64> = (0..800).collect();
        index.insert_batch(&labels, &rows[..8 * 800]).unwrap();
        index.remove(5).unwrap();
        index.remove(600).unwrap();
        // Through `&self`: these leave records stale until the next `&mut`.
        index.reserve(100).unwrap();
        for i in 800..900u64 {
            index
                .try_insert(i, &rows[8 * i as usize..8 * (i as usize + 1)])
                .unwrap();
        }
        let b = index.graph.blocks.as_ref().unwrap();
        assert!(
            (0..index.graph.len() as u32).any(|s| b.is_stale(s)),
            "the test needs stale records"
        );
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.swann");
        let packed = dir.path().join("packed.swann");
        index.save(&plain).unwrap();
        index
            .save_with(&packed, SaveOptions::default().pq4_records(true))
            .unwrap();
        let grew =
            std::fs::metadata(&packed).unwrap().len() - std::fs::metadata(&plain).unwrap().len();
        let rb = b.records.row_bytes() as u64;
        assert!(grew >= index.graph.len() as u64 * rb, "{grew}");

        // What a refresh leaves: the records of an owned copy.
        let reference = Hnsw::load(&plain).unwrap();
        let rec = |i: &Hnsw, s: usize| i.graph.blocks.as_ref().unwrap().records.row(s).to_vec();
        let mapped = Hnsw::open_mmap(&packed, OpenOptions::default()).unwrap();
        let mb = mapped.graph.blocks.as_ref().unwrap();
        assert!(mb.records_from_file());
        assert_eq!(mb.records.allocated_bytes(), 0);
        assert!((0..mapped.graph.len() as u32).all(|s| !mb.is_stale(s)));
        for s in 0..reference.graph.len() {
            assert!(rec(&reference, s) == rec(&mapped, s), "record {s}");
        }
        mapped.verify().unwrap();
        let loaded = Hnsw::load(&packed).unwrap();
        assert!(!loaded.graph.blocks.as_ref().unwrap().records_from_file());
        for (qi, q) in random_rows(99, 60).chunks(8).enumerate() {
            let want = reference.search(q, 10, 40).unwrap();
            assert_eq!(mapped.search(q, 10, 40).unwrap(), want, "query {qi}");
            assert_eq!(loaded.search(q, 10, 40).unwrap(), want, "query {qi}");
        }

        // A change copies the view, records included, and searches on.
        let mut changed = mapped;
        changed.insert(5000, &[1e6; 8]).unwrap();
        assert!(!changed.is_mapped());
        assert_eq!(changed.search(&[1e6; 8], 1, 16).unwrap()[0].label, 5000);
        changed.verify().unwrap();
    }

    /// A packed-record file whose rows are not the records of its links and
    /// codes (checksums intact, as a buggy writer would leave it) is refused
    /// by `load` and `verify`, the slot named; searching its mapped view,
    /// ids out of range included, does not panic.
    #[test]
    fn load_and_verify_refuse_packed_records_that_are_not_the_graphs() {
        use super::super::SaveOptions;
        use crate::store::OpenOptions;
        let mut index = pq4_index();
        let rows = random_rows(31, 500);
        let labels: Vec<u64> = (0..500).collect();
        index.insert_batch(&labels, &rows).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.swann");
        let opts = SaveOptions::default().pq4_records(true);
        index.save_with(&path, opts).unwrap();
        Hnsw::load(&path).unwrap().verify().unwrap();

        let ids_bytes = index.graph.blocks.as_ref().unwrap().ids_bytes;
        // A code bit in a block, a link id replaced by an id past the
        // index, an extra entry naming the slot itself.
        type Fault = fn(&mut [u8], usize);
        let faults: [(usize, Fault); 3] = [
            (7, |r: &mut [u8], ids_bytes| r[ids_bytes + 5] ^= 0x10),
            (8, |r: &mut [u8], _| {
                r[..4].copy_from_slice(&100_000u32.to_ne_bytes())
            }),
            (9, |r: &mut [u8], _| {
                let last = r[..4 * 16].chunks(4).rposition(|c| c != [0xff; 4]).unwrap();
                r[4 * last..4 * last + 4].copy_from_slice(&9u32.to_ne_bytes());
            }),
        ];
        for (slot, fault) in faults {
            let mut copy = Hnsw::load(&path).unwrap();
            let b = copy.graph.blocks.as_mut().unwrap();
            fault(b.records.row_mut(slot), ids_bytes);
            let bad = dir.path().join(format!("bad{slot}.swann"));
            copy.save_with(&bad, opts).unwrap();
            let err = Hnsw::load(&bad).unwrap_err();
            assert!(err.to_string().contains(&format!("slot {slot}")), "{err}");
            let mapped = Hnsw::open_mmap(&bad, OpenOptions::default()).unwrap();
            assert!(mapped.verify().is_err());
            for q in rows.chunks(8).take(50) {
                assert!(!mapped.search(q, 10, 32).unwrap().is_empty());
            }
        }
    }

    /// A record is its ids, then the FastScan blocks `pack_blocks` makes
    /// of their codes, for records of one block or two, full or not.
    #[test]
    fn records_hold_the_packed_codes_of_their_ids() {
        use crate::kernels::fastscan;
        for (m, n_rows) in [(8usize, 300usize), (20, 400)] {
            let mut index = Hnsw::builder(8, Metric::L2)
                .m(m)
                .quantization(Quantization::Pq4)
                .build()
                .unwrap();
            let rows: Vec<f32> = (0..8 * n_rows)
                .map(|i| ((i * 7919) % 1009) as f32)
                .collect();
            let labels: Vec<u64> = (0..n_rows as u64).collect();
            index.insert_batch(&labels, &rows).unwrap();
            let b = index.graph.blocks.as_ref().unwrap();
            let m0 = 2 * m;
            let mut rec = Vec::new();
            let mut want = Vec::new();
            for len in [0, 1, 15, 16, 17, 31, 32, 33, m0]
                .into_iter()
                .filter(|&l| l <= m0)
            {
                let ids: Vec<u32> = (0..len as u32)
                    .map(|i| (i * 13 + 5) % n_rows as u32)
                    .collect();
                b.record_bytes(&ids, &mut rec);
                let mut codes: Vec<u8> = ids
                    .iter()
                    .flat_map(|&id| b.codes.row(id as usize)[..b.m].to_vec())
                    .collect();
                codes.resize(b.m * m0.div_ceil(BLOCK) * BLOCK, 0);
                want.clear();
                fastscan::pack_blocks(&codes, b.m, &mut want).unwrap();
                let got_ids: &[u32] = bytemuck::cast_slice(&rec[..4 * m0]);
                assert_eq!(&got_ids[..len], &ids[..], "m0 {m0}, {len} ids");
                assert!(got_ids[len..].iter().all(|&i| i == super::EMPTY));
                assert_eq!(&rec[b.ids_bytes..], &want[..], "m0 {m0}, {len} ids");
            }
        }
    }

    /// A saved `pq4` index keeps each record's ids (its links and the
    /// extra entries): loading and mapping pack the same records without
    /// deriving the extra entries again. A record whose saved ids do not
    /// start with the slot's links, or whose extra entries name the slot
    /// itself, a slot out of range or one twice, is derived anew, as are
    /// all of them in a file without the section (written before it
    /// existed).
    #[test]
    fn saved_record_ids_are_adopted_where_they_fit_the_links() {
        use crate::store::{FileWriter, IndexFile, OpenOptions};
        let mut index = pq4_index();
        let rows = random_rows(777, 600);
        let labels: Vec<u64> = (0..600).collect();
        index.insert_batch(&labels, &rows).unwrap();
        let records = |index: &Hnsw| -> Vec<Vec<u8>> {
            let b = index.graph.blocks.as_ref().unwrap();
            (0..index.graph.len())
                .map(|s| b.records.row(s).to_vec())
                .collect()
        };
        let want = records(&index);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.swann");
        index.save(&path).unwrap();
        let loaded = Hnsw::load(&path).unwrap();
        assert!(want == records(&loaded), "loaded records differ");
        let mapped = Hnsw::open_mmap(&path, OpenOptions::default()).unwrap();
        assert!(want == records(&mapped), "mapped records differ");
        drop(mapped);

        // Slots with at least two extra entries, each given a different
        // fault in the copy that is saved.
        let g = &index.graph;
        let b = g.blocks.as_ref().unwrap();
        let mut links = Vec::new();
        let mut with_extra = Vec::new();
        for s in 0..g.len() as u32 {
            g.read_links(s, 0, &mut links);
            let used = b.ids(s).iter().filter(|&&i| i != super::EMPTY).count();
            if used >= links.len() + 2 {
                with_extra.push((s, links.len(), used));
            }
        }
        assert!(
            with_extra.len() >= 6,
            "{} records with extra entries",
            with_extra.len()
        );
        let n = g.len() as u32;
        let faults = [
            |_s: u32, _l: usize, _u: usize, ids: &mut [u32], n: u32| ids[0] = (ids[0] + 1) % n,
            |s: u32, l: usize, _u: usize, ids: &mut [u32], _n: u32| ids[l] = s,
            |_s: u32, l: usize, _u: usize, ids: &mut [u32], n: u32| ids[l] = n + 3,
            |_s: u32, l: usize, _u: usize, ids: &mut [u32], _n: u32| ids[l + 1] = ids[l],
            // An id after the first empty entry.
            |_s: u32, _l: usize, u: usize, ids: &mut [u32], _n: u32| ids[u - 2] = super::EMPTY,
        ];
        let m0 = g.params.m0;
        let b = index.graph.blocks.as_mut().unwrap();
        for (&(s, l, u), fault) in with_extra.iter().zip(faults) {
            let rec = b.records.row_mut(s as usize);
            let ids: &mut [u32] = bytemuck::cast_slice_mut(&mut rec[..4 * m0]);
            fault(s, l, u, ids, n);
        }
        // A valid change (two extra entries swapped) is adopted as saved.
        let (s, _, u) = with_extra[faults.len()];
        let ids: &mut [u32] =
            bytemuck::cast_slice_mut(&mut b.records.row_mut(s as usize)[..4 * m0]);
        ids.swap(u - 1, u - 2);
        let swapped = ids.to_vec();
        index.save(&path).unwrap();
        let loaded = Hnsw::load(&path).unwrap();
        assert_eq!(loaded.graph.blocks.as_ref().unwrap().ids(s), &swapped[..]);
        let mut got = records(&loaded);
        got[s as usize] = want[s as usize].clone();
        assert!(want == got, "faulty saved ids were adopted");
        loaded.verify().unwrap();

        // The same file without the section.
        let file = IndexFile::load(&path).unwrap();
        let mut w = FileWriter::new(file.header().clone());
        for e in file.sections() {
            if e.id != super::super::persist::section::PQ4_RECORDS {
                w.add_section(e.id, file.section_bytes(e.id).unwrap())
                    .unwrap();
            }
        }
        let old = dir.path().join("old.swann");
        w.write_atomic(&old).unwrap();
        let loaded = Hnsw::load(&old).unwrap();
        assert!(
            want == records(&loaded),
            "records derived from the links differ"
        );
        let hits = loaded.search(&rows[8 * 42..8 * 43], 1, 32).unwrap();
        assert_eq!((hits[0].label, hits[0].distance), (42, 0.0));
    }

    /// Records follow the links: after inserts through `&self` a search
    /// expands stale records from the live links, and the next `&mut`
    /// operation repacks them.
    #[test]
    fn stale_records_are_searched_from_the_links_and_repacked() {
        let mut index = pq4_index();
        let rows = random_rows(12345, 800);
        let labels: Vec<u64> = (0..400).collect();
        index.insert_batch(&labels, &rows[..8 * 400]).unwrap();
        index.reserve(400).unwrap();
        let b = index.graph.blocks.as_ref().unwrap();
        assert!(!(0..400).any(|s| b.is_stale(s)));
        for i in 400..800 {
            index
                .try_insert(i as u64, &rows[i * 8..(i + 1) * 8])
                .unwrap();
        }
        let b = index.graph.blocks.as_ref().unwrap();
        let stale = (0..800).filter(|&s| b.is_stale(s)).count();
        assert!(stale >= 400, "{stale} stale records");
        for i in (400..800).step_by(9) {
            let hits = index.search(&rows[i * 8..(i + 1) * 8], 10, 64).unwrap();
            assert!(
                hits.iter()
                    .any(|h| h.label == i as u64 && h.distance == 0.0),
                "row {i} not found by its own vector"
            );
        }
        index.insert(10_000, &[1.0; 8]).unwrap();
        let g = &index.graph;
        let b = g.blocks.as_ref().unwrap();
        let mut links = Vec::new();
        for s in 0..g.len() as u32 {
            assert!(!b.is_stale(s), "slot {s} still stale");
            g.read_links(s, 0, &mut links);
            let ids: Vec<u32> = b
                .ids(s)
                .iter()
                .copied()
                .filter(|&i| i != super::EMPTY)
                .collect();
            // The links, then extra entries: in use, distinct, not linked.
            assert_eq!(ids[..links.len()], links[..], "slot {s}");
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), ids.len(), "slot {s}: repeated ids");
            assert!(ids.iter().all(|&i| i != s && g.in_use(i)), "slot {s}");
            assert!(ids.len() <= g.params.m0);
        }
        // Removed nodes leave no record, also not as an extra entry of a
        // record whose own links did not change.
        let gone: Vec<u64> = (0..800).step_by(5).collect();
        index.remove_batch(&gone).unwrap();
        let g = &index.graph;
        let b = g.blocks.as_ref().unwrap();
        for s in 0..g.len() as u32 {
            if g.in_use(s) {
                assert!(!b.is_stale(s));
                let ids = b.ids(s).iter().filter(|&&i| i != super::EMPTY);
                assert!(ids.clone().all(|&i| g.in_use(i)), "slot {s}");
            }
        }
        for i in (1..800).step_by(5) {
            let hits = index.search(&rows[i * 8..(i + 1) * 8], 10, 64).unwrap();
            assert!(hits.iter().all(|h| h.label % 5 != 0));
            assert!(hits
                .iter()
                .any(|h| h.label == i as u64 && h.distance == 0.0));
        }
    }
}
