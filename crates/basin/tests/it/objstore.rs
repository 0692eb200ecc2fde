//! Faults below the lake, in the object store: the real server (`basin_server::serve`, in this
//! process so that it sees the test's `faulty://` store; see `basin_testkit::objstore`) over a
//! hub whose storage fails, delays or cuts off the operations each phase chooses. Every failed
//! request is a clear `503`, the table stays exactly as it was, the server keeps serving, and
//! the same request succeeds once the fault clears — once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use basin_catalog::{Contract, NewDataset, NewHub};
use basin_core::{DatasetRef, Layer, Name};
use basin_service::{Hub, HubConfig};
use basin_testkit::fixtures::incompressible_csv;
use basin_testkit::objstore::{Fault, Faults, Op};
use basin_testkit::server::{ADMIN_PASSWORD, Answer, Api, problem};

/// The server on a free port, in this process; stopped when the test's runtime ends.
async fn serve(hub: Hub) -> Api {
    basin_server::ensure_admin(hub.catalog(), Some(ADMIN_PASSWORD.into()))
        .await
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = basin_server::ServerConfig {
        listen: ([127, 0, 0, 1], port).into(),
        oidc: None,
        session_ttl: Duration::from_secs(3600),
        max_body_bytes: 64 << 20,
        query_timeout: Duration::from_secs(60),
        max_rows: 100_000,
        memory_limit: Some(256 << 20),
        max_concurrent_queries: 8,
    };
    tokio::spawn(basin_server::serve(hub, config, std::future::pending()));
    let api = Api {
        url: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    for _ in 0..100 {
        if api
            .http
            .get(format!("{}/health", api.url))
            .send()
            .await
            .is_ok()
        {
            return api;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not start");
}

/// What a failed write must leave alone: the rows, the version, the Delta log's files.
#[derive(Debug, PartialEq)]
struct State {
    rows: Vec<String>,
    version: i64,
    log: BTreeSet<PathBuf>,
}

async fn state(api: &Api, admin: &str, dir: &Path) -> State {
    let rows = api
        .rows(admin, "SELECT id, v FROM lake.d.t ORDER BY id")
        .await
        .iter()
        .map(|r| format!("{}:{}", r["id"], r["v"]))
        .collect();
    State {
        rows,
        version: api.table_version(admin, "lake.d.t").await,
        log: basin_testkit::fixtures::files_under(&dir.join("d/t/_delta_log"))
            .into_iter()
            .collect(),
    }
}

fn storage_503(a: &Answer, what: &str) {
    problem(a, 503);
    assert!(
        a.text.contains("storage cannot be read or written"),
        "{what}: {}",
        a.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn object_store_faults_fail_cleanly_and_the_retry_lands_once() {
    let data = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let hub = Hub::open(&HubConfig {
        data_dir: data.path().to_path_buf(),
        catalog_url: None,
        keystore_dir: None,
        master_key: None,
    })
    .await
    .unwrap();
    let faults = Faults::new();
    let catalog = hub.catalog().clone();
    catalog
        .create_hub(NewHub {
            name: Name::parse("hub", "lake").unwrap(),
            storage_root: faults.root(lake.path()),
            description: "storage with faults".into(),
        })
        .await
        .unwrap();
    for dataset in ["lake.d", "main.ok"] {
        catalog
            .create_dataset(NewDataset {
                dataset: DatasetRef::parse(dataset).unwrap(),
                layer: Layer::Source,
                domain: None,
                owner: None,
                description: String::new(),
                tags: vec![],
                contract: Contract::default(),
            })
            .await
            .unwrap();
    }
    let api = serve(hub).await;
    let admin = api.login("admin", ADMIN_PASSWORD).await;
    for sql in [
        "CREATE TABLE lake.d.t (id BIGINT, v VARCHAR)",
        "INSERT INTO lake.d.t VALUES (1, 'a'), (2, 'b')",
        "CREATE TABLE ok.t (id BIGINT)",
        "INSERT INTO ok.t VALUES (1)",
    ] {
        let a = api.sql(&admin, sql).await;
        assert_eq!(a.status, 200, "{sql}: {}", a.text);
    }
    let dir = lake.path();
    let other_tables_serve = async || {
        assert_eq!(api.count(&admin, "SELECT count(*) FROM ok.t").await, 1);
    };

    // 1. The data file's put fails: nothing is written at all.
    let mut id = 3;
    for (phase, pattern) in [
        ("data file put", ".parquet"),
        ("log commit put", "_delta_log/"),
    ] {
        let before = state(&api, &admin, dir).await;
        let data_files = basin_testkit::fixtures::files_under(&dir.join("d/t"));
        let hits = faults.hits();
        faults.inject(Op::Put, pattern, Fault::Fail);
        let insert = format!("INSERT INTO lake.d.t VALUES ({id}, 'x')");
        storage_503(&api.sql(&admin, &insert).await, phase);
        // An upload meets the same fault (a load is a write like any other).
        let upload = api
            .upload_csv(&admin, "lake.d.t", format!("id,v\n{}, y\n", id + 1))
            .await;
        storage_503(&upload, phase);
        // So do the writes that rewrite a file.
        for sql in [
            "MERGE INTO lake.d.t t USING (SELECT 1 AS id, 'm' AS v) s ON t.id = s.id \
             WHEN MATCHED THEN UPDATE SET v = s.v",
            "DELETE FROM lake.d.t WHERE id = 1",
        ] {
            storage_503(&api.sql(&admin, sql).await, &format!("{phase}: {sql}"));
        }
        assert!(faults.hits() > hits, "{phase}: the fault was never hit");
        // The table is exactly as before, reads of it and of other tables are served.
        assert_eq!(state(&api, &admin, dir).await, before, "{phase}");
        if phase == "data file put" {
            assert_eq!(
                basin_testkit::fixtures::files_under(&dir.join("d/t")),
                data_files,
                "a failed data file put left files"
            );
        }
        other_tables_serve().await;

        faults.clear();
        let a = api.sql(&admin, &insert).await;
        assert_eq!(a.status, 200, "{phase}, retried: {}", a.text);
        let after = state(&api, &admin, dir).await;
        assert_eq!(after.version, before.version + 1, "{phase}");
        let mut expected = before.rows.clone();
        expected.push(format!("{id}:\"x\""));
        assert_eq!(after.rows, expected, "{phase}: the retry landed once");
        id += 2;
    }

    // 1b. A large upload's data file goes up in parts; the store fails part-way through them:
    // the upload is aborted, nothing of it stays, and the retry lands once.
    let before = state(&api, &admin, dir).await;
    let data_files = basin_testkit::fixtures::files_under(&dir.join("d/t"));
    faults.inject(Op::Put, ".parquet", Fault::CutOffAfter(1 << 20));
    // About 70 bytes a row: 14 MB.
    let big = incompressible_csv("v", 4, 200_000, 1_000_000);
    storage_503(
        &api.upload_csv(&admin, "lake.d.t", big.clone()).await,
        "multipart put cut off",
    );
    assert!(faults.cut_parts() > 0, "no upload was cut off part-way");
    assert_eq!(
        state(&api, &admin, dir).await,
        before,
        "multipart put cut off"
    );
    assert_eq!(
        basin_testkit::fixtures::files_under(&dir.join("d/t")),
        data_files,
        "a cut-off upload left files"
    );
    faults.clear();
    let a = api.upload_csv(&admin, "lake.d.t", big).await;
    assert_eq!(a.status, 200, "the upload, retried: {}", a.text);
    let rows = before.rows.len() as i64 + 200_000;
    assert_eq!(
        api.count(&admin, "SELECT count(*) FROM lake.d.t").await,
        rows
    );
    let deleted = api
        .sql(&admin, "DELETE FROM lake.d.t WHERE id >= 1000000")
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);

    // 2. Reads cut off mid-stream (after 16 bytes: the parquet footers are cached, the column
    // chunks read are small): queries and a write that reads (UPDATE) fail; nothing
    // changes; once the store reads whole again, so does the table.
    let before = state(&api, &admin, dir).await;
    let hits = faults.hits();
    faults.inject(Op::Get, ".parquet", Fault::CutOffAfter(16));
    storage_503(
        &api.sql(&admin, "SELECT id, v FROM lake.d.t ORDER BY id")
            .await,
        "read cut off",
    );
    storage_503(
        &api.sql(&admin, "UPDATE lake.d.t SET v = 'z' WHERE id = 1")
            .await,
        "update whose read is cut off",
    );
    assert!(faults.hits() > hits, "the read fault was never hit");
    other_tables_serve().await;
    faults.clear();
    assert_eq!(state(&api, &admin, dir).await, before);

    // 3. The Delta log cannot be listed. A table this process holds at its latest version
    // needs no listing (no commit follows the one it read) and is served. Once another process
    // has committed to it (here: a commit with no rows), the new commit must be found by
    // listing the log: the same clear 503, then served again.
    faults.inject(Op::List, "_delta_log", Fault::Fail);
    let held = before.rows.len() as i64;
    assert_eq!(
        api.count(&admin, "SELECT count(*) FROM lake.d.t").await,
        held
    );
    let next = dir.join(format!("d/t/_delta_log/{:020}.json", before.version + 1));
    std::fs::write(
        &next,
        "{\"commitInfo\":{\"timestamp\":1764115200000,\"operation\":\"WRITE\",\"operationParameters\":{}}}\n",
    )
    .unwrap();
    storage_503(
        &api.sql(&admin, "SELECT count(*) FROM lake.d.t").await,
        "log listing",
    );
    other_tables_serve().await;
    faults.clear();
    let before = state(&api, &admin, dir).await;
    assert_eq!(before.rows.len() as i64, held);

    // 3b. The commit lands, and then delta-rs's work after it fails (the checkpoint it writes
    // at versions 99, 199, …): the write happened, so it is answered 200, and a client has nothing
    // to retry. Once for an INSERT (a group commit), once for an UPDATE.
    faults.inject(Op::Put, ".checkpoint.parquet", Fault::Fail);
    for sql in [
        format!("INSERT INTO lake.d.t VALUES ({id}, 'after')"),
        "UPDATE lake.d.t SET v = 'after' WHERE id = 1".to_string(),
    ] {
        let mut version = api.table_version(&admin, "lake.d.t").await;
        while version % 100 != 98 {
            let a = api
                .sql(
                    &admin,
                    &format!("INSERT INTO lake.d.t VALUES (-{version}, 'pad')"),
                )
                .await;
            assert_eq!(a.status, 200, "{}", a.text);
            version += 1;
        }
        let before = state(&api, &admin, dir).await;
        let hits = faults.hits();
        let a = api.sql(&admin, &sql).await;
        assert_eq!(a.status, 200, "{sql}, its checkpoint failing: {}", a.text);
        assert!(faults.hits() > hits, "{sql}: no checkpoint was written");
        let after = state(&api, &admin, dir).await;
        assert_eq!(after.version, before.version + 1, "{sql}");
        let added = after.rows.len() - before.rows.len();
        assert_eq!(added, usize::from(sql.starts_with("INSERT")), "{sql}");
    }
    faults.clear();
    id += 1;

    // 4. A slow store delays, it does not fail.
    let before = state(&api, &admin, dir).await;
    faults.inject(Op::Get, "", Fault::Delay(Duration::from_millis(20)));
    faults.inject(Op::Put, "", Fault::Delay(Duration::from_millis(20)));
    let a = api
        .sql(
            &admin,
            &format!("INSERT INTO lake.d.t VALUES ({id}, 'slow')"),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    faults.clear();
    assert_eq!(
        state(&api, &admin, dir).await.rows.len(),
        before.rows.len() + 1
    );
}

/// A `CREATE TABLE` that meets a catalog outage between its Delta commit and its catalog entry
/// (the real PostgreSQL stopped while the store holds the log commit for 3 s) is all or nothing:
/// answered `503`, not registered and without grants; its Delta files are cleared by the next
/// `CREATE TABLE` of the name once they are old enough (before that: `503 busy`, another
/// creation could be under way), which then creates a table that works and is owned.
#[tokio::test(flavor = "multi_thread")]
async fn a_create_table_cut_short_by_a_catalog_outage_is_all_or_nothing() {
    let pg = basin_testkit::postgres::Server::start();
    let data = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let hub = Hub::open(&HubConfig {
        data_dir: data.path().to_path_buf(),
        catalog_url: Some(pg.url()),
        keystore_dir: None,
        master_key: None,
    })
    .await
    .unwrap();
    let faults = Faults::new();
    hub.catalog()
        .create_hub(NewHub {
            name: Name::parse("hub", "lake").unwrap(),
            storage_root: faults.root(lake.path()),
            description: String::new(),
        })
        .await
        .unwrap();
    hub.catalog()
        .create_dataset(NewDataset {
            dataset: DatasetRef::parse("lake.d").unwrap(),
            layer: Layer::Source,
            domain: None,
            owner: None,
            description: String::new(),
            tags: vec![],
            contract: Contract::default(),
        })
        .await
        .unwrap();
    let api = serve(hub).await;
    let admin = api.login("admin", ADMIN_PASSWORD).await;
    let create = "CREATE TABLE lake.d.t (id BIGINT)";

    faults.inject(Op::Put, "_delta_log/", Fault::Delay(Duration::from_secs(3)));
    let creating = {
        let api = Api {
            url: api.url.clone(),
            http: api.http.clone(),
        };
        let admin = admin.clone();
        tokio::spawn(async move { api.sql(&admin, create).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.stop();
    let a = creating.await.unwrap();
    problem(&a, 503);
    assert!(a.text.contains("catalog"), "{}", a.text);
    faults.clear();
    let log = lake.path().join("d/t/_delta_log");
    assert!(
        log.join("00000000000000000000.json").is_file(),
        "the Delta commit did not land before the outage: the test did not meet its moment"
    );
    pg.start_again();

    let mut listed = api
        .sql(&admin, "SELECT name FROM system.tables WHERE hub = 'lake'")
        .await;
    for _ in 0..50 {
        if listed.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        listed = api
            .sql(&admin, "SELECT name FROM system.tables WHERE hub = 'lake'")
            .await;
    }
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(
        listed.body["rows"],
        serde_json::json!([]),
        "half registered"
    );
    let owner_grants = async || -> usize {
        let grants = api.call("GET", "/api/v1/grants", Some(&admin), None).await;
        grants.body["grants"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["object"] == "table lake.d.t")
            .count()
    };
    assert_eq!(owner_grants().await, 0, "grants without a table");

    // The orphan is moments old: another creation could be under way, so "try again shortly".
    let a = api.sql(&admin, create).await;
    problem(&a, 503);
    assert_eq!(a.body["code"], "busy", "{}", a.text);
    assert!(a.text.contains("retrying in"), "{}", a.text);
    let mut a = a;
    for _ in 0..40 {
        if a.status == 200 {
            break;
        }
        assert_eq!(a.body["code"], "busy", "{}", a.text);
        tokio::time::sleep(Duration::from_secs(1)).await;
        a = api.sql(&admin, create).await;
    }
    assert_eq!(a.status, 200, "{}", a.text);
    let a = api.sql(&admin, "INSERT INTO lake.d.t VALUES (7)").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(api.count(&admin, "SELECT count(*) FROM lake.d.t").await, 1);
    assert_eq!(
        owner_grants().await,
        3,
        "SELECT, MODIFY and MANAGE for its owner"
    );
    assert_eq!(
        api.table_version(&admin, "lake.d.t").await,
        1,
        "the new table starts over (the orphan's log is gone)"
    );
}
