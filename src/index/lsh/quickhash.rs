//! A fast seeded hasher for the engine's hash maps and sets.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// A fast seeded hasher: multiply-rotate over 64-bit words (FxHash's
/// mixing) from a per-process random seed.
///
/// Used where SipHash, std's default, showed up in profiles: the per-query
/// unique-payload set (SipHash cost as much per candidate as a 128-d
/// distance) and the in-memory bucket maps (hashed on every store and
/// query). Both are keyed by data a user may control; the random seed keeps
/// collisions from being precomputed, which is the protection that matters
/// for keys that are not chosen adaptively against a timing side channel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QuickState(u64);

impl QuickState {
    pub(crate) fn get() -> QuickState {
        static SEED: OnceLock<u64> = OnceLock::new();
        QuickState(*SEED.get_or_init(|| {
            std::collections::hash_map::RandomState::new().hash_one(0x5157_414e_u64) | 1
        }))
    }
}

impl Default for QuickState {
    fn default() -> Self {
        QuickState::get()
    }
}

impl BuildHasher for QuickState {
    type Hasher = QuickHasher;
    fn build_hasher(&self) -> QuickHasher {
        QuickHasher(self.0)
    }
}

pub(crate) struct QuickHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl Hasher for QuickHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(26) ^ x).wrapping_mul(K);
    }
    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.write_u64(x as u64);
    }
    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown takes its bucket index from the
        // low bits and its tag from the top 7.
        self.0 ^ (self.0 >> 29)
    }
}
