//! Delta Lake tables on object stores: the one place where Basin commits data.
//!
//! [`LakeTable`] opens a table (at its latest version or by time travel); each operation lives in
//! its own module under [`operations`] as a builder in the style of delta-rs. Every write is one
//! Delta commit: it either lands whole or leaves the table exactly as it was.

mod changes;
mod error;
pub mod evolution;
mod latest;
mod multiset;
pub mod operations;
mod scan;
mod stream;
mod table;
pub mod types;

pub use error::LakeError;
pub use multiset::{MultisetSetOperations, with_multiset_rule};
pub use operations::{
    add_columns::AddColumns,
    create::CreateTable,
    delete::DeleteRows,
    drop::DropTable,
    marked,
    merge::{MergeClause, MergeOutcome, MergeTable},
    optimize::{Maintenance, OptimizeTable},
    restore::RestoreTable,
    update::UpdateRows,
    vacuum::VacuumTable,
    write::{WriteMode, WriteOutcome, WriteTable},
};
pub use stream::one_shot_table;
pub use table::{CHANGE_COLUMNS, Commit, LakeTable, TimeTravel};

/// Result type of this crate.
pub type Result<T, E = LakeError> = std::result::Result<T, E>;

/// Registers the object stores Basin supports beyond the local file system (S3 and compatible).
/// Call once at start-up.
pub fn register_object_stores() {
    deltalake::aws::register_handlers(None);
}

/// An `s3://bucket[/prefix]` location: a client of the S3 (or S3-compatible) bucket, configured
/// by the process's `AWS_*` environment (keys, region, `AWS_ENDPOINT_URL` for a compatible
/// store), and the prefix inside it.
pub struct S3Prefix {
    pub store: std::sync::Arc<dyn object_store::ObjectStore>,
    pub prefix: object_store::path::Path,
    /// `s3://bucket/prefix`, as shown (without the URL's user info).
    pub url: String,
}

impl S3Prefix {
    pub fn parse(location: &str) -> Result<S3Prefix> {
        let invalid = |why: String| {
            LakeError::InvalidInput(format!(
                "'{location}' is not a usable s3://bucket/prefix URL: {why}"
            ))
        };
        let url = url::Url::parse(location).map_err(|e| invalid(e.to_string()))?;
        if url.scheme() != "s3" {
            return Err(invalid(format!("the scheme is {}", url.scheme())));
        }
        let bucket = url.host_str().unwrap_or_default();
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_url(url.as_str())
            .build()
            .map_err(|e| {
                LakeError::InvalidInput(format!("cannot use s3://{bucket}{}: {e}", url.path()))
            })?;
        let prefix = object_store::path::Path::from_url_path(url.path().trim_matches('/'))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(S3Prefix {
            store: std::sync::Arc::new(store),
            url: format!("s3://{bucket}/{prefix}"),
            prefix,
        })
    }
}

/// Turns a local directory into a `file://` URL, or checks and returns an object-store URL.
pub fn location_url(location: &str) -> Result<url::Url> {
    if location.contains("://") {
        url::Url::parse(location).map_err(|e| {
            LakeError::InvalidInput(format!("invalid table location '{location}': {e}"))
        })
    } else {
        let path = std::path::absolute(location).map_err(|e| {
            LakeError::InvalidInput(format!("invalid table location '{location}': {e}"))
        })?;
        url::Url::from_directory_path(&path).map_err(|_| {
            LakeError::InvalidInput(format!(
                "invalid table location '{location}': not an absolute path"
            ))
        })
    }
}
