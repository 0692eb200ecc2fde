use std::any::TypeId;

use datafusion::sql::sqlparser::ast::Expr;
use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

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

    /// `SELECT * EXCLUDE (a, b)`: every column but these.
    fn supports_select_wildcard_exclude(&self) -> bool {
        true
    }

    fn supports_nested_comments(&self) -> bool {
        true
    }

    /// `COMMENT ON TABLE|COLUMN|SCHEMA|DATABASE … IS '…'` (descriptions).
    fn supports_comment_on(&self) -> bool {
        true
    }

    /// `current_user()` and `session_user()` as well as the bare keywords, which are all the
    /// generic parser knows.
    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let name = match parser.peek_token().token {
            Token::Word(w)
                if matches!(w.keyword, Keyword::CURRENT_USER | Keyword::SESSION_USER) =>
            {
                w.value
            }
            _ => return None,
        };
        if parser.peek_nth_token(1).token != Token::LParen
            || parser.peek_nth_token(2).token != Token::RParen
        {
            return None;
        }
        for _ in 0..3 {
            parser.next_token();
        }
        Some(
            Parser::new(self)
                .try_with_sql(&name)
                .and_then(|mut p| p.parse_expr()),
        )
    }
}
