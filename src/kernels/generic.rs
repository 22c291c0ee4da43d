//! Secondary kernels written once over `pulp`'s portable SIMD types and
//! instantiated per ISA (Manhattan, normalization, conversions).
