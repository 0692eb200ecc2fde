use std::any::TypeId;
use std::cell::{Cell, OnceCell};

use datafusion::sql::sqlparser::ast::{Expr, Statement};
use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// DataFusion's generic SQL plus Delta time travel (`FROM t VERSION AS OF 3`,
/// `FROM t TIMESTAMP AS OF '2026-01-01T00:00:00Z'`). Identifiers may be quoted with `"` or `` ` ``.
///
/// A parser in this dialect may try only so many expressions for each token it has reached
/// (see [`BasinDialect::parse_prefix`]). sqlparser backtracks, and some malformed statements
/// would otherwise keep a core busy for hours: `SELECT a.a.a.….a[(` takes time exponential in
/// the length of the dotted name.
#[derive(Debug, Default)]
pub(crate) struct BasinDialect {
    expressions_tried: Cell<usize>,
    furthest_token: Cell<usize>,
    gave_up: Cell<bool>,
    /// For each token index, how many tokens before it are not whitespace or comments: padding
    /// buys no budget.
    significant_before: OnceCell<Vec<usize>>,
}

/// Expressions a parser may try: this many, plus [`EXPRESSIONS_PER_TOKEN`] for each token it
/// has reached (whitespace and comments aside). A statement that parses forward needs about one
/// per token.
const EXPRESSIONS_BASE: usize = 4_096;
const EXPRESSIONS_PER_TOKEN: usize = 16;

impl BasinDialect {
    /// `error`, explained when the parser gave up backtracking.
    pub(crate) fn explain(&self, error: ParserError) -> ParserError {
        if !self.gave_up.get() {
            return error;
        }
        ParserError::ParserError(
            "the statement takes too long to parse (the parser backtracked too often); it is \
             probably malformed: check its brackets, parentheses and dotted names"
                .into(),
        )
    }

    /// Counts an expression the parser starts at token `at`; false once it has tried too many.
    fn try_expression(&self, at: usize) -> bool {
        let at = self
            .significant_before
            .get()
            .and_then(|s| s.get(at).copied())
            .unwrap_or(at);
        let furthest = self.furthest_token.get().max(at);
        self.furthest_token.set(furthest);
        let tried = self.expressions_tried.get() + 1;
        self.expressions_tried.set(tried);
        if tried > EXPRESSIONS_BASE + EXPRESSIONS_PER_TOKEN * furthest {
            self.gave_up.set(true);
        }
        !self.gave_up.get()
    }
}

/// A parser for `sql` in `dialect`, once the statement's shape is checked ([`check_depth`]).
pub(crate) fn bounded_parser<'a>(
    dialect: &'a BasinDialect,
    sql: &str,
) -> Result<Parser<'a>, ParserError> {
    let tokens = Tokenizer::new(dialect, sql).tokenize_with_location()?;
    check_depth(&tokens)?;
    let significant_before = tokens
        .iter()
        .scan(0, |n, t| {
            let before = *n;
            *n += usize::from(!matches!(t.token, Token::Whitespace(_)));
            Some(before)
        })
        .collect();
    let _ = dialect.significant_before.set(significant_before);
    Ok(Parser::new(dialect).with_tokens_with_locations(tokens))
}

/// Parses SQL text into statements, in a bounded time and to a bounded depth.
pub(crate) fn parse_statements(sql: &str) -> Result<Vec<Statement>, ParserError> {
    let dialect = BasinDialect::default();
    bounded_parser(&dialect, sql)?
        .parse_statements()
        .map_err(|e| dialect.explain(e))
}

/// Parses one SQL expression, in a bounded time and to a bounded depth.
pub(crate) fn parse_expr(sql: &str) -> Result<Expr, ParserError> {
    let dialect = BasinDialect::default();
    bounded_parser(&dialect, sql)?
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

/// How many tables (or subqueries) one FROM clause may join: planning time grows with the cube
/// of that number (100: 0.4 s, 150: 1.3 s, 300: 29 s).
const MAX_RELATIONS: usize = 100;

/// How many arithmetic operators (`+ - * / %`) one arithmetic expression may hold, parenthesized
/// parts included. Planning time grows faster than the square of that: 400 integer `+`s in a row
/// take 13 s of CPU, 64 parenthesized sums of 60 take 10 s, 128 in a row 0.5 s.
const MAX_ARITHMETIC: usize = 128;

/// Refuses a statement whose operators nest too deep to plan safely, before it is parsed.
/// sqlparser builds `a OR b OR …` and `SELECT … UNION SELECT …` in a loop, but cloning,
/// planning and dropping the tree recurse once per operator, and overflowing the stack aborts
/// the whole process. Counted on the tokens, conservatively (as if all operators bound alike):
/// the depth of the chains of operators at each level of parentheses and `CASE … END` (a comma
/// or a clause keyword starts a new chain), summed over the enclosing levels. Arithmetic, slow
/// to plan long before it is deep, is bounded by its size.
fn check_depth(tokens: &[TokenWithSpan]) -> Result<(), ParserError> {
    let mut shape = Shape::default();
    let mut previous = &Token::EOF;
    for t in tokens {
        let token = &t.token;
        if matches!(token, Token::Whitespace(_)) {
            continue;
        }
        let after = std::mem::replace(&mut previous, token);
        let at = t.span.start;
        if is_keyword(token, Keyword::INTERVAL) && is_keyword(after, Keyword::INTERVAL) {
            // sqlparser nests these without its recursion limit: 3,000 overflow the stack.
            return Err(ParserError::ParserError(format!(
                "INTERVAL INTERVAL{at}: an interval's value is a string or a number, as in \
                 INTERVAL '1' DAY"
            )));
        }
        if *token == Token::SemiColon {
            shape = Shape::default();
            continue;
        }
        if opens(token) {
            if *token == Token::LBracket && ends_operand(after) {
                // `a[1][2]…`: each subscript is a call around the operand.
                shape.change(Level::add_operator);
            }
            shape.levels.push(Level::default());
            continue;
        }
        if closes(token, after) {
            shape.close();
        } else {
            shape.change(|level| level.add(token, after));
        }

        if shape.depth > MAX_OPERATOR_DEPTH {
            return Err(ParserError::ParserError(format!(
                "the statement nests more than {MAX_OPERATOR_DEPTH} operators deep{at} (a \
                 UNION, EXCEPT or INTERSECT counts as {SET_OPERATION_DEPTH}): deeper than Basin \
                 plans safely; write long lists of values as `x IN (…)`, or split the statement"
            )));
        }
        if shape.current().relations > MAX_RELATIONS {
            return Err(ParserError::ParserError(format!(
                "the statement joins more than {MAX_RELATIONS} tables in one FROM{at}: more than \
                 Basin plans in reasonable time; join in steps (subqueries or models)"
            )));
        }
        if shape.arithmetic > MAX_ARITHMETIC {
            return Err(ParserError::ParserError(format!(
                "the statement has an arithmetic expression of more than {MAX_ARITHMETIC} \
                 operators{at}: larger than Basin plans in reasonable time; split the \
                 calculation into steps (a subquery or a model)"
            )));
        }
    }
    Ok(())
}

/// The open levels of a statement in [`check_depth`], and their sums.
struct Shape {
    levels: Vec<Level>,
    depth: usize,
    arithmetic: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            levels: vec![Level::default()],
            depth: 0,
            arithmetic: 0,
        }
    }
}

impl Shape {
    fn current(&self) -> &Level {
        self.levels
            .last()
            .expect("the statement's level is never closed")
    }

    /// Changes the innermost level, keeping the sums.
    fn change(&mut self, f: impl FnOnce(&mut Level)) {
        let level = self
            .levels
            .last_mut()
            .expect("the statement's level is never closed");
        let before = (level.depth(), level.arithmetic);
        f(level);
        self.depth = self.depth - before.0 + level.depth();
        self.arithmetic = self.arithmetic - before.1 + level.arithmetic;
    }

    /// Closes the innermost level (never the statement's): it becomes an operand of the next.
    fn close(&mut self) {
        if self.levels.len() == 1 {
            return;
        }
        let inner = self.levels.pop().expect("more than one level");
        self.depth -= inner.depth();
        self.arithmetic -= inner.arithmetic;
        self.change(|level| level.add_group(&inner));
    }
}

/// One level of parentheses (or `CASE … END`) in [`check_depth`].
#[derive(Default)]
struct Level {
    /// The operators in a row so far.
    operators: usize,
    /// How much deeper than `operators` the chain's deepest parenthesized operand reaches: an
    /// operand of depth d after k operators is under the operators after it, n - k of n.
    deeper: usize,
    set_operations: usize,
    /// The deepest this level has been, for the level around it.
    peak: usize,
    /// The arithmetic operators of the current arithmetic expression.
    arithmetic: usize,
    /// Whether the level is in a FROM clause, and the tables (or subqueries) it joins.
    in_from: bool,
    relations: usize,
}

impl Level {
    fn depth(&self) -> usize {
        self.operators + self.deeper + self.set_operations
    }

    /// The token `token`, which follows `after`.
    fn add(&mut self, token: &Token, after: &Token) {
        let keyword = match token {
            Token::Word(w) => Some(w.keyword),
            _ => None,
        };
        let is_distinct_from =
            keyword == Some(Keyword::FROM) && is_keyword(after, Keyword::DISTINCT);
        match keyword {
            Some(Keyword::FROM) if !is_distinct_from => (self.in_from, self.relations) = (true, 1),
            Some(Keyword::JOIN) if self.in_from => self.relations += 1,
            Some(k) if ENDS_FROM.contains(&k) => self.in_from = false,
            None if self.in_from && *token == Token::Comma => self.relations += 1,
            _ => {}
        }
        if is_distinct_from {
            // `a IS DISTINCT FROM b`: one operator, counted at `IS`.
        } else if matches!(
            keyword,
            Some(Keyword::UNION | Keyword::EXCEPT | Keyword::INTERSECT | Keyword::MINUS)
        ) {
            self.set_operations += SET_OPERATION_DEPTH;
            self.arithmetic = 0;
        } else if matches!(token, Token::Comma)
            || (keyword.is_some_and(|k| STARTS_AN_EXPRESSION.contains(&k)) && ends_operand(after))
        {
            (self.operators, self.deeper, self.arithmetic) = (0, 0, 0);
        } else if matches!(
            token,
            Token::Plus | Token::Minus | Token::Mul | Token::Div | Token::Mod
        ) || keyword == Some(Keyword::DIV)
        {
            self.operators += 1;
            self.arithmetic += 1;
        } else if keyword.is_some_and(|k| BINDS_LOOSER_THAN_ARITHMETIC.contains(&k))
            || matches!(
                token,
                Token::Eq
                    | Token::DoubleEq
                    | Token::Neq
                    | Token::Lt
                    | Token::Gt
                    | Token::LtEq
                    | Token::GtEq
                    | Token::Spaceship
            )
        {
            self.operators += 1;
            self.arithmetic = 0;
        } else if is_operator(token) || keyword.is_some_and(|k| OTHER_OPERATORS.contains(&k)) {
            self.operators += 1;
        }
        self.peak = self.peak.max(self.depth());
    }

    fn add_operator(&mut self) {
        self.operators += 1;
        self.peak = self.peak.max(self.depth());
    }

    /// A closed group, `( … )` or `CASE … END`: an operand of this level's chain, and part of its
    /// arithmetic expression.
    fn add_group(&mut self, inner: &Level) {
        self.deeper = self.deeper.max(inner.peak.saturating_sub(self.operators));
        self.arithmetic += inner.arithmetic;
        self.peak = self.peak.max(self.depth());
    }
}

/// Keywords after which a new expression starts: its operators are not in a row with the last.
const STARTS_AN_EXPRESSION: [Keyword; 18] = [
    Keyword::SELECT,
    Keyword::FROM,
    Keyword::WHERE,
    Keyword::GROUP,
    Keyword::HAVING,
    Keyword::QUALIFY,
    Keyword::ORDER,
    Keyword::LIMIT,
    Keyword::OFFSET,
    Keyword::ON,
    Keyword::USING,
    Keyword::JOIN,
    Keyword::SET,
    Keyword::VALUES,
    Keyword::WHEN,
    Keyword::THEN,
    Keyword::ELSE,
    Keyword::AS,
];

/// Keyword operators that bind as tight as arithmetic or tighter.
const OTHER_OPERATORS: [Keyword; 5] = [
    Keyword::COLLATE,
    Keyword::AT,
    Keyword::OVERLAPS,
    Keyword::OPERATOR,
    Keyword::MEMBER,
];

/// Keywords that end a FROM clause.
const ENDS_FROM: [Keyword; 13] = [
    Keyword::SELECT,
    Keyword::WHERE,
    Keyword::GROUP,
    Keyword::HAVING,
    Keyword::QUALIFY,
    Keyword::WINDOW,
    Keyword::ORDER,
    Keyword::LIMIT,
    Keyword::OFFSET,
    Keyword::UNION,
    Keyword::EXCEPT,
    Keyword::INTERSECT,
    Keyword::SET,
];

/// Keyword operators that end an arithmetic expression (`a + b = c`, `… AND …`).
const BINDS_LOOSER_THAN_ARITHMETIC: [Keyword; 12] = [
    Keyword::AND,
    Keyword::OR,
    Keyword::XOR,
    Keyword::NOT,
    Keyword::IS,
    Keyword::LIKE,
    Keyword::ILIKE,
    Keyword::SIMILAR,
    Keyword::REGEXP,
    Keyword::RLIKE,
    Keyword::IN,
    Keyword::BETWEEN,
];

fn opens(token: &Token) -> bool {
    matches!(token, Token::LParen | Token::LBracket | Token::LBrace)
        || is_keyword(token, Keyword::CASE)
}

/// Whether `token` closes a level; `END` does after an operand (elsewhere it is a name).
fn closes(token: &Token, after: &Token) -> bool {
    matches!(token, Token::RParen | Token::RBracket | Token::RBrace)
        || (is_keyword(token, Keyword::END) && ends_operand(after))
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword)
}

/// Whether `token` can end an operand, so that a keyword after it is a keyword, not a name
/// (`WHERE on OR on`: a column named `on`).
fn ends_operand(token: &Token) -> bool {
    match token {
        Token::Word(w) => {
            let k = w.keyword;
            !(BINDS_LOOSER_THAN_ARITHMETIC.contains(&k)
                || OTHER_OPERATORS.contains(&k)
                || matches!(k, Keyword::DISTINCT | Keyword::OF))
        }
        Token::RParen | Token::RBracket | Token::RBrace => true,
        Token::EOF
        | Token::Comma
        | Token::SemiColon
        | Token::Period
        | Token::Colon
        | Token::LParen
        | Token::LBracket
        | Token::LBrace => false,
        other => !is_operator(other),
    }
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
        // Every expression the parser tries starts here. Giving up surfaces as the one error
        // that sqlparser never backtracks from.
        if !self.try_expression(parser.get_current_index()) {
            return Some(Err(ParserError::RecursionLimitExceeded));
        }
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
