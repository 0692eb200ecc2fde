//! Type inference from text values, shared by CSV, JSON and partition folders, so that a value
//! inferred as a type always parses as that type when the rows are read.

use std::sync::Arc;

use arrow::compute::kernels::cast_utils::Parser;
use arrow::datatypes::{
    DataType, Date32Type, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit,
    TimestampMicrosecondType,
};

use crate::{IngestError, Result};

/// The timestamp type Basin reads text into (microseconds, UTC; naive text is taken as UTC).
pub(crate) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(basin_lake::types::UTC.into()))
}

/// The narrowest type that `value` (not empty, not the null marker) parses as.
pub(crate) fn infer_value(value: &str) -> DataType {
    if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
        DataType::Boolean
    } else if Int64Type::parse(value).is_some() {
        DataType::Int64
    } else if looks_numeric(value) && Float64Type::parse(value).is_some() {
        DataType::Float64
    } else if value.len() == 10 && Date32Type::parse(value).is_some() {
        DataType::Date32
    } else if value.len() >= 10
        && value.as_bytes()[4] == b'-'
        && TimestampMicrosecondType::parse(value).is_some()
    {
        timestamp_type()
    } else {
        DataType::Utf8
    }
}

/// Words like `nan` or `inf` parse as floats, but a column of them is text to people.
fn looks_numeric(value: &str) -> bool {
    value.bytes().any(|b| b.is_ascii_digit())
}

/// The type that holds values of both `a` and `b` (`None` = no value seen yet).
pub(crate) fn merge_types(a: Option<DataType>, b: &DataType) -> DataType {
    use DataType::*;
    let Some(a) = a else { return b.clone() };
    match (&a, b) {
        (x, y) if x == y => a,
        (Null, y) => y.clone(),
        (x, Null) => x.clone(),
        (Int64, Float64) | (Float64, Int64) => Float64,
        (Date32, Timestamp(..)) | (Timestamp(..), Date32) => timestamp_type(),
        _ => Utf8,
    }
}

/// A column name that SQL can use unquoted: lower-case, words joined by `_`, starting with a
/// letter (`Order ID` → `order_id`, `2nd` → `c_2nd`).
pub fn normalize_column_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut prev_lower_or_digit = false;
    for c in raw.trim().chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower_or_digit {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower_or_digit = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            prev_lower_or_digit = false;
        }
    }
    let trimmed = out.trim_end_matches('_');
    let mut name = if trimmed.is_empty() {
        "column".to_string()
    } else {
        trimmed.to_string()
    };
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "c_");
    }
    name.truncate(63);
    name
}

/// Normalized, unique column names for a header (`column_N` for blank ones).
pub(crate) fn header_names(raw: &[String]) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let name = if r.trim().is_empty() {
            format!("column_{}", i + 1)
        } else {
            normalize_column_name(r)
        };
        if let Some(j) = names.iter().position(|n| *n == name) {
            return Err(IngestError::Input(format!(
                "header columns {} ('{}') and {} ('{}') both become column '{name}'; rename one of them",
                j + 1,
                raw[j],
                i + 1,
                r
            )));
        }
        names.push(name);
    }
    Ok(names)
}

/// Union of schemas by column name, in first-seen order, with merged types.
pub(crate) fn merge_schemas(schemas: &[SchemaRef]) -> SchemaRef {
    let mut fields: Vec<(String, DataType)> = Vec::new();
    for s in schemas {
        for f in s.fields() {
            match fields.iter_mut().find(|(n, _)| n == f.name()) {
                Some((_, t)) => *t = merge_types(Some(t.clone()), f.data_type()),
                None => fields.push((f.name().clone(), f.data_type().clone())),
            }
        }
    }
    Arc::new(Schema::new(
        fields
            .into_iter()
            .map(|(n, t)| {
                Field::new(
                    n,
                    if t == DataType::Null {
                        DataType::Utf8
                    } else {
                        t
                    },
                    true,
                )
            })
            .collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_values() {
        assert_eq!(infer_value("42"), DataType::Int64);
        assert_eq!(infer_value("-4.5"), DataType::Float64);
        assert_eq!(infer_value("TRUE"), DataType::Boolean);
        assert_eq!(infer_value("2024-01-31"), DataType::Date32);
        assert_eq!(infer_value("2024-01-31T10:00:00Z"), timestamp_type());
        assert_eq!(infer_value("2024-01-31 10:00:00"), timestamp_type());
        assert_eq!(infer_value("nan"), DataType::Utf8);
        assert_eq!(infer_value("hello"), DataType::Utf8);
        assert_eq!(
            merge_types(Some(DataType::Int64), &DataType::Float64),
            DataType::Float64
        );
        assert_eq!(
            merge_types(Some(DataType::Int64), &DataType::Utf8),
            DataType::Utf8
        );
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize_column_name("Order ID"), "order_id");
        assert_eq!(normalize_column_name("orderId"), "order_id");
        assert_eq!(normalize_column_name("2nd value"), "c_2nd_value");
        assert_eq!(normalize_column_name("  price (€) "), "price");
        assert!(
            header_names(&["a".into(), "A".into()])
                .unwrap_err()
                .to_string()
                .contains("both become column 'a'")
        );
    }
}
