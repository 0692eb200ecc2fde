use std::any::TypeId;
use std::cell::Cell;

use datafusion::sql::sqlparser::ast::{Expr, Statement};
use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// DataFusion's generic SQL plus Delta time travel (`FROM t VERSION AS OF 3`,
/// `FROM t TIMESTAMP AS OF '2026-01-01T00:00:00Z'`). Identifiers may be quoted with `"` or `` ` ``.
///
/// A parser in this dialect may try only so many expressions for its text (see
/// [`BasinDialect::for_text`]). sqlparser backtracks, and some malformed statements would
/// otherwise keep a core busy for hours: `SELECT a.a.a.….a[(` takes time exponential in the
/// length of the dotted name.
#[derive(Debug)]
pub(crate) struct BasinDialect {
    expressions_left: Cell<usize>,
}

impl BasinDialect {
    /// The dialect for parsing `text`: it allows a few thousand expressions plus 8 per byte of
    /// text, far more than any statement needs (one expression takes at least one byte), and
    /// stops a runaway parse within a fraction of a second per kilobyte.
    pub(crate) fn for_text(text: &str) -> Self {
        BasinDialect {
            expressions_left: Cell::new(4_096 + 8 * text.len()),
        }
    }

    /// `error`, explained when the parser stopped because it ran out of expressions.
    pub(crate) fn explain(&self, error: ParserError) -> ParserError {
        if self.expressions_left.get() > 0 {
            return error;
        }
        ParserError::ParserError(
            "the statement takes too long to parse (the parser backtracked too often); it is \
             probably malformed: check its brackets, parentheses and dotted names"
                .into(),
        )
    }
}

/// Parses SQL text into statements, in a bounded time and to a bounded depth.
pub(crate) fn parse_statements(sql: &str) -> Result<Vec<Statement>, ParserError> {
    let dialect = BasinDialect::for_text(sql);
    let tokens = Tokenizer::new(&dialect, sql).tokenize_with_location()?;
    check_depth(&tokens)?;
    Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| dialect.explain(e))
}

/// Parses one SQL expression, in a bounded time and to a bounded depth.
pub(crate) fn parse_expr(sql: &str) -> Result<Expr, ParserError> {
    let dialect = BasinDialect::for_text(sql);
    let tokens = Tokenizer::new(&dialect, sql).tokenize_with_location()?;
    check_depth(&tokens)?;
    Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_expr()
        .map_err(|e| dialect.explain(e))
}

/// How deep the operators of one statement may nest: a few times less than what overflows an
/// 8 MiB stack in planning (about 10,000 `OR`s).
const MAX_OPERATOR_DEPTH: usize = 2_000;

/// What one set operation (`UNION`, …) counts towards [`MAX_OPERATOR_DEPTH`]: its tree is far
/// heavier to clone and plan (3,000 `UNION`s overflow 8 MiB in a release build, 350 in a debug
/// build), so at most 250 in a row.
const SET_OPERATION_DEPTH: usize = 8;

/// How long a chain of arithmetic (`a + b - c * …`) may be. Planning time grows with the cube
/// of such a chain's length: 400 integer `+`s take 13 s of CPU, 128 take 0.4 s, 64 take 0.03 s.
const MAX_ARITHMETIC_CHAIN: usize = 64;

/// Refuses a statement whose operators nest too deep to plan safely, before it is parsed.
/// sqlparser builds `a OR b OR …` and `SELECT … UNION SELECT …` in a loop, but cloning,
/// planning and dropping the tree recurse once per operator, and overflowing the stack aborts
/// the whole process. Counted on the tokens: the operators in a row at each level of
/// parentheses (a comma or a clause keyword starts a new expression), summed over the enclosing
/// levels. Arithmetic chains, slow to plan long before they are deep, have their own, lower
/// bound.
fn check_depth(tokens: &[TokenWithSpan]) -> Result<(), ParserError> {
    #[derive(Default)]
    struct Level {
        operators: usize,
        set_operations: usize,
        arithmetic: usize,
    }
    let mut levels = vec![Level::default()];
    let (mut depth, mut arithmetic) = (0usize, 0usize);
    for t in tokens {
        let nested = levels.len() > 1;
        let level = levels
            .last_mut()
            .expect("the statement's level is never popped");
        let mut end_arithmetic = true;
        match &t.token {
            Token::LParen | Token::LBracket | Token::LBrace => {
                levels.push(Level::default());
                continue;
            }
            Token::RParen | Token::RBracket | Token::RBrace if nested => {
                let inner = levels.pop().expect("more than one level");
                depth -= inner.operators + inner.set_operations;
                arithmetic -= inner.arithmetic;
                // `(a + b) + c`: the chain goes on around the parentheses.
                end_arithmetic = false;
            }
            Token::SemiColon => {
                levels = vec![Level::default()];
                (depth, arithmetic) = (0, 0);
                continue;
            }
            Token::Word(w) => match w.keyword {
                Keyword::UNION | Keyword::EXCEPT | Keyword::INTERSECT | Keyword::MINUS => {
                    level.set_operations += SET_OPERATION_DEPTH;
                    depth += SET_OPERATION_DEPTH;
                }
                Keyword::AND
                | Keyword::OR
                | Keyword::XOR
                | Keyword::IS
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::SIMILAR
                | Keyword::REGEXP
                | Keyword::RLIKE
                | Keyword::IN
                | Keyword::BETWEEN
                | Keyword::COLLATE
                | Keyword::AT => {
                    level.operators += 1;
                    depth += 1;
                }
                Keyword::DIV => {
                    level.operators += 1;
                    depth += 1;
                    level.arithmetic += 1;
                    arithmetic += 1;
                    end_arithmetic = false;
                }
                // A new expression starts: its operators are not in a row with the last's.
                Keyword::SELECT
                | Keyword::FROM
                | Keyword::WHERE
                | Keyword::GROUP
                | Keyword::HAVING
                | Keyword::QUALIFY
                | Keyword::ORDER
                | Keyword::LIMIT
                | Keyword::OFFSET
                | Keyword::ON
                | Keyword::USING
                | Keyword::JOIN
                | Keyword::SET
                | Keyword::VALUES
                | Keyword::CASE
                | Keyword::WHEN
                | Keyword::THEN
                | Keyword::ELSE
                | Keyword::END
                | Keyword::AS => {
                    depth -= level.operators;
                    level.operators = 0;
                }
                _ => end_arithmetic = false,
            },
            Token::Comma => {
                depth -= level.operators;
                level.operators = 0;
            }
            Token::Plus | Token::Minus | Token::Mul | Token::Div | Token::Mod => {
                level.operators += 1;
                depth += 1;
                level.arithmetic += 1;
                arithmetic += 1;
                end_arithmetic = false;
            }
            token if is_operator(token) => {
                level.operators += 1;
                depth += 1;
            }
            _ => end_arithmetic = false,
        }
        if end_arithmetic {
            let level = levels
                .last_mut()
                .expect("the statement's level is never popped");
            arithmetic -= level.arithmetic;
            level.arithmetic = 0;
        }
        let at = t.span.start;
        if depth > MAX_OPERATOR_DEPTH {
            return Err(ParserError::ParserError(format!(
                "the statement nests more than {MAX_OPERATOR_DEPTH} operators deep{at} (a \
                 UNION, EXCEPT or INTERSECT counts as {SET_OPERATION_DEPTH}): deeper than Basin \
                 plans safely; write long lists of values as `x IN (…)`, or split the statement"
            )));
        }
        if arithmetic > MAX_ARITHMETIC_CHAIN {
            return Err(ParserError::ParserError(format!(
                "the statement chains more than {MAX_ARITHMETIC_CHAIN} arithmetic operators in \
                 a row{at}: longer than Basin plans in reasonable time; split the calculation \
                 into steps (a subquery or a model)"
            )));
        }
    }
    Ok(())
}

/// Whether `token` is an operator: not a name, a literal, a separator or a bracket.
fn is_operator(token: &Token) -> bool {
    !matches!(
        token,
        Token::EOF
            | Token::Word(_)
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Placeholder(_)
            | Token::Whitespace(_)
            | Token::Comma
            | Token::SemiColon
            | Token::Period
            | Token::Colon
            | Token::LParen
            | Token::RParen
            | Token::LBracket
            | Token::RBracket
            | Token::LBrace
            | Token::RBrace
    )
}

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
        // Every expression the parser tries starts here. Running out surfaces as the one error
        // that sqlparser never backtracks from.
        let left = self.expressions_left.get();
        if left == 0 {
            return Some(Err(ParserError::RecursionLimitExceeded));
        }
        self.expressions_left.set(left - 1);
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
