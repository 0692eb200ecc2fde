//! A quote that is never closed is a bad row on its line, not a value that swallows the rows
//! after it.

use crate::*;

#[tokio::test]
async fn an_unclosed_quote_is_a_bad_row_and_the_rows_after_it_load() {
    let hub = Hub::new().await;
    // Line 3 opens a quote that the quote of line 5 seems to close; line 8 lacks a field.
    let csv = "id,name,amount\n1,a,10\n2,\"b,20\n3,c,30\n4,\"d\",40\n5,\"multi\nline\",50\n6,f\n";
    let path = hub.file("quotes.csv", csv.as_bytes());

    // Refused by default, naming the line and the column.
    let err = hub.load("raw.q", &[&path], |_| {}).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(
            "quotes.csv:3: column 'name': quoted field starts on this line and is never closed"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("quotes.csv:8: expected 3 fields, found 2"),
        "{msg}"
    );

    // Quarantined within the allowance; every other row is loaded, the multi-line value whole.
    let report = hub
        .load("raw.q", &[&path], |r| r.max_bad_rows = 2)
        .await
        .unwrap();
    assert_eq!((report.rows, report.bad_rows), (4, 2));
    assert_eq!(
        hub.rows("raw.q", "id").await,
        ["1|a|10", "3|c|30", "4|d|40", "5|multi\nline|50"]
    );
    let rejected = hub.rows("raw.q__rejected", "line").await;
    assert!(
        rejected[0].contains(&format!(
            "|{path}|3|column 'name': quoted field starts on this line and is never closed|2,\"b,20|"
        )),
        "{rejected:?}"
    );
    assert!(rejected[1].contains("|8|"), "{rejected:?}");
}

#[tokio::test]
async fn a_quote_open_to_the_end_of_the_file_or_past_the_limit() {
    let hub = Hub::new().await;
    // To the end of the file: the lines after it are read again as rows.
    let path = hub.file("eof.csv", b"id,note\n1,\"x\"\n2,\"never closed\n3,y\n4,z");
    let report = hub
        .load("raw.eof", &[&path], |r| r.max_bad_rows = 1)
        .await
        .unwrap();
    assert_eq!((report.rows, report.bad_rows), (3, 1));
    assert_eq!(hub.rows("raw.eof", "id").await, ["1|x", "3|y", "4|z"]);
    let rejected = hub.rows("raw.eof__rejected", "line").await;
    assert!(
        rejected[0].contains("|3|column 'note': quoted field starts on this line and is never closed|2,\"never closed|"),
        "{rejected:?}"
    );

    // Past 4 MiB, a quoted value is taken as never closed: memory stays bounded, and the rows
    // it would have swallowed load.
    let mut big = b"id,note\n1,\"open\n".to_vec();
    let lines = 600_000;
    for i in 2..lines {
        big.extend_from_slice(format!("{i},x\n").as_bytes());
    }
    big.extend_from_slice(format!("{lines},\"end\"\"\n").as_bytes());
    let path = hub.file("big.csv", &big);
    let err = hub.load("raw.big", &[&path], |_| {}).await.unwrap_err();
    assert!(
        err.to_string().contains(
            "big.csv:2: column 'note': quoted field starts on this line and is not closed within 4 MiB"
        ),
        "{err}"
    );
    let report = hub
        .load("raw.big", &[&path], |r| r.max_bad_rows = 5)
        .await
        .unwrap();
    assert_eq!(report.bad_rows, 2, "the first line and the last one");
    assert_eq!(report.rows, lines as u64 - 2);
}
