//! The real `basin` binary on a fresh data dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `basin` binary: `BASIN_BIN` if set; else `CARGO_BIN_EXE_basin`, which Cargo sets when it
/// runs the basin crate's own tests; else `basin` beside the test executable's `deps` folder
/// (`target/<profile>/basin`). Panics, saying how to build it, when it is not there.
pub fn basin_bin() -> PathBuf {
    let candidates: Vec<PathBuf> = ["BASIN_BIN", "CARGO_BIN_EXE_basin"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .chain(
            std::env::current_exe()
                .ok()
                .and_then(|exe| Some(exe.parent()?.parent()?.join("basin"))),
        )
        .collect();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the `basin` binary was not found (looked at {candidates:?}): build it with \
                 `cargo build --bin basin` (the basin crate's own tests build it: \
                 `cargo test --workspace --test it`), or point BASIN_BIN at it"
            )
        })
}

/// The workspace root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
}

/// A fresh temp dir for the `basin` binary: its data dir is `<dir>/data`, input files go in
/// `<dir>`. Removed when dropped.
pub struct Basin {
    pub dir: tempfile::TempDir,
}

impl Default for Basin {
    fn default() -> Self {
        Self::new()
    }
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

    /// `basin --data-dir <data dir>`, run from the workspace root; add arguments and run it.
    pub fn command(&self) -> Command {
        let mut command = Command::new(basin_bin());
        command
            .arg("--data-dir")
            .arg(self.data_dir())
            .current_dir(repo_root());
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
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

    /// `basin user create NAME [ARGS…]` with the password given (as `BASIN_PASSWORD`); it must
    /// succeed.
    pub fn create_user(&self, name: &str, password: &str, args: &[&str]) {
        let out = self
            .command()
            .args(["user", "create", name])
            .args(args)
            .env("BASIN_PASSWORD", password)
            .output()
            .expect("the basin binary runs");
        assert!(
            out.status.success(),
            "basin user create {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Query results as JSON rows.
    pub fn json(&self, sql: &str) -> Vec<serde_json::Value> {
        let out = self.ok(&["--output", "json", "sql", sql]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Writes `content` to `<dir>/<name>` and returns its path.
    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }
}
