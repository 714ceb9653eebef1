//! adainf: contrastive learning with generated data ("data inflation", AdaInf), as a library.
//! The core (data, augment, model, method, optim, train, eval, report, theory) knows burn but
//! not Rhai; `host` adapts it to Rhai scripts; `device` maps device names to burn devices.

pub mod augment;
pub mod bench;
pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod generator;
pub mod host;
pub mod linalg;
pub mod method;
pub mod model;
pub mod optim;
pub mod png;
pub mod report;
pub mod rng;
pub mod runs;
pub mod tensor;
pub mod theory;
pub mod train;

pub use error::{Error, Result};
