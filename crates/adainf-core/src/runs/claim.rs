//! Exactly one process trains a run: before training, a process creates `claim.json` in the
//! run's folder with `create_new` (atomic on local and NFS v3+ filesystems) and keeps its
//! modification time fresh from a heartbeat thread. A claim whose heartbeat is older than the
//! timeout belongs to a process that died (killed, pre-empted, node lost); it is taken over
//! under a second atomic lock (`claim.takeover/`, a directory), so two processes that find the
//! same stale claim cannot both take it. A requeued Slurm array task (same job and task id as
//! the claim's owner) takes its own claim back at once, and so does any process when the
//! owner was a process of the same machine that no longer exists. The training itself resumes from the
//! run's checkpoint, so a takeover loses at most the steps since it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The claim file in a run's folder: its owner as JSON; its modification time is the heartbeat.
pub const CLAIM_FILE: &str = "claim.json";
const TAKEOVER_LOCK: &str = "claim.takeover";
/// Default claim timeout; `ADAINF_CLAIM_TIMEOUT` (seconds) overrides it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The claim timeout of this process.
pub fn timeout() -> Duration {
    std::env::var("ADAINF_CLAIM_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// Who holds a claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Host name of the machine the process runs on.
    pub host: String,
    /// Process id on that machine.
    pub pid: u32,
    /// `JOBID_TASKID` of a Slurm array task.
    pub slurm: Option<String>,
    /// Seconds since the Unix epoch when the claim was made.
    pub since: u64,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `unknown`).
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

impl Owner {
    /// This process as a claim owner, stamped now (with its Slurm array task, when it is one).
    pub fn me() -> Owner {
        let slurm = match (
            std::env::var("SLURM_ARRAY_JOB_ID"),
            std::env::var("SLURM_ARRAY_TASK_ID"),
        ) {
            (Ok(job), Ok(task)) => Some(format!("{job}_{task}")),
            _ => None,
        };
        Owner {
            host: hostname(),
            pid: std::process::id(),
            slurm,
            since: now_s(),
        }
    }

    fn same_process(&self, other: &Owner) -> bool {
        self.host == other.host && self.pid == other.pid
    }

    /// Whether this owner is a process of this machine that no longer exists (Linux, through
    /// /proc): its claim is dead at once, without waiting for the timeout.
    fn gone_from(&self, me: &Owner) -> bool {
        self.host == me.host
            && Path::new("/proc/self").exists()
            && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "process {} on {}", self.pid, self.host)?;
        if let Some(task) = &self.slurm {
            write!(f, " (Slurm task {task})")?;
        }
        Ok(())
    }
}

/// What a claim file says and how old its heartbeat is.
#[derive(Clone, Debug)]
pub struct ClaimState {
    /// None when the file is being written or is unreadable.
    pub owner: Option<Owner>,
    /// Time since the last heartbeat (the claim file's modification time).
    pub age: Duration,
}

/// The claim on a run folder, if any.
pub fn state(dir: &Path) -> Option<ClaimState> {
    let path = dir.join(CLAIM_FILE);
    let modified = fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or(Duration::ZERO);
    let owner = fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Some(ClaimState { owner, age })
}

impl ClaimState {
    /// Whether a live process holds this claim: its heartbeat is younger than `timeout` and
    /// its owner is not a process of this machine that has exited.
    pub fn is_live(&self, timeout: Duration) -> bool {
        self.age < timeout
            && !self
                .owner
                .as_ref()
                .is_some_and(|o| o.gone_from(&Owner::me()))
    }
}

/// Whether a live process holds the claim on the run folder `dir`.
pub fn held_live(dir: &Path) -> bool {
    state(dir).is_some_and(|s| s.is_live(timeout()))
}

/// A claim this process holds; dropping it ends the heartbeat and removes the file.
pub struct Claim {
    path: PathBuf,
    owner: Owner,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        // Remove it only if it is still ours (a takeover may have replaced it).
        let ours = fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<Owner>(&t).ok())
            .is_some_and(|o| o.same_process(&self.owner));
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The outcome of trying to claim a run.
pub enum Claimed {
    /// This process holds the claim and trains the run.
    Mine(Claim),
    /// Another live process holds it (owner unknown while its file is being written).
    Other(Option<Owner>),
}

/// Tries to claim the run folder `dir` (which must exist).
pub fn try_claim(dir: &Path, timeout: Duration) -> Result<Claimed> {
    let path = dir.join(CLAIM_FILE);
    let me = Owner::me();
    for _attempt in 0..3 {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                let text = serde_json::to_string(&me).unwrap_or_default();
                file.write_all(text.as_bytes())
                    .and_then(|_| file.sync_all())
                    .map_err(|e| Error::file(&path, format!("cannot write the claim: {e}")))?;
                return Ok(Claimed::Mine(start_heartbeat(path, me, timeout)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let Some(held) = state(dir) else {
                    continue; // released in between: try again
                };
                let requeued_self = me.slurm.is_some()
                    && held.owner.as_ref().and_then(|o| o.slurm.as_ref()) == me.slurm.as_ref();
                let dead = held.owner.as_ref().is_some_and(|o| o.gone_from(&me));
                let expired = requeued_self || dead;
                if held.age < timeout && !expired {
                    return Ok(Claimed::Other(held.owner));
                }
                if !take_over(dir, timeout, held.owner.as_ref(), expired)? {
                    return Ok(Claimed::Other(held.owner));
                }
            }
            Err(e) => {
                return Err(Error::file(&path, format!("cannot create the claim: {e}")));
            }
        }
    }
    Ok(Claimed::Other(state(dir).and_then(|s| s.owner)))
}

/// Removes the stale claim of `seen` under the takeover lock (`expired`: that owner is known to
/// be gone, whatever its age). Under the lock the claim is read again and removed only if it
/// is still `seen`'s and still stale: a claim made meanwhile by another process is never
/// removed. False when another process holds the lock or the claim is not removable.
fn take_over(dir: &Path, timeout: Duration, seen: Option<&Owner>, expired: bool) -> Result<bool> {
    let lock = dir.join(TAKEOVER_LOCK);
    if let Err(e) = fs::create_dir(&lock) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(Error::file(
                &lock,
                format!("cannot take the claim over: {e}"),
            ));
        }
        // A taker that died leaves its lock behind; it is stale after the same timeout.
        let old = fs::metadata(&lock)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > timeout);
        if old {
            let _ = fs::remove_dir(&lock);
        }
        return Ok(false);
    }
    // Under the lock nobody else removes claims; a new one can only appear by create_new
    // where none is. So the claim read now is removed only when it is the one judged stale.
    let removable = match state(dir) {
        None => true, // gone meanwhile: create_new decides
        Some(now) => {
            now.owner.as_ref() == seen && (now.age >= timeout || (expired && now.owner.is_some()))
        }
    };
    if removable {
        let _ = fs::remove_file(dir.join(CLAIM_FILE));
    }
    let _ = fs::remove_dir(&lock);
    Ok(removable)
}

fn start_heartbeat(path: PathBuf, owner: Owner, timeout: Duration) -> Claim {
    let stop = Arc::new(AtomicBool::new(false));
    let interval = (timeout / 6).clamp(Duration::from_millis(100), Duration::from_secs(10));
    let (flag, file, me) = (stop.clone(), path.clone(), owner.clone());
    let heartbeat = std::thread::spawn(move || {
        let tick = Duration::from_millis(50).min(interval);
        let mut waited = Duration::ZERO;
        while !flag.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
            waited += tick;
            if waited < interval {
                continue;
            }
            waited = Duration::ZERO;
            // Stop only when another owner is actually read (a takeover); a failed read (a
            // network filesystem's hiccup) keeps the heartbeat going.
            let other_owner = fs::read_to_string(&file)
                .ok()
                .and_then(|t| serde_json::from_str::<Owner>(&t).ok())
                .is_some_and(|o| !o.same_process(&me));
            if other_owner {
                return;
            }
            if let Ok(f) = fs::OpenOptions::new().write(true).open(&file) {
                let _ = f.set_modified(SystemTime::now());
            }
        }
    });
    Claim {
        path,
        owner,
        stop,
        heartbeat: Some(heartbeat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a claim of a process on another machine, as a dead owner would leave it.
    fn leave_remote_claim(dir: &Path) -> Owner {
        let dead = Owner {
            host: "elsewhere".into(),
            pid: 1,
            slurm: None,
            since: 0,
        };
        fs::write(dir.join(CLAIM_FILE), serde_json::to_string(&dead).unwrap()).unwrap();
        dead
    }

    /// Sets the claim's heartbeat `age` into the past (instead of sleeping, so the tests do
    /// not depend on how busy the machine is).
    fn age_claim(dir: &Path, age: Duration) {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(dir.join(CLAIM_FILE))
            .unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("adainf-claim-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_claim_is_exclusive_kept_alive_and_released() {
        let dir = folder("exclusive");
        // Generous against a busy machine: the heartbeat ticks every 250 ms.
        let timeout = Duration::from_millis(1500);
        let Claimed::Mine(claim) = try_claim(&dir, timeout).unwrap() else {
            panic!("the first claim must succeed");
        };
        // Held: a second claim (this process, another attempt) is refused while the heartbeat
        // keeps it fresh, well past the timeout.
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(800));
            assert!(matches!(
                try_claim(&dir, timeout).unwrap(),
                Claimed::Other(Some(_))
            ));
        }
        drop(claim);
        assert!(!dir.join(CLAIM_FILE).exists());
        assert!(matches!(
            try_claim(&dir, timeout).unwrap(),
            Claimed::Mine(_)
        ));
    }

    /// A claim left by a dead process (no heartbeat) is taken over after the timeout, not
    /// before.
    #[test]
    fn a_stale_claim_is_taken_over() {
        let dir = folder("stale");
        let dead = leave_remote_claim(&dir);
        let timeout = Duration::from_secs(30);
        age_claim(&dir, timeout / 2);
        match try_claim(&dir, timeout).unwrap() {
            Claimed::Other(Some(o)) => assert_eq!(o, dead),
            _ => panic!("a claim younger than the timeout must be respected"),
        }
        age_claim(&dir, timeout + Duration::from_secs(1));
        assert!(matches!(
            try_claim(&dir, timeout).unwrap(),
            Claimed::Mine(_)
        ));
    }

    /// Many threads race for one stale claim: exactly one wins. The winner keeps its claim
    /// until every thread has tried (a barrier, not a sleep: on a busy machine a sleeping
    /// winner could release before a slow thread tries, which would then rightly win too).
    #[test]
    fn racing_takers_get_one_claim() {
        const TAKERS: usize = 8;
        let dir = folder("race");
        leave_remote_claim(&dir);
        let timeout = Duration::from_secs(30);
        age_claim(&dir, timeout + Duration::from_secs(1));
        let all_tried = std::sync::Barrier::new(TAKERS);
        let winners: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..TAKERS)
                .map(|_| {
                    let (dir, all_tried) = (dir.clone(), &all_tried);
                    s.spawn(move || {
                        let outcome = try_claim(&dir, timeout).unwrap();
                        all_tried.wait();
                        matches!(outcome, Claimed::Mine(_))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(winners.iter().filter(|w| **w).count(), 1, "{winners:?}");
    }

    /// A claim of a process of this machine that has exited is taken at once (Linux).
    #[test]
    fn a_dead_local_owner_is_replaced_at_once() {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let dir = folder("dead");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = Owner {
            host: hostname(),
            pid,
            slurm: None,
            since: 0,
        };
        fs::write(dir.join(CLAIM_FILE), serde_json::to_string(&dead).unwrap()).unwrap();
        assert!(matches!(
            try_claim(&dir, Duration::from_secs(3600)).unwrap(),
            Claimed::Mine(_)
        ));
    }

    /// A taker that judged an old owner dead must not remove a claim another process made
    /// after that owner's was gone (the takeover re-reads the claim under its lock).
    #[test]
    fn a_takeover_never_removes_a_newer_claim() {
        let dir = folder("newer");
        let dead = leave_remote_claim(&dir);
        let newer = Owner {
            host: "another".into(),
            pid: 2,
            slurm: None,
            since: 1,
        };
        fs::write(dir.join(CLAIM_FILE), serde_json::to_string(&newer).unwrap()).unwrap();
        assert!(!take_over(&dir, Duration::from_secs(3600), Some(&dead), true).unwrap());
        let still = state(&dir).and_then(|s| s.owner);
        assert_eq!(still, Some(newer));
    }
}
