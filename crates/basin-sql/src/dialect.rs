use std::any::TypeId;

use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};

/// DataFusion's generic SQL plus Delta time travel (`FROM t VERSION AS OF 3`,
/// `FROM t TIMESTAMP AS OF '2026-01-01T00:00:00Z'`). Identifiers may be quoted with `"` or `` ` ``.
#[derive(Debug, Default)]
pub(crate) struct BasinDialect;

impl Dialect for BasinDialect {
    /// The parser's dialect-specific paths take Basin's SQL for the generic dialect's.
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '"' || ch == '`'
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        GenericDialect.is_identifier_part(ch)
    }

    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn supports_group_by_expr(&self) -> bool {
        true
    }

    fn supports_nested_comments(&self) -> bool {
        true
    }
}
