//! Where an engine keeps its buckets.

use std::borrow::Cow;
use std::collections::HashMap;

use super::hash::BucketKey;
use super::quickhash::QuickState;
use super::screen::{LazyScreen, ScreenCodes};
use super::Payload;
use crate::error::{Error, Result};
use crate::store::Slab;

/// One bucket of one hash.
#[derive(Clone, Copy, Debug)]
pub struct BucketRef<'a> {
    /// The hash's name.
    pub hash: &'a str,
    /// The bucket's key under that hash.
    pub key: &'a BucketKey,
}

/// One vector and its payload, to append to several buckets (one per hash,
/// as [`Engine::store`](super::Engine::store) produces them).
#[derive(Debug)]
pub struct StoreEntry<'a, D> {
    /// The buckets it goes to.
    pub buckets: &'a [BucketRef<'a>],
    /// The vector, as given to the engine.
    pub vector: &'a [f32],
    /// Its payload.
    pub data: &'a D,
}

// Manual impls: a derive would ask `D: Copy`, but only `&D` is copied.
impl<D> Clone for StoreEntry<'_, D> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<D> Copy for StoreEntry<'_, D> {}

/// What a bucket holds, in one of two layouts:
///
/// - packed (`rows` is `None`): entry `i` is the vector
///   `vectors[i * dim..(i + 1) * dim]` with payload `data[i]`;
/// - indexed (`rows` is `Some`): `vectors` and `data` are a shared arena
///   and entry `i` is arena row `rows[i]`.
///
/// Borrowed from an in-memory store, owned when decoded from a remote one.
#[derive(Clone, Debug)]
pub struct BucketContents<'a, D: Clone> {
    /// Packed entries, or the arena.
    pub vectors: Cow<'a, [f32]>,
    /// Payloads, in the same layout as `vectors`.
    pub data: Cow<'a, [D]>,
    /// For the indexed layout, the arena row of each entry.
    pub rows: Option<Cow<'a, [u32]>>,
}

impl<D: Clone> BucketContents<'_, D> {
    /// An empty bucket.
    pub fn empty() -> Self {
        BucketContents {
            vectors: Cow::Owned(Vec::new()),
            data: Cow::Owned(Vec::new()),
            rows: None,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match &self.rows {
            Some(r) => r.len(),
            None => self.data.len(),
        }
    }

    /// Whether the bucket has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row (in `vectors` and `data`) of entry `i`.
    #[inline]
    pub fn row(&self, i: usize) -> usize {
        match &self.rows {
            Some(r) => r[i] as usize,
            None => i,
        }
    }

    /// Checks that the value and payload counts agree for dimension `dim`.
    /// Rows are not read here: a caller indexing by
    /// [`BucketContents::row`] checks each against `data.len()` as it goes.
    pub(crate) fn validate_sizes(&self, dim: usize) -> Result<()> {
        if self.vectors.len() == self.data.len() * dim {
            Ok(())
        } else {
            Err(self.inconsistent(dim))
        }
    }

    /// The error for an inconsistent layout.
    pub(crate) fn inconsistent(&self, dim: usize) -> Error {
        Error::Storage {
            backend: "engine",
            message: format!(
                "bucket layout is inconsistent: {} values, {} payloads, dimension {dim}",
                self.vectors.len(),
                self.data.len()
            ),
        }
    }
}

/// The storage behind an [`Engine`](super::Engine) (NearPy's `Storage`):
/// buckets named by (hash name, bucket key), each an ordered list of
/// (vector, payload) entries.
///
/// Contract, which [`MemoryStorage`] and the Redis storage both keep and the
/// engine relies on: entries come back in the order they were stored; an
/// emptied bucket disappears from [`Storage::bucket_keys`]; nothing is
/// touched outside the storage's own namespace.
pub trait Storage<D: Payload>: Send + Sync {
    /// Appends each entry's (vector, payload) to each of its buckets, in order.
    ///
    /// # Errors
    /// The backend's: [`MemoryStorage`] returns [`Error::DimensionMismatch`]
    /// for a vector whose length differs from the vectors it holds (nothing is
    /// stored then) and [`Error::InvalidParameter`] past 2^32 - 1 vectors; the
    /// Redis storage returns [`Error::Storage`] when the server fails or a
    /// payload does not encode (entries sent before the failure stay stored).
    fn store_batch(&mut self, entries: &[StoreEntry<'_, D>]) -> Result<()>;

    /// Appends one vector and payload to its buckets.
    ///
    /// # Errors
    /// As [`store_batch`](Self::store_batch).
    fn store(&mut self, entry: StoreEntry<'_, D>) -> Result<()> {
        self.store_batch(std::slice::from_ref(&entry))
    }

    /// The contents of each bucket in `buckets`, in that order (an absent
    /// bucket is empty). `dim` is the engine's dimension.
    ///
    /// # Errors
    /// The backend's: [`MemoryStorage`] never fails; the Redis storage returns
    /// [`Error::Storage`] when the server fails or a stored entry does not
    /// decode for dimension `dim`.
    fn get_buckets<'s>(
        &'s self,
        buckets: &[BucketRef<'_>],
        dim: usize,
    ) -> Result<Vec<BucketContents<'s, D>>>;

    /// The total number of entries in `buckets`.
    ///
    /// # Errors
    /// The backend's: [`MemoryStorage`] never fails; the Redis storage returns
    /// [`Error::Storage`] when the server fails.
    fn count(&self, buckets: &[BucketRef<'_>]) -> Result<usize>;

    /// The keys of every non-empty bucket of `hash`, sorted.
    ///
    /// # Errors
    /// The backend's: [`MemoryStorage`] never fails; the Redis storage returns
    /// [`Error::InvalidParameter`] for a hash name it cannot hold in a key and
    /// [`Error::Storage`] when the server fails.
    fn bucket_keys(&self, hash: &str) -> Result<Vec<BucketKey>>;

    /// Removes every entry whose payload equals `data` from the given buckets
    /// of `hash` (every bucket of `hash` when `keys` is `None`). Returns the
    /// buckets that lost entries and how many each lost, sorted by key.
    ///
    /// # Errors
    /// The backend's: [`MemoryStorage`] never fails; the Redis storage returns
    /// [`Error::InvalidParameter`] for a hash name it cannot hold in a key
    /// (when `keys` is `None`) and [`Error::Storage`] when the server fails or
    /// a stored entry does not decode.
    fn delete(
        &mut self,
        hash: &str,
        keys: Option<&[BucketKey]>,
        data: &D,
        dim: usize,
    ) -> Result<Vec<(BucketKey, usize)>>;

    /// Removes every bucket of `hash`.
    ///
    /// # Errors
    /// The backend's: [`MemoryStorage`] never fails; the Redis storage returns
    /// [`Error::InvalidParameter`] for a hash name it cannot hold in a key and
    /// [`Error::Storage`] when the server fails.
    fn clean_buckets(&mut self, hash: &str) -> Result<()>;

    /// Removes every bucket of every hash in this storage.
    ///
    /// # Errors
    /// The backend's: [`MemoryStorage`] never fails; the Redis storage returns
    /// [`Error::Storage`] when the server fails.
    fn clean_all_buckets(&mut self) -> Result<()>;

    /// Byte codes of the arena that indexed buckets (`rows` set) refer to,
    /// from which the engine bounds candidates' distances and skips those
    /// that cannot make its nearest `n` without reading their rows; `None`,
    /// the default, for a storage without them (every candidate row is
    /// then read). [`MemoryStorage`] builds them when first asked after a
    /// change.
    fn screen(&self) -> Option<&ScreenCodes> {
        None
    }
}

/// Binary keys (only `0`/`1`) of up to this many characters are found by
/// indexing a table of `2^bits` buckets rather than by hashing the text:
/// NearPy's default of 10 bits makes a table of 1,024 buckets, 16 bits one
/// of 65,536 (1.5 MiB of empty buckets).
const DENSE_MAX_BITS: usize = 16;

/// One bucket: the arena rows of its entries, in store order.
type Bucket = Vec<u32>;

/// One hash's buckets.
///
/// The first binary key of at most [`DENSE_MAX_BITS`] characters stored
/// under a hash fixes `dense_bits`; from then on every key of that length
/// made only of `0`/`1` lives in `dense`, at the index its bits spell.
/// Every other key (discretized keys, binary keys of another length) lives
/// in `sparse`. A hash makes keys of one length, so in practice a binary
/// hash uses `dense` only and a discretized one `sparse` only.
#[derive(Clone, Debug)]
struct HashBuckets {
    dense_bits: usize,
    dense: Vec<Bucket>,
    sparse: HashMap<BucketKey, Bucket, QuickState>,
}

impl HashBuckets {
    fn new() -> Self {
        HashBuckets {
            dense_bits: 0,
            dense: Vec::new(),
            sparse: HashMap::default(),
        }
    }

    #[inline]
    fn dense_index(&self, key: &BucketKey) -> Option<usize> {
        match key.binary_bits() {
            Some((len, bits)) if len == self.dense_bits => Some(bits as usize),
            _ => None,
        }
    }

    #[inline]
    fn get(&self, key: &BucketKey) -> Option<&Bucket> {
        match self.dense_index(key) {
            Some(i) => self.dense.get(i),
            None => self.sparse.get(key),
        }
    }

    #[inline]
    fn get_mut(&mut self, key: &BucketKey) -> Option<&mut Bucket> {
        match self.dense_index(key) {
            Some(i) => self.dense.get_mut(i),
            None => self.sparse.get_mut(key),
        }
    }

    #[inline]
    fn get_or_insert(&mut self, key: &BucketKey) -> &mut Bucket {
        if self.dense_bits == 0 {
            if let Some((len, _)) = key.binary_bits() {
                if len <= DENSE_MAX_BITS {
                    self.dense_bits = len;
                    self.dense = vec![Vec::new(); 1usize << len];
                }
            }
        }
        match self.dense_index(key) {
            Some(i) => &mut self.dense[i],
            None => {
                if !self.sparse.contains_key(key) {
                    self.sparse.insert(key.clone(), Vec::new());
                }
                self.sparse.get_mut(key).expect("inserted just above")
            }
        }
    }

    /// Every non-empty bucket's key.
    fn keys(&self) -> impl Iterator<Item = BucketKey> + '_ {
        let bits = self.dense_bits;
        self.dense
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(move |(i, _)| BucketKey::from_bits(bits, i as u32))
            .chain(
                self.sparse
                    .iter()
                    .filter(|(_, b)| !b.is_empty())
                    .map(|(k, _)| k.clone()),
            )
    }

    fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.dense.iter().chain(self.sparse.values())
    }

    fn buckets_mut(&mut self) -> impl Iterator<Item = &mut Bucket> {
        self.dense.iter_mut().chain(self.sparse.values_mut())
    }
}

/// Buckets in process memory (NearPy's `MemoryStorage`), the default.
///
/// Layout: each stored vector is copied once into an arena (row after row,
/// with its payload), whatever the number of hashes; a bucket is the list
/// of arena rows of its entries. Buckets of binary keys of up to 16 bits
/// (random binary projections, their tree, PCA binary projections) are
/// found by indexing a table with the key's bits, other keys by hashing.
///
/// Why one shared copy rather than a packed copy per bucket: storing then
/// writes each vector once, sequentially, instead of once per hash into as
/// many scattered bucket tails, and the whole data set takes a quarter of
/// the memory under four hashes, so more of it stays in cache for queries.
/// A query reads scattered rows instead of contiguous buckets and hides the
/// latency by prefetching a few rows ahead.
///
/// Deleting an entry frees its arena row once no bucket refers to it; the
/// next store reuses it. The row's old payload is kept until then (or until
/// [`MemoryStorage::shrink_to_fit`], which compacts the arena).
///
/// Once the arena holds [`MemoryStorage::DEFAULT_SCREEN_MIN_BYTES`] of
/// vectors or more (see [`MemoryStorage::with_screen_threshold`]), the
/// first query that keeps its nearest `n` under one of the crate's metrics
/// also codes every arena row as bytes ([`Storage::screen`]), and later
/// queries code what changed since: one byte per value plus 32 bytes per
/// row, rounded up to whole cache lines (192 bytes for 128 dimensions,
/// beside the row's 512). A query then reads in full only the rows of
/// candidates that can still make its nearest `n`.
#[derive(Clone, Debug)]
pub struct MemoryStorage<D> {
    /// Per hash name (a handful: linear search beats hashing the name).
    hashes: Vec<(String, HashBuckets)>,
    arena: Arena<D>,
    /// Byte codes of the arena rows (see [`Storage::screen`]).
    screen: LazyScreen,
    /// Arenas of fewer bytes of vectors are not screened.
    screen_min_bytes: usize,
}

struct Arena<D> {
    /// Vector dimension; 0 until the first store.
    dim: usize,
    /// Row `r` is `vectors()[r * dim..(r + 1) * dim]`, kept as the bits of
    /// the `f32`s in a [`Slab`], which puts an array of 4 MiB or more in
    /// transparent huge pages: a query reads rows scattered over the
    /// arena, and with 4 KiB pages nearly every row would also miss the TLB.
    vectors: Slab<u32>,
    data: Vec<D>,
    /// Per row, the number of bucket entries that refer to it (0: free).
    refs: Vec<u32>,
    /// Rows with no reference, reused first.
    free: Vec<u32>,
}

impl<D: Clone> Clone for Arena<D> {
    fn clone(&self) -> Self {
        let mut vectors = Slab::default();
        let mut bits = self.vectors.iter().copied();
        vectors.resize_with(self.vectors.len(), || bits.next().unwrap_or(0));
        Arena {
            dim: self.dim,
            vectors,
            data: self.data.clone(),
            refs: self.refs.clone(),
            free: self.free.clone(),
        }
    }
}

impl<D: std::fmt::Debug> std::fmt::Debug for Arena<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("dim", &self.dim)
            .field("rows", &self.refs.len())
            .field("free", &self.free.len())
            .finish()
    }
}

impl<D> Arena<D> {
    /// The rows, as `f32`.
    #[inline]
    fn vectors(&self) -> &[f32] {
        bytemuck::cast_slice(&self.vectors)
    }

    /// Appends `row` (of `dim` values): one block copy into the slab.
    fn push_row(&mut self, row: &[f32]) {
        self.vectors.extend_from_slice(bytemuck::cast_slice(row));
    }

    /// Drops one reference to `row`, freeing it at the last.
    fn release(&mut self, row: u32) {
        let r = &mut self.refs[row as usize];
        *r -= 1;
        if *r == 0 {
            self.free.push(row);
        }
    }
}

impl<D> Default for MemoryStorage<D> {
    fn default() -> Self {
        MemoryStorage {
            hashes: Vec::new(),
            arena: Arena {
                dim: 0,
                vectors: Slab::default(),
                data: Vec::new(),
                refs: Vec::new(),
                free: Vec::new(),
            },
            screen: LazyScreen::default(),
            screen_min_bytes: Self::DEFAULT_SCREEN_MIN_BYTES,
        }
    }
}

impl<D> MemoryStorage<D> {
    /// The arena size (bytes of vectors) from which queries are screened
    /// by default: 32 MiB, above the last-level cache of most CPUs. Below
    /// it the rows a query reads come from cache and reading codes instead
    /// costs more than it saves (20,000 SIFT vectors, 10 MB, four hashes:
    /// 46-47k queries/s reading every row, 39k screened), and coding the
    /// arena costs about 95 ns a row; above it (100,000 vectors, 51 MB,
    /// four hashes) screened queries run 1.25 times as fast (8.5k against
    /// 6.8k/s).
    pub const DEFAULT_SCREEN_MIN_BYTES: usize = 32 << 20;

    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Screens queries once the arena holds at least `min_bytes` of vectors
    /// (0: always; `usize::MAX`: never). See
    /// [`MemoryStorage::DEFAULT_SCREEN_MIN_BYTES`].
    pub fn with_screen_threshold(mut self, min_bytes: usize) -> Self {
        self.screen_min_bytes = min_bytes;
        self
    }

    /// Total number of entries over all buckets of all hashes (a vector
    /// stored under three hashes counts three times).
    pub fn len(&self) -> usize {
        self.hashes
            .iter()
            .flat_map(|(_, b)| b.buckets())
            .map(Vec::len)
            .sum()
    }

    /// Whether no bucket holds anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frees what [`Storage::clean_all_buckets`] and deletes kept: empty
    /// buckets, spare capacity, and the arena rows of deleted entries (the
    /// arena is compacted, live rows keeping their order).
    pub fn shrink_to_fit(&mut self) {
        self.screen.reset();
        let a = &mut self.arena;
        let dim = a.dim;
        let mut new_row = vec![u32::MAX; a.refs.len()];
        let mut next = 0usize;
        for (row, slot) in new_row.iter_mut().enumerate() {
            if a.refs[row] > 0 {
                *slot = next as u32;
                if next != row {
                    a.vectors
                        .copy_within(row * dim..(row + 1) * dim, next * dim);
                    a.data.swap(next, row);
                    a.refs[next] = a.refs[row];
                }
                next += 1;
            }
        }
        // A fresh slab of exactly the live rows (a huge-page mapping is
        // only ever grown in place).
        let mut bits = a.vectors[..next * dim].iter().copied();
        let mut vectors = Slab::default();
        vectors.resize_with(next * dim, || bits.next().unwrap_or(0));
        a.vectors = vectors;
        a.data.truncate(next);
        a.refs.truncate(next);
        a.free.clear();
        a.data.shrink_to_fit();
        a.refs.shrink_to_fit();
        a.free.shrink_to_fit();
        for (_, buckets) in &mut self.hashes {
            buckets.sparse.retain(|_, b| !b.is_empty());
            buckets.sparse.shrink_to_fit();
            for b in buckets.buckets_mut() {
                for row in b.iter_mut() {
                    *row = new_row[*row as usize];
                }
                b.shrink_to_fit();
            }
        }
    }

    fn bucket(&self, r: &BucketRef<'_>) -> Option<&Bucket> {
        self.hashes
            .iter()
            .find(|(h, _)| h == r.hash)
            .and_then(|(_, b)| b.get(r.key))
    }

    /// The buckets of `hash` (created if new); `hint` is where to look first.
    fn hash_buckets_mut(&mut self, hash: &str, hint: usize) -> &mut HashBuckets {
        let i = match self.hashes.get(hint) {
            Some((h, _)) if h == hash => hint,
            _ => match self.hashes.iter().position(|(h, _)| h == hash) {
                Some(i) => i,
                None => {
                    self.hashes.push((hash.to_string(), HashBuckets::new()));
                    self.hashes.len() - 1
                }
            },
        };
        &mut self.hashes[i].1
    }
}

impl<D: Payload> MemoryStorage<D> {
    /// Checks that `vector` has the arena's dimension (which the first
    /// vector stored into an empty arena sets).
    #[inline(always)]
    fn check_dim(&mut self, vector: &[f32]) -> Result<()> {
        if self.arena.dim == 0 && self.arena.refs.is_empty() {
            self.arena.dim = vector.len();
        }
        if vector.len() != self.arena.dim {
            return Err(Error::DimensionMismatch {
                expected: self.arena.dim,
                got: vector.len(),
            });
        }
        Ok(())
    }

    /// Appends one checked entry to the arena and its buckets.
    #[inline(always)]
    fn append(&mut self, e: &StoreEntry<'_, D>) -> Result<()> {
        if e.buckets.is_empty() {
            return Ok(());
        }
        let refs = u32::try_from(e.buckets.len()).map_err(|_| {
            Error::InvalidParameter("an entry goes to more than 2^32 buckets".into())
        })?;
        let a = &mut self.arena;
        let dim = a.dim;
        let row = match a.free.pop() {
            Some(row) => {
                let r = row as usize;
                let bits: &mut [f32] = bytemuck::cast_slice_mut(&mut a.vectors[..]);
                bits[r * dim..(r + 1) * dim].copy_from_slice(e.vector);
                a.data[r] = e.data.clone();
                a.refs[r] = refs;
                self.screen.rewritten(row);
                row
            }
            None => {
                let row = u32::try_from(a.refs.len())
                    .ok()
                    .filter(|&r| r < u32::MAX)
                    .ok_or_else(|| {
                        Error::InvalidParameter(
                            "the in-memory storage holds at most 2^32 - 1 vectors".into(),
                        )
                    })?;
                a.push_row(e.vector);
                a.data.push(e.data.clone());
                a.refs.push(refs);
                self.screen.appended();
                row
            }
        };
        for (i, b) in e.buckets.iter().enumerate() {
            self.hash_buckets_mut(b.hash, i)
                .get_or_insert(b.key)
                .push(row);
        }
        Ok(())
    }
}

impl<D: Payload> Storage<D> for MemoryStorage<D> {
    fn store_batch(&mut self, entries: &[StoreEntry<'_, D>]) -> Result<()> {
        for e in entries {
            self.check_dim(e.vector)?;
        }
        for e in entries {
            self.append(e)?;
        }
        Ok(())
    }

    /// One entry, inlined into [`Engine::store`](super::Engine::store): the
    /// result then stays in registers, where one returned through memory
    /// was read back before the entry's stores had reached the cache.
    #[inline]
    fn store(&mut self, entry: StoreEntry<'_, D>) -> Result<()> {
        self.check_dim(entry.vector)?;
        self.append(&entry)
    }

    fn get_buckets<'s>(
        &'s self,
        buckets: &[BucketRef<'_>],
        _dim: usize,
    ) -> Result<Vec<BucketContents<'s, D>>> {
        Ok(buckets
            .iter()
            .map(|r| match self.bucket(r) {
                Some(rows) if !rows.is_empty() => BucketContents {
                    vectors: Cow::Borrowed(self.arena.vectors()),
                    data: Cow::Borrowed(&self.arena.data),
                    rows: Some(Cow::Borrowed(rows)),
                },
                _ => BucketContents::empty(),
            })
            .collect())
    }

    fn screen(&self) -> Option<&ScreenCodes> {
        let a = &self.arena;
        let bytes = std::mem::size_of_val(a.vectors());
        (a.dim > 0 && bytes >= self.screen_min_bytes).then(|| self.screen.get(a.vectors(), a.dim))
    }

    fn count(&self, buckets: &[BucketRef<'_>]) -> Result<usize> {
        Ok(buckets
            .iter()
            .map(|r| self.bucket(r).map_or(0, Vec::len))
            .sum())
    }

    fn bucket_keys(&self, hash: &str) -> Result<Vec<BucketKey>> {
        let mut keys: Vec<BucketKey> = self
            .hashes
            .iter()
            .find(|(h, _)| h == hash)
            .map(|(_, b)| b.keys().collect())
            .unwrap_or_default();
        keys.sort();
        Ok(keys)
    }

    fn delete(
        &mut self,
        hash: &str,
        keys: Option<&[BucketKey]>,
        data: &D,
        _dim: usize,
    ) -> Result<Vec<(BucketKey, usize)>> {
        let MemoryStorage { hashes, arena, .. } = self;
        let Some((_, buckets)) = hashes.iter_mut().find(|(h, _)| h == hash) else {
            return Ok(Vec::new());
        };
        let keys: Vec<BucketKey> = match keys {
            Some(k) => k.to_vec(),
            None => buckets.keys().collect(),
        };
        let mut removed = Vec::new();
        for key in keys {
            let Some(bucket) = buckets.get_mut(&key) else {
                continue;
            };
            let before = bucket.len();
            bucket.retain(|&row| {
                if arena.data[row as usize] == *data {
                    arena.release(row);
                    false
                } else {
                    true
                }
            });
            if bucket.len() < before {
                removed.push((key.clone(), before - bucket.len()));
                if bucket.is_empty() && buckets.dense_index(&key).is_none() {
                    buckets.sparse.remove(&key);
                }
            }
        }
        removed.sort();
        Ok(removed)
    }

    fn clean_buckets(&mut self, hash: &str) -> Result<()> {
        if let Some(i) = self.hashes.iter().position(|(h, _)| h == hash) {
            let (_, buckets) = self.hashes.remove(i);
            for bucket in buckets.buckets() {
                for &row in bucket {
                    self.arena.release(row);
                }
            }
        }
        Ok(())
    }

    fn clean_all_buckets(&mut self) -> Result<()> {
        // Like `Vec::clear`: buckets and arena are emptied but keep their
        // capacity, so refilling an engine with similar data does not
        // allocate and fault its memory in again. `shrink_to_fit` frees it.
        for (_, buckets) in &mut self.hashes {
            for b in buckets.buckets_mut() {
                b.clear();
            }
        }
        self.screen.reset();
        let a = &mut self.arena;
        a.dim = 0;
        // Shrinking a slab keeps its memory, like `Vec::clear`.
        a.vectors.resize_with(0, || 0);
        a.data.clear();
        a.refs.clear();
        a.free.clear();
        Ok(())
    }
}
