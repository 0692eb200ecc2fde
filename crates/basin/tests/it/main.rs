//! End-to-end tests: the real `basin` binary on a fresh data directory.

mod access_requests;
mod backup;
mod browse;
mod cli;
mod concurrency;
mod crash;
mod ddl;
mod docs_examples;
mod export;
mod faults;
mod ingest_checks;
mod interop;
mod limits;
mod lineage;
mod logs;
mod maintenance;
mod models;
mod multiprocess;
mod objstore;
mod oidc_gaps;
mod paths;
mod portal;
mod portal_sql;
mod search;
mod server;
mod server_keys;
mod sources;
mod sql_errors;
mod streams;
mod surfaces;

pub use basin_testkit::{Basin, repo_root};
