//! Locality-sensitive hashing: NearPy's modular engine on swann's kernels.
//!
//! An [`Engine`] is made of
//!
//! - one or more [`LshHash`]es, which map a vector to bucket keys (random
//!   binary or discretized projections, the binary projection tree, PCA
//!   projections);
//! - a [`Storage`] holding the buckets: [`MemoryStorage`] by default, or
//!   `RedisStorage` with the `redis` cargo feature;
//! - a [`Distance`] that ranks candidates: any of the crate's [`Metric`]s,
//!   your own type, or none;
//! - a chain of [`Filter`]s applied in order: nearest-N, distance threshold,
//!   unique by payload.
//!
//! [`Engine::store`] projects a vector on every hash's directions in one
//! pass, turns the projections into one bucket key per hash, and appends
//! (vector, payload) to each of those buckets (the in-memory storage keeps
//! one copy of the vector that all its buckets refer to);
//! [`Engine::neighbours`] reads the query's buckets, runs the filters that
//! need no distance (unique), computes the distances of what is left with
//! the dispatched kernels, and runs the rest of the chain.
//! NearPy's recall/precision and distance-ratio experiments are the
//! command-line tool's (`swann lsh experiment`).
//!
//! Distances go through the [`KernelTable`](crate::kernels::KernelTable)
//! resolved when a distance is built, and hashing through a `pulp` token for
//! that table's ISA, so pinning an ISA pins both (`project.rs` names ISAs
//! only to pick that token); there is no `unsafe` here.

use std::hash::Hash;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernels;
use crate::kernels::prefetch::{prefetch_read, prefetch_read_l2};
use crate::Metric;
use project::ProjectionPlan;

/// [`crate::error::check_vector`] with a fast path: the finiteness test is a
/// branch-free fold the compiler vectorizes (the shared check stops at the
/// first bad value, one element per iteration, which costs as much as
/// hashing the vector). Only a bad vector takes the slow path, for the error
/// details.
#[inline]
pub(crate) fn check_vector(v: &[f32], dim: usize) -> Result<()> {
    let bad = v.iter().fold(0u32, |acc, x| {
        acc | u32::from(x.to_bits() & 0x7f80_0000 == 0x7f80_0000)
    });
    if v.len() == dim && bad == 0 {
        return Ok(());
    }
    crate::error::check_vector(v, dim)
}

mod distance;
mod engine;
mod filter;
mod hash;
mod numpy_rng;
mod pca;
mod project;
mod quickhash;
mod ranking;
#[cfg(feature = "redis")]
mod redis;
mod screen;
mod storage;

pub use distance::{Distance, MetricDistance};
pub use filter::Filter;
use filter::UniqueSet;
pub use hash::{BucketKey, LshHash};
#[cfg(feature = "redis")]
pub use redis::RedisStorage;
use screen::QueryBound;
pub use screen::ScreenCodes;
pub use storage::{BucketContents, BucketRef, MemoryStorage, Storage, StoreEntry};

pub use engine::{DistanceKind, Engine, EngineBuilder, EngineConfig, Neighbour, Payload};
use ranking::*;
