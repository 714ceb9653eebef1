//! Self-supervised methods on top of a backbone: SimCLR, MoCo v2+, BYOL and Barlow Twins.
//! Heads (`heads`), losses (`losses`), the momentum target and its schedule (`momentum`), the
//! MoCo key queue (`queue`) and the online linear probe's loss (`probe`). The official
//! per-method settings (reference §5.3) are the defaults of `train::PretrainConfig::for_method`.

pub mod heads;
pub mod losses;
pub mod momentum;
pub mod probe;
pub mod queue;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Canonical method names, in `Method` variant order (strum's list, as an array).
pub const METHODS: [&str; 4] = {
    let names = <Method as strum::VariantNames>::VARIANTS;
    assert!(names.len() == 4, "METHODS lists every method");
    [names[0], names[1], names[2], names[3]]
};

/// A self-supervised pretraining method.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Method {
    /// SimCLR: NT-Xent loss, the rest of the batch as negatives.
    Simclr,
    /// MoCo v2+: contrastive loss against a momentum encoder and a queue of keys.
    #[serde(alias = "mocov2plus", alias = "moco")]
    #[strum(to_string = "mocov2", serialize = "mocov2plus", serialize = "moco")]
    Mocov2,
    /// BYOL: a predictor regresses the momentum target's projection, no negatives.
    Byol,
    /// Barlow Twins: pushes the views' cross-correlation matrix toward the identity.
    #[serde(alias = "barlow_twins")]
    #[strum(to_string = "barlow", serialize = "barlow_twins")]
    Barlow,
}

crate::option_kind!(choices: Method);

impl Method {
    /// Every method, in variant order.
    pub const ALL: &'static [Method] = <Method as strum::VariantArray>::VARIANTS;

    /// Parses a method name or alias (`mocov2plus`, `moco`, `barlow_twins`).
    pub fn parse(name: &str) -> Result<Self> {
        crate::error::parse_one_of("method", name, &METHODS)
    }

    /// The canonical name, as in `METHODS`.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Does the method keep a momentum (EMA) copy of the encoder?
    pub fn has_momentum_target(self) -> bool {
        matches!(self, Method::Mocov2 | Method::Byol)
    }

    /// Projector hidden layers use batch norm (BYOL, Barlow Twins) or not (SimCLR, MoCo).
    pub fn projector_batch_norm(self) -> bool {
        matches!(self, Method::Byol | Method::Barlow)
    }
}
