//! `adainf watch`: runs a script, then re-runs it whenever a `.rhai` file in its folder, in a
//! `--lib` folder or in the folder of a module it imports (`import "sub/deep"`) changes. A change during a run stops it within one training step; finished
//! runs come from the run cache, so only what changed is computed again. A broken edit prints
//! its error and the watcher keeps waiting. Folders are watched, not files, because editors
//! save by writing a new file and renaming it over the old one. Ctrl-C exits.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use super::live_report::LiveReport;
use super::{RunArgs, make_host, report};
use crate::train::CancelFlag;

#[derive(clap::Args)]
pub(super) struct WatchArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Keep an HTML report of the runs folder here (`adainf report`), rewritten while the
    /// script runs and after each rerun; the page reloads itself while watch is on.
    #[arg(long)]
    report: Option<PathBuf>,
}

fn relevant(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "rhai")
        && !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn header(reason: &str) {
    if std::io::stdout().is_terminal() {
        print!("\x1b[2J\x1b[H");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (h, m, s) = ((now / 3600) % 24, (now / 60) % 60, now % 60);
    eprintln!("── adainf watch · {h:02}:{m:02}:{s:02} UTC · {reason} ──");
}

pub(super) fn watch(watch_args: WatchArgs) -> ExitCode {
    let args = watch_args.run;
    let mut page = watch_args
        .report
        .map(|path| LiveReport::new(path, args.runs_dir.clone()));
    let cancel = CancelFlag::new();
    let interrupted = Arc::new(AtomicBool::new(false));
    for flag in [interrupted.clone(), cancel.flag()] {
        if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGINT, flag) {
            return report(&format!("cannot install the Ctrl-C handler: {e}"), 1);
        }
    }
    let mut host = match make_host(&args, cancel.clone()) {
        Ok(h) => h,
        Err((msg, code)) => return report(&msg, code),
    };
    let mut folders: Vec<PathBuf> = Vec::new();
    let pending: Arc<Mutex<Vec<PathBuf>>> = Arc::new(Mutex::new(Vec::new()));
    let (sink, cancel_on_change) = (pending.clone(), cancel.clone());
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let paths: Vec<PathBuf> = event.paths.into_iter().filter(|p| relevant(p)).collect();
        if !paths.is_empty() {
            if let Ok(mut list) = sink.lock() {
                list.extend(paths);
            }
            cancel_on_change.cancel();
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => return report(&format!("cannot watch files: {e}"), 1),
    };
    let mut reason = format!("running {}", args.script.display());
    loop {
        // The imports may have changed: watch the folders of the modules imported now too.
        for folder in host.source_folders(&args.script) {
            if folders.contains(&folder) {
                continue;
            }
            if let Err(e) = watcher.watch(&folder, RecursiveMode::NonRecursive) {
                return report(
                    &format!("{}: cannot watch this folder: {e}", folder.display()),
                    1,
                );
            }
            folders.push(folder);
        }
        header(&reason);
        cancel.reset();
        if let Some(p) = page.as_mut() {
            p.started(&reason);
        }
        let started = Instant::now();
        let outcome = host.run_file(&args.script);
        if let Some(p) = page.as_mut() {
            p.finished(match &outcome {
                Ok(()) => "the script finished",
                Err(_) if cancel.is_cancelled() => "the script was stopped",
                Err(_) => "the script failed",
            });
        }
        if interrupted.load(Ordering::SeqCst) {
            if let Some(p) = page.as_mut() {
                p.closed();
            }
            eprintln!(
                "watch: interrupted; finished runs are in {}",
                args.runs_dir.display()
            );
            return ExitCode::SUCCESS;
        }
        match outcome {
            Ok(()) => eprintln!("watch: finished in {:.1}s", started.elapsed().as_secs_f64()),
            Err(_) if cancel.is_cancelled() => eprintln!(
                "watch: stopped by a change after {:.1}s",
                started.elapsed().as_secs_f64()
            ),
            Err(e) => eprintln!("error: {}", e.message),
        }
        let shown: Vec<String> = folders.iter().map(|f| f.display().to_string()).collect();
        eprintln!(
            "watch: waiting for changes to .rhai files in {} (Ctrl-C to quit)",
            shown.join(", ")
        );
        // Wait for a change, then let a burst of events (an editor's save) settle.
        loop {
            if interrupted.load(Ordering::SeqCst) {
                if let Some(p) = page.as_mut() {
                    p.closed();
                }
                eprintln!("watch: interrupted");
                return ExitCode::SUCCESS;
            }
            let has_changes = pending.lock().map(|l| !l.is_empty()).unwrap_or(false);
            if has_changes {
                std::thread::sleep(Duration::from_millis(150));
                let mut names: Vec<String> = pending
                    .lock()
                    .map(|mut l| {
                        l.drain(..)
                            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                names.dedup();
                reason = format!("changed: {}", names.join(", "));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
