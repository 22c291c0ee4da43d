//! Hierarchical navigable small-world graphs.
