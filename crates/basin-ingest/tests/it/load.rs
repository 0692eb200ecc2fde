use arrow::datatypes::DataType;

use crate::*;

#[tokio::test]
async fn csv_with_options_infers_types_and_creates_the_table() {
    let hub = Hub::new().await;
    let csv = "Order ID;Amount;Paid;Day;At;Note\n1;9.5;true;2024-01-02;2024-01-02 10:00:00;'a;b'\n2;NA;false;2024-01-03;2024-01-03T11:30:00Z;\n";
    let path = hub.file("orders.txt", csv.as_bytes());
    let report = hub
        .load("raw.orders", &[&path], |r| {
            r.read.format = Some(basin_ingest::Format::Csv);
            r.read.csv.delimiter = b';';
            r.read.csv.quote = b'\'';
            r.read.csv.null_marker = Some("NA".into());
            r.key = vec!["order_id".into()];
        })
        .await
        .unwrap();
    assert!(report.created);
    assert_eq!((report.rows, report.version), (2, 0));
    let lake = hub.lake("raw.orders").await;
    let schema = lake.schema().unwrap();
    let types: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    assert_eq!(types[0], ("order_id".into(), DataType::Int64));
    assert_eq!(types[1].1, DataType::Float64);
    assert_eq!(types[2].1, DataType::Boolean);
    assert_eq!(types[3].1, DataType::Date32);
    assert!(matches!(types[4].1, DataType::Timestamp(_, Some(_))));
    assert_eq!(
        hub.rows("raw.orders", "order_id").await,
        [
            "1|9.5|true|2024-01-02|2024-01-02T10:00:00Z|a;b",
            "2|null|false|2024-01-03|2024-01-03T11:30:00Z|null"
        ]
    );
    let entry = hub
        .catalog
        .require_table(&basin_core::TableRef::parse("raw.orders").unwrap())
        .await
        .unwrap();
    assert_eq!(entry.primary_key, ["order_id"]);
    assert_eq!(entry.columns[1].data_type, "DOUBLE");
}

#[tokio::test]
async fn given_schema_no_header_and_compressed_inputs() {
    let hub = Hub::new().await;
    let gz = hub.file("a.csv.gz", &gzip(b"1,x\n2,y\n"));
    let zst = hub.file("b.csv.zst", &zstd::encode_all(&b"3,z\n"[..], 3).unwrap());
    let report = hub
        .load("raw.letters", &[&gz, &zst], |r| {
            r.read.csv.has_header = false;
            r.read.schema = Some(basin_ingest::parse_schema("id INT, letter VARCHAR").unwrap());
        })
        .await
        .unwrap();
    assert_eq!(report.rows, 3);
    assert_eq!(hub.rows("raw.letters", "id").await, ["1|x", "2|y", "3|z"]);
    assert_eq!(
        hub.lake("raw.letters")
            .await
            .schema()
            .unwrap()
            .field(0)
            .data_type(),
        &DataType::Int32
    );
}

#[tokio::test]
async fn json_ndjson_and_parquet() {
    let hub = Hub::new().await;
    let json = hub.file(
        "a.json",
        br#"[{"id": 1, "tags": ["x"], "at": "2024-05-01T00:00:00Z"}, {"id": 2, "name": "two"}]"#,
    );
    let ndjson = hub.file(
        "b.ndjson",
        b"{\"id\": 3, \"name\": \"three\"}\n\n{\"id\": 4}\n",
    );
    let report = hub
        .load("raw.events", &[&json, &ndjson], |_| {})
        .await
        .unwrap();
    assert_eq!(report.rows, 4);
    assert_eq!(
        hub.rows("raw.events", "id").await,
        [
            "1|[\"x\"]|2024-05-01T00:00:00Z|null",
            "2|null|null|two",
            "3|null|null|three",
            "4|null|null|null"
        ]
    );

    // Parquet written by Basin itself (a table file) loads into another table.
    let lake = hub.lake("raw.events").await;
    let file = files_under(&std::path::PathBuf::from(lake.location()))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let copy = hub.file("c.parquet", &std::fs::read(file).unwrap());
    let report = hub.load("raw.events_copy", &[&copy], |_| {}).await.unwrap();
    assert_eq!(report.rows, 4);
    assert_eq!(
        hub.rows("raw.events_copy", "id").await,
        hub.rows("raw.events", "id").await
    );
}

#[tokio::test]
async fn hive_folders_become_columns_and_partitions() {
    let hub = Hub::new().await;
    hub.file(
        "sales/year=2024/month=01/part.csv",
        b"id,amount\n1,10\n2,20\n",
    );
    hub.file("sales/year=2024/month=02/part.csv", b"id,amount\n3,30\n");
    hub.file("sales/_SUCCESS", b"");
    let dir = format!("{}/sales", hub.input_dir());
    let report = hub
        .load("raw.sales", &[&dir], |r| {
            r.partition_by = vec!["month".into()]
        })
        .await
        .unwrap();
    assert_eq!((report.rows, report.files), (3, 2));
    assert_eq!(
        hub.rows("raw.sales", "id").await,
        ["1|10|2024|1", "2|20|2024|1", "3|30|2024|2"]
    );
    let lake = hub.lake("raw.sales").await;
    assert_eq!(lake.partition_columns().unwrap(), ["month"]);
    let glob = format!("{}/sales/*/month=02/*.csv", hub.input_dir());
    let report = hub.load("raw.sales_feb", &[&glob], |_| {}).await.unwrap();
    assert_eq!(report.rows, 1);
    assert_eq!(hub.rows("raw.sales_feb", "id").await, ["3|30|2024|2"]);
}

#[tokio::test]
async fn bad_rows_refuse_the_load_and_leave_the_table_exactly_as_before() {
    let hub = Hub::new().await;
    let good = hub.file("good.csv", b"id,amount\n1,10\n2,20\n");
    hub.load("raw.t", &[&good], |_| {}).await.unwrap();
    let before_files = files_under(&std::path::PathBuf::from(
        hub.lake("raw.t").await.location(),
    ));

    let mut bad = b"id,amount\n3,30\n4,forty\n5\n".to_vec();
    bad.extend_from_slice(b"6,60\n7,\xff\xfe\n");
    let bad_path = hub.file("bad.csv", &bad);
    let err = hub.load("raw.t", &[&bad_path], |_| {}).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("3 bad row(s) found"), "{msg}");
    assert!(
        msg.contains("bad.csv:3: column 'amount': 'forty' is not a valid BIGINT"),
        "{msg}"
    );
    assert!(
        msg.contains("bad.csv:4: expected 2 fields, found 1"),
        "{msg}"
    );
    assert!(
        msg.contains("bad.csv:6: column 'amount': 'forty' is not a valid BIGINT")
            || msg.contains("bad.csv:6:"),
        "{msg}"
    );
    assert!(msg.contains("--max-bad-rows"), "{msg}");

    let lake = hub.lake("raw.t").await;
    assert_eq!(lake.version(), 0);
    assert_eq!(hub.rows("raw.t", "id").await, ["1|10", "2|20"]);
    let after_files = files_under(&std::path::PathBuf::from(lake.location()));
    assert_eq!(
        before_files, after_files,
        "a refused load must not leave files behind"
    );
    assert!(
        hub.catalog
            .table(&basin_core::TableRef::parse("raw.t__rejected").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn quarantine_takes_bad_rows_within_the_allowance() {
    let hub = Hub::new().await;
    let path = hub.file("mixed.csv", b"id,amount\n1,10\n2,oops\n3,30\n4,40,extra\n");
    let report = hub
        .load("raw.q", &[&path], |r| {
            // Types come from the first record, so 'oops' is not a number.
            r.read.infer_rows = 1;
            r.max_bad_rows = 2;
            r.load_id = Some("q-1".into());
        })
        .await
        .unwrap();
    assert_eq!((report.rows, report.bad_rows), (2, 2));
    assert_eq!(report.quarantine.as_deref(), Some("main.raw.q__rejected"));
    assert_eq!(hub.rows("raw.q", "id").await, ["1|10", "3|30"]);
    let rejected = hub.rows("raw.q__rejected", "line").await;
    assert_eq!(rejected.len(), 2);
    assert!(
        rejected[0].starts_with(&format!(
            "q-1|{path}|3|column 'amount': 'oops' is not a valid BIGINT|2,oops|"
        )),
        "{}",
        rejected[0]
    );
    assert!(
        rejected[1].contains("|5|expected 2 fields, found 3|4,40,extra|"),
        "{}",
        rejected[1]
    );

    // One more bad row than allowed: refused.
    let err = hub
        .load("raw.q", &[&path], |r| r.max_bad_rows = 0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("allowed: 0"), "{err}");
}

#[tokio::test]
async fn idempotent_reload_and_upsert_and_overwrite() {
    let hub = Hub::new().await;
    let first = hub.file("c1.csv", b"id,name\n1,a\n2,b\n");
    let r1 = hub
        .load("raw.c", &[&first], |r| {
            r.key = vec!["id".into()];
            r.load_id = Some("day-1".into());
        })
        .await
        .unwrap();
    assert!(!r1.skipped);
    let again = hub
        .load("raw.c", &[&first], |r| r.load_id = Some("day-1".into()))
        .await
        .unwrap();
    assert!(again.skipped);
    assert_eq!(hub.rows("raw.c", "id").await, ["1|a", "2|b"]);

    let changes = hub.file("c2.csv", b"id,name,score\n2,B,5\n3,c,7\n");
    let r = hub
        .load("raw.c", &[&changes], |r| {
            r.mode = basin_ingest::LoadMode::Upsert
        })
        .await
        .unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(
        hub.rows("raw.c", "id").await,
        ["1|a|null", "2|B|5", "3|c|7"]
    );

    let only = hub.file("c3.csv", b"id,name,score\n9,z,1\n");
    hub.load("raw.c", &[&only], |r| {
        r.mode = basin_ingest::LoadMode::Overwrite(Some("id >= 2".into()))
    })
    .await
    .unwrap();
    assert_eq!(hub.rows("raw.c", "id").await, ["1|a|null", "9|z|1"]);
    // New rows outside the predicate would not be replaced by a later identical load: refused.
    let err = hub
        .load("raw.c", &[&only], |r| {
            r.mode = basin_ingest::LoadMode::Overwrite(Some("id < 2".into()))
        })
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    assert_eq!(hub.rows("raw.c", "id").await, ["1|a|null", "9|z|1"]);
    hub.load("raw.c", &[&only], |r| {
        r.mode = basin_ingest::LoadMode::Overwrite(None)
    })
    .await
    .unwrap();
    assert_eq!(hub.rows("raw.c", "id").await, ["9|z|1"]);
    let entry = hub
        .catalog
        .require_table(&basin_core::TableRef::parse("raw.c").unwrap())
        .await
        .unwrap();
    assert_eq!(
        entry
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["id", "name", "score"]
    );
}

#[tokio::test]
async fn clear_errors_for_bad_requests() {
    let hub = Hub::new().await;
    let path = hub.file("x.csv", b"id\n1\n");
    let err = hub
        .load("rwa.t", &[&path], |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dataset 'main.rwa' not found; did you mean 'main.raw'?"),
        "{err}"
    );
    let err = hub
        .load("raw.t", &["/does/not/exist.csv"], |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    let odd = hub.file("x.xlsx", b"");
    let err = hub
        .load("raw.t", &[&odd], |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot tell the format") && err.contains("--format"),
        "{err}"
    );
    let err = hub
        .load("raw.t", &[&path], |r| {
            r.mode = basin_ingest::LoadMode::Upsert
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs a key") && err.contains("--key"),
        "{err}"
    );
    let err = hub
        .load("raw.u", &[&path], |r| r.key = vec!["idd".into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key column 'idd'") && err.contains("did you mean 'id'"),
        "{err}"
    );
}

#[tokio::test]
async fn a_loader_owns_the_table_it_creates_and_its_quarantine() {
    use basin_catalog::access::{Grant, Privilege, Securable};
    let hub = Hub::new().await;
    hub.catalog
        .create_user("loader", None, &Default::default())
        .await
        .unwrap();
    hub.catalog
        .grant(&Grant {
            grantee: "loader".into(),
            privilege: Privilege::Create,
            object: Securable::parse("dataset main.raw").unwrap(),
            column: None,
            granted_by: "test".into(),
            granted_at: String::new(),
        })
        .await
        .unwrap();
    let loader = basin_tables::Actor {
        principal: Some(
            hub.catalog
                .access_snapshot()
                .await
                .unwrap()
                .principal("loader", &[]),
        ),
        origin: "test".into(),
    };
    let path = hub.file("mixed.csv", b"id,amount\n1,10\n2,oops\n");
    let req = LoadRequest {
        table: Some(TableRef::parse("raw.mine").unwrap()),
        inputs: vec![path],
        read: basin_ingest::ReadOptions {
            infer_rows: 1,
            ..Default::default()
        },
        max_bad_rows: 1,
        ..Default::default()
    };
    let report = basin_ingest::load(&hub.tables(false), &loader, req, Default::default())
        .await
        .unwrap();
    assert_eq!(
        report.quarantine.as_deref(),
        Some("main.raw.mine__rejected")
    );
    let grants = hub.catalog.grants().await.unwrap();
    for table in ["mine", "mine__rejected"] {
        let mut held: Vec<Privilege> = grants
            .iter()
            .filter(|g| {
                g.grantee == "loader"
                    && g.object == Securable::parse(&format!("table main.raw.{table}")).unwrap()
            })
            .map(|g| g.privilege)
            .collect();
        held.sort();
        assert_eq!(
            held,
            [Privilege::Select, Privilege::Modify, Privilege::Manage],
            "{table}"
        );
    }
}
