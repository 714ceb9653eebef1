#![warn(missing_docs)]
//! adainf's core: contrastive learning with generated data ("data inflation", AdaInf) as a
//! Rust library, without scripting. `data` (datasets as index views and recipes), `augment`,
//! `model`, `method`, `optim`, `train` (the run cache), `eval`, `generator`, `theory`, `report`
//! and `runs` (executors) know burn and each other, never Rhai or clap; `device` maps device
//! names to burn devices. The Rhai host is the `adainf-script` crate.

// `#[derive(Options)]` names this crate by its path, inside it too.
extern crate self as adainf_core;

pub mod augment;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod files;
pub mod generator;
pub mod linalg;
pub mod method;
pub mod model;
pub mod optim;
pub mod options;
pub mod png;
pub mod report;
pub mod rng;
pub mod runs;
pub mod tensor;
pub mod theory;
pub mod train;

pub use error::{Error, Result};
