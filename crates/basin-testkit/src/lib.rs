//! Dev-only fixtures shared by Basin's integration suites. Use it as a `[dev-dependencies]` entry
//! only (the layering test refuses anything else).

pub mod basin;
pub mod browser;
pub mod fixtures;
pub mod kafka;
pub mod objstore;
pub mod oidc;
pub mod postgres;
pub mod rows;
pub mod s3;
pub mod server;
pub mod tools;

pub use basin::{Basin, repo_root};
pub use fixtures::DataDir;
pub use rows::{error, lines, rows};
