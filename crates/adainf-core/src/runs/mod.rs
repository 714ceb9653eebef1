//! The run cache as the place where runs coordinate. A run a script asks for becomes a
//! `request` (config + datasets as recipes) that any process can execute; `claim` makes sure
//! exactly one process trains it (an atomic claim file kept alive by a heartbeat, taken over
//! when it goes stale); `cache` trains a run of any kind under its claim and records failures, `execute` a pretraining request;
//! `local` runs requests in worker processes on this machine, `slurm` as a job array;
//! `listing` shows the cache (`adainf runs`).

pub mod cache;
pub mod claim;
pub mod execute;
pub mod listing;
pub mod local;
pub mod request;
pub mod slurm;

pub use crate::train::run::REQUEST_FILE;
pub use cache::{FAILED_FILE, WORKER_LOG, tail};

/// The first 12 characters of a run id, as listings show it. Cut at a character boundary: a
/// run folder's name can be any text, not just the hex ids this tool makes.
pub fn short_id(id: &str) -> &str {
    id.char_indices().nth(12).map_or(id, |(end, _)| &id[..end])
}

/// Where the runs a script asks for are trained.
#[derive(Clone, Debug, Default)]
pub enum Executor {
    /// In the script's process, one after another (the default).
    #[default]
    InProcess,
    /// In worker processes on this machine (`--jobs N`).
    Local(local::Workers),
    /// As Slurm job arrays (`--executor slurm`).
    Slurm {
        /// Options passed through to `sbatch`.
        options: slurm::SlurmOptions,
        /// The adainf binary the tasks run (on a path every node sees).
        binary: std::path::PathBuf,
        /// The device the tasks open.
        device: String,
    },
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_ids_cut_between_characters() {
        assert_eq!(super::short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(super::short_id("abcdefghijké-run"), "abcdefghijké");
        assert_eq!(super::short_id("ééé"), "ééé");
        assert_eq!(super::short_id(""), "");
    }
}
