//! Locality-sensitive hashes: vectors to bucket keys.
//!
//! Every hash here projects a vector onto a few directions (one pass of the
//! projection kernel in `project.rs` over all of them) and turns the
//! projections into a key, the way NearPy does:
//!
//! | constructor | directions | key |
//! |---|---|---|
//! | [`LshHash::random_binary`] | Gaussian random | one `0`/`1` per direction: the sign of the projection |
//! | [`LshHash::random_discretized`] | Gaussian random | `floor(projection / bin_width)` per direction, joined by `_` |
//! | [`LshHash::random_binary_tree`] | Gaussian random | as `random_binary`; queries fall back to nearby buckets when theirs is too small |
//! | [`LshHash::pca_binary`] | leading principal components of a training sample | sign of the centred projection |
//! | [`LshHash::pca_discretized`] | leading principal components | `floor(centred projection / bin_width)` |
//!
//! Keys are text (`"0110010111"`, `"3_-1_0"`), exactly NearPy's, so a bucket
//! can be named in a Redis key and read by a person.
//!
//! A hash is `serde`-serializable with its projection matrix (and, for the
//! tree, its bucket-count tree), so an engine can be rebuilt bit for bit
//! without relying on a random generator's stream. The random hashes draw
//! their directions from swann's generator, or, with the `_numpy`
//! constructors, from NumPy's exactly as NearPy does, so a NearPy
//! configuration can be reproduced seed for seed.
//!
//! One deliberate difference from NearPy: the PCA hashes subtract the
//! training mean before taking signs or bins. NearPy projects the raw vector,
//! which for data that is not centred (SIFT descriptors are all non-negative)
//! puts almost every vector on the same side of the first component and
//! wastes that bit.

use std::fmt;
use std::fmt::Write as _;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::check_vector;
use super::numpy_rng::NumpyRandomState;
use super::pca;
use super::project::ProjectionPlan;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The name of one bucket of one hash: short ASCII text (`"0110010111"`,
/// `"3_-1_0"`).
///
/// Keys of up to 30 bytes (binary keys of up to 30 bits, a few discretized
/// components) live inline, so hashing a vector allocates nothing; longer
/// ones go to the heap. Equality, hashing and ordering are those of the text.
///
/// A key made only of `0` and `1`, at most 24 characters long, also carries
/// its bits as an integer, so the in-memory storage can find its bucket by
/// indexing an array instead of hashing the text.
#[derive(Clone)]
pub struct BucketKey {
    repr: KeyRepr,
    /// `(1 << len) | bits` for a binary key of `len` characters (bits read
    /// first character first); 0 for any other key. A function of the text.
    code: u32,
}

const INLINE: usize = 30;

/// The longest binary key whose bits a [`BucketKey`] carries.
const CODE_MAX_BITS: usize = 24;

#[derive(Clone)]
enum KeyRepr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

fn binary_code_of_bits(len: usize, bits: u32) -> u32 {
    if (1..=CODE_MAX_BITS).contains(&len) {
        (1 << len) | bits
    } else {
        0
    }
}

fn binary_code_of_text(text: &[u8]) -> u32 {
    if text.is_empty() || text.len() > CODE_MAX_BITS {
        return 0;
    }
    let mut bits = 0u32;
    for &c in text {
        match c {
            b'0' => bits <<= 1,
            b'1' => bits = (bits << 1) | 1,
            _ => return 0,
        }
    }
    binary_code_of_bits(text.len(), bits)
}

impl BucketKey {
    /// Wraps a key given as text (as a hash produces it).
    pub fn new(key: impl AsRef<str>) -> Self {
        let key = key.as_ref();
        let code = binary_code_of_text(key.as_bytes());
        if key.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..key.len()].copy_from_slice(key.as_bytes());
            BucketKey {
                repr: KeyRepr::Inline {
                    len: key.len() as u8,
                    bytes,
                },
                code,
            }
        } else {
            BucketKey {
                repr: KeyRepr::Heap(key.into()),
                code,
            }
        }
    }

    /// The binary key of `len` characters (1 to 24) whose bits, first
    /// character first, are `bits`.
    pub(crate) fn from_bits(len: usize, bits: u32) -> Self {
        debug_assert!((1..=CODE_MAX_BITS).contains(&len));
        let mut bytes = [0u8; INLINE];
        for (i, b) in bytes[..len].iter_mut().enumerate() {
            *b = b'0' + ((bits >> (len - 1 - i)) & 1) as u8;
        }
        BucketKey {
            repr: KeyRepr::Inline {
                len: len as u8,
                bytes,
            },
            code: binary_code_of_bits(len, bits),
        }
    }

    /// For a binary key of at most 24 characters: its length and its bits
    /// (first character first).
    #[inline]
    pub(crate) fn binary_bits(&self) -> Option<(usize, u32)> {
        if self.code == 0 {
            return None;
        }
        let len = 31 - self.code.leading_zeros() as usize;
        Some((len, self.code & ((1u32 << len) - 1)))
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        match &self.repr {
            KeyRepr::Inline { len, bytes } => {
                // Only `new`, `from_bits` and `KeyBuf` fill inline keys, all from text.
                std::str::from_utf8(&bytes[..*len as usize]).expect("bucket keys are text")
            }
            KeyRepr::Heap(s) => s,
        }
    }

    /// The key's bytes (the text's UTF-8).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.repr {
            KeyRepr::Inline { len, bytes } => &bytes[..*len as usize],
            KeyRepr::Heap(s) => s.as_bytes(),
        }
    }
}

impl Default for BucketKey {
    /// The empty key (no hash produces it; a placeholder to overwrite).
    fn default() -> Self {
        BucketKey {
            repr: KeyRepr::Inline {
                len: 0,
                bytes: [0; INLINE],
            },
            code: 0,
        }
    }
}

impl PartialEq for BucketKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for BucketKey {}

impl std::hash::Hash for BucketKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl PartialOrd for BucketKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for BucketKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for BucketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BucketKey({:?})", self.as_str())
    }
}

impl fmt::Display for BucketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for BucketKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for BucketKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(BucketKey::new)
    }
}

/// Builds a key's text without allocating while it fits inline.
struct KeyBuf {
    len: usize,
    bytes: [u8; INLINE],
    heap: Option<String>,
}

impl KeyBuf {
    fn new() -> Self {
        KeyBuf {
            len: 0,
            bytes: [0; INLINE],
            heap: None,
        }
    }

    #[inline(always)]
    fn push_str(&mut self, s: &str) {
        match &mut self.heap {
            Some(h) => h.push_str(s),
            None if self.len + s.len() <= INLINE => {
                self.bytes[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
                self.len += s.len();
            }
            None => {
                let mut h = String::with_capacity(2 * INLINE);
                h.push_str(std::str::from_utf8(&self.bytes[..self.len]).expect("text"));
                h.push_str(s);
                self.heap = Some(h);
            }
        }
    }

    fn finish(self) -> BucketKey {
        match self.heap {
            Some(h) => BucketKey::new(h),
            None => BucketKey {
                code: binary_code_of_text(&self.bytes[..self.len]),
                repr: KeyRepr::Inline {
                    len: self.len as u8,
                    bytes: self.bytes,
                },
            },
        }
    }
}

impl fmt::Write for KeyBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

/// Checks that a hash or namespace name is usable as part of a storage key:
/// 1 to 64 characters from `A-Z a-z 0-9 _ . -` (no `:`, which separates key
/// parts, and no glob characters, so a `SCAN MATCH` on it needs no escaping).
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParameter(format!(
            "{what} {name:?} must be 1 to 64 characters from A-Z, a-z, 0-9, '_', '.', '-'"
        )))
    }
}

/// Projection directions (rows) and the offsets subtracted from each projection.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Projections {
    dim: usize,
    count: usize,
    /// `count x dim`, row-major.
    matrix: Vec<f32>,
    /// One per row; zero for random projections, `row . mean` for PCA.
    offsets: Vec<f32>,
    /// The matrix transposed for the projection pass, built on first use
    /// (so a deserialized hash gets one too).
    #[serde(skip)]
    plan: OnceLock<ProjectionPlan>,
}

impl Projections {
    fn new(dim: usize, count: usize, matrix: Vec<f32>, offsets: Vec<f32>) -> Result<Self> {
        if dim == 0 || count == 0 {
            return Err(Error::InvalidParameter(format!(
                "a hash needs dimension > 0 and at least one projection (got dim {dim}, {count} projections)"
            )));
        }
        if matrix.len() != dim * count || offsets.len() != count {
            return Err(Error::InvalidParameter(format!(
                "projection matrix has {} values and {} offsets, {count} projections of dimension {dim} need {} and {count}",
                matrix.len(),
                offsets.len(),
                dim * count
            )));
        }
        if matrix.iter().chain(&offsets).any(|x| !x.is_finite()) {
            return Err(Error::InvalidParameter(
                "projection matrix has a non-finite value".into(),
            ));
        }
        Ok(Projections {
            dim,
            count,
            matrix,
            offsets,
            plan: OnceLock::new(),
        })
    }

    /// Given directions (`count x dim`, row-major), no offsets.
    fn given(dim: usize, matrix: Vec<f32>) -> Result<Self> {
        let count = matrix.len().checked_div(dim).unwrap_or(0);
        Projections::new(dim, count, matrix, vec![0.0; count])
    }

    fn gaussian(dim: usize, count: usize, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let matrix = (0..dim * count).map(|_| rng.normal() as f32).collect();
        Projections::new(dim, count, matrix, vec![0.0; count])
    }

    /// `numpy.random.RandomState(seed).randn(count, dim)`, as NearPy draws
    /// its random directions (see [`super::numpy_rng`]).
    fn gaussian_numpy(dim: usize, count: usize, seed: u32) -> Result<Self> {
        let mut rng = NumpyRandomState::new(seed);
        let matrix = (0..dim * count).map(|_| rng.gauss() as f32).collect();
        Projections::new(dim, count, matrix, vec![0.0; count])
    }

    fn plan(&self) -> &ProjectionPlan {
        self.plan
            .get_or_init(|| ProjectionPlan::new(self.dim, [(&self.matrix[..], &self.offsets[..])]))
    }

    /// Projects `v` and hands the projections to `f`.
    #[inline]
    fn with_projection<R>(&self, v: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
        self.plan().with_projection(v, f)
    }
}

/// The binary key of projections `p` (`1` where positive), written over
/// `key` field by field. Stores hash every
/// vector into a reused key: building a fresh key and moving it there wrote
/// the text a byte at a time and read it back as whole words, and each such
/// read waited for the byte stores to reach the cache (a failed
/// store-to-load forward, behind every earlier store of the store). Written
/// in place, nothing reads the text back until a storage needs it, and the
/// in-memory storage reads only `code`.
#[inline]
fn binary_key_into(p: &[f32], key: &mut BucketKey) {
    if p.len() > INLINE {
        *key = BucketKey::new(
            p.iter()
                .map(|&x| if x > 0.0 { '1' } else { '0' })
                .collect::<String>(),
        );
        return;
    }
    if !matches!(key.repr, KeyRepr::Inline { .. }) {
        key.repr = KeyRepr::Inline {
            len: 0,
            bytes: [0; INLINE],
        };
    }
    let KeyRepr::Inline { len, bytes } = &mut key.repr else {
        unreachable!("made inline just above")
    };
    let mut bits = 0u32;
    for (b, &x) in bytes.iter_mut().zip(p) {
        let one = x > 0.0;
        *b = b'0' + u8::from(one);
        bits = (bits << 1) | u32::from(one);
    }
    *len = p.len() as u8;
    key.code = binary_code_of_bits(p.len(), bits);
}

/// The discretized key of projections `p`: `floor(p / bin_width)` joined by `_`.
fn discretized_key_of(p: &[f32], bin_width: f32) -> BucketKey {
    let mut k = KeyBuf::new();
    for (i, &x) in p.iter().enumerate() {
        if i > 0 {
            k.push_str("_");
        }
        // `as` saturates, so an extreme projection lands in the last bin.
        let bin = (x / bin_width).floor() as i64;
        write!(k, "{bin}").expect("writing to a KeyBuf cannot fail");
    }
    k.finish()
}

fn check_bin_width(bin_width: f32) -> Result<()> {
    if bin_width.is_finite() && bin_width > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter(format!(
            "bin width must be a positive finite number, got {bin_width}"
        )))
    }
}

/// How many vectors went into each prefix of the binary keys, for
/// [`LshHash::random_binary_tree`] (NearPy's `RandomBinaryProjectionTreeNode`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct BinaryTree {
    /// `nodes[0]` is the root; child index 0 means "no child".
    nodes: Vec<TreeNode>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct TreeNode {
    count: u64,
    children: [u32; 2],
}

impl BinaryTree {
    fn new() -> Self {
        BinaryTree {
            nodes: vec![TreeNode::default()],
        }
    }

    fn insert(&mut self, key: &[u8]) {
        let mut node = 0usize;
        self.nodes[0].count += 1;
        for &c in key {
            let bit = (c == b'1') as usize;
            let mut child = self.nodes[node].children[bit] as usize;
            if child == 0 {
                child = self.nodes.len();
                self.nodes.push(TreeNode::default());
                self.nodes[node].children[bit] =
                    u32::try_from(child).expect("tree has more than 2^32 nodes");
            }
            self.nodes[child].count += 1;
            node = child;
        }
    }

    /// Undoes `count` insertions of `key`, pruning branches that become empty.
    fn remove(&mut self, key: &[u8], count: u64) {
        let mut path = Vec::with_capacity(key.len() + 1);
        let mut node = 0usize;
        path.push(0usize);
        for &c in key {
            let child = self.nodes[node].children[(c == b'1') as usize] as usize;
            if child == 0 {
                return; // never inserted: nothing to undo
            }
            node = child;
            path.push(node);
        }
        let count = count.min(self.nodes[node].count);
        for (depth, &n) in path.iter().enumerate() {
            self.nodes[n].count -= count;
            if n != 0 && self.nodes[n].count == 0 {
                let parent = path[depth - 1];
                let bit = (key[depth - 1] == b'1') as usize;
                self.nodes[parent].children[bit] = 0;
                break;
            }
        }
    }

    /// Every bucket key below `node`, whose path from the root is `prefix`,
    /// `0` branches before `1` branches.
    fn collect(&self, node: usize, prefix: &mut Vec<u8>, len: usize, out: &mut Vec<BucketKey>) {
        if prefix.len() == len {
            out.push(BucketKey::new(
                std::str::from_utf8(prefix).expect("keys are ASCII 0/1"),
            ));
            return;
        }
        for bit in 0..2 {
            let child = self.nodes[node].children[bit] as usize;
            if child != 0 {
                prefix.push(b'0' + bit as u8);
                self.collect(child, prefix, len, out);
                prefix.pop();
            }
        }
    }

    /// NearPy's `bucket_keys_to_guarantee_result_set_size`: follow the query's
    /// key down the tree; at the first step whose subtree holds fewer than
    /// `min` vectors, return every bucket of that subtree and of its sibling.
    /// Where the query's branch does not exist, continue down the other one.
    fn query(&self, key: &[u8], min: u64, out: &mut Vec<BucketKey>) {
        let mut node = 0usize;
        let mut prefix = Vec::with_capacity(key.len());
        for &c in key {
            let bit = (c == b'1') as usize;
            let here = self.nodes[node].children[bit] as usize;
            let other = self.nodes[node].children[1 - bit] as usize;
            if here != 0 {
                if self.nodes[here].count < min {
                    prefix.push(b'0' + bit as u8);
                    self.collect(here, &mut prefix, key.len(), out);
                    prefix.pop();
                    if other != 0 {
                        prefix.push(b'0' + (1 - bit) as u8);
                        self.collect(other, &mut prefix, key.len(), out);
                        prefix.pop();
                    }
                    return;
                }
                prefix.push(b'0' + bit as u8);
                node = here;
            } else if other != 0 {
                prefix.push(b'0' + (1 - bit) as u8);
                node = other;
            } else {
                // Empty tree: the query's own (empty) bucket.
                break;
            }
        }
        let key = if prefix.len() == key.len() {
            &prefix[..]
        } else {
            key
        };
        out.push(BucketKey::new(
            std::str::from_utf8(key).expect("keys are ASCII 0/1"),
        ));
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Kind {
    RandomBinary {
        seed: u64,
        proj: Projections,
    },
    RandomDiscretized {
        seed: u64,
        bin_width: f32,
        proj: Projections,
    },
    RandomBinaryTree {
        seed: u64,
        min_result_size: u64,
        proj: Projections,
        tree: BinaryTree,
    },
    PcaBinary {
        proj: Projections,
    },
    PcaDiscretized {
        bin_width: f32,
        proj: Projections,
    },
}

/// One locality-sensitive hash of an [`Engine`](super::Engine): a name (which
/// namespaces its buckets in the storage) and a way to turn a vector into
/// bucket keys. One constructor per kind of hash, each named after NearPy's
/// class it reproduces.
///
/// ```
/// use swann::index::lsh::LshHash;
///
/// let h = LshHash::random_binary("rbp", 4, 10, 42).unwrap();
/// let key = h.key(&[1.0, 0.5, -2.0, 3.0]).unwrap();
/// assert_eq!(key.as_str().len(), 10);
/// // The same seed gives the same projections, hence the same key.
/// let again = LshHash::random_binary("rbp", 4, 10, 42).unwrap();
/// assert_eq!(again.key(&[1.0, 0.5, -2.0, 3.0]).unwrap(), key);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LshHash {
    name: String,
    kind: Kind,
}

impl LshHash {
    /// NearPy's `RandomBinaryProjections`: `bits` Gaussian random directions
    /// drawn from `seed`; the key has one character per direction, `1` where
    /// the projection is positive.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a name that is not 1 to 64 characters
    /// from `A-Z a-z 0-9 _ . -`, a zero `dim` or zero `bits`.
    pub fn random_binary(name: &str, dim: usize, bits: usize, seed: u64) -> Result<Self> {
        Self::binary(name, seed, || Projections::gaussian(dim, bits, seed))
    }

    /// As [`LshHash::random_binary`], with the directions NearPy's
    /// `RandomBinaryProjections(name, bits, rand_seed=seed)` draws (NumPy's
    /// `RandomState(seed).randn(bits, dim)`, rounded to `f32`), so an engine
    /// can reproduce a NearPy configuration seed for seed.
    ///
    /// ```
    /// use swann::index::lsh::LshHash;
    ///
    /// let h = LshHash::random_binary_numpy("rbp", 3, 2, 0)?;
    /// // numpy.random.RandomState(0).randn(2, 3)[0, 0] == 1.764052345967664
    /// assert_eq!(h.projection_matrix()[0], 1.764_052_345_967_664_f64 as f32);
    /// # Ok::<(), swann::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`random_binary`](Self::random_binary).
    pub fn random_binary_numpy(name: &str, dim: usize, bits: usize, seed: u32) -> Result<Self> {
        Self::binary(name, seed.into(), || {
            Projections::gaussian_numpy(dim, bits, seed)
        })
    }

    /// As [`LshHash::random_discretized`], with NearPy's directions for
    /// `RandomDiscretizedProjections(name, projections, bin_width, rand_seed=seed)`
    /// (see [`LshHash::random_binary_numpy`]).
    ///
    /// # Errors
    /// As [`random_discretized`](Self::random_discretized).
    pub fn random_discretized_numpy(
        name: &str,
        dim: usize,
        projections: usize,
        bin_width: f32,
        seed: u32,
    ) -> Result<Self> {
        Self::discretized(name, seed.into(), bin_width, || {
            Projections::gaussian_numpy(dim, projections, seed)
        })
    }

    /// As [`LshHash::random_binary_tree`], with NearPy's directions for
    /// `RandomBinaryProjectionTree(name, bits, min_result_size, rand_seed=seed)`
    /// (see [`LshHash::random_binary_numpy`]).
    ///
    /// # Errors
    /// As [`random_binary_tree`](Self::random_binary_tree).
    pub fn random_binary_tree_numpy(
        name: &str,
        dim: usize,
        bits: usize,
        min_result_size: usize,
        seed: u32,
    ) -> Result<Self> {
        Self::binary_tree(name, seed.into(), min_result_size, || {
            Projections::gaussian_numpy(dim, bits, seed)
        })
    }

    /// A binary-projection hash with given directions (`bits x dim`,
    /// row-major), e.g. to reproduce a known configuration.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a bad name (as in
    /// [`random_binary`](Self::random_binary)), a zero `dim`, a matrix that is
    /// empty or not a whole number of rows, or one with a non-finite value.
    pub fn binary_from_matrix(name: &str, dim: usize, matrix: Vec<f32>) -> Result<Self> {
        Self::binary(name, 0, || Projections::given(dim, matrix))
    }

    /// NearPy's `RandomDiscretizedProjections`: `projections` Gaussian random
    /// directions; the key is `floor(projection / bin_width)` per direction.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a bad name (as in
    /// [`random_binary`](Self::random_binary)), a `bin_width` that is not a
    /// positive finite number, a zero `dim` or zero `projections`.
    pub fn random_discretized(
        name: &str,
        dim: usize,
        projections: usize,
        bin_width: f32,
        seed: u64,
    ) -> Result<Self> {
        Self::discretized(name, seed, bin_width, || {
            Projections::gaussian(dim, projections, seed)
        })
    }

    /// A discretized-projection hash with given directions (`count x dim`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a bad name, a `bin_width` that is not a
    /// positive finite number, or a bad matrix (as in
    /// [`binary_from_matrix`](Self::binary_from_matrix)).
    pub fn discretized_from_matrix(
        name: &str,
        dim: usize,
        matrix: Vec<f32>,
        bin_width: f32,
    ) -> Result<Self> {
        Self::discretized(name, 0, bin_width, || Projections::given(dim, matrix))
    }

    /// NearPy's `RandomBinaryProjectionTree`: keys as [`LshHash::random_binary`],
    /// and the hash remembers how many stored vectors share each key prefix.
    /// A query whose path reaches a subtree with fewer than
    /// `min_result_size` vectors gets every bucket of that subtree and of its
    /// sibling, so small buckets borrow from their neighbours in key space.
    ///
    /// # Errors
    /// As [`random_binary`](Self::random_binary).
    pub fn random_binary_tree(
        name: &str,
        dim: usize,
        bits: usize,
        min_result_size: usize,
        seed: u64,
    ) -> Result<Self> {
        Self::binary_tree(name, seed, min_result_size, || {
            Projections::gaussian(dim, bits, seed)
        })
    }

    /// A binary-projection tree hash with given directions (`bits x dim`).
    ///
    /// # Errors
    /// As [`binary_from_matrix`](Self::binary_from_matrix).
    pub fn binary_tree_from_matrix(
        name: &str,
        dim: usize,
        matrix: Vec<f32>,
        min_result_size: usize,
    ) -> Result<Self> {
        Self::binary_tree(name, 0, min_result_size, || Projections::given(dim, matrix))
    }

    /// A binary-projection hash on the projections `proj` makes (called
    /// after the name is checked, so a bad name is reported first).
    fn binary(name: &str, seed: u64, proj: impl FnOnce() -> Result<Projections>) -> Result<Self> {
        check_name("hash name", name)?;
        Ok(LshHash {
            name: name.into(),
            kind: Kind::RandomBinary {
                seed,
                proj: proj()?,
            },
        })
    }

    /// A discretized-projection hash (as [`LshHash::binary`]).
    fn discretized(
        name: &str,
        seed: u64,
        bin_width: f32,
        proj: impl FnOnce() -> Result<Projections>,
    ) -> Result<Self> {
        check_name("hash name", name)?;
        check_bin_width(bin_width)?;
        Ok(LshHash {
            name: name.into(),
            kind: Kind::RandomDiscretized {
                seed,
                bin_width,
                proj: proj()?,
            },
        })
    }

    /// A binary-projection tree hash (as [`LshHash::binary`]).
    fn binary_tree(
        name: &str,
        seed: u64,
        min_result_size: usize,
        proj: impl FnOnce() -> Result<Projections>,
    ) -> Result<Self> {
        check_name("hash name", name)?;
        Ok(LshHash {
            name: name.into(),
            kind: Kind::RandomBinaryTree {
                seed,
                min_result_size: min_result_size as u64,
                proj: proj()?,
                tree: BinaryTree::new(),
            },
        })
    }

    /// NearPy's `PCABinaryProjections`: the `bits` leading principal
    /// components of `training` (`n x dim`, row-major, `n >= 2`); the key bit
    /// is the sign of the projection of `v - mean` on each.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a bad name (as in
    /// [`random_binary`](Self::random_binary)), a zero `dim`, training data
    /// that is not a whole number of rows or holds fewer than 2, `bits` of 0 or
    /// above `dim`, or a non-finite training value.
    pub fn pca_binary(name: &str, dim: usize, bits: usize, training: &[f32]) -> Result<Self> {
        check_name("hash name", name)?;
        Ok(LshHash {
            name: name.into(),
            kind: Kind::PcaBinary {
                proj: pca_projections(dim, bits, training)?,
            },
        })
    }

    /// NearPy's `PCADiscretizedProjections`: the leading principal components
    /// of `training`; the key is `floor((v - mean) . component / bin_width)`
    /// per component.
    ///
    /// # Errors
    /// As [`pca_binary`](Self::pca_binary), and [`Error::InvalidParameter`] for
    /// a `bin_width` that is not a positive finite number.
    pub fn pca_discretized(
        name: &str,
        dim: usize,
        projections: usize,
        bin_width: f32,
        training: &[f32],
    ) -> Result<Self> {
        check_name("hash name", name)?;
        check_bin_width(bin_width)?;
        Ok(LshHash {
            name: name.into(),
            kind: Kind::PcaDiscretized {
                bin_width,
                proj: pca_projections(dim, projections, training)?,
            },
        })
    }

    /// The hash's name, which namespaces its buckets in the storage.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The vector dimension it hashes.
    pub fn dim(&self) -> usize {
        self.proj().dim
    }

    /// Number of projections (key bits or key components).
    pub fn projection_count(&self) -> usize {
        self.proj().count
    }

    /// The kind, as NearPy names it.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::RandomBinary { .. } => "RandomBinaryProjections",
            Kind::RandomDiscretized { .. } => "RandomDiscretizedProjections",
            Kind::RandomBinaryTree { .. } => "RandomBinaryProjectionTree",
            Kind::PcaBinary { .. } => "PCABinaryProjections",
            Kind::PcaDiscretized { .. } => "PCADiscretizedProjections",
        }
    }

    /// The projection directions, `projection_count() x dim()` row-major.
    pub fn projection_matrix(&self) -> &[f32] {
        &self.proj().matrix
    }

    fn proj(&self) -> &Projections {
        match &self.kind {
            Kind::RandomBinary { proj, .. }
            | Kind::RandomDiscretized { proj, .. }
            | Kind::RandomBinaryTree { proj, .. }
            | Kind::PcaBinary { proj }
            | Kind::PcaDiscretized { proj, .. } => proj,
        }
    }

    /// The key of `v`'s own bucket (no tree fallback).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] or [`Error::NonFinite`] for a bad vector.
    pub fn key(&self, v: &[f32]) -> Result<BucketKey> {
        check_vector(v, self.dim())?;
        Ok(self.key_unchecked(v))
    }

    pub(crate) fn key_unchecked(&self, v: &[f32]) -> BucketKey {
        self.proj()
            .with_projection(v, |p| self.key_from_projections(p))
    }

    /// The key for projections `p` of a vector on this hash's directions
    /// (offsets already subtracted), as an engine's stacked
    /// [`ProjectionPlan`] computes them.
    #[inline]
    pub(crate) fn key_from_projections(&self, p: &[f32]) -> BucketKey {
        let mut key = BucketKey::default();
        self.key_from_projections_into(p, &mut key);
        key
    }

    /// [`LshHash::key_from_projections`] written over `key` (see
    /// [`binary_key_into`] for why).
    #[inline]
    pub(crate) fn key_from_projections_into(&self, p: &[f32], key: &mut BucketKey) {
        match &self.kind {
            Kind::RandomBinary { .. } | Kind::RandomBinaryTree { .. } | Kind::PcaBinary { .. } => {
                binary_key_into(p, key)
            }
            Kind::RandomDiscretized { bin_width, .. } | Kind::PcaDiscretized { bin_width, .. } => {
                *key = discretized_key_of(p, *bin_width)
            }
        }
    }

    /// The projection matrix and offsets, for an engine to stack.
    pub(crate) fn projection_parts(&self) -> (&[f32], &[f32]) {
        let p = self.proj();
        (&p.matrix, &p.offsets)
    }

    /// The bucket keys a query for `v` reads: its own key, or for the tree
    /// hash the fallback buckets described at [`LshHash::random_binary_tree`].
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] or [`Error::NonFinite`] for a bad vector.
    pub fn query_keys(&self, v: &[f32]) -> Result<Vec<BucketKey>> {
        check_vector(v, self.dim())?;
        let mut out = Vec::new();
        self.proj()
            .with_projection(v, |p| self.query_keys_from_projections(p, &mut out));
        Ok(out)
    }

    /// The query keys for projections `p` (see [`LshHash::query_keys`]).
    pub(crate) fn query_keys_from_projections(&self, p: &[f32], out: &mut Vec<BucketKey>) {
        let key = self.key_from_projections(p);
        match &self.kind {
            Kind::RandomBinaryTree {
                tree,
                min_result_size,
                ..
            } => tree.query(key.as_bytes(), *min_result_size, out),
            _ => out.push(key),
        }
    }

    /// Whether [`LshHash::note_stored`] does anything (the tree hash).
    pub(crate) fn counts_stores(&self) -> bool {
        matches!(self.kind, Kind::RandomBinaryTree { .. })
    }

    /// Tells the hash that a vector was stored under `key` (the tree hash
    /// counts it).
    pub(crate) fn note_stored(&mut self, key: &BucketKey) {
        if let Kind::RandomBinaryTree { tree, .. } = &mut self.kind {
            tree.insert(key.as_bytes());
        }
    }

    /// Tells the hash that `count` vectors left bucket `key`.
    pub(crate) fn forget(&mut self, key: &BucketKey, count: usize) {
        if let Kind::RandomBinaryTree { tree, proj, .. } = &mut self.kind {
            let k = key.as_bytes();
            if k.len() == proj.count && k.iter().all(|&c| c == b'0' || c == b'1') {
                tree.remove(k, count as u64);
            }
        }
    }

    /// Tells the hash that every bucket was emptied.
    pub(crate) fn forget_all(&mut self) {
        if let Kind::RandomBinaryTree { tree, .. } = &mut self.kind {
            *tree = BinaryTree::new();
        }
    }

    /// Checks the invariants a deserialized hash must hold (a serialized
    /// hash can come from anywhere: a file, a Redis key).
    pub(crate) fn validate(&self) -> Result<()> {
        check_name("hash name", &self.name)?;
        let p = self.proj();
        Projections::new(p.dim, p.count, p.matrix.clone(), p.offsets.clone())?;
        match &self.kind {
            Kind::RandomDiscretized { bin_width, .. } | Kind::PcaDiscretized { bin_width, .. } => {
                check_bin_width(*bin_width)?
            }
            Kind::RandomBinaryTree { tree, .. } => {
                let n = tree.nodes.len();
                if n == 0
                    || tree.nodes.iter().enumerate().any(|(i, node)| {
                        node.children
                            .iter()
                            .any(|&c| c as usize >= n || (c != 0 && c as usize <= i))
                    })
                {
                    return Err(Error::InvalidParameter(
                        "binary projection tree is malformed".into(),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn pca_projections(dim: usize, count: usize, training: &[f32]) -> Result<Projections> {
    let pca = pca::principal_components(training, dim, count)?;
    let matrix: Vec<f32> = pca.components.iter().map(|&x| x as f32).collect();
    let offsets = pca
        .components
        .chunks_exact(dim)
        .map(|c| c.iter().zip(&pca.mean).map(|(a, b)| a * b).sum::<f64>() as f32)
        .collect();
    Projections::new(dim, count, matrix, offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_query_follows_nearpy() {
        let mut t = BinaryTree::new();
        for k in ["000", "000", "001", "011", "110"] {
            t.insert(k.as_bytes());
        }
        fn query(t: &BinaryTree, key: &str, min: u64) -> Vec<String> {
            let mut out = Vec::new();
            t.query(key.as_bytes(), min, &mut out);
            out.into_iter().map(|k| k.as_str().to_string()).collect()
        }
        let q = |key: &str, min: u64| query(&t, key, min);
        // Enough in the query's own bucket: just that bucket.
        assert_eq!(q("000", 2), ["000"]);
        // "000" holds 2 < 3, so the "00" step fails: "000" and its sibling "001".
        assert_eq!(q("000", 3), ["000", "001"]);
        // Subtree "0" has 4 < 5 vectors: all of "0" then all of "1".
        assert_eq!(q("000", 5), ["000", "001", "011", "110"]);
        // "010" does not exist under "01": the walk continues into "011".
        assert_eq!(q("010", 1), ["011"]);
        // "1" holds 1 < 2 vectors: all of "1", then all of its sibling "0".
        assert_eq!(q("111", 2), ["110", "000", "001", "011"]);
        // "111" does not exist under "11": the walk ends in "110".
        assert_eq!(q("111", 1), ["110"]);
        t.remove(b"110", 1);
        // "1" is now empty and pruned: the walk for "111" continues down "0".
        assert_eq!(query(&t, "111", 1), ["011"]);
        let mut empty = Vec::new();
        BinaryTree::new().query(b"101", 3, &mut empty);
        assert_eq!(empty, [BucketKey::new("101")]);
    }
}
