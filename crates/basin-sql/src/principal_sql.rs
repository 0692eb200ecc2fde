//! `current_user()` and `user_attribute('name')`: bound to the principal's values before planning,
//! in users' statements and in policy expressions alike.

use std::ops::ControlFlow;

use basin_catalog::access::Principal;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Statement, Value, VisitMut, VisitorMut,
};

use crate::{Result, SqlError};

/// The principal's name for the trusted operator (the CLI on a data dir).
pub const OPERATOR: &str = "operator";

struct Binder<'a> {
    principal: Option<&'a Principal>,
    error: Option<SqlError>,
}

impl VisitorMut for Binder<'_> {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(f) = expr else {
            return ControlFlow::Continue(());
        };
        let name = f.name.to_string().to_ascii_lowercase();
        let value = match name.as_str() {
            "current_user" | "session_user" | "user" if no_args(&f.args) => {
                Value::SingleQuotedString(
                    self.principal
                        .map_or(OPERATOR.to_string(), |p| p.name.clone()),
                )
            }
            "user_attribute" => match single_string(&f.args) {
                Some(key) => self
                    .principal
                    .and_then(|p| p.attributes.get(&key).cloned())
                    .map_or(Value::Null, Value::SingleQuotedString),
                None => {
                    self.error = Some(SqlError::Invalid(
                        "user_attribute takes one quoted attribute name, e.g. user_attribute('region')".into(),
                    ));
                    return ControlFlow::Break(());
                }
            },
            _ => return ControlFlow::Continue(()),
        };
        *expr = Expr::value(value);
        ControlFlow::Continue(())
    }
}

fn no_args(args: &FunctionArguments) -> bool {
    match args {
        FunctionArguments::None => true,
        FunctionArguments::List(l) => l.args.is_empty(),
        FunctionArguments::Subquery(_) => false,
    }
}

fn single_string(args: &FunctionArguments) -> Option<String> {
    let FunctionArguments::List(l) = args else {
        return None;
    };
    match l.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))] => {
            v.value.clone().into_string()
        }
        _ => None,
    }
}

/// Binds the principal's functions in a statement.
pub(crate) fn bind_statement(
    statement: &mut Statement,
    principal: Option<&Principal>,
) -> Result<()> {
    let mut binder = Binder {
        principal,
        error: None,
    };
    let _ = statement.visit(&mut binder);
    binder.error.map_or(Ok(()), Err)
}

/// Binds the principal's functions in a SQL expression (a row filter or mask).
pub(crate) fn bind_principal(sql: &str, principal: Option<&Principal>) -> Result<String> {
    let mut expr = crate::dialect::parse_expr(sql).map_err(|e| {
        SqlError::Invalid(format!("policy expression '{sql}' is not valid SQL: {e}"))
    })?;
    let mut binder = Binder {
        principal,
        error: None,
    };
    let _ = expr.visit(&mut binder);
    match binder.error {
        Some(e) => Err(e),
        None => Ok(expr.to_string()),
    }
}
