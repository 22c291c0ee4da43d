//! Distance metrics, as the indexes name them.

use std::fmt;
use std::str::FromStr;

use crate::kernels::F32Op;

/// A distance metric. Smaller distances are closer for every metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Squared Euclidean distance (hnswlib's `l2`).
    L2,
    /// Inner-product distance `1 - a.b` (hnswlib's `ip`).
    InnerProduct,
    /// Cosine distance `1 - cos(a, b)`; indexes normalize vectors on insert.
    Cosine,
    /// Annoy's angular distance `sqrt(2 - 2 cos(a, b))` (ranks like cosine).
    Angular,
    /// Euclidean distance (not squared), as Annoy reports it.
    Euclidean,
    /// Manhattan (L1) distance.
    Manhattan,
    /// Hamming distance over bit-packed binary vectors.
    Hamming,
    /// Plain dot product as a score (larger is closer), as N2 and Annoy's `dot`
    /// report it; ranked internally by `-a.b`.
    Dot,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 8] = [
        Metric::L2,
        Metric::InnerProduct,
        Metric::Cosine,
        Metric::Angular,
        Metric::Euclidean,
        Metric::Manhattan,
        Metric::Hamming,
        Metric::Dot,
    ];

    /// Short name used on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
            Metric::Angular => "angular",
            Metric::Euclidean => "euclidean",
            Metric::Manhattan => "manhattan",
            Metric::Hamming => "hamming",
            Metric::Dot => "dot",
        }
    }

    /// The `f32` kernel that ranks by this metric (`None` for Hamming).
    pub fn f32_op(self) -> Option<F32Op> {
        match self {
            Metric::L2 | Metric::Euclidean => Some(F32Op::L2sq),
            Metric::InnerProduct | Metric::Dot => Some(F32Op::Dot),
            Metric::Cosine | Metric::Angular => Some(F32Op::Cosine),
            Metric::Manhattan => Some(F32Op::Manhattan),
            Metric::Hamming => None,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "l2" | "l2sq" | "sqeuclidean" => Metric::L2,
            "ip" | "inner_product" | "innerproduct" => Metric::InnerProduct,
            "cosine" | "cos" => Metric::Cosine,
            "angular" => Metric::Angular,
            "euclidean" => Metric::Euclidean,
            "manhattan" | "l1" => Metric::Manhattan,
            "hamming" => Metric::Hamming,
            "dot" => Metric::Dot,
            other => {
                return Err(crate::Error::UnknownName {
                    kind: "metric",
                    name: other.to_owned(),
                    expected: "l2, ip, cosine, angular, euclidean, manhattan, hamming, dot".into(),
                })
            }
        })
    }
}
