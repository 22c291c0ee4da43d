//! Where an engine keeps its buckets.

use std::borrow::Cow;
use std::collections::HashMap;

use super::hash::BucketKey;
use super::quickhash::QuickState;
use super::Payload;
use crate::error::{Error, Result};

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

    /// Checks that the layout is consistent for dimension `dim`, so that
    /// indexing by [`BucketContents::row`] cannot go out of bounds.
    pub(crate) fn validate(&self, dim: usize) -> Result<()> {
        let arena = self.data.len();
        let ok = self.vectors.len() == arena * dim
            && self
                .rows
                .as_ref()
                .is_none_or(|r| r.iter().all(|&x| (x as usize) < arena));
        if ok {
            Ok(())
        } else {
            Err(Error::Storage {
                backend: "engine",
                message: format!(
                    "bucket layout is inconsistent: {} values, {arena} payloads, dimension {dim}",
                    self.vectors.len()
                ),
            })
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
    fn store_batch(&mut self, entries: &[StoreEntry<'_, D>]) -> Result<()>;

    /// Appends one vector and payload to its buckets.
    fn store(&mut self, entry: StoreEntry<'_, D>) -> Result<()> {
        self.store_batch(std::slice::from_ref(&entry))
    }

    /// The contents of each bucket in `buckets`, in that order (an absent
    /// bucket is empty). `dim` is the engine's dimension.
    fn get_buckets<'s>(
        &'s self,
        buckets: &[BucketRef<'_>],
        dim: usize,
    ) -> Result<Vec<BucketContents<'s, D>>>;

    /// The total number of entries in `buckets`.
    fn count(&self, buckets: &[BucketRef<'_>]) -> Result<usize>;

    /// The keys of every non-empty bucket of `hash`, sorted.
    fn bucket_keys(&self, hash: &str) -> Result<Vec<BucketKey>>;

    /// Removes every entry whose payload equals `data` from the given buckets
    /// of `hash` (every bucket of `hash` when `keys` is `None`). Returns the
    /// buckets that lost entries and how many each lost, sorted by key.
    fn delete(
        &mut self,
        hash: &str,
        keys: Option<&[BucketKey]>,
        data: &D,
        dim: usize,
    ) -> Result<Vec<(BucketKey, usize)>>;

    /// Removes every bucket of `hash`.
    fn clean_buckets(&mut self, hash: &str) -> Result<()>;

    /// Removes every bucket of every hash in this storage.
    fn clean_all_buckets(&mut self) -> Result<()>;
}

/// One hash's buckets: key to arena rows.
type HashBuckets = HashMap<BucketKey, Vec<u32>, QuickState>;

/// Buckets in process memory (NearPy's `MemoryStorage`), the default.
///
/// Each stored vector is copied once into an arena, however many hashes
/// it is stored under; a bucket is a list of arena rows (NearPy's buckets
/// likewise hold references to one array per vector). An arena row
/// referenced by no bucket any more (after deletes) is reused by the next
/// store.
///
/// Why an arena: packing each bucket's vectors contiguously (one copy per
/// hash) made queries on one hash faster, the rows streaming in order, but
/// made storing under several hashes about four times slower (one copy and
/// its page faults per hash). With the arena, the engine prefetches the
/// scattered rows of a query a few candidates ahead instead.
#[derive(Clone, Debug)]
pub struct MemoryStorage<D> {
    dim: usize,
    vectors: Vec<f32>,
    data: Vec<D>,
    /// How many buckets reference each arena row.
    refs: Vec<u32>,
    /// Rows no bucket references.
    free: Vec<u32>,
    /// Per hash name (a handful: linear search beats hashing the name).
    hashes: Vec<(String, HashBuckets)>,
}

impl<D> Default for MemoryStorage<D> {
    fn default() -> Self {
        MemoryStorage {
            dim: 0,
            vectors: Vec::new(),
            data: Vec::new(),
            refs: Vec::new(),
            free: Vec::new(),
            hashes: Vec::new(),
        }
    }
}

impl<D> MemoryStorage<D> {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total number of entries over all buckets of all hashes (a vector
    /// stored under three hashes counts three times).
    pub fn len(&self) -> usize {
        self.hashes
            .iter()
            .flat_map(|(_, b)| b.values())
            .map(Vec::len)
            .sum()
    }

    /// Whether no bucket holds anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of distinct stored vectors (arena rows in use).
    pub fn vector_count(&self) -> usize {
        self.data.len() - self.free.len()
    }

    /// Returns the memory the arena holds beyond what its vectors need
    /// (after deletes or [`Storage::clean_all_buckets`], which keep it).
    pub fn shrink_to_fit(&mut self) {
        self.vectors.shrink_to_fit();
        self.data.shrink_to_fit();
        self.refs.shrink_to_fit();
        self.free.shrink_to_fit();
        for (_, b) in &mut self.hashes {
            b.shrink_to_fit();
            b.values_mut().for_each(Vec::shrink_to_fit);
        }
    }

    fn buckets(&self, hash: &str) -> Option<&HashBuckets> {
        self.hashes.iter().find(|(h, _)| h == hash).map(|(_, b)| b)
    }

    fn buckets_mut(&mut self, hash: &str) -> &mut HashBuckets {
        let i = match self.hashes.iter().position(|(h, _)| h == hash) {
            Some(i) => i,
            None => {
                self.hashes.push((hash.to_string(), HashMap::default()));
                self.hashes.len() - 1
            }
        };
        &mut self.hashes[i].1
    }

    fn release(&mut self, row: u32) {
        let r = &mut self.refs[row as usize];
        *r -= 1;
        if *r == 0 {
            self.free.push(row);
        }
    }
}

impl<D: Payload> Storage<D> for MemoryStorage<D> {
    fn store_batch(&mut self, entries: &[StoreEntry<'_, D>]) -> Result<()> {
        for e in entries {
            if e.buckets.is_empty() {
                continue;
            }
            if self.data.len() == self.free.len() && self.dim != e.vector.len() {
                // Empty arena: (re)start at this dimension.
                self.dim = e.vector.len();
                self.vectors.clear();
                self.data.clear();
                self.refs.clear();
                self.free.clear();
            }
            if e.vector.len() != self.dim {
                return Err(Error::DimensionMismatch {
                    expected: self.dim,
                    got: e.vector.len(),
                });
            }
            let dim = self.dim;
            let row = match self.free.pop() {
                Some(r) => {
                    let i = r as usize;
                    self.vectors[i * dim..(i + 1) * dim].copy_from_slice(e.vector);
                    self.data[i] = e.data.clone();
                    r
                }
                None => {
                    let r =
                        u32::try_from(self.data.len()).map_err(|_| Error::CapacityExceeded {
                            capacity: u32::MAX as usize,
                        })?;
                    self.vectors.extend_from_slice(e.vector);
                    self.data.push(e.data.clone());
                    self.refs.push(0);
                    r
                }
            };
            self.refs[row as usize] = e.buckets.len() as u32;
            for b in e.buckets {
                let buckets = self.buckets_mut(b.hash);
                match buckets.get_mut(b.key) {
                    Some(list) => list.push(row),
                    None => {
                        buckets.insert(b.key.clone(), vec![row]);
                    }
                }
            }
        }
        Ok(())
    }

    fn get_buckets<'s>(
        &'s self,
        buckets: &[BucketRef<'_>],
        _dim: usize,
    ) -> Result<Vec<BucketContents<'s, D>>> {
        Ok(buckets
            .iter()
            .map(|r| match self.buckets(r.hash).and_then(|b| b.get(r.key)) {
                Some(rows) => BucketContents {
                    vectors: Cow::Borrowed(&self.vectors),
                    data: Cow::Borrowed(&self.data),
                    rows: Some(Cow::Borrowed(rows)),
                },
                None => BucketContents::empty(),
            })
            .collect())
    }

    fn count(&self, buckets: &[BucketRef<'_>]) -> Result<usize> {
        Ok(buckets
            .iter()
            .map(|r| {
                self.buckets(r.hash)
                    .and_then(|b| b.get(r.key))
                    .map_or(0, Vec::len)
            })
            .sum())
    }

    fn bucket_keys(&self, hash: &str) -> Result<Vec<BucketKey>> {
        let mut keys: Vec<BucketKey> = self
            .buckets(hash)
            .map(|b| b.keys().cloned().collect())
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
        let Some(i) = self.hashes.iter().position(|(h, _)| h == hash) else {
            return Ok(Vec::new());
        };
        let keys: Vec<BucketKey> = match keys {
            Some(k) => k.to_vec(),
            None => self.hashes[i].1.keys().cloned().collect(),
        };
        let mut removed = Vec::new();
        let mut released = Vec::new();
        for key in keys {
            let buckets = &mut self.hashes[i].1;
            let Some(list) = buckets.get_mut(&key) else {
                continue;
            };
            let before = list.len();
            list.retain(|&row| {
                let hit = self.data[row as usize] == *data;
                if hit {
                    released.push(row);
                }
                !hit
            });
            if list.len() < before {
                removed.push((key.clone(), before - list.len()));
                if list.is_empty() {
                    buckets.remove(&key);
                }
            }
        }
        for row in released {
            self.release(row);
        }
        removed.sort();
        Ok(removed)
    }

    fn clean_buckets(&mut self, hash: &str) -> Result<()> {
        if let Some(i) = self.hashes.iter().position(|(h, _)| h == hash) {
            let (_, buckets) = self.hashes.swap_remove(i);
            for row in buckets.into_values().flatten() {
                self.release(row);
            }
        }
        Ok(())
    }

    fn clean_all_buckets(&mut self) -> Result<()> {
        // Like `Vec::clear`: the arena keeps its capacity, so refilling an
        // emptied engine does not fault its memory in again. Call
        // `shrink_to_fit` to give it back.
        self.hashes.clear();
        self.vectors.clear();
        self.data.clear();
        self.refs.clear();
        self.free.clear();
        Ok(())
    }
}
