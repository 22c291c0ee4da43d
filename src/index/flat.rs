//! Exact (brute-force) search.
