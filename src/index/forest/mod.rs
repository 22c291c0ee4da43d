//! Random-projection forest: Annoy's index, on swann's kernels.
//!
//! A [`Forest`] holds items with dense `u32` ids and builds `n_trees` binary
//! trees over them. Each split is the hyperplane halfway between two
//! centroids found by a few hundred rounds of 2-means on random items (an
//! axis-aligned bit for Hamming); leaves hold up to `leaf_size` item ids
//! inline. A query walks all trees at once, best-first from one priority
//! queue, until it has `search_k` candidates, then ranks them by exact
//! distance.
//!
//! Like Annoy, ids are dense: adding item `i` reserves room for items
//! `0..=i`, so the file is proportional to `max(id) + 1`; ids never added are
//! simply absent from the trees. In memory their rows (and norms) are zero
//! pages that are never written, so on Linux, where the image grows by
//! moving pages rather than copying them, a forest over a sparse id range
//! costs memory for its items, not for its file (except for
//! [`Metric::Dot`], whose build writes every row's extra component).
//!
//! Metrics (distances reported as Annoy reports them):
//!
//! | metric | distance reported |
//! |---|---|
//! | [`Metric::Euclidean`] | `|a - b|` |
//! | [`Metric::Manhattan`] | `sum |a_i - b_i|` |
//! | [`Metric::Angular`] | `sqrt(2 - 2 cos(a, b))` |
//! | [`Metric::Dot`] | `a . b` (larger is nearer) |
//! | [`Metric::Hamming`] | differing bits, over bit-packed vectors |
//!
//! For [`Metric::Dot`] the trees are built in one more dimension, the
//! reduction of Bachrach et al. (2014) that Annoy uses: every item gets an
//! extra component `sqrt(M^2 - |x|^2)` (`M` the largest norm), so all items
//! have the same norm and maximum inner product becomes nearest angle; a
//! query's extra component is zero.
//!
//! The whole index is one image of bytes laid out as the file is (see
//! `format.rs`): [`Forest::save`] writes it, [`Forest::load`] reads it back,
//! [`Forest::open_mmap`] maps it without a copy, and
//! [`Forest::on_disk_build`] builds straight into a mapped file.
//! [`AnnoyIndex`] (in [`crate::formats::annoy`]) opens files written by Annoy 1.17.
//!
mod backing;
mod build;
pub(crate) mod format;
pub(crate) mod search;

use std::path::Path;

use rayon::prelude::*;

use crate::error::check_vector;
use crate::kernels::{self, F32Kernel, F32Op, KernelTable};
use crate::{Error, Metric, Result};

/// Annoy's own files are read by [`crate::formats::annoy`]; its names stay
/// here too, beside the forest they mirror.
pub use crate::formats::annoy::{open_annoy, AnnoyIndex};

use crate::store::{
    FileWriter, Header as StoreHeader, IndexFile, IndexKind, OpenOptions, SectionEntry,
};
use backing::{Backing, DiskImage, HeapImage};
use build::{Rows, TreeBlock, TreeCtx};
use format::{align_up, Section, TreeEntry, TreeLayout, DATA_START, LEAF, N_SECTIONS};
use search::{QueryVec, View};

/// One neighbour: the item id and its distance to the query (see the
/// module docs for what each metric reports).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// The item's id.
    pub id: u32,
    /// Its distance to the query.
    pub distance: f32,
}

/// Sizes derived from the metric and dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// The user's dimension (bits, for Hamming).
    pub dim: usize,
    /// Stored components per item: `f32`s (`dim + 1` for dot), or `u64`
    /// words for Hamming.
    pub comp: usize,
    /// 4-byte words per stored row, a multiple of 16 (one cache line).
    pub row_words: usize,
    /// 4-byte words per split plane (0 for Hamming).
    pub plane_words: usize,
}

impl Geometry {
    pub(crate) fn new(dim: usize, metric: Metric) -> Result<Self> {
        if dim == 0 || dim > (1 << 24) {
            return Err(Error::InvalidParameter(format!(
                "dimension {dim} out of range 1..=2^24"
            )));
        }
        let comp = match metric {
            Metric::Euclidean | Metric::Manhattan | Metric::Angular => dim,
            Metric::Dot => dim + 1,
            Metric::Hamming => dim.div_ceil(64),
            other => {
                return Err(Error::UnsupportedMetric {
                    metric: other,
                    index: "forest",
                })
            }
        };
        let words = Self::comp_words(comp, metric);
        // Rows of up to a cache line take the next power of two, so none
        // straddles a line and an unused id of a sparse id range costs no
        // more than in Annoy (16 bytes at 3 components, where Annoy's node
        // is 24); longer rows are whole lines.
        let row_words = if words <= 16 {
            words.next_power_of_two()
        } else {
            words.div_ceil(16) * 16
        };
        Ok(Self::with_width(dim, metric, comp, row_words))
    }

    /// 4-byte words of `comp` components.
    fn comp_words(comp: usize, metric: Metric) -> usize {
        if metric == Metric::Hamming {
            2 * comp
        } else {
            comp
        }
    }

    fn with_width(dim: usize, metric: Metric, comp: usize, row_words: usize) -> Geometry {
        Geometry {
            dim,
            comp,
            row_words,
            plane_words: if metric == Metric::Hamming {
                0
            } else {
                row_words
            },
        }
    }

    /// The geometry of a file whose rows are `row_words` wide: the width
    /// [`Geometry::new`] gives, or whole cache lines, which files written
    /// before small rows were packed use.
    pub(crate) fn of_file(dim: usize, metric: Metric, row_words: u64) -> Result<Geometry> {
        let g = Geometry::new(dim, metric)?;
        let lines = Self::comp_words(g.comp, metric).div_ceil(16) * 16;
        match usize::try_from(row_words) {
            Ok(w) if w == g.row_words => Ok(g),
            Ok(w) if w == lines => Ok(Self::with_width(dim, metric, g.comp, w)),
            _ => Err(Error::InvalidParameter(format!(
                "rows of {row_words} words do not fit {} components",
                g.comp
            ))),
        }
    }

    /// The whole-line row width, which the default leaf size is based on
    /// (so trees do not depend on how rows are packed).
    fn line_words(&self, metric: Metric) -> usize {
        Self::comp_words(self.comp, metric).div_ceil(16) * 16
    }

    fn row_bytes(&self) -> usize {
        self.row_words * 4
    }
}

/// A random-projection forest (Annoy's algorithm); see the [module docs](self).
///
/// # Example
///
/// ```
/// use swann::index::forest::Forest;
/// use swann::Metric;
///
/// let mut forest = Forest::new(3, Metric::Euclidean)?;
/// forest.set_seed(42);
/// for i in 0..100u32 {
///     let x = i as f32;
///     forest.add_item(i, &[x, 2.0 * x, -x])?;
/// }
/// forest.build(10, Some(1))?;
/// let hits = forest.nns_by_vector(&[10.2, 20.4, -10.2], 3, None)?;
/// assert_eq!(hits[0].id, 10);
/// assert!(hits[0].distance < 1.0);
/// // Adding after build is refused until `unbuild`.
/// assert!(forest.add_item(100, &[0.0; 3]).is_err());
/// # Ok::<(), swann::Error>(())
/// ```
pub struct Forest {
    metric: Metric,
    geo: Geometry,
    leaf_max: usize,
    seed: u64,
    table: &'static KernelTable,
    dot: F32Kernel,
    dist: F32Kernel,
    backing: Backing,
    n_items: usize,
    present: Vec<u64>,
    built: Option<Built>,
    name: String,
}

/// Where the built parts of the image are.
#[derive(Clone, Debug)]
struct Built {
    trees: Vec<TreeLayout>,
    norms_word: usize,
    sections: Sections,
}

/// Where the five sections lie in the image.
#[derive(Clone, Copy, Debug, Default)]
struct Sections {
    vectors: Section,
    norms: Section,
    present: Section,
    trees: Section,
    dir: Section,
}

impl Sections {
    fn all(&self) -> [(u32, Section); N_SECTIONS] {
        [
            (format::VECTORS, self.vectors),
            (format::NORMS, self.norms),
            (format::PRESENT, self.present),
            (format::TREES, self.trees),
            (format::DIR, self.dir),
        ]
    }

    fn placed(&self) -> Vec<(u64, u64)> {
        self.all().iter().map(|(_, s)| (s.offset, s.len)).collect()
    }

    /// The shared writer over these sections of `image`.
    fn writer<'a>(&self, header: StoreHeader, image: &'a [u8]) -> Result<FileWriter<'a>> {
        let mut w = FileWriter::new(header);
        for (id, s) in self.all() {
            w.add_section(id, &image[s.range()])?;
        }
        Ok(w)
    }
}

/// The header and section table the store's writer puts before the
/// sections, for an image that already holds them in place.
fn encode_head(header: &StoreHeader, table: &[SectionEntry], file_len: u64) -> Vec<u8> {
    use crate::store::format::{header_checksum, HEADER_CHECKSUM_OFFSET, HEADER_LEN};
    let mut head = header.encode(table.len() as u32, file_len).to_vec();
    for e in table {
        head.extend_from_slice(&e.encode());
    }
    let (h, t) = head.split_at(HEADER_LEN);
    let sum = header_checksum(h, t);
    head[HEADER_CHECKSUM_OFFSET..HEADER_CHECKSUM_OFFSET + 8].copy_from_slice(&sum.to_le_bytes());
    head
}

impl std::fmt::Debug for Forest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forest")
            .field("metric", &self.metric)
            .field("dim", &self.geo.dim)
            .field("n_items", &self.n_items)
            .field("n_trees", &self.n_trees())
            .field("leaf_size", &self.leaf_max)
            .finish()
    }
}

/// The default leaf size: as many ids as a stored vector has components
/// (Annoy's rule: a leaf takes the room of one vector), so the trees cost
/// about as much space per item as Annoy's.
fn default_leaf_size(geo: &Geometry, metric: Metric) -> usize {
    (geo.line_words(metric) + 2).max(8)
}

/// Most trees built together in one pass over the rows (their planes must
/// stay in cache beside the row). Each thread holds its group's trees and
/// per-tree buffers (about 12 bytes per item and tree) until the group is
/// done, so a smaller group lowers the build's peak memory; 8 costs no
/// measurable build time over 16 on 200k SIFT rows and ~25 MiB less peak.
const MAX_GROUP: usize = 8;

/// Splits `trees` into contiguous groups, as even as possible, a multiple of
/// `threads` in number so that every thread gets the same share.
fn tree_groups(trees: std::ops::Range<usize>, threads: usize) -> Vec<std::ops::Range<u64>> {
    let n = trees.len();
    let threads = threads.max(1);
    let rounds = n.div_ceil(threads * MAX_GROUP).max(1);
    let groups = (threads * rounds).min(n).max(1);
    (0..groups)
        .map(|g| {
            let a = trees.start + g * n / groups;
            let b = trees.start + (g + 1) * n / groups;
            a as u64..b as u64
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// A generous estimate of the bytes one tree takes, to reserve room for
/// the trees in the image before they exist. A tree of `n` items has
/// about `1.3 n / leaf_size` splits; the estimate allows three times that.
/// Reserving costs address space, not memory; a tree that does not fit
/// is appended after the others.
fn tree_bytes_estimate(n: usize, geo: &Geometry, leaf_max: usize) -> usize {
    let splits = 3 * n / leaf_max.max(1) + 16;
    let bytes = splits * (4 * geo.plane_words + 12) + 4 * (n + splits + 1);
    align_up(bytes)
}

/// Where finished trees go: written into the image's reserved room in tree
/// order, each 64-byte aligned, as soon as all trees before it are done.
struct TreeSink<'a> {
    /// The image from the start of the trees section on.
    room: &'a mut [u8],
    /// Byte offset of `room` in the image.
    base: usize,
    /// Bytes of `room` used so far.
    used: usize,
    /// Groups done before all earlier groups were, by group number.
    waiting: std::collections::BTreeMap<usize, Vec<TreeBlock>>,
    next_group: usize,
    entries: Vec<TreeEntry>,
    /// Trees from the first one that did not fit `room` on, in order.
    overflow: Vec<TreeBlock>,
    error: Option<Error>,
}

impl<'a> TreeSink<'a> {
    fn new(room: &'a mut [u8], base: usize) -> Self {
        TreeSink {
            room,
            base,
            used: 0,
            waiting: std::collections::BTreeMap::new(),
            next_group: 0,
            entries: Vec::new(),
            overflow: Vec::new(),
            error: None,
        }
    }

    fn submit(&mut self, group: usize, blocks: Vec<TreeBlock>) {
        self.waiting.insert(group, blocks);
        while let Some(blocks) = self.waiting.remove(&self.next_group) {
            self.next_group += 1;
            for block in blocks {
                self.place(block);
            }
        }
    }

    fn place(&mut self, block: TreeBlock) {
        if block.leaves.len() >= LEAF as usize || block.n_splits() >= LEAF as usize {
            self.error.get_or_insert(Error::InvalidParameter(
                "a tree outgrew 2^31 words; use a larger leaf size".into(),
            ));
            return;
        }
        let size = block.bytes();
        if !self.overflow.is_empty() || size > self.room.len() - self.used {
            self.overflow.push(block);
            return;
        }
        let mut at = self.used;
        for part in [
            bytemuck::cast_slice::<f32, u8>(&block.planes),
            bytemuck::cast_slice(&block.metas),
            bytemuck::cast_slice(&block.leaves),
        ] {
            self.room[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        self.entries.push(block.entry(self.base + self.used));
        self.used += size;
    }

    /// Bytes used, the entries of the trees placed, and the trees left over.
    fn finish(self) -> Result<(usize, Vec<TreeEntry>, Vec<TreeBlock>)> {
        if let Some(e) = self.error {
            return Err(e);
        }
        debug_assert!(self.waiting.is_empty(), "every group was submitted");
        Ok((self.used, self.entries, self.overflow))
    }
}

/// Builds `n_trees` trees with `ctx` on `pool` and hands each group of
/// trees to `sink` as it is done.
///
/// Every thread takes the next group from a shared counter, so groups
/// finish about in order (the sink holds few out of order) and no thread
/// idles while another has a group left to start.
fn build_trees(
    pool: &rayon::ThreadPool,
    n_trees: usize,
    ctx: &TreeCtx<'_>,
    sink: &std::sync::Mutex<TreeSink<'_>>,
) {
    let groups = tree_groups(0..n_trees, pool.current_num_threads());
    let next = std::sync::atomic::AtomicUsize::new(0);
    pool.broadcast(|_| loop {
        let g = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(range) = groups.get(g) else { break };
        let blocks = ctx.build_group(range.clone());
        // A poisoned lock means another thread panicked; the build reports
        // that once the pool returns.
        let Ok(mut sink) = sink.lock() else { break };
        sink.submit(g, blocks);
    });
}

/// The default seed (Annoy's Kiss64 default, for familiarity).
const DEFAULT_SEED: u64 = 1_234_567_890_987_654_321;

impl Forest {
    /// An empty forest of `dim`-dimensional items (for Hamming, `dim` bits).
    ///
    /// Metrics: [`Metric::Euclidean`], [`Metric::Manhattan`],
    /// [`Metric::Angular`], [`Metric::Dot`] and [`Metric::Hamming`]; others
    /// give [`Error::UnsupportedMetric`].
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a dimension of 0 or above 2^24;
    /// [`Error::UnsupportedMetric`] for `L2`, `InnerProduct` or `Cosine`.
    pub fn new(dim: usize, metric: Metric) -> Result<Self> {
        let geo = Geometry::new(dim, metric)?;
        Ok(Self::with_backing(
            geo,
            metric,
            Backing::Heap(HeapImage::zeroed(DATA_START)),
            "<memory>".into(),
        ))
    }

    fn with_backing(geo: Geometry, metric: Metric, backing: Backing, name: String) -> Self {
        let table = kernels::active();
        let op = metric.f32_op().unwrap_or(F32Op::Dot);
        Forest {
            metric,
            geo,
            leaf_max: default_leaf_size(&geo, metric),
            seed: DEFAULT_SEED,
            table,
            dot: table.f32_kernel(F32Op::Dot),
            dist: table.f32_kernel(op),
            backing,
            n_items: 0,
            present: Vec::new(),
            built: None,
            name,
        }
    }

    /// Sets the seed of the next build. The same seed, items and parameters
    /// give the same trees and the same file, whatever the thread count.
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// Sets the most items a leaf holds (at least 2). Smaller leaves mean
    /// more, finer splits: better candidates per `search_k`, but larger
    /// trees. The default takes the room of one vector, as Annoy does.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a leaf size below 2 (or of 2^31 or
    /// more); [`Error::AlreadyBuilt`] after `build`; [`Error::InvalidState`]
    /// for a loaded or memory-mapped forest (both are read-only).
    pub fn set_leaf_size(&mut self, leaf_size: usize) -> Result<()> {
        self.check_adding()?;
        if !(2..LEAF as usize).contains(&leaf_size) {
            return Err(Error::InvalidParameter(format!(
                "leaf size {leaf_size} must be at least 2"
            )));
        }
        self.leaf_max = leaf_size;
        Ok(())
    }

    /// The most items a leaf holds.
    pub fn leaf_size(&self) -> usize {
        self.leaf_max
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The dimension (bits, for Hamming).
    pub fn dim(&self) -> usize {
        self.geo.dim
    }

    /// One more than the largest id added (Annoy's `get_n_items`).
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// The number of ids that hold an item: [`Forest::n_items`] less the
    /// ids never added (gaps below the largest id).
    pub fn n_present(&self) -> usize {
        self.present.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The number of trees (0 before `build`).
    pub fn n_trees(&self) -> usize {
        self.built.as_ref().map_or(0, |b| b.trees.len())
    }

    /// Whether the forest is built (and so searchable, and closed to adds).
    pub fn is_built(&self) -> bool {
        self.built.is_some()
    }

    /// Bytes of the index image (what `save` writes).
    pub fn image_bytes(&self) -> usize {
        self.backing.len()
    }

    fn check_adding(&self) -> Result<()> {
        if self.built.is_some() {
            return Err(Error::AlreadyBuilt);
        }
        if self.backing.is_read_only() {
            return Err(Error::InvalidState(
                "a forest read from a file (loaded or memory-mapped) is read-only; build a new one to add items".into(),
            ));
        }
        Ok(())
    }

    /// The ids that hold an item, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.present.iter().enumerate().flat_map(|(w, &bits)| {
            let mut bits = bits;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some((w * 64 + b) as u32)
            })
        })
    }

    fn is_present(&self, id: u32) -> bool {
        let i = id as usize;
        i < self.n_items && self.present[i / 64] >> (i % 64) & 1 == 1
    }

    fn check_id(&self, id: u32) -> Result<()> {
        if self.is_present(id) {
            Ok(())
        } else {
            Err(Error::UnknownLabel(id as u64))
        }
    }

    /// Makes room for items `0..=id` and returns item `id`'s row, marked present.
    fn row_mut(&mut self, id: u32) -> Result<&mut [u8]> {
        let i = id as usize;
        let rb = self.geo.row_bytes();
        if i >= self.n_items {
            self.backing.resize(DATA_START + (i + 1) * rb)?;
            self.n_items = i + 1;
            self.present.resize(self.n_items.div_ceil(64), 0);
        }
        self.present[i / 64] |= 1 << (i % 64);
        let bytes = self.backing.bytes_mut().expect("checked writable");
        Ok(&mut bytes[DATA_START + i * rb..DATA_START + (i + 1) * rb])
    }

    /// Makes room for items with ids below `n` without reallocating as they
    /// are added (adding one by one grows the storage geometrically anyway).
    ///
    /// # Errors
    /// [`Error::AlreadyBuilt`] after `build`; [`Error::InvalidState`] for a
    /// loaded or memory-mapped forest.
    pub fn reserve(&mut self, n: usize) -> Result<()> {
        self.check_adding()?;
        if let Backing::Heap(v) = &mut self.backing {
            v.reserve(DATA_START + n * self.geo.row_bytes());
        }
        Ok(())
    }

    /// Adds (or replaces) item `id`. For Hamming, `v` holds one value per
    /// bit, a bit being set when its value is above 0.5 (as Annoy's Python
    /// module packs them); see [`Forest::add_item_bits`] for packed words.
    ///
    /// # Errors
    /// [`Error::AlreadyBuilt`] after `build` (call `unbuild` first);
    /// [`Error::InvalidState`] for a loaded or memory-mapped forest;
    /// [`Error::DimensionMismatch`] for a `v` of the wrong length;
    /// [`Error::NonFinite`] for NaN or infinite components; [`Error::Io`] when
    /// the file of an [`on_disk_build`](Self::on_disk_build) cannot grow.
    pub fn add_item(&mut self, id: u32, v: &[f32]) -> Result<()> {
        self.check_adding()?;
        check_vector(v, self.geo.dim)?;
        if self.metric == Metric::Hamming {
            let packed = pack_bits(v, self.geo.comp);
            return self.add_item_bits(id, &packed);
        }
        let row = self.row_mut(id)?;
        let floats: &mut [f32] = bytemuck::cast_slice_mut(row);
        floats.fill(0.0);
        floats[..v.len()].copy_from_slice(v);
        Ok(())
    }

    /// Adds item `id` to a Hamming forest as bit-packed `u64` words (bit
    /// `j` of word `w` is dimension `64 w + j`; bits past `dim` must be 0).
    ///
    /// # Errors
    /// [`Error::AlreadyBuilt`] after `build`; [`Error::InvalidState`] for a
    /// loaded or memory-mapped forest; [`Error::InvalidParameter`] for a forest
    /// whose metric is not Hamming, or bits set past `dim`;
    /// [`Error::DimensionMismatch`] for the wrong number of words;
    /// [`Error::Io`] when the file of an [`on_disk_build`](Self::on_disk_build)
    /// cannot grow.
    pub fn add_item_bits(&mut self, id: u32, words: &[u64]) -> Result<()> {
        self.check_adding()?;
        self.check_bits(words)?;
        let row = self.row_mut(id)?;
        let row: &mut [u64] = bytemuck::cast_slice_mut(row);
        row.fill(0);
        row[..words.len()].copy_from_slice(words);
        Ok(())
    }

    fn check_bits(&self, words: &[u64]) -> Result<()> {
        if self.metric != Metric::Hamming {
            return Err(Error::InvalidParameter(
                "bit-packed vectors need the hamming metric".into(),
            ));
        }
        if words.len() != self.geo.comp {
            return Err(Error::DimensionMismatch {
                expected: self.geo.comp,
                got: words.len(),
            });
        }
        let tail = self.geo.dim % 64;
        if tail != 0 && words[words.len() - 1] >> tail != 0 {
            return Err(Error::InvalidParameter(format!(
                "bits past dimension {} are set",
                self.geo.dim
            )));
        }
        Ok(())
    }

    /// Builds `n_trees` trees with `n_threads` threads (`None`: all cores).
    /// After this, items can no longer be added until [`Forest::unbuild`].
    ///
    /// The trees depend only on the seed, the items and the parameters, not
    /// on the thread count: tree `t` draws from its own random stream.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `n_trees` of 0 or above `u32::MAX`,
    /// `n_threads` of `Some(0)`, or a tree that outgrows 2^31 words (use a
    /// larger leaf size); [`Error::AlreadyBuilt`] when already built;
    /// [`Error::InvalidState`] for a loaded or memory-mapped forest, or when
    /// the build threads cannot start; [`Error::Io`] when the file of an
    /// [`on_disk_build`](Self::on_disk_build) cannot grow or be written back.
    pub fn build(&mut self, n_trees: usize, n_threads: Option<usize>) -> Result<()> {
        if n_trees == 0 {
            return Err(Error::InvalidParameter(
                "n_trees must be at least 1 (build_auto chooses a count)".into(),
            ));
        }
        self.build_with_room(n_trees, n_threads, None).map(|_| ())
    }

    /// Annoy's `build(-1)`: builds as many trees as it takes for their
    /// nodes (splits and leaves) to number at least the items, and returns
    /// that count. The first tree is built once to count its nodes, then
    /// the forest is built as by [`Forest::build`] (the same first tree:
    /// trees depend only on the seed). About `leaf size / 2` trees, e.g.
    /// 30-40 for 64-d rows.
    ///
    /// # Errors
    /// As [`build`](Self::build), less the `n_trees` checks.
    pub fn build_auto(&mut self, n_threads: Option<usize>) -> Result<usize> {
        self.build_with_room(0, n_threads, None)
    }

    /// [`Forest::build`], with the room reserved for the trees given in
    /// bytes instead of estimated (tests use it to make trees overflow).
    /// `n_trees` 0 chooses the count as [`Forest::build_auto`] does.
    fn build_with_room(
        &mut self,
        n_trees: usize,
        n_threads: Option<usize>,
        room: Option<usize>,
    ) -> Result<usize> {
        self.check_adding()?;
        if n_trees > u32::MAX as usize {
            return Err(Error::InvalidParameter(format!(
                "n_trees must be at most {}, got {n_trees}",
                u32::MAX
            )));
        }
        if n_threads == Some(0) {
            return Err(Error::InvalidParameter(
                "n_threads must be at least 1".into(),
            ));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n_threads.unwrap_or(0))
            .build()
            .map_err(|e| Error::InvalidState(format!("cannot start build threads: {e}")))?;
        let geo = self.geo;
        let n = self.n_items;
        let vec_end = DATA_START + n * geo.row_bytes();
        self.backing.resize(vec_end)?;
        if self.metric == Metric::Dot {
            self.augment_for_dot();
        }
        let mut sec = Sections {
            vectors: Section {
                offset: DATA_START as u64,
                len: (n * geo.row_bytes()) as u64,
            },
            ..Sections::default()
        };
        let ids: Vec<u32> = self.ids().collect();
        sec.norms = self.write_norms(&ids)?;
        let present = self.present.clone();
        sec.present = self.append_section(bytemuck::cast_slice(&present))?;
        drop(present);
        let n_trees = match n_trees {
            0 => self.auto_tree_count(&ids, vec_end),
            n => n,
        };

        // The trees go straight into the image, each as soon as it and all
        // trees before it are built, into room reserved past the sections
        // above: address space only (pages of the heap image or of the
        // sparse on-disk file are not made resident until written), so the
        // only trees ever held outside the image are those being built.
        let trees_start = align_up(self.backing.len());
        // The trees hold the items present, which over a sparse id range
        // are far fewer than the rows.
        let room = room.unwrap_or_else(|| {
            n_trees.saturating_mul(tree_bytes_estimate(ids.len(), &geo, self.leaf_max))
        });
        self.backing.resize(trees_start.saturating_add(room))?;
        let (metric, leaf_max, seed) = (self.metric, self.leaf_max, self.seed);
        let (dot, split_dist, table) = (self.dot, self.split_kernel(), self.table);
        let (used, entries, overflow) = {
            let bytes = self.backing.bytes_mut().expect("checked writable");
            let (head, tail) = bytes.split_at_mut(trees_start);
            let rows = &head[DATA_START..vec_end];
            let ctx = TreeCtx {
                metric,
                geo,
                leaf_max,
                seed,
                rows: match metric {
                    Metric::Hamming => Rows::Bits(bytemuck::cast_slice(rows)),
                    _ => Rows::F32(bytemuck::cast_slice(rows)),
                },
                ids: &ids,
                dot,
                split_dist,
                table,
            };
            let sink = std::sync::Mutex::new(TreeSink::new(tail, trees_start));
            build_trees(&pool, n_trees, &ctx, &sink);
            let sink = sink
                .into_inner()
                .map_err(|_| Error::InvalidState("a forest build thread panicked".into()))?;
            sink.finish()?
        };
        // Nothing past the last tree was written.
        self.backing.release_tail(trees_start + used)?;
        let mut entries = entries;
        // Trees that did not fit the estimate (rare: data with many
        // unsplittable duplicates makes deep trees) follow, in order.
        for block in overflow {
            let base = self.backing.len();
            self.backing.append(bytemuck::cast_slice(&block.planes))?;
            self.backing.append(bytemuck::cast_slice(&block.metas))?;
            self.backing.append(bytemuck::cast_slice(&block.leaves))?;
            self.backing.resize(align_up(self.backing.len()))?;
            entries.push(block.entry(base));
        }
        sec.trees = Section {
            offset: trees_start as u64,
            len: (self.backing.len() - trees_start) as u64,
        };
        sec.dir = self.append_section(bytemuck::cast_slice(&entries))?;
        self.backing.resize(align_up(self.backing.len()))?;
        let head = {
            let header = self.store_header(n_trees);
            let bytes = self.backing.bytes();
            let writer = sec.writer(header.clone(), bytes)?;
            let (table, file_len) = writer.layout();
            let placed: Vec<(u64, u64)> = table.iter().map(|e| (e.offset, e.len)).collect();
            if file_len != bytes.len() as u64 || placed != sec.placed() {
                return Err(Error::InvalidState(
                    "forest image does not match the store's file layout".into(),
                ));
            }
            encode_head(&header, &table, file_len)
        };
        self.backing.bytes_mut().expect("writable")[..head.len()].copy_from_slice(&head);
        if let Backing::Disk(d) = &mut self.backing {
            d.finish()?;
        }
        self.built = Some(Built {
            trees: entries
                .iter()
                .map(|e| TreeLayout::new(e, geo.plane_words))
                .collect(),
            norms_word: sec.norms.offset as usize / 4,
            sections: sec,
        });
        Ok(n_trees)
    }

    /// The tree count of [`Forest::build_auto`]: builds tree 0 of this
    /// forest on its own to count its nodes, then as many trees as make
    /// `ids.len()` nodes (at least one).
    fn auto_tree_count(&self, ids: &[u32], vec_end: usize) -> usize {
        let rows = &self.backing.bytes()[DATA_START..vec_end];
        let ctx = TreeCtx {
            metric: self.metric,
            geo: self.geo,
            leaf_max: self.leaf_max,
            seed: self.seed,
            rows: match self.metric {
                Metric::Hamming => Rows::Bits(bytemuck::cast_slice(rows)),
                _ => Rows::F32(bytemuck::cast_slice(rows)),
            },
            ids,
            dot: self.dot,
            split_dist: self.split_kernel(),
            table: self.table,
        };
        let nodes = ctx
            .build_group(0..1)
            .first()
            .map_or(1, |t| 2 * t.n_splits() + 1);
        ids.len().div_ceil(nodes).max(1)
    }

    /// The store header of this forest, built with `n_trees` trees.
    fn store_header(&self, n_trees: usize) -> StoreHeader {
        let mut h = StoreHeader::new(
            IndexKind::Forest,
            self.metric,
            format::elem_type(self.metric),
            self.geo.dim as u64,
        );
        h.n_items = self.n_items as u64;
        h.capacity = self.n_items as u64;
        h.seed = self.seed;
        h.params[0] = self.geo.row_words as u64;
        h.params[1] = self.leaf_max as u64;
        h.params[2] = n_trees as u64;
        h
    }

    /// The kernel 2-means assigns points with.
    fn split_kernel(&self) -> F32Kernel {
        match self.metric {
            Metric::Angular | Metric::Dot => self.table.f32_kernel(F32Op::Cosine),
            _ => self.dist,
        }
    }

    /// Appends the norms section: for angular forests the squared norm of
    /// every row, else nothing. It is written in place, and only for the
    /// items present: a row never added is zero, its norm the zero bytes
    /// that growing the image left there, so over a sparse id range the
    /// section costs no memory beyond the items' pages (as the rows do).
    fn write_norms(&mut self, ids: &[u32]) -> Result<Section> {
        let offset = align_up(self.backing.len());
        let len = if self.metric == Metric::Angular {
            4 * self.n_items
        } else {
            0
        };
        self.backing.resize(offset + len)?;
        if len > 0 {
            let (geo, table) = (self.geo, self.table);
            let bytes = self.backing.bytes_mut().expect("checked writable");
            let (head, tail) = bytes.split_at_mut(offset);
            let rows: &[f32] = bytemuck::cast_slice(&head[DATA_START..]);
            let norms: &mut [f32] = bytemuck::cast_slice_mut(tail);
            for &id in ids {
                let i = id as usize;
                norms[i] = table.norm_sq(&rows[i * geo.row_words..][..geo.comp]);
            }
        }
        Ok(Section {
            offset: offset as u64,
            len: len as u64,
        })
    }

    /// Appends `data` as a 64-byte-aligned section.
    fn append_section(&mut self, data: &[u8]) -> Result<Section> {
        let offset = align_up(self.backing.len());
        self.backing.resize(offset)?;
        self.backing.append(data)?;
        Ok(Section {
            offset: offset as u64,
            len: data.len() as u64,
        })
    }

    /// Sets every item's extra component to `sqrt(M^2 - |x|^2)`.
    fn augment_for_dot(&mut self) {
        let geo = self.geo;
        let n = self.n_items;
        let table = self.table;
        let bytes = self.backing.bytes_mut().expect("checked writable");
        let rows: &mut [f32] =
            bytemuck::cast_slice_mut(&mut bytes[DATA_START..DATA_START + n * geo.row_bytes()]);
        let d = geo.dim;
        // Two passes over the rows rather than a vector of every row's norm
        // (a quarter of the rows' memory again at small dimensions).
        let max = rows
            .chunks_exact(geo.row_words)
            .map(|r| table.norm_sq(&r[..d]))
            .fold(0.0f32, f32::max);
        for r in rows.chunks_exact_mut(geo.row_words) {
            let nn = table.norm_sq(&r[..d]);
            r[d] = (max - nn).max(0.0).sqrt();
        }
    }

    /// Drops the trees so items can be added again.
    ///
    /// # Errors
    /// [`Error::InvalidState`] for a loaded or memory-mapped forest (both are
    /// read-only).
    pub fn unbuild(&mut self) -> Result<()> {
        if self.backing.is_read_only() {
            return Err(Error::InvalidState(
                "a forest read from a file (loaded or memory-mapped) cannot be unbuilt; build a new one".into(),
            ));
        }
        if self.built.take().is_some() {
            self.backing
                .resize(DATA_START + self.n_items * self.geo.row_bytes())?;
            self.backing.bytes_mut().expect("writable")[..DATA_START].fill(0);
        }
        Ok(())
    }

    fn view(&self) -> Result<View<'_>> {
        let built = self.built.as_ref().ok_or(Error::NotBuilt)?;
        let bytes = self.backing.bytes();
        Ok(View {
            metric: self.metric,
            geo: self.geo,
            words: bytemuck::cast_slice(bytes),
            floats: bytemuck::cast_slice(bytes),
            bits: if self.metric == Metric::Hamming {
                bytemuck::cast_slice(bytes)
            } else {
                &[]
            },
            trees: &built.trees,
            n_items: self.n_items,
            vectors: DATA_START / 4,
            norms: built.norms_word,
            dot: self.dot,
            dist: self.dist,
            table: self.table,
            name: &self.name,
        })
    }

    fn check_query(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Err(Error::ZeroK);
        }
        Ok(())
    }

    fn search_k(&self, n: usize, search_k: Option<usize>) -> usize {
        search_k.unwrap_or_else(|| n.saturating_mul(self.n_trees()))
    }

    /// The `n` nearest items to `v`, nearest first, looking at about
    /// `search_k` candidates (default `n * n_trees`; more is slower and more
    /// accurate). For Hamming, `v` holds one value per bit (see `add_item`).
    ///
    /// # Errors
    /// As [`nns_by_vector_into`](Self::nns_by_vector_into).
    pub fn nns_by_vector(&self, v: &[f32], n: usize, search_k: Option<usize>) -> Result<Vec<Hit>> {
        let mut out = Vec::with_capacity(n.min(self.n_items));
        self.nns_by_vector_into(v, n, search_k, &mut out)?;
        Ok(out)
    }

    /// [`Forest::nns_by_vector`] into a caller's buffer (no allocation once
    /// it has grown): for tight query loops.
    ///
    /// # Errors
    /// [`Error::ZeroK`] for `n == 0`; [`Error::DimensionMismatch`]
    /// for a `v` of the wrong length; [`Error::NonFinite`] for NaN or infinite
    /// components; [`Error::NotBuilt`] before `build`; [`Error::BadDataFile`]
    /// when the search meets a corrupt tree in a forest read from a file.
    pub fn nns_by_vector_into(
        &self,
        v: &[f32],
        n: usize,
        search_k: Option<usize>,
        out: &mut Vec<Hit>,
    ) -> Result<()> {
        self.check_query(n)?;
        check_vector(v, self.geo.dim)?;
        let view = self.view()?;
        let k = self.search_k(n, search_k);
        match self.metric {
            Metric::Hamming => {
                let packed = pack_bits(v, self.geo.comp);
                view.search(QueryVec::Bits(&packed), n, k, out)
            }
            Metric::Dot => {
                let mut q = Vec::with_capacity(self.geo.comp);
                q.extend_from_slice(v);
                q.push(0.0);
                view.search(QueryVec::F32(&q, 0.0), n, k, out)
            }
            Metric::Angular => view.search(QueryVec::F32(v, self.table.norm_sq(v)), n, k, out),
            _ => view.search(QueryVec::F32(v, 0.0), n, k, out),
        }
    }

    /// The `n` nearest items to a bit-packed query (Hamming forests).
    ///
    /// # Errors
    /// [`Error::ZeroK`] for `n == 0`; [`Error::InvalidParameter`] for a
    /// forest whose metric is not Hamming, or bits set past `dim`;
    /// [`Error::DimensionMismatch`] for the
    /// wrong number of words; [`Error::NotBuilt`] before `build`;
    /// [`Error::BadDataFile`] when the search meets a corrupt tree in a forest
    /// read from a file.
    pub fn nns_by_bits(
        &self,
        words: &[u64],
        n: usize,
        search_k: Option<usize>,
    ) -> Result<Vec<Hit>> {
        self.check_query(n)?;
        self.check_bits(words)?;
        let mut out = Vec::with_capacity(n.min(self.n_items));
        self.view()?.search(
            QueryVec::Bits(words),
            n,
            self.search_k(n, search_k),
            &mut out,
        )?;
        Ok(out)
    }

    /// The `n` nearest items to item `id` (itself included, first), as
    /// [`Forest::nns_by_vector`] with its vector.
    ///
    /// # Errors
    /// [`Error::ZeroK`] for `n == 0`; [`Error::UnknownLabel`] when
    /// no item has id `id`; [`Error::NotBuilt`] before `build`;
    /// [`Error::BadDataFile`] when the search meets a corrupt tree in a forest
    /// read from a file.
    pub fn nns_by_item(&self, id: u32, n: usize, search_k: Option<usize>) -> Result<Vec<Hit>> {
        self.check_query(n)?;
        self.check_id(id)?;
        let view = self.view()?;
        let k = self.search_k(n, search_k);
        let mut out = Vec::with_capacity(n.min(self.n_items));
        let geo = self.geo;
        let bytes = &self.backing.bytes()[DATA_START + id as usize * geo.row_bytes()..];
        match self.metric {
            Metric::Hamming => {
                let row: &[u64] = bytemuck::cast_slice(&bytes[..geo.comp * 8]);
                view.search(QueryVec::Bits(row), n, k, &mut out)?;
            }
            Metric::Dot => {
                let row: &[f32] = bytemuck::cast_slice(&bytes[..geo.comp * 4]);
                let mut q = row.to_vec();
                q[geo.dim] = 0.0;
                view.search(QueryVec::F32(&q, 0.0), n, k, &mut out)?;
            }
            _ => {
                let row: &[f32] = bytemuck::cast_slice(&bytes[..geo.comp * 4]);
                view.search(QueryVec::F32(row, self.table.norm_sq(row)), n, k, &mut out)?;
            }
        }
        Ok(out)
    }

    fn row_f32(&self, id: u32) -> &[f32] {
        let geo = self.geo;
        let at = DATA_START + id as usize * geo.row_bytes();
        bytemuck::cast_slice(&self.backing.bytes()[at..at + geo.comp * 4])
    }

    fn row_bits(&self, id: u32) -> &[u64] {
        let geo = self.geo;
        let at = DATA_START + id as usize * geo.row_bytes();
        bytemuck::cast_slice(&self.backing.bytes()[at..at + geo.comp * 8])
    }

    /// Item `id`'s vector as added (for Hamming, one 0.0/1.0 per bit).
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] when no item has id `id`.
    pub fn item_vector(&self, id: u32) -> Result<Vec<f32>> {
        self.check_id(id)?;
        Ok(match self.metric {
            Metric::Hamming => unpack_bits(self.row_bits(id), self.geo.dim),
            _ => self.row_f32(id)[..self.geo.dim].to_vec(),
        })
    }

    /// Item `id`'s bit-packed words (Hamming forests).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a forest whose metric is not Hamming;
    /// [`Error::UnknownLabel`] when no item has id `id`.
    pub fn item_bits(&self, id: u32) -> Result<Vec<u64>> {
        if self.metric != Metric::Hamming {
            return Err(Error::InvalidParameter(
                "bit-packed vectors need the hamming metric".into(),
            ));
        }
        self.check_id(id)?;
        Ok(self.row_bits(id).to_vec())
    }

    /// The distance between items `i` and `j`, as queries report it.
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] when no item has id `i` or `j`.
    pub fn distance(&self, i: u32, j: u32) -> Result<f32> {
        self.check_id(i)?;
        self.check_id(j)?;
        let d = self.geo.dim;
        let key = match self.metric {
            Metric::Hamming => self.table.hamming(self.row_bits(i), self.row_bits(j)) as f32,
            Metric::Angular => {
                let (a, b) = (self.row_f32(i), self.row_f32(j));
                let ppqq = self.table.norm_sq(a) * self.table.norm_sq(b);
                if ppqq > 0.0 {
                    2.0 - 2.0 * self.table.dot(a, b) / ppqq.sqrt()
                } else {
                    2.0
                }
            }
            Metric::Dot => -self.table.dot(&self.row_f32(i)[..d], &self.row_f32(j)[..d]),
            _ => self.dist.eval(self.row_f32(i), self.row_f32(j)),
        };
        Ok(search::report(self.metric, key))
    }

    /// Writes the built forest to `path` (through a temporary file, synced
    /// and renamed, so `path` never holds half an index).
    ///
    /// # Errors
    /// [`Error::NotBuilt`] before `build`; otherwise those of
    /// [`FileWriter::write_atomic`](crate::store::FileWriter::write_atomic):
    /// [`Error::Io`] when the file cannot be written or renamed into place,
    /// [`Error::InvalidParameter`] for a `path` with no file name.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let built = self.built.as_ref().ok_or(Error::NotBuilt)?;
        let path = path.as_ref();
        if let Backing::Disk(d) = &self.backing {
            if d.path() == path {
                return Ok(()); // already there, complete since `build` returned
            }
        }
        let header = self.store_header(built.trees.len());
        built
            .sections
            .writer(header, self.backing.bytes())?
            .write_atomic(path)
    }

    /// Reads a forest file into memory, checking every section's checksum.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Format`] for a file
    /// that fails [`IndexFile::load`]'s checks (header, table, checksums) or
    /// holds another kind of index
    /// ([`FormatError::WrongKind`](crate::store::FormatError::WrongKind));
    /// [`Error::BadDataFile`] for forest sections that are missing or disagree
    /// with the header (dimension, metric, row width, leaf size, lengths, tree
    /// bounds).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_file(IndexFile::load(path)?, path)
    }

    /// Maps a forest file read-only (no copy: pages are read as queries
    /// touch them, or all at open with `prefault`).
    ///
    /// As with any memory map, the file must not be modified or truncated
    /// by another process while it is open: that could change results or
    /// fault the process (SIGBUS).
    /// `opts` are the store's, as for every mapped index:
    /// [`OpenOptions::populate`] reads every page in at open (Annoy's
    /// `prefault`), [`OpenOptions::verify`] checks every checksum at open.
    ///
    /// # Errors
    /// As [`load`](Self::load), except that section checksums are checked only
    /// with `opts.verify` (errors from [`IndexFile::open_mmap`]).
    pub fn open_mmap(path: impl AsRef<Path>, opts: OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = IndexFile::open_mmap(path, opts)?;
        Self::from_file(file, path)
    }

    fn from_file(file: IndexFile, path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let p = format::parse(&file, &name)?;
        if p.vectors.offset != DATA_START as u64 {
            return Err(format::corrupt(
                &name,
                "vectors are not where swann puts them",
            ));
        }
        let h = p.header;
        let geo = p.geometry;
        let present = bytemuck::pod_collect_to_vec(&file.bytes()[p.present.range()]);
        let mut f = Self::with_backing(geo, h.metric, Backing::File(file), name);
        f.leaf_max = p.leaf_max;
        f.seed = h.seed;
        f.n_items = h.n_items as usize;
        f.present = present;
        let sections = {
            let e = |id| {
                let x = f.backing_entry(id);
                Section {
                    offset: x.0,
                    len: x.1,
                }
            };
            Sections {
                vectors: e(format::VECTORS),
                norms: e(format::NORMS),
                present: e(format::PRESENT),
                trees: e(format::TREES),
                dir: e(format::DIR),
            }
        };
        f.built = Some(Built {
            trees: p.trees,
            norms_word: p.norms.offset as usize / 4,
            sections,
        });
        Ok(f)
    }

    fn backing_entry(&self, id: u32) -> (u64, u64) {
        match &self.backing {
            Backing::File(file) => file.entry(id).map_or((0, 0), |e| (e.offset, e.len)),
            _ => (0, 0),
        }
    }

    /// Moves the forest into the file at `path` (created or truncated) and
    /// keeps it there: items added from now on, and the trees `build` makes,
    /// are written into a memory map of the file that grows as needed, so
    /// a forest larger than memory can be built. When `build` returns the
    /// file is a complete forest file ([`Forest::open_mmap`] and
    /// [`Forest::load`] read it). Call it before adding items, as with Annoy.
    ///
    /// # Errors
    /// [`Error::AlreadyBuilt`] after `build`; [`Error::InvalidState`] for a
    /// loaded or memory-mapped forest; [`Error::Io`] when the file cannot be
    /// created, sized or mapped.
    pub fn on_disk_build(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.check_adding()?;
        let path = path.as_ref();
        let disk = DiskImage::create(path, self.backing.bytes())?;
        self.backing = Backing::Disk(disk);
        self.name = path.display().to_string();
        Ok(())
    }
}

fn pack_bits(v: &[f32], words: usize) -> Vec<u64> {
    let mut out = vec![0u64; words];
    for (i, &x) in v.iter().enumerate() {
        if x > 0.5 {
            out[i / 64] |= 1 << (i % 64);
        }
    }
    out
}

fn unpack_bits(words: &[u64], dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|i| (words[i / 64] >> (i % 64) & 1) as f32)
        .collect()
}

/// Builds and runs parallel queries; used by the CLI and tests.
impl Forest {
    /// Runs [`Forest::nns_by_vector`] for each row of `queries` (row-major,
    /// `dim` values each) on the current rayon pool.
    ///
    /// # Errors
    /// [`Error::RaggedData`] when `queries` is not a whole number of
    /// rows; otherwise the first
    /// error of [`nns_by_vector`](Self::nns_by_vector) over the rows.
    pub fn nns_batch(
        &self,
        queries: &[f32],
        n: usize,
        search_k: Option<usize>,
    ) -> Result<Vec<Vec<Hit>>> {
        crate::error::check_rows("query data", queries.len(), self.geo.dim)?;
        queries
            .par_chunks(self.geo.dim)
            .map(|q| self.nns_by_vector(q, n, search_k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forest(metric: Metric) -> Forest {
        let mut f = Forest::new(24, metric).unwrap();
        f.set_seed(9);
        let mut rng = build::tree_rng(5, 0);
        for i in 0..1500u32 {
            let v: Vec<f32> = (0..24).map(|_| rng.index(1000) as f32 / 100.0).collect();
            f.add_item(i, &v).unwrap();
        }
        f
    }

    /// Files written before small rows were packed (every row whole cache
    /// lines) still open, and answer as a packed forest of the same items.
    #[test]
    fn files_with_whole_line_rows_still_open() {
        let dir = tempfile::tempdir().unwrap();
        for metric in [
            Metric::Angular,
            Metric::Euclidean,
            Metric::Dot,
            Metric::Manhattan,
        ] {
            let packed = Geometry::new(3, metric).unwrap();
            let lines = Geometry::with_width(3, metric, packed.comp, packed.line_words(metric));
            assert!(packed.row_words < lines.row_words);
            let mut out = Vec::new();
            for (k, geo) in [packed, lines].into_iter().enumerate() {
                let mut f = Forest::with_backing(
                    geo,
                    metric,
                    Backing::Heap(HeapImage::zeroed(DATA_START)),
                    "<memory>".into(),
                );
                f.set_seed(3);
                let mut rng = build::tree_rng(7, 0);
                for i in 0..500u32 {
                    let v: Vec<f32> = (0..3)
                        .map(|_| rng.index(1000) as f32 / 100.0 - 5.0)
                        .collect();
                    f.add_item(i, &v).unwrap();
                }
                f.build(4, Some(1)).unwrap();
                let path = dir.path().join(format!("{metric}-{k}.forest"));
                f.save(&path).unwrap();
                let g = Forest::load(&path).unwrap();
                assert_eq!(g.geo.row_words, geo.row_words);
                let hits: Vec<Vec<u32>> = (0..20)
                    .map(|i| {
                        g.nns_by_item(i, 5, None)
                            .unwrap()
                            .iter()
                            .map(|h| h.id)
                            .collect()
                    })
                    .collect();
                out.push(hits);
            }
            assert_eq!(out[0], out[1], "{metric}");
        }
    }

    /// Trees that do not fit the room reserved for them are appended after
    /// the others: the image is the same bytes whatever the room was.
    #[test]
    fn trees_past_the_reserved_room_give_the_same_image() {
        for metric in [Metric::Euclidean, Metric::Angular] {
            let mut a = forest(metric);
            a.build(7, Some(2)).unwrap();
            for room in [0, 1, 5000, 40_000] {
                let mut b = forest(metric);
                b.build_with_room(7, Some(2), Some(room)).unwrap();
                assert_eq!(a.backing.bytes(), b.backing.bytes(), "room {room}");
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.swf");
            let mut c = forest(metric);
            c.on_disk_build(&path).unwrap();
            c.build_with_room(7, Some(2), Some(3000)).unwrap();
            assert_eq!(a.backing.bytes(), &std::fs::read(&path).unwrap()[..]);
        }
    }
}
