//! Where an engine keeps its buckets.

use std::borrow::Cow;
use std::collections::HashMap;

use super::hash::BucketKey;
use super::Payload;
use crate::error::Result;

/// One bucket of one hash.
#[derive(Clone, Copy, Debug)]
pub struct BucketRef<'a> {
    /// The hash's name.
    pub hash: &'a str,
    /// The bucket's key under that hash.
    pub key: &'a BucketKey,
}

/// One vector to append to one bucket (see [`Storage::store_batch`]).
#[derive(Debug)]
pub struct StoreEntry<'a, D> {
    /// The bucket.
    pub bucket: BucketRef<'a>,
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

/// What a bucket holds: `data.len()` vectors packed row after row in
/// `vectors`, and their payloads in the same order. Borrowed from an
/// in-memory store, owned when decoded from a remote one.
#[derive(Clone, Debug)]
pub struct BucketContents<'a, D: Clone> {
    /// `data.len() * dim` components.
    pub vectors: Cow<'a, [f32]>,
    /// One payload per vector.
    pub data: Cow<'a, [D]>,
}

impl<D: Clone> BucketContents<'_, D> {
    /// An empty bucket.
    pub fn empty() -> Self {
        BucketContents {
            vectors: Cow::Owned(Vec::new()),
            data: Cow::Owned(Vec::new()),
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
    /// Appends one entry to one bucket.
    fn store(&mut self, entry: StoreEntry<'_, D>) -> Result<()>;

    /// Appends many entries, in order. The default calls [`Storage::store`]
    /// for each; remote stores override it to send them in one round trip.
    fn store_batch(&mut self, entries: &[StoreEntry<'_, D>]) -> Result<()> {
        entries.iter().try_for_each(|e| self.store(*e))
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
    /// buckets that lost entries and how many each lost.
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

/// Buckets in process memory (NearPy's `MemoryStorage`), the default.
///
/// Each bucket keeps its vectors contiguously, so a query computes its
/// distances with one batch kernel call per bucket, with no copying.
#[derive(Clone, Debug)]
pub struct MemoryStorage<D> {
    hashes: HashMap<String, HashMap<BucketKey, Bucket<D>>>,
}

#[derive(Clone, Debug)]
struct Bucket<D> {
    vectors: Vec<f32>,
    data: Vec<D>,
}

impl<D> Default for MemoryStorage<D> {
    fn default() -> Self {
        MemoryStorage {
            hashes: HashMap::new(),
        }
    }
}

impl<D> MemoryStorage<D> {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total number of entries over all buckets of all hashes.
    pub fn len(&self) -> usize {
        self.hashes
            .values()
            .flat_map(|b| b.values())
            .map(|b| b.data.len())
            .sum()
    }

    /// Whether no bucket holds anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn bucket(&self, r: &BucketRef<'_>) -> Option<&Bucket<D>> {
        self.hashes.get(r.hash)?.get(r.key)
    }
}

impl<D: Payload> Storage<D> for MemoryStorage<D> {
    fn store(&mut self, e: StoreEntry<'_, D>) -> Result<()> {
        let buckets = match self.hashes.get_mut(e.bucket.hash) {
            Some(b) => b,
            None => self.hashes.entry(e.bucket.hash.to_string()).or_default(),
        };
        let bucket = match buckets.get_mut(e.bucket.key) {
            Some(b) => b,
            None => buckets.entry(e.bucket.key.clone()).or_insert(Bucket {
                vectors: Vec::new(),
                data: Vec::new(),
            }),
        };
        bucket.vectors.extend_from_slice(e.vector);
        bucket.data.push(e.data.clone());
        Ok(())
    }

    fn get_buckets<'s>(
        &'s self,
        buckets: &[BucketRef<'_>],
        _dim: usize,
    ) -> Result<Vec<BucketContents<'s, D>>> {
        Ok(buckets
            .iter()
            .map(|r| match self.bucket(r) {
                Some(b) => BucketContents {
                    vectors: Cow::Borrowed(&b.vectors),
                    data: Cow::Borrowed(&b.data),
                },
                None => BucketContents::empty(),
            })
            .collect())
    }

    fn count(&self, buckets: &[BucketRef<'_>]) -> Result<usize> {
        Ok(buckets
            .iter()
            .map(|r| self.bucket(r).map_or(0, |b| b.data.len()))
            .sum())
    }

    fn bucket_keys(&self, hash: &str) -> Result<Vec<BucketKey>> {
        let mut keys: Vec<BucketKey> = self
            .hashes
            .get(hash)
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
        dim: usize,
    ) -> Result<Vec<(BucketKey, usize)>> {
        let Some(buckets) = self.hashes.get_mut(hash) else {
            return Ok(Vec::new());
        };
        let keys: Vec<BucketKey> = match keys {
            Some(k) => k.to_vec(),
            None => buckets.keys().cloned().collect(),
        };
        let mut removed = Vec::new();
        for key in keys {
            let Some(bucket) = buckets.get_mut(&key) else {
                continue;
            };
            let before = bucket.data.len();
            let mut kept = 0;
            for i in 0..before {
                if bucket.data[i] != *data {
                    if kept != i {
                        bucket.data.swap(kept, i);
                        bucket
                            .vectors
                            .copy_within(i * dim..(i + 1) * dim, kept * dim);
                    }
                    kept += 1;
                }
            }
            if kept < before {
                bucket.data.truncate(kept);
                bucket.vectors.truncate(kept * dim);
                removed.push((key.clone(), before - kept));
                if kept == 0 {
                    buckets.remove(&key);
                }
            }
        }
        removed.sort();
        Ok(removed)
    }

    fn clean_buckets(&mut self, hash: &str) -> Result<()> {
        self.hashes.remove(hash);
        Ok(())
    }

    fn clean_all_buckets(&mut self) -> Result<()> {
        self.hashes.clear();
        Ok(())
    }
}
