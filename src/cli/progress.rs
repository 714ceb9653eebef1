//! Terminal progress: a bar (step, loss, img/s, ETA) when stderr is a terminal, plain lines
//! about every 10% otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::Progress;

pub struct Terminal {
    bar: Option<ProgressBar>,
    label: String,
    total: usize,
    started: Instant,
    next_line: usize,
    /// What a step is in the lines: "step" (training) or "image" (sampling).
    unit: &'static str,
}

impl Terminal {
    pub fn new() -> Self {
        Terminal {
            bar: None,
            label: String::new(),
            total: 0,
            started: Instant::now(),
            next_line: 0,
            unit: "step",
        }
    }
}

impl Terminal {
    /// A run of `total` units starts (`doing` them), or is found in the cache.
    fn begin(&mut self, label: &str, total: usize, cached: bool, unit: &'static str, doing: &str) {
        self.label = label.to_string();
        self.total = total;
        self.started = Instant::now();
        self.unit = unit;
        if cached {
            eprintln!("run {label}: finished earlier, loaded from the run cache (not retrained)");
            return;
        }
        eprintln!("run {label}: {doing} {total} {unit}s");
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) =
                ProgressStyle::with_template("  [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            self.bar = Some(bar);
        }
        self.next_line = (total / 10).max(1);
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Terminal {
    fn start(&mut self, label: &str, total_steps: usize, cached: bool) {
        self.begin(label, total_steps, cached, "step", "training");
    }

    fn start_sampling(&mut self, label: &str, images: usize) {
        self.begin(label, images, false, "image", "sampling");
    }

    fn resumed(&mut self, step: usize) {
        eprintln!("  resuming from the checkpoint at step {step}");
        if let Some(bar) = &self.bar {
            bar.set_position(step as u64);
        }
    }

    fn update(&mut self, step: usize, loss: f64, images_per_s: f64) {
        // A sampling run has no loss.
        let msg = if loss.is_nan() {
            format!("{images_per_s:.0} img/s")
        } else {
            format!("loss {loss:.4} · {images_per_s:.0} img/s")
        };
        match &self.bar {
            Some(bar) => {
                bar.set_position(step as u64);
                bar.set_message(msg);
            }
            None if step >= self.next_line || step == self.total => {
                let elapsed = self.started.elapsed().as_secs_f64();
                let eta = elapsed / step.max(1) as f64 * (self.total - step.min(self.total)) as f64;
                eprintln!(
                    "  {} {step}/{} {msg} · ETA {eta:.0}s",
                    self.unit, self.total
                );
                self.next_line = step + (self.total / 10).max(1);
            }
            None => {}
        }
    }

    fn probe(&mut self, step: usize, accuracy: f64) {
        let line = format!(
            "  step {step}: online probe accuracy {:.2}%",
            100.0 * accuracy
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn note(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    fn finish(&mut self, summary: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "run {}: done in {:.1}s: {summary}",
            self.label,
            self.started.elapsed().as_secs_f64()
        );
    }
}
