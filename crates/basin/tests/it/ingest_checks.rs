//! Through the CLI: an unclosed CSV quote is a bad row, a primary key refuses a second load of
//! the same file, and a dataset tagged `pii` stores its text columns encrypted.

use serde_json::json;

use crate::*;

#[test]
fn unclosed_quotes_keys_and_pii_datasets_through_the_cli() {
    let b = Basin::new();
    b.ok(&["init"]);
    b.ok(&["dataset", "create", "raw", "--layer", "source"]);

    // Line 2 opens a quote that is never closed: a bad row, not a value swallowing lines 3-4.
    let csv = b.file("q.csv", "id,note\n1,\"a\n2,b\n3,c\n");
    let err = b.fails(&["ingest", "raw.t", &csv, "--key", "id"]);
    assert!(
        err.contains(
            "q.csv:2: column 'note': quoted field starts on this line and is never closed"
        ),
        "{err}"
    );
    b.ok(&[
        "ingest",
        "raw.t",
        &csv,
        "--key",
        "id",
        "--max-bad-rows",
        "1",
    ]);
    assert_eq!(
        b.json("SELECT id, note FROM raw.t ORDER BY id"),
        vec![json!({"id": 2, "note": "b"}), json!({"id": 3, "note": "c"})]
    );

    // The same file again: the key refuses it, naming keys.
    let err = b.fails(&["ingest", "raw.t", &csv, "--max-bad-rows", "1"]);
    assert!(
        err.contains("2 row(s) would duplicate keys already in 'main.raw.t', e.g. (id=2), (id=3); load with mode upsert (--mode upsert)"),
        "{err}"
    );
    assert_eq!(
        b.json("SELECT count(*) AS n FROM raw.t"),
        vec![json!({"n": 2})]
    );

    // A dataset tagged pii: its text columns are stored as tokens.
    b.ok(&[
        "dataset", "create", "crm", "--layer", "source", "--tag", "pii",
    ]);
    let people = b.file("people.csv", "id,email\n1,ada@example.org\n");
    b.ok(&["ingest", "crm.people", &people]);
    let mut clear = Vec::new();
    for file in basin_testkit::fixtures::files_under(&b.data_dir().join("hubs/main/crm")) {
        if file.to_string_lossy().contains("_delta_log") {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        if bytes.windows(15).any(|w| w == b"ada@example.org") {
            clear.push(file);
        }
    }
    assert!(clear.is_empty(), "clear values on disk: {clear:?}");
    assert_eq!(
        b.json("SELECT id, email FROM crm.people"),
        vec![json!({"id": 1, "email": "ada@example.org"})],
        "the operator reads them in clear"
    );
}
