//! Where a run's batches come from. `stream`: the prefetch thread gathers u8 batches in host
//! memory and the step uploads them (the only way on the CPU backend, and the fallback for a
//! dataset too large for the device). `device`: the dataset is uploaded once
//! (`super::resident`) and each batch is gathered on the device from the sampler's indices.
//! `auto` picks `device` on GPU devices when the distinct images fit the resident budget.
//! The placement changes where pixels travel, never which pixels a step sees: both paths
//! follow the same sampler.

use std::time::Duration;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::Dataset;
use super::loader::{Batch, Sampler};
use super::prefetch::{self, Prefetcher};
use super::resident::ResidentData;
use crate::error::Result;

/// Largest dataset (distinct images, bytes on the device) that `auto` keeps on a GPU: a 1M
/// 32×32 generated set plus its real data is about 3.2 GB.
pub const RESIDENT_MAX_BYTES: usize = 8 << 30;

/// How a run's data reaches the device (not part of the run id: it changes no result).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Placement {
    /// `device` on GPU devices when the data fits `RESIDENT_MAX_BYTES`, else `stream`.
    #[default]
    Auto,
    /// Upload the dataset once, gather batches on the device.
    Device,
    /// Gather batches in host memory on a background thread, upload each.
    Stream,
}

crate::closed_set!(Placement, "placement");

/// The batch stream of one run (one per run: its variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
pub enum Batches {
    /// Batches gathered in host memory by a background prefetch thread.
    Streamed(Prefetcher),
    /// Batches gathered on the device from a copy of the dataset uploaded once.
    Resident {
        /// The dataset's copy on the device.
        data: ResidentData,
        /// Chooses the indices of each batch.
        sampler: Sampler,
        /// Per item: whether it comes from the generated part of an inflation.
        generated: Vec<bool>,
    },
}

impl Batches {
    /// Starts the stream of `sampler`'s batches of `data` for `device`.
    pub fn start(
        data: &Dataset,
        sampler: Sampler,
        device: &Device,
        placement: Placement,
    ) -> Result<Self> {
        let resident = match placement {
            Placement::Device => true,
            Placement::Stream => false,
            Placement::Auto => {
                *device != Device::flex() && ResidentData::bytes_needed(data) <= RESIDENT_MAX_BYTES
            }
        };
        if resident {
            Ok(Batches::Resident {
                data: ResidentData::upload(data, device)?,
                sampler,
                generated: (0..data.len()).map(|i| data.item(i).generated).collect(),
            })
        } else {
            Ok(Batches::Streamed(Prefetcher::start(
                data,
                sampler,
                prefetch::DEFAULT_DEPTH,
            )?))
        }
    }

    /// The placement in effect (`device` or `stream`).
    pub fn placement(&self) -> Placement {
        match self {
            Batches::Streamed(_) => Placement::Stream,
            Batches::Resident { .. } => Placement::Device,
        }
    }

    /// The next batch.
    pub fn next_batch(&mut self) -> Batch {
        match self {
            Batches::Streamed(p) => Batch::Host(p.next_batch()),
            Batches::Resident {
                data,
                sampler,
                generated,
            } => {
                let indices = sampler.next_batch();
                let (images, labels) = data.gather(&indices);
                let generated = indices.iter().map(|&i| generated[i]).collect();
                Batch::Device {
                    images,
                    labels,
                    generated,
                }
            }
        }
    }

    /// Time spent waiting for batches since the last call (a resident stream never waits:
    /// its gather is queued on the device like the rest of the step).
    pub fn take_waited(&mut self) -> Duration {
        match self {
            Batches::Streamed(p) => p.take_waited(),
            Batches::Resident { .. } => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_names_round_trip() {
        for &name in Placement::NAMES {
            assert_eq!(Placement::parse(name).unwrap().name(), name);
            let json = serde_json::to_string(&Placement::parse(name).unwrap()).unwrap();
            assert_eq!(json, format!("\"{name}\""));
        }
        let e = Placement::parse("gpu").unwrap_err().to_string();
        assert!(e.contains("gpu") && e.contains("stream"), "{e}");
    }
}
