//! What the graph stores and how it measures: `f32` vectors under L2,
//! inner product or cosine, and bit-packed vectors under Hamming.

use crate::error::{check_vector, Error, Result};
use crate::kernels::{F32Kernel, F32Op, KernelTable};
use crate::Metric;

/// The element type and distance of an HNSW graph.
///
/// Implemented by [`F32Space`] and [`BitSpace`]; the graph code is generic
/// over it and never sees an ISA: each space holds kernels resolved once when
/// the index is created. Implement it for a distance of your own and build
/// an index over it with
/// [`HnswIndex::builder_with_space`](super::HnswIndex::builder_with_space)
/// (which has a weighted-L1 example).
pub trait Space: Send + Sync + Clone + std::fmt::Debug + 'static {
    /// Vector element: `f32` components or `u64` words of bits.
    type Elem: bytemuck::Pod + Send + Sync + PartialEq + std::fmt::Debug;

    /// Elements per stored vector.
    fn vector_len(&self) -> usize;

    /// The metric results are reported in. A user-defined space names the
    /// built-in metric that describes its distances best (a weighted L1
    /// says [`Metric::Manhattan`]); the index only reports it, and uses it
    /// for the default of [`Space::guards_reachability`] and of the insert
    /// order.
    fn metric(&self) -> Metric;

    /// Whether the graph keeps every node reachable from the entry point
    /// when it prunes links (see the graph's join-order anchors). True for
    /// distances that behave like metrics; false under inner product, where
    /// nodes inside the convex hull of the others are rightly never any
    /// query's nearest and forcing links to them costs recall.
    fn guards_reachability(&self) -> bool {
        !matches!(self.metric(), Metric::InnerProduct | Metric::Dot)
    }

    /// Distance between two stored (prepared) vectors; smaller is closer.
    fn distance(&self, a: &[Self::Elem], b: &[Self::Elem]) -> f32;

    /// Validates `v` and writes the form the graph stores (e.g. normalized) into `out`.
    ///
    /// # Errors
    /// Whatever makes `v` unfit to store or search; inserts and searches return
    /// it unchanged. The built-in spaces return [`Error::DimensionMismatch`]
    /// for a vector of the wrong length, [`F32Space`] [`Error::NonFinite`] for
    /// NaN or infinite components (before or after normalizing), [`BitSpace`]
    /// [`Error::InvalidParameter`] for bits set past the vector's length.
    fn prepare(&self, v: &[Self::Elem], out: &mut Vec<Self::Elem>) -> Result<()>;

    /// The kernel table of a built-in `f32` space, which quantized search
    /// needs; `None` (the default) for every other space, which then
    /// cannot be quantized.
    #[doc(hidden)]
    fn kernels(&self) -> Option<&'static KernelTable> {
        None
    }
}

/// `f32` vectors under squared L2, inner product (`1 - a.b`) or cosine
/// (vectors normalized on insert and query, then `1 - a.b`).
#[derive(Clone, Debug)]
pub struct F32Space {
    dim: usize,
    metric: Metric,
    kernel: F32Kernel,
    table: &'static KernelTable,
    one_minus: bool,
    normalize: bool,
}

impl F32Space {
    /// A space over `dim`-dimensional vectors with the given kernel table.
    ///
    /// # Errors
    /// [`Error::UnsupportedMetric`] for a metric other than L2, inner product,
    /// dot or cosine; [`Error::InvalidParameter`] for a zero dimension.
    pub fn new(dim: usize, metric: Metric, table: &'static KernelTable) -> Result<Self> {
        let (op, one_minus, normalize) = match metric {
            Metric::L2 => (F32Op::L2sq, false, false),
            Metric::InnerProduct | Metric::Dot => (F32Op::Dot, true, false),
            Metric::Cosine => (F32Op::Dot, true, true),
            other => {
                return Err(Error::UnsupportedMetric {
                    metric: other,
                    index: "HNSW over f32 vectors",
                })
            }
        };
        if dim == 0 {
            return Err(Error::InvalidParameter(
                "dimension must be at least 1".into(),
            ));
        }
        Ok(F32Space {
            dim,
            metric,
            kernel: table.f32_kernel(op),
            table,
            one_minus,
            normalize,
        })
    }
}

impl Space for F32Space {
    type Elem = f32;

    fn kernels(&self) -> Option<&'static KernelTable> {
        Some(self.table)
    }

    fn vector_len(&self) -> usize {
        self.dim
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    #[inline(always)]
    fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        let d = self.kernel.eval(a, b);
        if self.one_minus {
            1.0 - d
        } else {
            d
        }
    }

    fn prepare(&self, v: &[f32], out: &mut Vec<f32>) -> Result<()> {
        check_vector(v, self.dim)?;
        out.clear();
        out.extend_from_slice(v);
        if self.normalize {
            self.table.normalize(out);
        }
        // Finite inputs can still overflow to infinity in a norm.
        if let Some((index, value)) = crate::error::first_non_finite(out) {
            return Err(Error::NonFinite { index, value });
        }
        Ok(())
    }
}

/// Bit-packed binary vectors (`u64` words, bit `i` of the vector in word
/// `i / 64`, bit `i % 64`) under Hamming distance.
#[derive(Clone, Debug)]
pub struct BitSpace {
    bits: usize,
    words: usize,
    table: &'static KernelTable,
}

impl BitSpace {
    /// A space over vectors of `bits` bits.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a zero bit count.
    pub fn new(bits: usize, table: &'static KernelTable) -> Result<Self> {
        if bits == 0 {
            return Err(Error::InvalidParameter(
                "bit count must be at least 1".into(),
            ));
        }
        Ok(BitSpace {
            bits,
            words: bits.div_ceil(64),
            table,
        })
    }

    /// Bits per vector.
    pub fn bits(&self) -> usize {
        self.bits
    }
}

impl Space for BitSpace {
    type Elem = u64;

    fn vector_len(&self) -> usize {
        self.words
    }

    fn metric(&self) -> Metric {
        Metric::Hamming
    }

    #[inline(always)]
    fn distance(&self, a: &[u64], b: &[u64]) -> f32 {
        self.table.hamming(a, b) as f32
    }

    fn prepare(&self, v: &[u64], out: &mut Vec<u64>) -> Result<()> {
        if v.len() != self.words {
            return Err(Error::DimensionMismatch {
                expected: self.words,
                got: v.len(),
            });
        }
        let spare = self.words * 64 - self.bits;
        if spare > 0 && v[self.words - 1] >> (64 - spare) != 0 {
            return Err(Error::InvalidParameter(format!(
                "bits past the vector's {} bits are set in the last word",
                self.bits
            )));
        }
        out.clear();
        out.extend_from_slice(v);
        Ok(())
    }
}
