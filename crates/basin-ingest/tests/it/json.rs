//! JSON values as they land in columns: escaped and plain text alike, arrays and objects as
//! compact JSON in text columns, numbers by the column's type, and bad rows shown as JSON.

use arrow::compute::concat_batches;
use basin_ingest::{Decoded, Format, ReadOptions, decode};

fn decoded(text: &str, format: Format) -> (Vec<String>, Vec<String>) {
    let (_dir, file) = crate::input_file(text, format);
    let Decoded {
        schema,
        batches,
        bad_rows,
    } = decode(&[file], &ReadOptions::default()).unwrap();
    let all = concat_batches(&schema, &batches).unwrap();
    let bad = bad_rows
        .iter()
        .map(|b| format!("{}: {} in {}", b.line, b.reason, b.raw))
        .collect();
    (basin_testkit::lines(&[all]), bad)
}

#[test]
fn text_numbers_and_nested_values_land_as_written() {
    let lines = [
        r#"{"id": 1, "name": "plain", "tags": ["a", {"b": 1}], "n": 1.5}"#,
        r#"{"id": 2, "name": "say \"hi\"\n\u00e9", "tags": {"k": [1, 2]}, "n": 2}"#,
        r#"{"name": "ünïcode", "id": 3, "tags": "just text", "n": null}"#,
        r#"{"id": 4, "n": 1, "id": 5}"#,
        r#"[1, 2]"#,
        r#"{"id": 5, "name": 7, "tags": true, "n": -0.25}"#,
    ];
    let text = lines.join("\n");
    let ndjson = decoded(&text, Format::Ndjson);
    assert_eq!(
        ndjson.0,
        [
            "1|plain|[\"a\",{\"b\":1}]|1.5",
            "2|say \"hi\"\né|{\"k\":[1,2]}|2.0",
            "3|ünïcode|just text|null",
            "5|7|true|-0.25",
        ]
    );
    assert_eq!(
        ndjson.1,
        [
            "4: field 'id' appears twice in {\"id\":4,\"n\":1,\"id\":5}",
            "5: expected a JSON object in [1,2]",
        ]
    );
    // The same records as one JSON array read the same (bad rows by record number).
    let array = decoded(&format!("[{}]", lines.join(",\n")), Format::Json);
    assert_eq!(array.0, ndjson.0);
    assert_eq!(array.1.len(), 2);
}
