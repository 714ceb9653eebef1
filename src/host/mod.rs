//! Rhai host (in progress).
