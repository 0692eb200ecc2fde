//! Clear SQL errors through the CLI and REST: the failing statement of a script, overflow,
//! time travel and restore outside a table's history named by table, never by path.

use crate::*;

#[test]
fn cli_errors_name_the_statement_and_the_table() {
    let b = Basin::new();
    b.ok(&["init"]);
    b.ok(&["dataset", "create", "raw", "--layer", "source"]);
    b.ok(&["sql", "CREATE TABLE raw.t (id BIGINT, at TIMESTAMP)"]);
    let script = b.file(
        "script.sql",
        "INSERT INTO raw.t VALUES (1, '2026-01-01 00:00:00');\nINSERT INTO raw.t VALUES (2, 9.5);\nSELECT 1;",
    );
    let err = b.fails(&["sql", "-f", &script]);
    assert!(
        err.contains("statement 2 (INSERT INTO raw.t VALUES (2, 9.5)): ")
            && err.contains("cannot store 9.5 (DOUBLE) in column main.raw.t.at (TIMESTAMP)")
            && err.matches("cannot store").count() == 1,
        "{err}"
    );
    let err = b.fails(&["sql", "SELECT 9223372036854775807 + 1"]);
    assert!(err.contains("bigint out of range"), "{err}");
    for (args, says) in [
        (
            vec!["sql", "SELECT * FROM raw.t VERSION AS OF 99"],
            "table 'main.raw.t' has no version 99: its versions are 0 to 1",
        ),
        (
            vec!["table", "restore", "raw.t", "--version", "99"],
            "cannot restore table 'main.raw.t' to version 99: pick a version from 0 to 0",
        ),
    ] {
        let err = b.fails(&args);
        assert!(
            err.contains(says) && !err.contains("file://"),
            "{args:?}: {err}"
        );
    }
}

#[tokio::test]
async fn rest_errors_name_the_statement() {
    let (g, s) = crate::server::governance().await;
    let a = s
        .sql(&g.admin, "SELECT 1; SELECT 9223372036854775807 + 1")
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(
        a.text
            .contains("statement 2 (SELECT 9223372036854775807 + 1): bigint out of range"),
        "{}",
        a.text
    );
}
