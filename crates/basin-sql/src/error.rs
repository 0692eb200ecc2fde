use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;

/// Errors of SQL statements.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text is not valid SQL.
    #[error("SQL syntax error: {0}")]
    Parse(String),
    /// A column or table the statement names does not exist.
    #[error("{kind} '{name}' not found{}", suggestion.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default())]
    NotFound {
        kind: &'static str,
        name: String,
        suggestion: Option<String>,
    },
    /// The statement is valid SQL that Basin does not run.
    #[error("{0}")]
    Unsupported(String),
    /// The statement is wrong in a way the message explains.
    #[error("{0}")]
    Invalid(String),
    /// The principal may see the object but lacks the privilege for this statement.
    #[error("{0}")]
    Denied(String),
    /// Planning or execution failed.
    #[error("{0}")]
    Query(String),
    #[error(transparent)]
    Catalog(#[from] basin_catalog::CatalogError),
    #[error(transparent)]
    Lake(#[from] basin_lake::LakeError),
    #[error(transparent)]
    Name(#[from] basin_core::CoreError),
    #[error(transparent)]
    Key(#[from] basin_keys::KeyError),
    /// The write path failed (storage, catalog, keys).
    #[error(transparent)]
    Tables(basin_tables::TablesError),
    /// A statement of a script failed: which one (`statement 3 (INSERT INTO …)`), and why.
    /// (`error` is part of the message, not a `source`: error chains would say it twice.)
    #[error("{statement}: {error}")]
    InStatement {
        statement: String,
        error: Box<SqlError>,
    },
    /// An error the planner placed in the statement's text.
    #[error("{error}")]
    At {
        position: Position,
        error: Box<SqlError>,
    },
}

/// A place in a statement's text: line and column, both from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl Position {
    /// The position sqlparser writes at the end of its messages (`… at Line: 2, Column: 7`).
    fn in_parser_message(message: &str) -> Option<Position> {
        let (_, rest) = message.rsplit_once("Line: ")?;
        let (line, rest) = rest.split_once(", Column: ")?;
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let position = Position {
            line: line.trim().parse().ok()?,
            column: column.parse().ok()?,
        };
        (position.line > 0 && position.column > 0).then_some(position)
    }

    /// The start of the span a DataFusion diagnostic points at, if it has one.
    pub(crate) fn of_diagnostic(e: &DataFusionError) -> Option<Position> {
        let start = e.diagnostic()?.span?.start;
        (start.line > 0 && start.column > 0).then_some(Position {
            line: start.line,
            column: start.column,
        })
    }
}

impl SqlError {
    /// The error itself, without the statement of a script that it happened in.
    pub fn root(&self) -> &SqlError {
        match self {
            SqlError::InStatement { error, .. } | SqlError::At { error, .. } => error.root(),
            other => other,
        }
    }

    /// Where in the SQL text the error is, when the parser or the planner says.
    pub fn position(&self) -> Option<Position> {
        match self {
            SqlError::At { position, .. } => Some(*position),
            SqlError::InStatement { error, .. } => error.position(),
            SqlError::Parse(message) => Position::in_parser_message(message),
            _ => None,
        }
    }

    /// The error placed at `position` (unchanged when that is unknown).
    pub(crate) fn at(self, position: Option<Position>) -> SqlError {
        match position {
            Some(position) => SqlError::At {
                position,
                error: Box::new(self),
            },
            None => self,
        }
    }
}

impl From<basin_tables::TablesError> for SqlError {
    fn from(e: basin_tables::TablesError) -> Self {
        use basin_tables::TablesError as T;
        match e {
            T::Denied(m) => SqlError::Denied(m),
            T::Invalid(m) => SqlError::Invalid(m),
            T::NotFound { kind, name } => SqlError::NotFound {
                kind,
                name,
                suggestion: None,
            },
            T::Catalog(e) => SqlError::Catalog(e),
            T::Lake(e) => SqlError::Lake(e),
            T::DataFusion(e) => e.into(),
            other => SqlError::Tables(other),
        }
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        let root = e.find_root();
        if let DataFusionError::SchemaError(schema_error, _) = root
            && let SchemaError::FieldNotFound {
                field,
                valid_fields,
            } = schema_error.as_ref()
        {
            let candidates: Vec<&str> = valid_fields.iter().map(|c| c.name.as_str()).collect();
            return SqlError::NotFound {
                kind: "column",
                name: field.flat_name(),
                suggestion: basin_core::closest(&field.name, candidates).map(str::to_string),
            };
        }
        let message = match root {
            DataFusionError::External(inner) => inner.to_string(),
            other => other.to_string(),
        };
        SqlError::Query(clean(&message))
    }
}

/// Wrappers that DataFusion, arrow and delta-rs put before a message, each adding nothing.
const NOISE: [&str; 14] = [
    "External error: ",
    "Execution error: ",
    "Arrow error: ",
    "Error during planning: ",
    "Internal error: ",
    "Generic DeltaTable error: ",
    "Generic error: ",
    "Kernel error: ",
    "Invalid argument error: ",
    "Cast error: ",
    "Compute error: ",
    "DataFusion error: ",
    "Arithmetic overflow: ",
    "Object Store error: ",
];

/// An engine message as users should read it: the wrappers and DataFusion's "file a bug report"
/// text gone, a message repeated by nested errors said once.
pub(crate) fn clean(message: &str) -> String {
    let mut m = message.to_string();
    for cut in ["\nThis issue was likely caused by a bug", "\n\nbacktrace:"] {
        if let Some(at) = m.find(cut) {
            m.truncate(at);
        }
    }
    // "Optimizer rule 'x' failed\ncaused by\n…": the cause is the message.
    if let Some((_, cause)) = m.rsplit_once("caused by\n") {
        m = cause.to_string();
    }
    let mut changed = true;
    while changed {
        changed = false;
        for noise in NOISE {
            if m.contains(noise) {
                m = m.replace(noise, "");
                changed = true;
            }
        }
    }
    let m = m.trim().trim_end_matches('.').to_string();
    dedup_segments(&m)
}

/// `a: b: a: b` → `a: b` — nested errors that each print their source.
fn dedup_segments(message: &str) -> String {
    let mut parts: Vec<&str> = message.split(": ").collect();
    let mut i = 0;
    while i < parts.len() {
        let mut removed = false;
        for n in 1..=(parts.len() - i) / 2 {
            if parts[i..i + n] == parts[i + n..i + 2 * n] {
                parts.drain(i + n..i + 2 * n);
                removed = true;
                break;
            }
        }
        if !removed {
            i += 1;
        }
    }
    // "x: y" where y is only the end of x, as delta-rs repeats its source (a long y only: a
    // short one may be a value that happens to end the text before it).
    let mut out = parts.join(": ");
    if let Some((head, tail)) = out.split_once(": ")
        && tail.len() >= 20
        && head.ends_with(tail)
    {
        out = head.to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Position, clean};

    #[test]
    fn parser_messages_give_their_position() {
        assert_eq!(
            Position::in_parser_message(
                "sql parser error: Expected: end of statement, found: fro at Line: 2, Column: 10"
            ),
            Some(Position {
                line: 2,
                column: 10
            })
        );
        assert_eq!(
            Position::in_parser_message("the SQL text has no statement"),
            None
        );
    }

    #[test]
    fn engine_messages_are_said_once_without_wrappers() {
        assert_eq!(
            clean(
                "External error: Execution error: division by zero: Execution error: division by zero"
            ),
            "division by zero"
        );
        assert_eq!(
            clean(
                "Internal error: Physical input schema should be the same.\nThis issue was likely caused by a bug in DataFusion's code. Please help us to resolve this by filing a bug report in our issue tracker: https://github.com/apache/datafusion/issues"
            ),
            "Physical input schema should be the same"
        );
        assert_eq!(
            clean(
                "Optimizer rule 'simplify_expressions' failed\ncaused by\nArrow error: Cast error: Cannot cast string 'x' to value of Int64 type"
            ),
            "Cannot cast string 'x' to value of Int64 type"
        );
        assert_eq!(clean("a: b: c"), "a: b: c");
        assert_eq!(clean("cannot read 'x': x"), "cannot read 'x': x");
        assert_eq!(
            clean("writing failed because the file is gone: the file is gone"),
            "writing failed because the file is gone: the file is gone"
        );
        assert_eq!(
            clean(
                "Generic error: writing failed, the object store is unreachable: the object store is unreachable"
            ),
            "writing failed, the object store is unreachable"
        );
    }
}
