//! Saving, loading and memory-mapping HNSW indexes in swann's container
//! format (`docs/FORMAT.md`), and importing hnswlib's files.
//!
//! The file holds the graph's arrays exactly as they lie in memory (vector
//! rows and link records padded to cache lines), one section each, so
//! [`HnswIndex::open_mmap`] points the graph at the mapped sections without
//! copying or parsing anything.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use super::graph::{
    default_mult, Graph, GraphParts, NeighborSelection, Params, DELETED, FREE, MAX_LEVEL, RETIRED,
};
use super::links::NearCounts;
use super::quant::{Codes, Quantization};
use super::space::{BitSpace, F32Space, Space};
use super::{HnswIndex, MAX_M0};
use crate::error::{Error, Result};
use crate::kernels::{self, KernelTable};
use crate::quant::Sq8;
use crate::store::format::FormatError;
use crate::store::{
    ElemType, FileWriter, Header, IndexFile, IndexKind, LinkArena, OpenOptions, RowArena, Slab,
};
use crate::Metric;

/// Section ids of an HNSW file.
pub mod section {
    /// Vector rows, `n_items` rows each padded to whole 64-byte lines.
    pub const VECTORS: u32 = 1;
    /// Level-0 link records, `n_items` records of `m0` `u32` ids padded to
    /// whole lines; unused entries are `u32::MAX`.
    pub const LINKS0: u32 = 2;
    /// Upper-level link records of `m` ids padded to whole lines.
    pub const UPPER: u32 = 3;
    /// Level of each slot, `u8`.
    pub const LEVELS: u32 = 4;
    /// Index of each slot's first upper record, `u32`.
    pub const UPPER_OFFSET: u32 = 5;
    /// Label of each slot, `u64`.
    pub const LABELS: u32 = 6;
    /// Flags of each slot, `u8` (bit 0: deleted, bit 2: free slot, bit 3
    /// with bit 0: removed, not yet unlinked).
    pub const FLAGS: u32 = 7;
    /// Join order of each slot, `u64` (0 for a free slot); optional: files
    /// without it get orders derived from the graph.
    pub const ORDER: u32 = 8;
    /// Level-0 neighbourhood radius of each slot, `f32`; optional (with
    /// [`NEAR`]): files without them get radii derived from the links.
    pub const RADIUS: u32 = 9;
    /// Level-0 inbound links from within each slot's radius, `u32`.
    pub const NEAR: u32 = 10;
    /// The 8-bit quantizer's grids, `f32`: every dimension's low end, then
    /// every dimension's step; present once an index with a scheme has
    /// trained one (with [`CODES`] and [`CODE_NORMS`]).
    pub const QUANT_GRID: u32 = 11;
    /// Code rows, `n_items` rows of `dim` bytes each padded to whole 64-byte
    /// lines.
    pub const CODES: u32 = 12;
    /// Squared norm of each slot's decoded code row, `f32`.
    pub const CODE_NORMS: u32 = 13;
    /// The 4-bit product quantizer's centroids, `f32`: sub-space after
    /// sub-space, 16 centroids of the sub-space's components each; present
    /// once an index with the `pq4` scheme has trained one (with
    /// [`PQ4_CODES`]).
    pub const PQ4_CENTROIDS: u32 = 14;
    /// Each slot's 4-bit code, `n_items` rows of one byte per sub-space
    /// padded to whole 64-byte lines.
    pub const PQ4_CODES: u32 = 15;
    /// The ids of each slot's `pq4` neighbour record, `n_items` rows of
    /// `m0` `u32` (its level-0 links, then the entries filled from its
    /// neighbours' neighbours, then `u32::MAX`); optional (with
    /// [`PQ4_CODES`]): a record is packed from its row only where the row
    /// starts with the slot's links and names live slots, and is derived
    /// anew otherwise.
    pub const PQ4_RECORDS: u32 = 16;
    /// Each slot's `pq4` neighbour record as searches read it, `n_items`
    /// rows padded to whole 64-byte lines; optional (with [`PQ4_RECORDS`]),
    /// written by [`SaveOptions::pq4_records`](super::SaveOptions::pq4_records):
    /// a mapped open views these rows instead of packing every record in
    /// memory.
    pub const PQ4_PACKED: u32 = 17;
    /// The residual quantizer's centroids (laid out as [`PQ4_CENTROIDS`]),
    /// present when the `pq4` records hold codes of `neighbour - node`
    /// (rows of more than 128 components); absent, the records hold each
    /// neighbour's own code (files written before residual records, and
    /// lower dimensions). With it, [`PQ4_PACKED`] rows are laid out as
    /// residual records.
    pub const PQ4_RESIDUAL: u32 = 18;
}

/// How [`HnswIndex::save_with`] lays out a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaveOptions {
    /// For a `pq4` index ([`Quantization::Pq4`](super::Quantization::Pq4)),
    /// also store every node's neighbour record as searches read it (its
    /// ids and its neighbours' codes in FastScan blocks): a file mapped by
    /// [`HnswIndex::open_mmap`] is then searched from these rows, shared
    /// through the page cache by every process that maps it, instead of
    /// from records packed in each process's own memory when it opens (an
    /// O(n) open holding one record per node: `4 m0` bytes of ids padded to
    /// a cache line, then `16 m` bytes per 32 neighbours for codes of `m`
    /// sub-spaces, and with residual records under squared L2 (above 128
    /// dimensions) 128 bytes of terms per 32; 2,176 bytes at M = 16 and
    /// 128 dimensions, 3,200 at 384 for the inner product and cosine, 3,328
    /// for squared L2). The file grows by as much. A file
    /// [`HnswIndex::load`]s reads the rows and checks them (the same work
    /// as packing them). Ignored for other schemes. Default: off.
    pub pq4_records: bool,
}

impl SaveOptions {
    /// Sets [`SaveOptions::pq4_records`].
    pub fn pq4_records(mut self, on: bool) -> Self {
        self.pq4_records = on;
        self
    }
}

/// Header parameter slots of an HNSW file.
mod param {
    /// Entry slot, or `u64::MAX` for an empty index.
    pub const ENTRY: usize = 0;
    /// Top level.
    pub const MAX_LEVEL: usize = 1;
    /// Level-0 links per node.
    pub const M0: usize = 2;
    /// Number of upper-level records.
    pub const UPPER_RECORDS: usize = 3;
    /// Number of slots marked deleted.
    pub const DELETED: usize = 4;
    /// Level multiplier, `f64` bits (zero: the default `1 / ln M`).
    pub const LEVEL_MULT: usize = 5;
    /// Neighbour selection: 0 heuristic, 1 simple, 2 heuristic keeping pruned.
    pub const SELECTION: usize = 6;
    /// Quantization: bits 0-7 the scheme (0 none, 1 8-bit scalar, 2 4-bit
    /// product codes in the level-0 records), bits 8-39 the rows its grid
    /// or centroids were trained on, bits 40-47 (4-bit product codes) the
    /// components per sub-space.
    pub const QUANT: usize = 7;
}

/// Largest dimension a file may declare (keeps every size computation far
/// from overflow; 2^24 components is a 64 MiB vector).
const MAX_DIM: u64 = 1 << 24;

/// A [`Space`] whose indexes can be saved: it names its element type and
/// rebuilds itself from a file's header.
pub trait StoredSpace: Space {
    /// The element type written in the header.
    const ELEM_TYPE: ElemType;
    /// The dimension written in the header (components, or bits).
    fn stored_dim(&self) -> u64;
    /// The space a header describes.
    ///
    /// # Errors
    /// Whatever makes the header's dimension or metric unfit for the space:
    /// [`F32Space`] returns [`Error::UnsupportedMetric`] for a metric other
    /// than L2, inner product, dot or cosine and [`Error::InvalidParameter`]
    /// for a zero dimension; [`BitSpace`] returns [`Error::Format`]
    /// ([`FormatError::WrongMetric`]) for a metric other than Hamming and
    /// [`Error::InvalidParameter`] for zero bits.
    fn from_stored(dim: usize, metric: Metric, table: &'static KernelTable) -> Result<Self>;
}

impl StoredSpace for F32Space {
    const ELEM_TYPE: ElemType = ElemType::F32;
    fn stored_dim(&self) -> u64 {
        self.vector_len() as u64
    }
    fn from_stored(dim: usize, metric: Metric, table: &'static KernelTable) -> Result<Self> {
        F32Space::new(dim, metric, table)
    }
}

impl StoredSpace for BitSpace {
    const ELEM_TYPE: ElemType = ElemType::U64Bits;
    fn stored_dim(&self) -> u64 {
        self.bits() as u64
    }
    fn from_stored(dim: usize, metric: Metric, table: &'static KernelTable) -> Result<Self> {
        if metric != Metric::Hamming {
            return Err(FormatError::WrongMetric {
                expected: Metric::Hamming,
                found: metric,
            }
            .into());
        }
        BitSpace::new(dim, table)
    }
}

fn bad(reason: impl Into<String>) -> Error {
    FormatError::BadCounts(reason.into()).into()
}

impl<S: StoredSpace> HnswIndex<S> {
    /// Writes the index to `path` atomically (a temporary file, synced, then
    /// renamed over `path`; see `docs/FORMAT.md`).
    ///
    /// Saving runs beside searches. It blocks new inserts while it copies
    /// the graph, and fails with [`Error::InvalidState`] if an insert is
    /// half-way when it starts.
    ///
    /// ```
    /// use swann::index::hnsw::Hnsw;
    /// use swann::store::OpenOptions;
    /// use swann::Metric;
    ///
    /// let mut index = Hnsw::builder(2, Metric::L2).build()?;
    /// index.insert(1, &[0.0, 1.0])?;
    /// index.insert(2, &[5.0, 5.0])?;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("index.swann");
    /// index.save(&path)?;
    ///
    /// let mapped = Hnsw::open_mmap(&path, OpenOptions::default())?;
    /// assert_eq!(mapped.search(&[4.0, 4.0], 1, 16)?[0].label, 2);
    /// let mut owned = Hnsw::load(&path)?;
    /// owned.insert(3, &[9.0, 9.0])?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidState`] when an insert is in progress; otherwise those
    /// of [`FileWriter::write_atomic`]: [`Error::Io`] when the file cannot be
    /// written or renamed into place, [`Error::InvalidParameter`] for a `path`
    /// with no file name.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_with(path, SaveOptions::default())
    }

    /// [`HnswIndex::save`] with a layout chosen by `opts`.
    ///
    /// ```
    /// use swann::index::hnsw::{Hnsw, Quantization, SaveOptions};
    /// use swann::store::OpenOptions;
    /// use swann::Metric;
    ///
    /// let mut index = Hnsw::builder(8, Metric::L2)
    ///     .quantization(Quantization::Pq4)
    ///     .build()?;
    /// // Row r: r, then seven pseudo-random components.
    /// let rows: Vec<f32> = (0..8 * 500)
    ///     .map(|i| if i % 8 == 0 { (i / 8) as f32 } else { ((i * 7919) % 1000) as f32 })
    ///     .collect();
    /// let labels: Vec<u64> = (0..500).collect();
    /// index.insert_batch(&labels, &rows)?;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("index.swann");
    /// // Records stored in the file: mapping it packs none in memory.
    /// index.save_with(&path, SaveOptions::default().pq4_records(true))?;
    /// let mapped = Hnsw::open_mmap(&path, OpenOptions::default())?;
    /// let q = &rows[8 * 42..8 * 43];
    /// assert_eq!(mapped.search(q, 1, 32)?[0].label, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`HnswIndex::save`].
    pub fn save_with(&self, path: impl AsRef<Path>, opts: SaveOptions) -> Result<()> {
        self.with_writer(opts, |w| w.write_atomic(path))
    }

    /// The size in bytes of the file [`HnswIndex::save`] would write now
    /// (hnswlib's `index_file_size`). O(n): it lays the file out without
    /// writing it.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when an insert is in progress.
    pub fn saved_size(&self) -> Result<u64> {
        self.with_writer(SaveOptions::default(), |w| Ok(w.layout().1))
    }

    /// Lays the index out as a file for `f` (to write it, or measure it).
    fn with_writer<R>(
        &self,
        opts: SaveOptions,
        f: impl FnOnce(&FileWriter<'_>) -> Result<R>,
    ) -> Result<R> {
        let g = &self.graph;
        // Claiming a slot takes this lock for writing, so while it is held
        // no insert starts, and every slot below `len` is either published or
        // pending.
        let _no_new_inserts = g.label_map().read();
        let n = g.len();
        if (0..n as u32).any(|s| g.is_pending(s)) {
            return Err(Error::InvalidState(
                "an insert is in progress; save after it finishes".into(),
            ));
        }
        let upper_records = match n {
            0 => 0,
            _ => g.upper_offset[n - 1] as usize + usize::from(g.levels[n - 1]),
        };
        let vectors = &g.vectors.as_bytes()[..n * g.vectors.row_bytes()];
        let links0 = g.links0.words_prefix(n);
        let upper = g.upper.words_prefix(upper_records);
        let labels: Vec<u64> = (0..n as u32)
            .map(|s| if g.in_use(s) { g.label(s) } else { 0 })
            .collect();
        let flags: Vec<u8> = g.flags[..n]
            .iter()
            .map(|f| f.load(Ordering::Acquire) & (DELETED | FREE | RETIRED))
            .collect();
        let deleted = flags.iter().filter(|&&f| f == DELETED).count();
        let anchored = !*g.unanchored.lock();
        let entry = g.entry_raw();

        let mut h = Header::new(
            IndexKind::Hnsw,
            g.space.metric(),
            S::ELEM_TYPE,
            g.space.stored_dim(),
        );
        h.n_items = n as u64;
        h.capacity = g.capacity() as u64;
        h.m = g.params.m as u64;
        h.ef_construction = g.params.ef_construction as u64;
        h.seed = g.params.seed;
        h.params[param::ENTRY] = entry.map_or(u64::MAX, |(s, _)| u64::from(s));
        h.params[param::MAX_LEVEL] = entry.map_or(0, |(_, l)| l as u64);
        h.params[param::M0] = g.params.m0 as u64;
        h.params[param::UPPER_RECORDS] = upper_records as u64;
        h.params[param::DELETED] = deleted as u64;
        h.params[param::LEVEL_MULT] = g.params.mult.to_bits();
        h.params[param::SELECTION] = g.params.selection.code();
        h.params[param::QUANT] = g.params.quantization.code()
            | (g.codes.as_ref().map_or(0, |c| c.trained_on as u64) << 8)
            | g.blocks.as_ref().map_or(0, |b| {
                ((b.trained_on as u64).min(u32::MAX.into()) << 8)
                    | ((b.pq.subspace_dims() as u64) << 40)
            });

        let mut w = FileWriter::new(h);
        w.add_section(section::VECTORS, vectors)?;
        w.add_pod_section(section::LINKS0, &links0)?;
        w.add_pod_section(section::UPPER, &upper)?;
        w.add_section(section::LEVELS, &g.levels[..n])?;
        w.add_pod_section(section::UPPER_OFFSET, &g.upper_offset[..n])?;
        w.add_pod_section(section::LABELS, &labels)?;
        w.add_section(section::FLAGS, &flags)?;
        let order: Vec<u64>;
        if anchored {
            order = (0..n as u32).map(|s| g.order_of(s)).collect();
            w.add_pod_section(section::ORDER, &order)?;
        }
        // A read-only view that never derived them has none to save.
        let (radius, near): (Vec<u32>, Vec<u32>);
        if g.near0.count.len() >= n {
            radius = (0..n)
                .map(|s| g.near0.radius[s].load(Ordering::Relaxed))
                .collect();
            near = (0..n)
                .map(|s| g.near0.count[s].load(Ordering::Relaxed))
                .collect();
            w.add_pod_section(section::RADIUS, &radius)?;
            w.add_pod_section(section::NEAR, &near)?;
        }
        let grid: Vec<f32>;
        let norms: Vec<u32>;
        if let Some(c) = &g.codes {
            let (lo, step) = c.sq.grids();
            grid = lo.iter().chain(step).copied().collect();
            norms = (0..n).map(|s| c.norms[s].load(Ordering::Relaxed)).collect();
            w.add_pod_section(section::QUANT_GRID, &grid)?;
            w.add_section(section::CODES, &c.rows.as_bytes()[..n * c.rows.row_bytes()])?;
            w.add_pod_section(section::CODE_NORMS, &norms)?;
        }
        let record_ids: Vec<u32>;
        if let Some(b) = &g.blocks {
            w.add_pod_section(section::PQ4_CENTROIDS, b.pq.centroids())?;
            if let Some(r) = &b.resid {
                w.add_pod_section(section::PQ4_RESIDUAL, r.pq.centroids())?;
            }
            w.add_section(
                section::PQ4_CODES,
                &b.codes.as_bytes()[..n * b.codes.row_bytes()],
            )?;
            record_ids = g.record_ids(n);
            w.add_pod_section(section::PQ4_RECORDS, &record_ids)?;
        }
        let packed;
        if opts.pq4_records && g.blocks.is_some() {
            packed = g.packed_records(n);
            w.add_section(section::PQ4_PACKED, &packed)?;
        }
        f(&w)
    }

    /// Reads an index saved by [`HnswIndex::save`] into memory, checking
    /// every checksum and every link, level and offset (O(file size)). The
    /// result is an ordinary index: it takes inserts, deletes and grows.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Format`] for a file
    /// that fails [`IndexFile::load`]'s checks or
    /// [`from_index_file`](Self::from_index_file)'s, or whose graph is corrupt
    /// ([`FormatError::Corrupt`]: a link, level, offset, flag, entry point,
    /// label or code that [`verify`](Self::verify) would reject); the space's
    /// errors for the header's metric and dimension
    /// ([`StoredSpace::from_stored`]), e.g. [`Error::UnsupportedMetric`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let file = Arc::new(IndexFile::load(path)?);
        let mut index = Self::from_index_file(file, kernels::active())?;
        index.check_structure()?;
        index.graph.make_owned();
        index.source = None;
        let capacity = usize::try_from(index.source_capacity).unwrap_or(0);
        if capacity > index.capacity() && capacity < u32::MAX as usize {
            index.graph.resize(capacity);
        }
        Ok(index)
    }

    /// Maps an index saved by [`HnswIndex::save`] and searches it in place:
    /// no copy, no parsing, O(1) however large the file (with
    /// `opts.populate` false). Only the header, the section table and the
    /// section sizes are checked; link ids are bounded during search, so a
    /// corrupt file gives wrong answers, never a crash. Call
    /// [`HnswIndex::verify`] to check everything. The exception is
    /// [`Quantization::Pq4`]: its neighbour records are packed in memory
    /// at open from the ids the file keeps for each record and the mapped
    /// codes, O(n) (0.9 s per 200,000 nodes of 128 dimensions on one
    /// thread; records of residual codes, above 128 dimensions, code 32
    /// differences per node: about 2.1 s per 133,000 nodes of 384
    /// dimensions on two threads), and are not shared between processes;
    /// a file written
    /// before it kept the ids also searches each node's neighbours'
    /// neighbours again (several times longer). A file saved with
    /// [`SaveOptions::pq4_records`] holds the packed records: it opens in
    /// O(1) and its records are shared like every other section.
    ///
    /// The index is read-only: `mark_deleted` and `try_insert` fail, and
    /// `&mut self` methods (`insert`, `resize`, ...) first copy it into
    /// memory. Several processes mapping one file share its pages.
    ///
    /// With [`Quantization::Sq8`] an unfiltered search reads the links and
    /// the 8-bit codes, and `f32` rows only for its rerank (the upper levels
    /// are descended on the codes too), so the rows can stay on disk: the
    /// resident set a search needs is the graph and the codes (a quarter of
    /// the rows' bytes), and `opts.advise_random` keeps read-ahead from
    /// pulling in rows around the ones reranked. Filtered searches still
    /// descend on the rows.
    ///
    /// # Errors
    /// Those of [`IndexFile::open_mmap`] ([`Error::Io`], [`Error::Format`]) and
    /// of [`from_index_file`](Self::from_index_file). The graph itself is not
    /// checked.
    pub fn open_mmap(path: impl AsRef<Path>, opts: OpenOptions) -> Result<Self> {
        let file = Arc::new(IndexFile::open_mmap(path, opts)?);
        Self::from_index_file(file, kernels::active())
    }

    /// Opens an index from an already-validated [`IndexFile`] (owned or
    /// mapped), as a read-only view of its sections. O(1).
    ///
    /// # Errors
    /// [`Error::Format`]: [`FormatError::WrongKind`] for another kind of index,
    /// [`FormatError::WrongElemType`] for another element type,
    /// [`FormatError::BadCounts`] for header values out of range (dimension
    /// above 2^24, M, M0, level multiplier, neighbour selection,
    /// `ef_construction`, item count, entry point, upper records, deleted
    /// count, quantization scheme or grid), [`FormatError::MissingSection`],
    /// [`FormatError::SectionLength`] or [`FormatError::SectionType`] for a
    /// section that does not match the header; the space's errors for the
    /// header's metric and dimension ([`StoredSpace::from_stored`]).
    pub fn from_index_file(file: Arc<IndexFile>, table: &'static KernelTable) -> Result<Self> {
        file.expect_kind(IndexKind::Hnsw)?;
        let h = file.header().clone();
        if h.elem_type != S::ELEM_TYPE {
            return Err(FormatError::WrongElemType {
                expected: S::ELEM_TYPE,
                found: h.elem_type,
            }
            .into());
        }
        if h.dim > MAX_DIM {
            return Err(bad(format!("dimension {} above {MAX_DIM}", h.dim)));
        }
        let space = S::from_stored(h.dim as usize, h.metric, table)?;
        let m0 = h.params[param::M0];
        if !(2..=127).contains(&h.m) || !(2..=MAX_M0 as u64).contains(&m0) {
            return Err(bad(format!(
                "M = {}, M0 = {m0}: M must be in 2..=127 and M0 in 2..={MAX_M0}",
                h.m,
            )));
        }
        // Zero: written before the multiplier was recorded, when it was
        // always the default.
        let mult = match h.params[param::LEVEL_MULT] {
            0 => default_mult(h.m as usize),
            bits => f64::from_bits(bits),
        };
        if !(mult.is_finite() && mult > 0.0) {
            return Err(bad(format!("level multiplier {mult}")));
        }
        let selection =
            NeighborSelection::from_code(h.params[param::SELECTION]).ok_or_else(|| {
                bad(format!(
                    "unknown neighbour selection code {}",
                    h.params[param::SELECTION]
                ))
            })?;
        if h.ef_construction == 0 || h.ef_construction > u32::MAX as u64 {
            return Err(bad(format!("ef_construction = {}", h.ef_construction)));
        }
        let n = h.n_items;
        if n >= u64::from(u32::MAX) {
            return Err(bad(format!("{n} items do not fit u32 slots")));
        }
        let entry_slot = h.params[param::ENTRY];
        let max_level = h.params[param::MAX_LEVEL];
        let entry = match n {
            0 if entry_slot == u64::MAX => None,
            0 => return Err(bad("empty index with an entry point")),
            _ if entry_slot >= n || max_level > u64::from(MAX_LEVEL) => {
                return Err(bad(format!(
                    "entry point {entry_slot} at level {max_level} (items: {n})"
                )))
            }
            _ => Some((entry_slot as u32, max_level as usize)),
        };
        let upper_records = h.params[param::UPPER_RECORDS];
        if upper_records > n.saturating_mul(u64::from(MAX_LEVEL)) {
            return Err(bad(format!("{upper_records} upper records for {n} items")));
        }
        let deleted = h.params[param::DELETED];
        if deleted > n {
            return Err(bad(format!("{deleted} deleted of {n} items")));
        }
        let (m, m0) = (h.m as usize, m0 as usize);
        let near = match (
            file.has_section(section::RADIUS),
            file.has_section(section::NEAR),
        ) {
            (true, true) => Some(NearCounts {
                radius: Slab::from_file(&file, section::RADIUS, n)?,
                count: Slab::from_file(&file, section::NEAR, n)?,
            }),
            _ => None,
        };
        let quant = h.params[param::QUANT];
        let quantization = Quantization::from_code(quant & 0xff)
            .ok_or_else(|| bad(format!("unknown quantization code {}", quant & 0xff)))?;
        let blocks = match (quantization, space.kernels()) {
            (Quantization::Pq4, Some(table)) if file.has_section(section::PQ4_CENTROIDS) => {
                let dim = space.vector_len();
                super::quant::check_scheme(quantization, space.metric(), dim)
                    .map_err(|e| bad(e.to_string()))?;
                let sub = ((quant >> 40) & 0xff) as usize;
                let centroids: Vec<f32> =
                    bytemuck::pod_collect_to_vec(file.section_bytes(section::PQ4_CENTROIDS)?);
                let pq = crate::quant::Pq4::from_centroids(dim, sub, centroids)
                    .map_err(|e| bad(format!("4-bit quantizer: {e}")))?;
                let resid = if file.has_section(section::PQ4_RESIDUAL) {
                    let centroids: Vec<f32> =
                        bytemuck::pod_collect_to_vec(file.section_bytes(section::PQ4_RESIDUAL)?);
                    let pq = crate::quant::Pq4::from_centroids(dim, sub, centroids)
                        .map_err(|e| bad(format!("residual 4-bit quantizer: {e}")))?;
                    Some(super::blocks::Residual {
                        pq,
                        terms: space.metric() == crate::Metric::L2,
                    })
                } else {
                    None
                };
                let codes = RowArena::from_file(&file, section::PQ4_CODES, pq.subspaces(), n)?;
                let trained_on = ((quant >> 8) & 0xffff_ffff) as usize;
                if file.has_section(section::PQ4_PACKED) {
                    let terms = resid.as_ref().is_some_and(|r| r.terms);
                    let len = super::blocks::Blocks::record_len_for(pq.subspaces(), m0, terms);
                    let records = RowArena::from_file(&file, section::PQ4_PACKED, len, n)?;
                    let b = super::blocks::Blocks::with_records(
                        pq, resid, m0, codes, records, trained_on, table,
                    )
                    .ok_or_else(|| bad("pq4 records that do not match the codes"))?;
                    Some(b)
                } else {
                    let mut b =
                        super::blocks::Blocks::with_codes(pq, resid, m0, codes, trained_on, table);
                    b.mark_all();
                    Some(b)
                }
            }
            _ => None,
        };
        let codes = match (quantization, space.kernels()) {
            (Quantization::None, _) => None,
            (Quantization::Pq4, _) if space.kernels().is_some() => None,
            (_, None) => {
                return Err(bad(format!(
                    "{quantization} quantization on {:?} elements",
                    S::ELEM_TYPE
                )))
            }
            (_, Some(_)) if !file.has_section(section::QUANT_GRID) => None,
            (_, Some(table)) => {
                let dim = space.vector_len();
                super::quant::check_scheme(quantization, space.metric(), dim)
                    .map_err(|e| bad(e.to_string()))?;
                let grid = file.section_bytes(section::QUANT_GRID)?;
                if grid.len() != 8 * dim {
                    return Err(bad(format!(
                        "quantizer grid of {} bytes for dimension {dim}",
                        grid.len()
                    )));
                }
                // Written by `add_pod_section`; the reader refuses
                // big-endian hosts, so native order is the file's.
                let grid: Vec<f32> = bytemuck::pod_collect_to_vec(grid);
                let sq = Sq8::from_grids(grid[..dim].to_vec(), grid[dim..].to_vec())
                    .map_err(|e| bad(format!("quantizer grid: {e}")))?;
                Some(Codes {
                    sq,
                    rows: RowArena::from_file(&file, section::CODES, dim, n)?,
                    norms: Slab::from_file(&file, section::CODE_NORMS, n)?,
                    trained_on: usize::try_from(quant >> 8).unwrap_or(usize::MAX),
                    table,
                })
            }
        };
        let graph = Graph::from_parts(GraphParts {
            space: space.clone(),
            params: Params {
                m,
                m0,
                ef_construction: h.ef_construction as usize,
                seed: h.seed,
                mult,
                selection,
                quantization,
            },
            vectors: RowArena::from_file(&file, section::VECTORS, space.vector_len(), n)?,
            codes,
            blocks,
            links0: LinkArena::from_file(&file, section::LINKS0, m0, n)?,
            upper: LinkArena::from_file(&file, section::UPPER, m, upper_records)?,
            levels: Slab::from_file(&file, section::LEVELS, n)?,
            upper_offset: Slab::from_file(&file, section::UPPER_OFFSET, n)?,
            labels: Slab::from_file(&file, section::LABELS, n)?,
            flags: Slab::from_file(&file, section::FLAGS, n)?,
            order: match file.has_section(section::ORDER) {
                true => Some(Slab::from_file(&file, section::ORDER, n)?),
                false => None,
            },
            near,
            len: n as usize,
            deleted: deleted as usize,
            entry,
        });
        let mut index = HnswIndex::from_graph(graph);
        // Neighbour records are derived: packed from the saved record ids
        // where they still fit the links, from the links and codes (and a
        // search of the neighbours' neighbours) where not.
        let packed = index
            .graph
            .blocks
            .as_ref()
            .is_some_and(|b| b.records_from_file());
        if !packed && index.graph.blocks.is_some() && file.has_section(section::PQ4_RECORDS) {
            let ids = file.section_exact::<u32>(section::PQ4_RECORDS, n * m0 as u64)?;
            index.graph.adopt_record_ids(ids);
        }
        index.graph.refresh_blocks();
        index.source_capacity = h.capacity;
        index.source = Some(file);
        Ok(index)
    }

    /// Checks the whole index: the file's checksums (for an index opened
    /// from a file and still viewing it) and the graph's structure: every
    /// link id below the item count, every level at most 16, upper-record
    /// offsets consistent with the levels, the entry point on the top level,
    /// flags known, labels unique. O(file size).
    ///
    /// # Errors
    /// [`Error::Format`]: [`FormatError::ChecksumMismatch`] or
    /// [`FormatError::NonZeroPadding`] for a viewed file whose bytes do not
    /// match; [`FormatError::Corrupt`] for a link, level, upper-record offset,
    /// flag, entry point, deleted count, label or code that breaks the graph's
    /// invariants.
    pub fn verify(&self) -> Result<()> {
        if let Some(file) = &self.source {
            file.verify()?;
        }
        self.check_structure()
    }

    fn check_structure(&self) -> Result<()> {
        let g = &self.graph;
        let n = g.len();
        let corrupt =
            |section, reason: String| -> Error { FormatError::Corrupt { section, reason }.into() };
        let mut next = 0u64;
        let mut top = 0u8;
        let mut ids = Vec::new();
        for slot in 0..n {
            let level = g.levels[slot];
            if level > MAX_LEVEL {
                return Err(corrupt(
                    section::LEVELS,
                    format!("slot {slot} has level {level}"),
                ));
            }
            if u64::from(g.upper_offset[slot]) != next {
                return Err(corrupt(
                    section::UPPER_OFFSET,
                    format!(
                        "slot {slot}: offset {} expected {next}",
                        g.upper_offset[slot]
                    ),
                ));
            }
            next += u64::from(level);
            let flags = g.flags[slot].load(Ordering::Relaxed);
            if ![0, DELETED, FREE, DELETED | RETIRED].contains(&flags) {
                return Err(corrupt(
                    section::FLAGS,
                    format!("slot {slot}: flags {flags:#x}"),
                ));
            }
            let free = flags & FREE != 0;
            if !free {
                top = top.max(level);
            }
            // Raw reads (not the search's bounded ones), so a bad id is seen.
            for l in 0..=usize::from(level) {
                let (arena, rec, sec) = match l {
                    0 => (&g.links0, slot, section::LINKS0),
                    _ => (
                        &g.upper,
                        g.upper_offset[slot] as usize + l - 1,
                        section::UPPER,
                    ),
                };
                if rec >= arena.records() {
                    return Err(corrupt(
                        sec,
                        format!("slot {slot} level {l}: no record {rec}"),
                    ));
                }
                arena.read_into(rec, &mut ids);
                if free && !ids.is_empty() {
                    return Err(corrupt(sec, format!("free slot {slot} has links")));
                }
                if let Some(t) = ids.iter().find(|&&t| {
                    t as usize >= n
                        || t as usize == slot
                        || g.flags[t as usize].load(Ordering::Relaxed) & FREE != 0
                }) {
                    return Err(corrupt(
                        sec,
                        format!("slot {slot} level {l}: link to {t} (items: {n})"),
                    ));
                }
            }
        }
        if next as usize > g.upper.records() {
            return Err(corrupt(section::UPPER, format!("{next} records needed")));
        }
        if let Some((ep, level)) = g.entry_raw() {
            if !g.in_use(ep)
                || usize::from(g.levels[ep as usize]) != level
                || level != usize::from(top)
            {
                return Err(corrupt(
                    section::LEVELS,
                    format!("entry point {ep} is not on the top level {top}"),
                ));
            }
        }
        let deleted = (0..n as u32)
            .filter(|&s| g.flags[s as usize].load(Ordering::Relaxed) == DELETED)
            .count();
        if deleted != g.deleted.load(Ordering::Relaxed) {
            return Err(corrupt(
                section::FLAGS,
                "deleted count differs from the header".into(),
            ));
        }
        let free = (0..n as u32).filter(|&s| !g.in_use(s)).count();
        let retired = (0..n as u32).filter(|&s| g.is_retired(s)).count();
        if g.label_map().read().len() != n - free - retired {
            return Err(corrupt(section::LABELS, "a label appears twice".into()));
        }
        if free == n && g.entry_raw().is_some() {
            return Err(corrupt(
                section::FLAGS,
                "every slot is free but an entry point is named".into(),
            ));
        }
        if let Some(slot) = g.first_miscoded() {
            return Err(corrupt(
                section::CODES,
                format!("slot {slot}: its code or code norm is not its row's under the saved grid"),
            ));
        }
        if let Some(slot) = g.first_misrecorded() {
            return Err(corrupt(
                section::PQ4_PACKED,
                format!("slot {slot}: its packed record is not its links' and their codes'"),
            ));
        }
        Ok(())
    }

    /// Whether the index is a read-only view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.graph.read_only
    }
}

/// The labels of the live items of an HNSW file, as the opened index's
/// `labels()` lists them, read from the file's label and flag sections
/// without opening the index (so without building a `pq4` index's
/// neighbour records).
///
/// # Errors
/// [`FormatError::WrongKind`] for another kind of index; the section
/// errors of [`IndexFile::section_exact`] for a label or flag section that
/// does not hold one entry per item.
#[cfg(feature = "sharded")]
pub(crate) fn live_labels(file: &IndexFile) -> Result<Vec<u64>> {
    file.expect_kind(IndexKind::Hnsw)?;
    let n = file.header().n_items;
    let labels: &[u64] = file.section_exact(section::LABELS, n)?;
    let flags: &[u8] = file.section_exact(section::FLAGS, n)?;
    Ok(labels
        .iter()
        .zip(flags)
        .filter(|&(_, &f)| {
            f & (super::graph::PENDING | super::graph::FREE | super::graph::RETIRED) == 0
        })
        .map(|(&l, _)| l)
        .collect())
}

impl HnswIndex<F32Space> {
    /// Imports a file written by hnswlib's `saveIndex` (hnswlib 0.7 and 0.8,
    /// and Python's `Index.save_index`) for spaces `l2` ([`Metric::L2`]),
    /// `ip` ([`Metric::InnerProduct`]) or `cosine` ([`Metric::Cosine`]), with
    /// vectors of `dim` components. The graph, labels, deleted marks and
    /// capacity are kept as they are, so searches visit the same nodes as in
    /// hnswlib. Every size and link is checked (see [`crate::formats::hnswlib`]).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Format`] for a file
    /// [`hnswlib::parse`](crate::formats::hnswlib::parse) rejects
    /// ([`FormatError::WrongDimension`] when its vectors do not have `dim`
    /// components, [`FormatError::Foreign`] otherwise) or whose graph breaks
    /// swann's invariants ([`FormatError::Corrupt`]);
    /// [`Error::UnsupportedMetric`] for a metric other than L2, inner product,
    /// dot or cosine; [`Error::NonFinite`] for a cosine vector whose norm
    /// overflows.
    pub fn import_hnswlib(path: impl AsRef<Path>, metric: Metric, dim: usize) -> Result<Self> {
        let bytes = std::fs::read(path)?;
        let h = crate::formats::hnswlib::parse(&bytes, dim)?;
        drop(bytes);
        let table = kernels::active();
        let space = F32Space::new(dim, metric, table)?;
        let n = h.len();
        let mut vectors = RowArena::<f32>::new(dim, n);
        let mut row = Vec::with_capacity(dim);
        for (i, v) in h.vectors.chunks_exact(dim).enumerate() {
            // hnswlib's Python wrapper stores cosine vectors normalized
            // already; preparing them again is then a no-op up to rounding.
            space.prepare(v, &mut row)?;
            vectors.row_mut(i).copy_from_slice(&row);
        }
        let links0 = LinkArena::new(h.m0, n);
        for id in 0..n {
            links0.set(id, h.links0(id));
        }
        let records = h.upper_len.len();
        let upper = LinkArena::new(h.m, records);
        for id in 0..n {
            for l in 1..=usize::from(h.levels[id]) {
                upper.set(h.upper_offset[id] as usize + l - 1, h.upper_links(id, l));
            }
        }
        let deleted = h.deleted.iter().filter(|&&d| d).count();
        let graph = Graph::from_parts(GraphParts {
            space,
            params: Params {
                m: h.m,
                m0: h.m0,
                ef_construction: h.ef_construction,
                seed: 100,
                mult: h.mult,
                selection: NeighborSelection::Heuristic,
                quantization: Quantization::None,
            },
            vectors,
            codes: None,
            blocks: None,
            links0,
            upper,
            levels: Slab::from_vec(h.levels.clone()),
            upper_offset: Slab::from_vec(h.upper_offset.clone()),
            labels: Slab::from_vec(h.labels.iter().map(|&l| AtomicU64::new(l)).collect()),
            flags: Slab::from_vec(
                h.deleted
                    .iter()
                    .map(|&d| AtomicU8::new(if d { DELETED } else { 0 }))
                    .collect(),
            ),
            order: None,
            near: None,
            len: n,
            deleted,
            entry: h.entry.map(|(slot, level)| (slot, usize::from(level))),
        });
        let mut index = HnswIndex::from_graph(graph);
        index.check_structure()?;
        if h.max_elements > n && h.max_elements < u32::MAX as usize {
            index.graph.resize(h.max_elements);
        }
        Ok(index)
    }
}
