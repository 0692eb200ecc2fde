//! `TABLESAMPLE BERNOULLI (p) | SYSTEM (p) [REPEATABLE (seed)]`: each row of the table is kept
//! with probability `p` percent.
//!
//! The sample is taken from the rows the principal may read: `t TABLESAMPLE … (p)` becomes
//! `(SELECT * FROM t WHERE <keep>) AS t`, reading `t` through its governed scan. Without a
//! seed a row is kept when `random()` says so; with `REPEATABLE (seed)` when a hash of the seed
//! and the row's visible values falls below `p` — the same rows on every run while the table
//! does not change. `SYSTEM` samples rows as `BERNOULLI` does (Basin reads no blocks it could
//! skip whole).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, Statement, TableAlias, TableFactor, TableSample, TableSampleKind,
    TableSampleMethod, TableSampleUnit, Value, VisitMut, VisitorMut,
};

use crate::{Result, SqlError};

/// The name of the function that decides which rows a `REPEATABLE` sample keeps.
pub(crate) const SAMPLE_FUNCTION: &str = "basin_sample";

/// Rewrites every `TABLESAMPLE` of the statement into a filtered subquery; `columns` gives the
/// columns of a table the statement names (the ones its governed scan shows).
pub(crate) fn rewrite(
    statement: &mut Statement,
    columns: impl Fn(&ObjectName) -> Option<Vec<String>>,
) -> Result<()> {
    struct Sampler<F> {
        columns: F,
        error: Option<SqlError>,
    }
    impl<F: Fn(&ObjectName) -> Option<Vec<String>>> VisitorMut for Sampler<F> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            let TableFactor::Table {
                name,
                alias,
                sample,
                ..
            } = factor
            else {
                return ControlFlow::Continue(());
            };
            let Some(kind) = sample.take() else {
                return ControlFlow::Continue(());
            };
            let (TableSampleKind::BeforeTableAlias(s) | TableSampleKind::AfterTableAlias(s)) = kind;
            let built = keep_condition(name, &s, &self.columns).and_then(|keep| {
                let sql = format!("SELECT * FROM {name} WHERE {keep}");
                let query = match crate::engine::parse(&sql)?.pop() {
                    Some(Statement::Query(q)) => q,
                    _ => return Err(SqlError::Invalid(format!("cannot sample {name}"))),
                };
                let alias = alias.clone().unwrap_or_else(|| TableAlias {
                    explicit: true,
                    name: name
                        .0
                        .last()
                        .and_then(|p| p.as_ident())
                        .cloned()
                        .unwrap_or_else(|| Ident::new(name.to_string())),
                    columns: vec![],
                    at: None,
                });
                Ok(TableFactor::Derived {
                    lateral: false,
                    subquery: query,
                    alias: Some(alias),
                    sample: None,
                })
            });
            match built {
                Ok(derived) => {
                    *factor = derived;
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    self.error = Some(e);
                    ControlFlow::Break(())
                }
            }
        }
    }
    let mut sampler = Sampler {
        columns,
        error: None,
    };
    let _ = statement.visit(&mut sampler);
    match sampler.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The SQL condition that keeps a row of the sample.
fn keep_condition(
    name: &ObjectName,
    sample: &TableSample,
    columns: &impl Fn(&ObjectName) -> Option<Vec<String>>,
) -> Result<String> {
    let usage = "write TABLESAMPLE BERNOULLI (percent) or SYSTEM (percent), optionally followed by REPEATABLE (seed)";
    if let Some(method) = &sample.name
        && !matches!(
            method,
            TableSampleMethod::Bernoulli | TableSampleMethod::System
        )
    {
        return Err(SqlError::Unsupported(format!(
            "TABLESAMPLE {method} on {name} is not supported; {usage}"
        )));
    }
    if sample.bucket.is_some() || sample.offset.is_some() {
        return Err(SqlError::Unsupported(format!(
            "TABLESAMPLE with BUCKET or OFFSET on {name} is not supported; {usage}"
        )));
    }
    let Some(quantity) = &sample.quantity else {
        return Err(SqlError::Invalid(format!(
            "TABLESAMPLE on {name} needs a percentage; {usage}"
        )));
    };
    if matches!(quantity.unit, Some(TableSampleUnit::Rows)) {
        return Err(SqlError::Unsupported(format!(
            "TABLESAMPLE … ROWS on {name} is not supported: sample a percentage, or use ORDER BY random() LIMIT n"
        )));
    }
    let percent = number(&quantity.value)
        .filter(|p| (0.0..=100.0).contains(p))
        .ok_or_else(|| {
            SqlError::Invalid(format!(
                "TABLESAMPLE on {name} takes a percentage from 0 to 100, not {}",
                quantity.value
            ))
        })?;
    let fraction = percent / 100.0;
    let Some(seed) = &sample.seed else {
        return Ok(format!("random() < {fraction:?}"));
    };
    let seed: i64 = match &seed.value.value {
        Value::Number(n, _) => n.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        SqlError::Invalid(format!(
            "REPEATABLE on {name} takes a whole number as its seed, not {}",
            seed.value
        ))
    })?;
    let columns = columns(name).unwrap_or_default();
    let arguments: Vec<String> = std::iter::once(format!("{seed}"))
        .chain(std::iter::once(format!("{fraction:?}")))
        .chain(
            columns
                .iter()
                .map(|c| format!("\"{}\"", c.replace('"', "\"\""))),
        )
        .collect();
    Ok(format!("{SAMPLE_FUNCTION}({})", arguments.join(", ")))
}

fn number(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::Nested(e) => number(e),
        _ => None,
    }
}

/// `basin_sample(seed, fraction, columns…)`: whether a hash of the seed and the row's values
/// falls below `fraction` of the hash range.
pub(crate) fn sample_function() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(Sample {
        signature: Signature::variadic_any(Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Sample {
    signature: Signature,
}

impl ScalarUDFImpl for Sample {
    fn name(&self) -> &str {
        SAMPLE_FUNCTION
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let (seed, fraction) = match (args.args.first(), args.args.get(1)) {
            (
                Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(s)))),
                Some(ColumnarValue::Scalar(ScalarValue::Float64(Some(f)))),
            ) => (*s, *f),
            _ => return exec_err!("{SAMPLE_FUNCTION} takes a seed and a fraction first"),
        };
        let arrays = args.args[2..]
            .iter()
            .map(|a| a.to_array(n))
            .collect::<DfResult<Vec<_>>>()?;
        let fields = arrays
            .iter()
            .map(|a| SortField::new(a.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields)?;
        let rows = converter.convert_columns(&arrays)?;
        let limit = fraction * u64::MAX as f64;
        let keep: BooleanArray = (0..n)
            .map(|i| {
                let mut h = DefaultHasher::new();
                seed.hash(&mut h);
                if !arrays.is_empty() {
                    rows.row(i).as_ref().hash(&mut h);
                }
                Some((h.finish() as f64) < limit)
            })
            .collect();
        debug_assert_eq!(keep.len(), n);
        Ok(ColumnarValue::Array(Arc::new(keep)))
    }
}
