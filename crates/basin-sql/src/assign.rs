//! Assignment casts: a value written to a column takes the column's type, as SQL assignment
//! does, or the write fails with an error that names the table, the column and the value.
//!
//! Arrow's casts are broader than SQL's assignment: a number cast to a TIMESTAMP becomes
//! microseconds since 1970, a number too large for a column becomes NULL under a "safe" cast.
//! [`assign`] refuses the first and reports the second, for INSERT, UPDATE and MERGE alike.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::CastOptions;
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `value` as it will be stored in `column` (`hub.dataset.table.column`) of type `target`.
pub(crate) fn assign(value: Expr, column: &str, target: &DataType) -> Expr {
    ScalarUDF::new_from_impl(Assign {
        column: column.to_string(),
        target: target.clone(),
        signature: Signature::any(1, Volatility::Immutable),
    })
    .call(vec![value])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Assign {
    column: String,
    target: DataType,
    signature: Signature,
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric()
}

fn is_time(t: &DataType) -> bool {
    t.is_temporal()
}

/// Whether SQL assignment converts a `from` value to a `to` column (PostgreSQL's assignment
/// casts): numbers to numbers, anything from and to text, times to times. Not numbers to
/// times or booleans, nor back.
pub(crate) fn assignable(from: &DataType, to: &DataType) -> bool {
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    from == to
        || matches!(from, DataType::Null)
        || text(from)
        || text(to)
        || (is_number(from) && is_number(to))
        || (is_time(from) && is_time(to))
        || !(is_number(from) || is_time(from) || matches!(from, DataType::Boolean))
        || !(is_number(to) || is_time(to) || matches!(to, DataType::Boolean))
}

/// Refuses, before anything runs, a value whose type SQL assignment does not convert to its
/// column's (`value` is the SQL text of the value).
pub(crate) fn check_assignable(
    value: &str,
    from: &DataType,
    column: &str,
    target: &DataType,
) -> datafusion::common::Result<()> {
    if assignable(from, target) {
        return Ok(());
    }
    let probe = Assign {
        column: column.to_string(),
        target: target.clone(),
        signature: Signature::any(1, Volatility::Immutable),
    };
    Err(DataFusionError::Execution(format!(
        "cannot store {value} ({}) in column {column} ({}): {}",
        crate::sql_type_name(from),
        crate::sql_type_name(target),
        probe.hint()
    )))
}

impl Assign {
    fn refuse(&self, input: &ArrayRef, row: usize, why: &str) -> DataFusionError {
        let value = ScalarValue::try_from_array(input, row)
            .map(|v| match v {
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)) => format!("'{s}'"),
                other => other.to_string(),
            })
            .unwrap_or_else(|_| "?".into());
        let target = crate::sql_type_name(&self.target);
        DataFusionError::Execution(format!(
            "cannot store {value} ({}) in column {} ({target}): {why}",
            crate::sql_type_name(input.data_type()),
            self.column,
        ))
    }

    fn hint(&self) -> String {
        let target = crate::sql_type_name(&self.target);
        match &self.target {
            DataType::Timestamp(..) => {
                "write a time such as '2026-01-01 12:00:00' (or CAST the value to TIMESTAMP)".into()
            }
            DataType::Date32 | DataType::Date64 => "write a date such as '2026-01-01'".into(),
            t if t.is_integer()
                || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) =>
            {
                format!(
                    "the value does not fit {target}; write a smaller value or widen the column"
                )
            }
            _ => format!("write a value of type {target}"),
        }
    }
}

impl ScalarUDFImpl for Assign {
    fn name(&self) -> &str {
        "basin_assign"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    /// Named as its value, so that the written column keeps the value's name until aliased.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(args
            .first()
            .map(|a| a.schema_name().to_string())
            .unwrap_or_default())
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.target.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = args.args[0].to_array(args.number_rows.max(1))?;
        let from = input.data_type().clone();
        if from == DataType::Null {
            let nulls = arrow::array::new_null_array(&self.target, input.len());
            return Ok(if scalar {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&nulls, 0)?)
            } else {
                ColumnarValue::Array(nulls)
            });
        }
        if !assignable(&from, &self.target) {
            return match (0..input.len()).find(|&i| input.is_valid(i)) {
                Some(row) => Err(self.refuse(&input, row, &self.hint())),
                // Only NULLs: there is nothing to refuse.
                None => Ok(ColumnarValue::Array(arrow::array::new_null_array(
                    &self.target,
                    input.len(),
                ))),
            };
        }
        // SQL rounds a fractional number assigned to an integer column (half away from zero,
        // as PostgreSQL's NUMERIC and DuckDB do); arrow would truncate.
        let source: ArrayRef = if from.is_floating() && self.target.is_integer() {
            let f = arrow::compute::cast(&input, &DataType::Float64)?;
            Arc::new(
                f.as_primitive::<Float64Type>()
                    .unary::<_, Float64Type>(f64::round),
            )
        } else {
            input.clone()
        };
        let options = CastOptions {
            safe: true,
            ..Default::default()
        };
        let cast = arrow::compute::cast_with_options(&source, &self.target, &options)?;
        // A safe cast turns what does not fit into NULL: the first such value is the error.
        if cast.null_count() != source.null_count()
            && let Some(row) = (0..source.len()).find(|&i| source.is_valid(i) && cast.is_null(i))
        {
            return Err(self.refuse(&input, row, &self.hint()));
        }
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&cast, 0)?)
        } else {
            ColumnarValue::Array(cast)
        })
    }
}
