//! adainf: contrastive learning with generated data ("data inflation", AdaInf). This package is
//! the program: the command line (`cli`, with watch mode) and `bench`. The core library is
//! `adainf-core` (re-exported here, so `adainf::data::Dataset` and the like keep working) and
//! the Rhai host is `adainf-script` (re-exported as `host`).

pub mod bench;
pub mod cli;

pub use adainf_core::*;
pub use adainf_script as host;
