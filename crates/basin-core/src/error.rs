/// Errors raised while validating names and other plain inputs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreError {
    /// A name does not follow the identifier rule.
    #[error(
        "invalid {kind} name '{input}': {reason}; names are lower-case letters, digits and '_', start with a letter and are at most 63 characters (rule [a-z][a-z0-9_]{{0,62}})"
    )]
    InvalidName {
        kind: &'static str,
        input: String,
        reason: String,
    },
    /// A dotted reference has the wrong number of parts.
    #[error("invalid {kind} reference '{input}': expected {expected}")]
    InvalidReference {
        kind: &'static str,
        input: String,
        expected: &'static str,
    },
    /// An unknown layer.
    #[error("invalid layer '{0}': expected one of source, prepared, semantic")]
    InvalidLayer(String),
}
