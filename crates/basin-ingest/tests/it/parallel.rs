//! One file decoded on many threads gives exactly what one thread gives: the same rows in the
//! same order, the same bad rows with the same lines and reasons, whatever the quotes, line ends
//! and chunk sizes.

use arrow::compute::concat_batches;
use basin_ingest::{Decoded, Format, InputFile, ReadOptions, decode};
use proptest::prelude::*;

/// Decodes `text` as a file of `format` on one thread, and on `threads` threads with chunks of
/// `chunk_bytes`.
fn decoded_both(
    text: &str,
    format: Format,
    threads: usize,
    chunk_bytes: usize,
) -> (String, String) {
    let (_dir, file) = crate::input_file(text, format);
    (
        decoded(&file, 1, 4 << 20),
        decoded(&file, threads, chunk_bytes),
    )
}

fn decoded(file: &InputFile, threads: usize, chunk_bytes: usize) -> String {
    let opts = ReadOptions {
        threads,
        chunk_bytes,
        batch_rows: 7,
        ..Default::default()
    };
    match decode(std::slice::from_ref(file), &opts) {
        Err(e) => format!("error: {e}"),
        Ok(Decoded {
            schema,
            batches,
            bad_rows,
        }) => {
            let all = concat_batches(&schema, &batches).unwrap();
            format!(
                "{schema:?}\n{}\n{bad_rows:?}",
                basin_testkit::lines(&[all]).join("\n")
            )
        }
    }
}

/// A CSV field: plain, quoted (with doubled quotes, delimiters and line ends inside), a stray
/// quote, an unclosed quote, or not a number.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0..1000i64).prop_map(|n| n.to_string()),
        2 => "[a-z ]{0,6}",
        2 => "[a-z,\n]{0,6}".prop_map(|s| format!("\"{s}\"")),
        1 => "[a-z]{0,3}".prop_map(|s| format!("\"{s}\"\"{s}\"")),
        1 => Just("5 inch\"".to_string()),
        1 => Just("\"open".to_string()),
        1 => Just("x".to_string()),
    ]
}

/// A CSV file: a header, then rows of three fields (sometimes two), with `\n` or `\r\n` line
/// ends and blank lines.
fn csv() -> impl Strategy<Value = String> {
    let row = (
        prop::collection::vec(field(), 2..=3),
        prop_oneof![4 => Just("\n"), 1 => Just("\r\n"), 1 => Just("\n\n")],
    );
    prop::collection::vec(row, 0..60).prop_map(|rows| {
        let mut text = "id,name,amount\n".to_string();
        for (fields, end) in rows {
            text.push_str(&fields.join(","));
            text.push_str(end);
        }
        text
    })
}

/// An NDJSON file: objects, objects with a bad value, blank lines, lines that are not JSON.
fn ndjson() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        4 => (0..1000i64, "[a-z\"]{0,5}").prop_map(|(n, s)| format!("{{\"id\": {n}, \"name\": {}}}", serde_json::Value::from(s))),
        1 => Just("{\"id\": \"not a number\"}".to_string()),
        1 => Just(String::new()),
        1 => Just("{not json".to_string()),
        1 => Just("  {\"id\": 7}\r".to_string()),
        1 => Just("{\"name\": \"b\", \"id\": 8}".to_string()),
        1 => Just("{\"id\": 9, \"id\": 10}".to_string()),
    ];
    prop::collection::vec(line, 0..60).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn csv_on_many_threads_reads_as_on_one(text in csv(), chunk in 1usize..200, threads in 2usize..4) {
        let (one, many) = decoded_both(&text, Format::Csv, threads, chunk);
        prop_assert_eq!(one, many);
    }

    #[test]
    fn ndjson_on_many_threads_reads_as_on_one(text in ndjson(), chunk in 1usize..200, threads in 2usize..4) {
        let (one, many) = decoded_both(&text, Format::Ndjson, threads, chunk);
        prop_assert_eq!(one, many);
    }
}

/// A stray quote in an unquoted value misleads the framing: a later quoted value that spans
/// lines is cut in two, and the chunk that ends inside it hands over to one-thread reading.
#[test]
fn a_stray_quote_before_a_value_spanning_lines() {
    let text = "id,name,amount\n5 inch\",1,2\n\"abc\ndef\",1,2\n3,4,5\n";
    for chunk in 1..text.len() {
        let (one, many) = decoded_both(text, Format::Csv, 2, chunk);
        assert_eq!(one, many, "chunks of {chunk} bytes");
    }
}

/// A JSON object naming a field twice is a bad row, not a row with one column too long.
#[test]
fn a_json_field_named_twice_is_a_bad_row() {
    let text =
        "{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2, \"id\": 3}\n{\"name\": \"c\", \"id\": 4}\n";
    let (one, many) = decoded_both(text, Format::Ndjson, 2, 8);
    assert_eq!(one, many);
    assert!(one.contains("1|a\n4|c"), "{one}");
    assert!(
        one.contains("line: 2, reason: \"field 'id' appears twice\""),
        "{one}"
    );
}
