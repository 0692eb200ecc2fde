use crate::read::BadRow;

/// Errors of a load.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// An input file or option is unusable.
    #[error("{0}")]
    Input(String),
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The input has more bad rows than allowed; nothing was committed.
    #[error("{}", bad_rows_message(*.allowed, *.found, *.complete, .first))]
    BadRows {
        /// The `--max-bad-rows` of the load.
        allowed: u64,
        /// Bad rows found before reading stopped.
        found: u64,
        /// Whether every input was read (so `found` is the total).
        complete: bool,
        first: Vec<BadRow>,
    },
    /// The catalog refused or failed.
    #[error(transparent)]
    Catalog(#[from] basin_catalog::CatalogError),
    /// The lake refused or failed; nothing was committed.
    #[error(transparent)]
    Lake(#[from] basin_lake::LakeError),
    /// A name is invalid.
    #[error(transparent)]
    Name(#[from] basin_core::CoreError),
    /// The write stopped reading the input (it was refused or failed); its own error says why.
    #[error("the load was cancelled")]
    Cancelled,
    /// The write path refused or failed; nothing was committed.
    #[error(transparent)]
    Tables(#[from] basin_tables::TablesError),
}

fn bad_rows_message(allowed: u64, found: u64, complete: bool, first: &[BadRow]) -> String {
    let mut msg = format!(
        "load refused: {found}{} bad row(s) found (allowed: {allowed}), nothing was committed",
        if complete { "" } else { " or more" }
    );
    msg.push_str("; first problems:");
    for b in first {
        msg.push_str(&format!("\n  {}:{}: {}", b.file, b.line, b.reason));
    }
    msg.push_str("\nfix the input, give a schema with --schema, or allow bad rows into the quarantine table with --max-bad-rows N");
    msg
}
