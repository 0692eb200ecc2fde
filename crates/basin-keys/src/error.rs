/// Errors of keys and encryption. Messages say what is wrong and what to do; they never contain
/// a value or key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key could not be read, created or used, or a value could not be encrypted or decrypted.
    #[error("{0}")]
    Key(String),
    /// An Arrow conversion failed.
    #[error("{action} failed: {source}")]
    Arrow {
        action: String,
        #[source]
        source: arrow::error::ArrowError,
    },
}

pub(crate) fn key_error(message: impl Into<String>) -> KeyError {
    KeyError::Key(message.into())
}
