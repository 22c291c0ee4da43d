//! Sharded indexes: one logical index over many index files, described by a
//! manifest, searched in parallel and merged exactly.
//!
//! A data set too large for one machine's memory (or one process's queries
//! per second) is split into parts; each part becomes an ordinary index file
//! (HNSW, forest or flat) built anywhere, by any scheduler. A [`Manifest`]
//! names the files and what they must agree on; [`ShardedIndex::open`] maps
//! every shard (O(1) per file, pages shared with every other process that
//! maps it) and answers searches over all of them:
//!
//! - each shard is asked for `k` results (or `ceil(k * oversample)`, see
//!   [`ShardedIndex::set_oversample`]) at the caller's effort;
//! - the per-shard lists are merged exactly by [`merge_top_k`]: ordered by
//!   distance, ties broken by label, a label found in several shards
//!   reported once at its nearest. A set of exact (flat) shards therefore
//!   answers exactly as one flat index over the same rows does.
//!
//! Labels are global: a shard stores the caller's labels (the forest's ids
//! are the labels, so they must fit `u32`), and results need no translation.
//! [`shard_rows`] is the split the command-line tool and the Python package
//! use: contiguous row ranges, so each shard's label range is tight (the
//! manifest records it, and lookups by label go straight to the shard that
//! can hold it) and every shard gets the same number of rows, +-1.
//!
//! ```
//! use swann::index::sharded::{shard_rows, Manifest, ShardedIndex};
//! use swann::prelude::*;
//!
//! let dir = tempfile::tempdir()?;
//! let rows: Vec<[f32; 2]> = (0..100).map(|i| [i as f32, (i % 7) as f32]).collect();
//! let mut files = Vec::new();
//! for s in 0..3 {
//!     let mut part = FlatIndex::new(2, Metric::L2)?;
//!     for i in shard_rows(rows.len(), 3, s) {
//!         part.add(i as u64, &rows[i])?;
//!     }
//!     let path = dir.path().join(format!("part-{s}.swann"));
//!     part.save(&path)?;
//!     files.push(path);
//! }
//! let manifest = Manifest::from_shards(&files, dir.path())?;
//! manifest.write(dir.path().join("index.manifest.json"))?;
//!
//! let index = ShardedIndex::open(dir.path().join("index.manifest.json"), Default::default())?;
//! assert_eq!(index.len(), 100);
//! let hits = index.search(&[41.2, 6.0], 2, Effort::Default)?;
//! assert_eq!(hits[0].label, 41);
//! # Ok::<(), swann::Error>(())
//! ```

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::api::{AnnIndex, Effort};
use super::flat::FlatIndex;
use super::hnsw::Hnsw;
use super::Neighbor;
use crate::error::{check_k, check_rows};
use crate::store::{ElemType, IndexFile, IndexKind, OpenOptions};
use crate::{Error, Metric, Result};

/// The `format` value of every manifest.
pub const MANIFEST_FORMAT: &str = "swann-shards";
/// The manifest version this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// Which index every shard of a manifest holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardKind {
    /// HNSW graphs over `f32` vectors.
    Hnsw,
    /// Random-projection forests (needs the `forest` feature to open).
    Forest,
    /// Exact flat indexes.
    Flat,
}

impl ShardKind {
    fn of(kind: IndexKind) -> Result<Self> {
        match kind {
            IndexKind::Hnsw => Ok(ShardKind::Hnsw),
            IndexKind::Forest => Ok(ShardKind::Forest),
            IndexKind::Flat => Ok(ShardKind::Flat),
            other => Err(Error::InvalidParameter(format!(
                "{other} indexes cannot be shards (HNSW, forest and flat can)"
            ))),
        }
    }

    /// The name the manifest uses.
    pub fn name(self) -> &'static str {
        match self {
            ShardKind::Hnsw => "hnsw",
            ShardKind::Forest => "forest",
            ShardKind::Flat => "flat",
        }
    }
}

impl std::fmt::Display for ShardKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One shard file as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// The file, relative to the manifest's folder unless absolute.
    pub path: PathBuf,
    /// Vectors in the shard.
    pub rows: u64,
    /// The smallest label in the shard (0 for an empty shard).
    pub label_min: u64,
    /// The largest label in the shard (0 for an empty shard).
    pub label_max: u64,
    /// The file's length in bytes.
    pub bytes: u64,
    /// XXH3-64 of the whole file, 16 lowercase hex digits.
    pub xxh3: String,
}

/// A versioned list of shard files and what they agree on.
///
/// Stored as JSON (readable by any tool; the Python package reads and writes
/// the same file):
///
/// ```json
/// {"format": "swann-shards", "version": 1, "kind": "hnsw", "metric": "l2",
///  "dim": 128, "elem_type": "f32",
///  "shards": [{"path": "shard-0.swann", "rows": 50000, "label_min": 0,
///              "label_max": 49999, "bytes": 41947264, "xxh3": "9c2f..."}]}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// [`MANIFEST_VERSION`] for manifests this build writes.
    pub version: u32,
    /// The index kind of every shard.
    pub kind: ShardKind,
    /// The metric of every shard.
    pub metric: Metric,
    /// The dimension of every shard.
    pub dim: usize,
    /// The element type of every shard (`"f32"`).
    pub elem_type: String,
    /// The shards, in the order searches visit them.
    pub shards: Vec<ShardEntry>,
}

/// The rows of part `i` of `n` rows split into `parts` contiguous ranges of
/// equal size (+-1): part `i` starts at `i * n / parts`.
///
/// # Panics
/// If `parts` is 0 or `i >= parts`.
pub fn shard_rows(n: usize, parts: usize, i: usize) -> Range<usize> {
    assert!(i < parts, "part {i} of {parts}");
    let at = |j: usize| (j as u128 * n as u128 / parts as u128) as usize;
    at(i)..at(i + 1)
}

/// XXH3-64 of a whole file, as the manifest records it.
///
/// # Errors
/// I/O errors reading the file.
pub fn file_checksum(path: impl AsRef<Path>) -> Result<String> {
    let mut f = File::open(path.as_ref())?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:016x}", h.digest()))
}

/// [`file_checksum`] of bytes already in memory (or mapped).
fn bytes_checksum(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

/// What a shard file holds, read from its header and its labels.
struct Described {
    kind: ShardKind,
    metric: Metric,
    dim: usize,
    elem: ElemType,
    entry: ShardEntry,
}

/// A shard's row count (deleted items not counted, as its `len`) and the
/// range of its labels.
fn rows_and_labels(file: &Arc<IndexFile>, path: &Path, kind: ShardKind) -> Result<(u64, u64, u64)> {
    let labels: Vec<u64> = match kind {
        // From the label and flag sections: opening the index would build
        // a `pq4` shard's neighbour records only to be dropped.
        ShardKind::Hnsw => super::hnsw::live_labels(file)?,
        ShardKind::Flat => {
            let i = FlatIndex::from_index_file(Arc::clone(file), crate::kernels::active())?;
            i.labels().to_vec()
        }
        #[cfg(feature = "forest")]
        ShardKind::Forest => {
            let i = super::forest::Forest::open_mmap(path, OpenOptions::default())?;
            i.ids().map(u64::from).collect()
        }
        #[cfg(not(feature = "forest"))]
        ShardKind::Forest => {
            let _ = path;
            return Err(forest_disabled());
        }
    };
    let min = labels.iter().copied().min().unwrap_or(0);
    let max = labels.iter().copied().max().unwrap_or(0);
    Ok((labels.len() as u64, min, max))
}

#[cfg(not(feature = "forest"))]
fn forest_disabled() -> Error {
    Error::InvalidParameter("forest shards need swann's `forest` feature".into())
}

fn describe(path: &Path, recorded: PathBuf) -> Result<Described> {
    // One map of the file for its header, its labels and its checksum, so
    // the entry describes one version of the file.
    let file = Arc::new(IndexFile::open_mmap(path, OpenOptions::default())?);
    let h = file.header().clone();
    let kind = ShardKind::of(h.kind)?;
    let (rows, label_min, label_max) = rows_and_labels(&file, path, kind)?;
    let entry = ShardEntry {
        path: recorded,
        rows,
        label_min,
        label_max,
        bytes: file.file_len(),
        xxh3: bytes_checksum(file.bytes()),
    };
    Ok(Described {
        kind,
        metric: h.metric,
        dim: h.dim as usize,
        elem: h.elem_type,
        entry,
    })
}

impl Manifest {
    /// The manifest of `shards` (index files written by `save`), each
    /// recorded relative to `dir` (the folder the manifest will be written
    /// to) when it lies inside it, else as given.
    ///
    /// Reads every file once (for its checksum) and opens each index to
    /// count its rows and label range.
    ///
    /// # Errors
    /// No shards; a file that is not a valid HNSW, forest or flat index; a
    /// binary (bit-packed) index or shards that disagree on kind, metric,
    /// dimension or element type ([`Error::IncompatibleFiles`], naming the
    /// shard); I/O errors.
    pub fn from_shards<P: AsRef<Path> + Sync>(shards: &[P], dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if shards.is_empty() {
            return Err(Error::InvalidParameter(
                "a manifest needs at least one shard".into(),
            ));
        }
        let described = shards
            .par_iter()
            .map(|p| {
                let p = p.as_ref();
                let recorded = relative_to(p, dir);
                describe(p, recorded).map_err(|e| with_shard(e, p))
            })
            .collect::<Result<Vec<_>>>()?;
        let first = &described[0];
        if first.elem != ElemType::F32 {
            return Err(Error::IncompatibleFiles {
                path: shards[0].as_ref().display().to_string(),
                reason: format!("{} shards are not supported (f32 vectors are)", first.elem),
            });
        }
        for (d, p) in described.iter().zip(shards).skip(1) {
            let differs = |reason: String| Error::IncompatibleFiles {
                path: p.as_ref().display().to_string(),
                reason,
            };
            if d.kind != first.kind {
                return Err(differs(format!(
                    "a {} index, the first shard a {} index",
                    d.kind, first.kind
                )));
            }
            if d.metric != first.metric {
                return Err(differs(format!(
                    "ranks by {}, the first shard by {}",
                    d.metric, first.metric
                )));
            }
            if d.dim != first.dim || d.elem != first.elem {
                return Err(differs(format!(
                    "holds {}-dimensional {} vectors, the first shard {}-dimensional {}",
                    d.dim, d.elem, first.dim, first.elem
                )));
            }
        }
        Ok(Manifest {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            kind: first.kind,
            metric: first.metric,
            dim: first.dim,
            elem_type: first.elem.to_string(),
            shards: described.into_iter().map(|d| d.entry).collect(),
        })
    }

    /// Reads and validates the manifest at `path` (not the shard files:
    /// [`ShardedIndex::open`] checks those).
    ///
    /// # Errors
    /// I/O errors; [`Error::BadDataFile`] for a file that is not a manifest,
    /// has another version, or is inconsistent.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bad = |reason: String| Error::BadDataFile {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path)?;
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not a swann shard manifest: {e}")))?;
        if m.format != MANIFEST_FORMAT {
            return Err(bad(format!(
                "format is {:?}, not {MANIFEST_FORMAT:?}",
                m.format
            )));
        }
        if m.version != MANIFEST_VERSION {
            return Err(bad(format!(
                "manifest version {} (this build reads version {MANIFEST_VERSION})",
                m.version
            )));
        }
        m.validate().map_err(bad)?;
        Ok(m)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.shards.is_empty() {
            return Err("the manifest names no shards".into());
        }
        if self.dim == 0 {
            return Err("dimension 0".into());
        }
        if self.elem_type != ElemType::F32.to_string() {
            return Err(format!(
                "element type {:?} is not supported (f32 is)",
                self.elem_type
            ));
        }
        for (i, s) in self.shards.iter().enumerate() {
            if s.path.as_os_str().is_empty() {
                return Err(format!("shard {i} has no path"));
            }
            if s.rows > 0 && s.label_min > s.label_max {
                return Err(format!(
                    "shard {i}: label_min {} is above label_max {}",
                    s.label_min, s.label_max
                ));
            }
            if s.xxh3.len() != 16 || !s.xxh3.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "shard {i}: checksum {:?} is not 16 hex digits",
                    s.xxh3
                ));
            }
        }
        Ok(())
    }

    /// Writes the manifest to `path` atomically: a temporary file in the
    /// same folder, synced, then renamed over `path` (a reader sees the old
    /// manifest or the new one, never a part).
    ///
    /// # Errors
    /// I/O errors; the temporary file is removed on failure.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.validate().map_err(Error::InvalidParameter)?;
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::InvalidState(format!("serializing the manifest: {e}")))?;
        text.push('\n');
        crate::store::write_bytes_atomic(path, text.as_bytes())
    }

    /// Rows in all shards.
    pub fn rows(&self) -> u64 {
        self.shards.iter().map(|s| s.rows).sum()
    }

    /// Where shard `i`'s file is, for a manifest read from folder `dir`.
    pub fn shard_path(&self, dir: &Path, i: usize) -> PathBuf {
        let p = &self.shards[i].path;
        if p.is_absolute() {
            p.clone()
        } else {
            dir.join(p)
        }
    }
}

fn relative_to(p: &Path, dir: &Path) -> PathBuf {
    let abs = |x: &Path| std::fs::canonicalize(x).ok();
    match (abs(p), abs(dir)) {
        (Some(p_abs), Some(d_abs)) => match p_abs.strip_prefix(&d_abs) {
            Ok(rel) => rel.to_path_buf(),
            Err(_) => p_abs,
        },
        _ => p.to_path_buf(),
    }
}

fn with_shard(e: Error, path: &Path) -> Error {
    match e {
        Error::BadDataFile { .. } => e,
        other => Error::BadDataFile {
            path: path.display().to_string(),
            reason: other.to_string(),
        },
    }
}

/// Merges per-shard result lists into the `k` best, exactly: every
/// candidate ordered by distance (ascending, or descending where
/// `larger_is_closer`: the forest's dot), ties broken by the smaller label;
/// a label in several lists is reported once, at its best distance.
///
/// The lists need not be sorted. The same function merges for the Python
/// package's distributed searcher.
///
/// ```
/// use swann::index::sharded::merge_top_k;
/// use swann::index::Neighbor;
///
/// let n = |label, distance| Neighbor { label, distance };
/// let a = [n(4, 0.5), n(9, 2.0)];
/// let b = [n(7, 0.5), n(1, 1.0)];
/// let top = merge_top_k([&a[..], &b[..]], 3, false);
/// assert_eq!(top, [n(4, 0.5), n(7, 0.5), n(1, 1.0)]);
/// ```
pub fn merge_top_k<'a>(
    lists: impl IntoIterator<Item = &'a [Neighbor]>,
    k: usize,
    larger_is_closer: bool,
) -> Vec<Neighbor> {
    let mut all: Vec<Neighbor> = lists.into_iter().flatten().copied().collect();
    let key = |n: &Neighbor| {
        if larger_is_closer {
            -n.distance
        } else {
            n.distance
        }
    };
    all.sort_unstable_by(|a, b| key(a).total_cmp(&key(b)).then(a.label.cmp(&b.label)));
    let mut out = Vec::with_capacity(k.min(all.len()));
    let mut seen = HashSet::with_capacity(k.min(all.len()));
    for n in all {
        if out.len() == k {
            break;
        }
        if seen.insert(n.label) {
            out.push(n);
        }
    }
    out
}

/// An opened shard.
enum Shard {
    Hnsw(Box<Hnsw>),
    #[cfg(feature = "forest")]
    Forest(Box<super::forest::Forest>),
    Flat(FlatIndex),
}

impl Shard {
    fn open(path: &Path, kind: ShardKind, load: bool, opts: OpenOptions) -> Result<Self> {
        Ok(match kind {
            ShardKind::Hnsw if load => Shard::Hnsw(Box::new(Hnsw::load(path)?)),
            ShardKind::Hnsw => Shard::Hnsw(Box::new(Hnsw::open_mmap(path, opts)?)),
            ShardKind::Flat if load => Shard::Flat(FlatIndex::load(path)?),
            ShardKind::Flat => Shard::Flat(FlatIndex::open_mmap(path, opts)?),
            #[cfg(feature = "forest")]
            ShardKind::Forest if load => {
                Shard::Forest(Box::new(super::forest::Forest::load(path)?))
            }
            #[cfg(feature = "forest")]
            ShardKind::Forest => {
                Shard::Forest(Box::new(super::forest::Forest::open_mmap(path, opts)?))
            }
            #[cfg(not(feature = "forest"))]
            ShardKind::Forest => return Err(forest_disabled()),
        })
    }

    fn index(&self) -> &dyn AnnIndex<Elem = f32> {
        match self {
            Shard::Hnsw(i) => &**i,
            #[cfg(feature = "forest")]
            Shard::Forest(i) => &**i,
            Shard::Flat(i) => i,
        }
    }

    fn get_vector(&self, label: u64) -> Result<Vec<f32>> {
        match self {
            Shard::Hnsw(i) => i.get_vector(label),
            #[cfg(feature = "forest")]
            Shard::Forest(i) => {
                let id = u32::try_from(label).map_err(|_| Error::UnknownLabel(label))?;
                i.item_vector(id)
            }
            Shard::Flat(i) => match i.labels().iter().position(|&l| l == label) {
                Some(row) => Ok(i.vector(row).to_vec()),
                None => Err(Error::UnknownLabel(label)),
            },
        }
    }

    fn verify(&self) -> Result<()> {
        match self {
            Shard::Hnsw(i) => i.verify(),
            #[cfg(feature = "forest")]
            Shard::Forest(_) => Ok(()),
            Shard::Flat(i) => i.verify(),
        }
    }
}

/// One logical index over the shard files a [`Manifest`] names.
///
/// Every method takes `&self` and may be called from many threads at once.
pub struct ShardedIndex {
    manifest: Manifest,
    dir: PathBuf,
    shards: Vec<Shard>,
    oversample: f64,
    larger_is_closer: bool,
}

impl std::fmt::Debug for ShardedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedIndex")
            .field("kind", &self.manifest.kind)
            .field("metric", &self.manifest.metric)
            .field("dim", &self.manifest.dim)
            .field("shards", &self.shards.len())
            .field("rows", &self.manifest.rows())
            .field("oversample", &self.oversample)
            .finish()
    }
}

impl ShardedIndex {
    /// Reads the manifest at `manifest` and memory-maps every shard it
    /// names (relative paths are relative to the manifest's folder).
    ///
    /// Each shard's header is checked against the manifest (kind, metric,
    /// dimension, element type), and its length and row count against what
    /// the manifest recorded, so a shard file replaced after the manifest
    /// was written is caught. Checksums are not computed here (that reads
    /// every byte): see [`verify`](Self::verify), or `opts.verify`, which
    /// also checks them.
    ///
    /// # Errors
    /// The manifest's own errors ([`Manifest::read`]); a missing shard; a
    /// shard that disagrees with the manifest (the message names it).
    pub fn open(manifest: impl AsRef<Path>, opts: OpenOptions) -> Result<Self> {
        Self::open_impl(manifest.as_ref(), false, opts)
    }

    /// As [`open`](Self::open), but reads every shard into memory (checking
    /// every section checksum) instead of mapping it.
    ///
    /// # Errors
    /// As [`open`](Self::open), and corrupt shard files.
    pub fn load(manifest: impl AsRef<Path>) -> Result<Self> {
        Self::open_impl(manifest.as_ref(), true, OpenOptions::default())
    }

    fn open_impl(path: &Path, load: bool, opts: OpenOptions) -> Result<Self> {
        let manifest = Manifest::read(path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let shards = (0..manifest.shards.len())
            .into_par_iter()
            .map(|i| {
                let p = manifest.shard_path(&dir, i);
                open_shard(&manifest, i, &p, load, opts).map_err(|e| with_shard(e, &p))
            })
            .collect::<Result<Vec<_>>>()?;
        let larger_is_closer = manifest.kind == ShardKind::Forest && manifest.metric == Metric::Dot;
        let index = ShardedIndex {
            manifest,
            dir,
            shards,
            oversample: 1.0,
            larger_is_closer,
        };
        if opts.verify {
            index.verify()?;
        }
        Ok(index)
    }

    /// Checks every shard file against the checksum the manifest recorded
    /// (reads every byte of every shard), and each index's own checks.
    ///
    /// # Errors
    /// [`Error::BadDataFile`] naming the first shard that does not match.
    pub fn verify(&self) -> Result<()> {
        (0..self.shards.len()).into_par_iter().try_for_each(|i| {
            let p = self.manifest.shard_path(&self.dir, i);
            let want = &self.manifest.shards[i].xxh3;
            let got = file_checksum(&p)?;
            if &got != want {
                return Err(Error::BadDataFile {
                    path: p.display().to_string(),
                    reason: format!("checksum {got}, the manifest recorded {want}"),
                });
            }
            self.shards[i].verify().map_err(|e| with_shard(e, &p))
        })
    }

    /// Asks each shard for `ceil(k * factor)` results instead of `k`
    /// (default 1.0). Exact shards need no more than `k`; approximate ones
    /// find the global top `k` more often when each returns a few more,
    /// at the cost of larger per-shard searches.
    ///
    /// # Errors
    /// A factor below 1 or not finite.
    pub fn set_oversample(&mut self, factor: f64) -> Result<()> {
        if !factor.is_finite() || factor < 1.0 {
            return Err(Error::InvalidParameter(format!(
                "oversample factor {factor} must be a finite number of at least 1"
            )));
        }
        self.oversample = factor;
        Ok(())
    }

    /// The oversample factor ([`set_oversample`](Self::set_oversample)).
    pub fn oversample(&self) -> f64 {
        self.oversample
    }

    /// The manifest the index was opened from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Number of shards.
    pub fn num_shards(&self) -> usize {
        self.shards.len()
    }

    /// The index kind of every shard.
    pub fn kind(&self) -> ShardKind {
        self.manifest.kind
    }

    /// Vectors in all shards.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.index().len()).sum()
    }

    /// Whether no shard holds a vector.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Components per vector.
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// The metric every shard ranks by.
    pub fn metric(&self) -> Metric {
        self.manifest.metric
    }

    /// Whether larger distances are nearer (the forest's dot product, as
    /// Annoy reports it); [`merge_top_k`] needs it.
    pub fn larger_is_closer(&self) -> bool {
        self.larger_is_closer
    }

    fn per_shard_k(&self, k: usize) -> usize {
        ((k as f64 * self.oversample).ceil() as usize).max(k)
    }

    /// Searches one shard; an empty shard contributes nothing.
    fn search_shard(
        &self,
        shard: &Shard,
        query: &[f32],
        k: usize,
        effort: Effort,
    ) -> Result<Vec<Neighbor>> {
        let index = shard.index();
        if index.is_empty() {
            crate::error::check_vector(query, self.dim())?;
            return Ok(Vec::new());
        }
        index.search(query, k, effort)
    }

    /// The `k` nearest labels to `query` over every shard, nearest first.
    /// The shards are searched in parallel (rayon).
    ///
    /// `effort` is each shard's own knob (HNSW's `ef`, raised to the
    /// per-shard `k`; the forest's `search_k`).
    ///
    /// # Errors
    /// [`Error::ZeroK`] for `k == 0`; [`Error::DimensionMismatch`] or
    /// [`Error::NonFinite`] for a query of the wrong length or with
    /// non-finite components.
    pub fn search(&self, query: &[f32], k: usize, effort: Effort) -> Result<Vec<Neighbor>> {
        check_k(k)?;
        let kk = self.per_shard_k(k);
        let lists = self
            .shards
            .par_iter()
            .map(|s| self.search_shard(s, query, kk, effort))
            .collect::<Result<Vec<_>>>()?;
        Ok(merge_top_k(
            lists.iter().map(Vec::as_slice),
            k,
            self.larger_is_closer,
        ))
    }

    /// Searches every row of `queries` (row-major, `dim` per row), the
    /// queries in parallel and each query's shards one after another (the
    /// better use of cores when there are many queries).
    ///
    /// # Errors
    /// As [`search`](Self::search); [`Error::RaggedData`] for data that is
    /// not a whole number of rows.
    pub fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        effort: Effort,
    ) -> Result<Vec<Vec<Neighbor>>> {
        check_k(k)?;
        let dim = self.dim();
        check_rows("query data", queries.len(), dim)?;
        let kk = self.per_shard_k(k);
        queries
            .par_chunks(dim)
            .map(|q| {
                let lists = self
                    .shards
                    .iter()
                    .map(|s| self.search_shard(s, q, kk, effort))
                    .collect::<Result<Vec<_>>>()?;
                Ok(merge_top_k(
                    lists.iter().map(Vec::as_slice),
                    k,
                    self.larger_is_closer,
                ))
            })
            .collect()
    }

    /// The shards whose recorded label range holds `label`.
    fn shards_for(&self, label: u64) -> impl Iterator<Item = &Shard> {
        self.manifest
            .shards
            .iter()
            .zip(&self.shards)
            .filter(move |(e, _)| e.rows > 0 && (e.label_min..=e.label_max).contains(&label))
            .map(|(_, s)| s)
    }

    /// The vector stored under `label` (as stored: normalized under cosine
    /// and angular HNSW).
    ///
    /// # Errors
    /// [`Error::UnknownLabel`] when no shard holds it.
    pub fn get_vector(&self, label: u64) -> Result<Vec<f32>> {
        for s in self.shards_for(label) {
            match s.get_vector(label) {
                Err(Error::UnknownLabel(_)) => continue,
                other => return other,
            }
        }
        Err(Error::UnknownLabel(label))
    }

    /// The `k` nearest labels to the vector stored under `label` (the item
    /// itself included, as Annoy's `get_nns_by_item` does).
    ///
    /// # Errors
    /// [`Error::UnknownLabel`]; [`Error::ZeroK`] for `k == 0`.
    pub fn search_by_label(&self, label: u64, k: usize, effort: Effort) -> Result<Vec<Neighbor>> {
        let v = self.get_vector(label)?;
        self.search(&v, k, effort)
    }
}

fn open_shard(m: &Manifest, i: usize, path: &Path, load: bool, opts: OpenOptions) -> Result<Shard> {
    let e = &m.shards[i];
    let bytes = std::fs::metadata(path)?.len();
    if bytes != e.bytes {
        return Err(Error::InvalidState(format!(
            "the file is {bytes} bytes, the manifest recorded {}: it changed after the manifest was written",
            e.bytes
        )));
    }
    let file = IndexFile::open_mmap(path, OpenOptions::default())?;
    let h = file.header();
    let kind = ShardKind::of(h.kind)?;
    if kind != m.kind || h.metric != m.metric || h.dim as usize != m.dim {
        return Err(Error::InvalidState(format!(
            "a {kind} index of {}-dimensional vectors under {}; the manifest says {} / {} / {}",
            h.dim, h.metric, m.kind, m.dim, m.metric
        )));
    }
    if h.elem_type.to_string() != m.elem_type {
        return Err(Error::InvalidState(format!(
            "{} vectors; the manifest says {}",
            h.elem_type, m.elem_type
        )));
    }
    drop(file);
    let shard = Shard::open(
        path,
        kind,
        load,
        OpenOptions {
            verify: false,
            ..opts
        },
    )?;
    let rows = shard.index().len() as u64;
    if rows != e.rows {
        return Err(Error::InvalidState(format!(
            "{rows} rows; the manifest recorded {}",
            e.rows
        )));
    }
    Ok(shard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_rows_cover_everything_once() {
        for n in [0usize, 1, 5, 99, 100, 1001] {
            for parts in 1..9 {
                let mut next = 0;
                for i in 0..parts {
                    let r = shard_rows(n, parts, i);
                    assert_eq!(r.start, next);
                    assert!(r.len() <= n.div_ceil(parts));
                    assert!(r.len() >= n / parts);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn merge_orders_by_distance_then_label_and_dedupes() {
        let n = |label, distance| Neighbor { label, distance };
        let a = [n(5, 1.0), n(3, 1.0), n(8, 3.0)];
        let b = [n(2, 2.0), n(5, 0.5)];
        let top = merge_top_k([&a[..], &b[..]], 10, false);
        assert_eq!(top, [n(5, 0.5), n(3, 1.0), n(2, 2.0), n(8, 3.0)]);
        let top = merge_top_k([&a[..], &b[..]], 2, true);
        assert_eq!(top, [n(8, 3.0), n(2, 2.0)]);
        assert!(merge_top_k([&[][..]], 3, false).is_empty());
    }
}
