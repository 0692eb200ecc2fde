//! Which Arrow types a Delta table stores, and how Basin names them to people.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};

/// The time zone of every timestamp Basin stores (Delta `timestamp`, microseconds since epoch).
pub const UTC: &str = "UTC";

/// The Delta-storable type closest to `dt`: strings, binaries and lists lose their
/// view/large variants, unsigned integers move to the next signed size, all timestamps become
/// microseconds in UTC (naive ones are taken as UTC), `NULL` columns become strings.
pub fn storable(dt: &DataType) -> DataType {
    use DataType::*;
    match dt {
        Utf8View | LargeUtf8 | Null => Utf8,
        BinaryView | LargeBinary | FixedSizeBinary(_) => Binary,
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 | UInt64 => Int64,
        Float16 => Float32,
        Date64 => Date32,
        Timestamp(_, _) => Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        Dictionary(_, value) => storable(value),
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            List(storable_field(f))
        }
        Struct(fields) => Struct(fields.iter().map(storable_field).collect::<Fields>()),
        other => other.clone(),
    }
}

fn storable_field(f: &FieldRef) -> FieldRef {
    Arc::new(Field::new(f.name(), storable(f.data_type()), true))
}

/// `schema` with every field storable and nullable.
pub fn storable_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), storable(f.data_type()), true))
            .collect::<Vec<_>>(),
    ))
}

/// Name, SQL type and nullability of each column, as catalogs list them.
pub fn describe(schema: &Schema) -> Vec<(String, String, bool)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), sql_name(f.data_type()), f.is_nullable()))
        .collect()
}

/// Whether every value of `from` fits `to` without loss worth a warning: the widenings Basin
/// applies on its own (to a table's column or to incoming data).
pub fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to {
        return true;
    }
    let int_rank = |t: &DataType| match t {
        Int8 => Some(1),
        Int16 => Some(2),
        Int32 => Some(3),
        Int64 => Some(4),
        _ => None,
    };
    match (from, to) {
        (a, b) if int_rank(a).is_some() && int_rank(b).is_some() => int_rank(a) < int_rank(b),
        (Float32, Float64) => true,
        (a, Float64) if int_rank(a).is_some() => true,
        _ => false,
    }
}

/// The SQL spelling of a type, as shown in listings and error messages.
pub fn sql_name(dt: &DataType) -> String {
    use DataType::*;
    match dt {
        Boolean => "BOOLEAN".into(),
        Int8 => "TINYINT".into(),
        Int16 => "SMALLINT".into(),
        Int32 => "INT".into(),
        Int64 => "BIGINT".into(),
        UInt8 | UInt16 | UInt32 | UInt64 => format!("{dt} (unsigned)").to_uppercase(),
        Float16 | Float32 => "FLOAT".into(),
        Float64 => "DOUBLE".into(),
        Utf8 | LargeUtf8 | Utf8View => "VARCHAR".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "BINARY".into(),
        Date32 | Date64 => "DATE".into(),
        Timestamp(_, Some(_)) => "TIMESTAMP".into(),
        Timestamp(_, None) => "TIMESTAMP_NTZ".into(),
        Decimal128(p, s) | Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        List(f) | LargeList(f) | FixedSizeList(f, _) => {
            format!("ARRAY<{}>", sql_name(f.data_type()))
        }
        Struct(fields) => format!(
            "STRUCT<{}>",
            fields
                .iter()
                .map(|f| format!("{} {}", f.name(), sql_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Map(f, _) => format!("MAP<{}>", sql_name(f.data_type())),
        Null => "NULL".into(),
        other => other.to_string().to_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_rules() {
        assert!(widens(&DataType::Int32, &DataType::Int64));
        assert!(widens(&DataType::Float32, &DataType::Float64));
        assert!(widens(&DataType::Int64, &DataType::Float64));
        assert!(!widens(&DataType::Int64, &DataType::Int32));
        assert!(!widens(&DataType::Float64, &DataType::Int64));
        assert!(!widens(&DataType::Utf8, &DataType::Int64));
    }

    #[test]
    fn storable_types() {
        let ts = storable(&DataType::Timestamp(TimeUnit::Nanosecond, None));
        assert_eq!(
            ts,
            DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
        );
        assert_eq!(storable(&DataType::Utf8View), DataType::Utf8);
        assert_eq!(sql_name(&DataType::Int64), "BIGINT");
    }
}
