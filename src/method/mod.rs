//! Self-supervised methods: heads and losses on top of a backbone. SimCLR for now; the method
//! name is part of the run config so others slot in beside it.

pub mod probe;
pub mod simclr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Simclr,
}

impl Method {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "simclr" => Ok(Method::Simclr),
            "mocov2" | "byol" | "barlow" => Err(Error::config(
                "method",
                format!("\"{name}\" is not implemented yet in this version; use \"simclr\""),
            )),
            other => Err(Error::config(
                "method",
                format!("unknown method \"{other}\"; use \"simclr\""),
            )),
        }
    }
}
