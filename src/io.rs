//! Readers for standard vector files.
