//! Query results as text: one line per row, cells joined by `|`, `NULL` as `null`.

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use basin_sql::Engine;

/// The rows of `batches` as `a|b` text lines, in order.
pub fn lines(batches: &[RecordBatch]) -> Vec<String> {
    let mut lines = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(r) {
                        return "null".to_string();
                    }
                    let c = arrow::compute::cast(c, &DataType::Utf8).unwrap();
                    c.as_any()
                        .downcast_ref::<StringArray>()
                        .unwrap()
                        .value(r)
                        .to_string()
                })
                .collect();
            lines.push(cells.join("|"));
        }
    }
    lines
}

/// Runs `sql` (it must succeed) and returns its rows as `a|b` text, in the order the query
/// returns them.
pub async fn rows(engine: &Engine, sql: &str) -> Vec<String> {
    let out = engine
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    lines(&out.batches)
}

/// Runs `sql`, which must fail, and returns the error message.
pub async fn error(engine: &Engine, sql: &str) -> String {
    match engine.execute(sql).await {
        Ok(_) => panic!("expected an error from: {sql}"),
        Err(e) => e.to_string(),
    }
}
