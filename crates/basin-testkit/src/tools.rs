//! Finding the programs tests start (servers installed by `./scripts/test`) and free loopback
//! ports for them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Where `./scripts/test` installs the servers it builds with `cargo install` (tansu,
/// s3s-fs): `$BASIN_TOOLS`, else `~/.cache/basin-tools/bin`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("BASIN_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/basin-tools/bin")
        })
}

/// The installed program `name`, or a panic saying how to install it.
pub fn tool(name: &str) -> PathBuf {
    let path = tools_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found: run ./scripts/test once, which installs it with `cargo install`",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Starts `command` with its output in `log`, and waits until it listens on the loopback `port`
/// (at most 60 s); a program that exits or does not listen fails the test with its log.
pub fn start_listening(mut command: Command, port: u16, log: &Path) -> Child {
    let what = command.get_program().to_string_lossy().into_owned();
    let out = std::fs::File::create(log).unwrap();
    let mut child = command
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{what} did not listen on port {port} ({exited:?}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}
