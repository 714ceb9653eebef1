//! Helpers shared by the integration tests: the binary, a scratch folder that cleans up
//! after itself, and reading `key=value` words from a script's output.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_adainf"))
}

pub struct Workspace(pub PathBuf);

impl Workspace {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("adainf-it-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Workspace(dir)
    }
    pub fn script(&self, name: &str, source: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, source).unwrap();
        p
    }
    pub fn run(&self, script: &Path, extra: &[&str]) -> Output {
        bin()
            .arg("run")
            .arg(script)
            .arg("--runs-dir")
            .arg(self.0.join("runs"))
            .args(extra)
            .output()
            .unwrap()
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn value(stdout: &str, key: &str) -> String {
    stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} missing in {stdout}"))
        .to_string()
}
