//! `adainf report` and the page `adainf watch --report PATH` keeps current: the HTML report of
//! the runs folder (`report::html`), rewritten every few seconds while the script runs and
//! after each rerun; while watch is on, the page reloads itself (it says so at its top), and
//! when watch exits the page is written once more without reloading.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use clap::Args;

use crate::report::html;

#[derive(Args)]
pub(super) struct ReportArgs {
    /// The runs folder.
    #[arg(default_value = "runs")]
    dir: PathBuf,
    /// The HTML file to write.
    #[arg(long, default_value = "report.html")]
    out: PathBuf,
}

/// `adainf report DIR --out PATH`.
pub(super) fn report_command(args: ReportArgs) -> ExitCode {
    match html::write_dir(&args.dir, &args.out, None) {
        Ok(n) => {
            let size = std::fs::metadata(&args.out).map_or(0, |m| m.len());
            println!(
                "wrote {} ({n} run(s), {:.1} kB); open it in a browser",
                args.out.display(),
                size as f64 / 1e3
            );
            ExitCode::SUCCESS
        }
        Err(e) => super::report(&e.to_string(), 1),
    }
}

/// How often the page is rewritten while the script runs.
const EVERY: Duration = Duration::from_secs(2);

/// Writes the page of `runs_dir` (an empty page while the folder does not exist yet).
fn write(path: &Path, runs_dir: &Path, live: Option<String>) {
    let outcome = if runs_dir.is_dir() {
        html::write_dir(runs_dir, path, live).map(|_| ())
    } else {
        let opts = html::PageOptions {
            title: format!("adainf runs: {}", runs_dir.display()),
            source: format!("{} does not exist yet", runs_dir.display()),
            live,
        };
        html::write(Vec::new(), &opts, path).map(|_| ())
    };
    if let Err(e) = outcome {
        eprintln!("watch: cannot write the report: {e}");
    }
}

/// The page `adainf watch --report PATH` keeps current.
pub(super) struct LiveReport {
    path: PathBuf,
    runs_dir: PathBuf,
    running: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LiveReport {
    pub(super) fn new(path: PathBuf, runs_dir: PathBuf) -> Self {
        LiveReport {
            path,
            runs_dir,
            running: Arc::new(AtomicBool::new(false)),
            thread: None,
        }
    }

    /// A (re)run starts: the page is rewritten every `EVERY` until `finished`.
    pub(super) fn started(&mut self, what: &str) {
        self.stop_thread();
        self.running.store(true, Ordering::SeqCst);
        let (path, runs_dir, running) = (
            self.path.clone(),
            self.runs_dir.clone(),
            self.running.clone(),
        );
        let line = format!("adainf watch: {what}");
        self.thread = Some(std::thread::spawn(move || {
            while running.load(Ordering::SeqCst) {
                write(&path, &runs_dir, Some(line.clone()));
                let mut waited = Duration::ZERO;
                while waited < EVERY && running.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                    waited += Duration::from_millis(100);
                }
            }
        }));
    }

    /// The run ended with `outcome`; watch waits for changes.
    pub(super) fn finished(&mut self, outcome: &str) {
        self.stop_thread();
        write(
            &self.path,
            &self.runs_dir,
            Some(format!("adainf watch: {outcome}; waiting for changes")),
        );
    }

    /// Watch exits: the page stops reloading.
    pub(super) fn closed(&mut self) {
        self.stop_thread();
        write(&self.path, &self.runs_dir, None);
    }

    fn stop_thread(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
