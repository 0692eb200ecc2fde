//! End-to-end tests: the real `basin` binary on a fresh data directory.

mod cli;
mod ddl;
mod interop;
mod limits;
mod oidc_gaps;
mod paths;
mod server;
mod server_keys;

pub use basin_testkit::{Basin, repo_root};
