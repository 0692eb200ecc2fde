//! A table's primary key holds on loads: no NULL key, no key twice — in one load or across
//! loads. A refused load leaves the table as it was.

use crate::*;

#[tokio::test]
async fn primary_keys_hold_on_appends_upserts_and_new_tables() {
    let hub = Hub::new().await;
    let first = hub.file("k1.csv", b"id,name\n1,a\n2,b\n3,c\n");
    hub.load("raw.k", &[&first], |r| r.key = vec!["id".into()])
        .await
        .unwrap();
    let before = ["1|a", "2|b", "3|c"];

    // The same file twice.
    let err = hub.load("raw.k", &[&first], |_| {}).await.unwrap_err();
    assert!(
        err.to_string().contains(
            "3 row(s) would duplicate keys already in 'main.raw.k', e.g. (id=1), (id=2), (id=3); load with mode upsert (--mode upsert) to update them"
        ),
        "{err}"
    );
    // A key twice in one file, or none.
    let twice = hub.file("k2.csv", b"id,name\n4,d\n4,e\n");
    let err = hub.load("raw.k", &[&twice], |_| {}).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("1 row(s) repeat a key within this write to 'main.raw.k', e.g. (id=4)"),
        "{err}"
    );
    let none = hub.file("k3.csv", b"id,name\n5,e\n,f\n");
    let err = hub.load("raw.k", &[&none], |_| {}).await.unwrap_err();
    assert!(
        err.to_string().contains(
            "1 row(s) have no value (NULL) in column 'id', part of the primary key of 'main.raw.k'"
        ),
        "{err}"
    );
    // Upserts: a NULL key would insert a new row on every run; a key twice is ambiguous.
    let upsert = |r: &mut basin_ingest::LoadRequest| r.mode = basin_ingest::LoadMode::Upsert;
    let err = hub.load("raw.k", &[&none], upsert).await.unwrap_err();
    assert!(
        err.to_string().contains(
            "1 row(s) of the upsert into 'main.raw.k' would have no value (NULL) in the primary key (id)"
        ),
        "{err}"
    );
    let dups = hub.file("k4.csv", b"id,name\n1,x\n1,y\n2,z\n2,w\n9,q\n");
    let err = hub.load("raw.k", &[&dups], upsert).await.unwrap_err();
    assert!(
        err.to_string().contains(
            "the upsert into 'main.raw.k' has 2 key(s) on more than one row, e.g. (id=1), (id=2)"
        ) || err.to_string().contains(
            "the upsert into 'main.raw.k' has 2 key(s) on more than one row, e.g. (id=2), (id=1)"
        ),
        "{err}"
    );
    // Overwriting rows by a predicate: the new rows may not collide with the rows kept.
    let err = hub
        .load("raw.k", &[&twice], |r| {
            r.mode = basin_ingest::LoadMode::Overwrite(Some("id >= 3".into()))
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("repeat a key"), "{err}");
    assert_eq!(hub.rows("raw.k", "id").await, before);
    assert_eq!(hub.lake("raw.k").await.version(), 0, "no commit was made");

    // What keeps every key once goes through.
    let fixed = hub.file("k5.csv", b"id,name\n2,B\n4,d\n");
    hub.load("raw.k", &[&fixed], upsert).await.unwrap();
    assert_eq!(hub.rows("raw.k", "id").await, ["1|a", "2|B", "3|c", "4|d"]);

    // A load that creates a table with a key checks it too: no table is created.
    let err = hub
        .load("raw.fresh", &[&twice], |r| r.key = vec!["id".into()])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("repeat a key"), "{err}");
    assert!(
        hub.catalog
            .table(&basin_core::TableRef::parse("raw.fresh").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}
