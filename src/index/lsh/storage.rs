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

/// Binary keys (only `0`/`1`) of up to this many characters are found by
/// indexing a table of `2^bits` buckets rather than by hashing the text:
/// NearPy's default of 10 bits makes a table of 1,024 buckets, 16 bits one
/// of 65,536 (3 MiB of empty buckets).
const DENSE_MAX_BITS: usize = 16;

/// One hash's buckets.
///
/// The first binary key of at most [`DENSE_MAX_BITS`] characters stored
/// under a hash fixes `dense_bits`; from then on every key of that length
/// made only of `0`/`1` lives in `dense`, at the index its bits spell.
/// Every other key (discretized keys, binary keys of another length) lives
/// in `sparse`. A hash makes keys of one length, so in practice a binary
/// hash uses `dense` only and a discretized one `sparse` only.
#[derive(Clone, Debug)]
struct HashBuckets<D> {
    dense_bits: usize,
    dense: Vec<Bucket<D>>,
    sparse: HashMap<BucketKey, Bucket<D>, QuickState>,
}

impl<D> HashBuckets<D> {
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
    fn get(&self, key: &BucketKey) -> Option<&Bucket<D>> {
        match self.dense_index(key) {
            Some(i) => self.dense.get(i),
            None => self.sparse.get(key),
        }
    }

    #[inline]
    fn get_or_insert(&mut self, key: &BucketKey) -> &mut Bucket<D> {
        if self.dense_bits == 0 {
            if let Some((len, _)) = key.binary_bits() {
                if len <= DENSE_MAX_BITS {
                    self.dense_bits = len;
                    self.dense = (0..1usize << len).map(|_| Bucket::new()).collect();
                }
            }
        }
        match self.dense_index(key) {
            Some(i) => &mut self.dense[i],
            None => {
                if !self.sparse.contains_key(key) {
                    self.sparse.insert(key.clone(), Bucket::new());
                }
                self.sparse.get_mut(key).expect("inserted just above")
            }
        }
    }

    /// Every bucket with its key.
    fn iter(&self) -> impl Iterator<Item = (BucketKey, &Bucket<D>)> {
        let bits = self.dense_bits;
        self.dense
            .iter()
            .enumerate()
            .map(move |(i, b)| (BucketKey::from_bits(bits, i as u32), b))
            .chain(self.sparse.iter().map(|(k, b)| (k.clone(), b)))
    }

    fn buckets_mut(&mut self) -> impl Iterator<Item = &mut Bucket<D>> {
        self.dense.iter_mut().chain(self.sparse.values_mut())
    }
}

/// Buckets in process memory (NearPy's `MemoryStorage`), the default.
///
/// Each bucket keeps its vectors packed row after row, so a query reads a
/// bucket as one sequential stream, which the hardware prefetcher follows,
/// and ranks it with one batch kernel call, without copying.
///
/// Why packed: an arena shared by the hashes (one copy of each vector,
/// buckets holding row numbers) made storing under four hashes about 1.3x
/// cheaper, but queries about 3x slower on 20,000 SIFT vectors, the
/// scattered rows stalling on memory even with prefetching. A vector stored
/// under several hashes is copied into each of their buckets.
///
/// Buckets of binary keys of up to 16 bits (random binary projections,
/// their tree, PCA binary projections) are found by indexing a table with
/// the key's bits; other keys by hashing.
#[derive(Clone, Debug)]
pub struct MemoryStorage<D> {
    /// Per hash name (a handful: linear search beats hashing the name).
    hashes: Vec<(String, HashBuckets<D>)>,
}

#[derive(Clone, Debug)]
struct Bucket<D> {
    vectors: Vec<f32>,
    data: Vec<D>,
}

impl<D> Bucket<D> {
    fn new() -> Self {
        Bucket {
            vectors: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl<D> Default for MemoryStorage<D> {
    fn default() -> Self {
        MemoryStorage { hashes: Vec::new() }
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
            .flat_map(|(_, b)| b.dense.iter().chain(b.sparse.values()))
            .map(|b| b.data.len())
            .sum()
    }

    /// Whether no bucket holds anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frees what [`Storage::clean_all_buckets`] and deletes kept: empty
    /// buckets and spare capacity.
    pub fn shrink_to_fit(&mut self) {
        for (_, buckets) in &mut self.hashes {
            buckets.sparse.retain(|_, b| !b.data.is_empty());
            buckets.sparse.shrink_to_fit();
            for b in buckets.buckets_mut() {
                b.vectors.shrink_to_fit();
                b.data.shrink_to_fit();
            }
        }
    }

    fn bucket(&self, r: &BucketRef<'_>) -> Option<&Bucket<D>> {
        self.hashes
            .iter()
            .find(|(h, _)| h == r.hash)
            .and_then(|(_, b)| b.get(r.key))
    }

    fn buckets_mut(&mut self, hash: &str) -> &mut HashBuckets<D> {
        let i = match self.hashes.iter().position(|(h, _)| h == hash) {
            Some(i) => i,
            None => {
                self.hashes.push((hash.to_string(), HashBuckets::new()));
                self.hashes.len() - 1
            }
        };
        &mut self.hashes[i].1
    }
}

impl<D: Payload> Storage<D> for MemoryStorage<D> {
    fn store_batch(&mut self, entries: &[StoreEntry<'_, D>]) -> Result<()> {
        for e in entries {
            for b in e.buckets {
                let bucket = self.buckets_mut(b.hash).get_or_insert(b.key);
                if !bucket.data.is_empty() {
                    let dim = bucket.vectors.len() / bucket.data.len();
                    if dim != e.vector.len() {
                        return Err(Error::DimensionMismatch {
                            expected: dim,
                            got: e.vector.len(),
                        });
                    }
                }
                bucket.vectors.extend_from_slice(e.vector);
                bucket.data.push(e.data.clone());
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
            .map(|r| match self.bucket(r) {
                Some(b) => BucketContents {
                    vectors: Cow::Borrowed(&b.vectors),
                    data: Cow::Borrowed(&b.data),
                    rows: None,
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
            .iter()
            .find(|(h, _)| h == hash)
            .map(|(_, b)| {
                b.iter()
                    .filter(|(_, b)| !b.data.is_empty())
                    .map(|(k, _)| k)
                    .collect()
            })
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
        let Some((_, buckets)) = self.hashes.iter_mut().find(|(h, _)| h == hash) else {
            return Ok(Vec::new());
        };
        let keys: Vec<BucketKey> = match keys {
            Some(k) => k.to_vec(),
            None => buckets
                .iter()
                .filter(|(_, b)| !b.data.is_empty())
                .map(|(k, _)| k)
                .collect(),
        };
        let mut removed = Vec::new();
        for key in keys {
            let bucket = match buckets.dense_index(&key) {
                Some(i) => buckets.dense.get_mut(i),
                None => buckets.sparse.get_mut(&key),
            };
            let Some(bucket) = bucket else {
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
                if kept == 0 && buckets.dense_index(&key).is_none() {
                    buckets.sparse.remove(&key);
                }
            }
        }
        removed.sort();
        Ok(removed)
    }

    fn clean_buckets(&mut self, hash: &str) -> Result<()> {
        self.hashes.retain(|(h, _)| h != hash);
        Ok(())
    }

    fn clean_all_buckets(&mut self) -> Result<()> {
        // Like `Vec::clear`: buckets are emptied but keep their capacity, so
        // refilling an engine with similar data does not allocate and fault
        // its memory in again. `shrink_to_fit` frees it.
        for (_, buckets) in &mut self.hashes {
            for b in buckets.buckets_mut() {
                b.vectors.clear();
                b.data.clear();
            }
        }
        Ok(())
    }
}
