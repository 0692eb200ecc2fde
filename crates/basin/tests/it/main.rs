//! End-to-end tests: the real `basin` binary on a fresh data directory.

mod cli;
mod interop;
mod limits;
mod oidc_gaps;
mod server;
mod server_keys;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Basin {
    pub dir: tempfile::TempDir,
}

impl Basin {
    pub fn new() -> Self {
        Basin {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_basin"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .current_dir(repo_root())
            .output()
            .expect("the basin binary runs")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "basin {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "basin {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Query results as JSON rows.
    pub fn json(&self, sql: &str) -> Vec<serde_json::Value> {
        let out = self.ok(&["--output", "json", "sql", sql]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
}
