//! Sources end to end: a folder (and an S3 prefix) of daily partitions loaded file by file, once
//! each, by `basin source run` and by the server's scheduler; a failing file reported and
//! retried without holding the others back; a source re-declared or a server killed loads
//! nothing twice; a PostgreSQL table and a Kafka topic copied, each change and record once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Server};

const PATTERN: &str = "products/year=*/month=*/day=*/*.csv";

/// Writes the day's file of products (`rows` rows from id `first`) under `drops`.
fn drop_day(drops: &Path, day: u32, first: u32, rows: u32) -> PathBuf {
    let dir = drops.join(format!("products/year=2026/month=11/day={day:02}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv = String::from("id,name,price\n");
    for id in first..first + rows {
        csv.push_str(&format!("{id},product {id},{}.5\n", id % 90));
    }
    let path = dir.join("part-0.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn count(b: &Basin) -> i64 {
    b.json("SELECT count(*) AS n FROM shop.products")[0]["n"]
        .as_i64()
        .unwrap()
}

fn shop() -> (Basin, PathBuf) {
    let b = Basin::new();
    b.ok(&["dataset", "create", "shop", "--layer", "source"]);
    let drops = b.dir.path().join("drops");
    drop_day(&drops, 20, 0, 3);
    drop_day(&drops, 21, 3, 2);
    std::fs::write(drops.join("products/README.txt"), "not a product file").unwrap();
    (b, drops)
}

/// Runs a command that must succeed; what it said (on stdout and stderr).
fn said(b: &Basin, args: &[&str]) -> String {
    let out = b.run(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "basin {args:?} failed: {text}");
    text
}

fn add(b: &Basin, drops: &Path) -> String {
    said(
        b,
        &[
            "source",
            "add",
            "products",
            "--table",
            "shop.products",
            "--path",
            drops.to_str().unwrap(),
            "--pattern",
            PATTERN,
            "--every",
            "1",
        ],
    )
}

#[test]
fn a_files_source_loads_each_new_file_once_and_reports_failures() {
    let (b, drops) = shop();
    b.create_user("reader", "reader-password", &[]);
    let created = add(&b, &drops);
    assert!(created.contains("Created source 'products'"), "{created}");
    let run = said(&b, &["source", "run", "products"]);
    assert!(run.contains("2 files loaded (5 rows)"), "{run}");
    assert_eq!(count(&b), 5);
    // Hive folders become columns.
    let days = b.json("SELECT DISTINCT day FROM shop.products ORDER BY day");
    assert_eq!(days.len(), 2, "{days:?}");

    // A new day, and a broken one: the good file is loaded, the broken one reported.
    drop_day(&drops, 22, 5, 4);
    let bad = drops.join("products/year=2026/month=11/day=23");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("part-0.csv"),
        "id,name,price\n9,broken,not-a-price\n",
    )
    .unwrap();
    let run = said(&b, &["source", "run", "products"]);
    assert!(
        run.contains("(partial): 1 files loaded (4 rows), 1 failed"),
        "{run}"
    );
    assert_eq!(count(&b), 9);
    // Nothing twice: a run with nothing new loads nothing; the failed file is tried again.
    let run = said(&b, &["source", "run", "products"]);
    assert!(run.contains("0 files loaded (0 rows), 1 failed"), "{run}");
    assert_eq!(count(&b), 9);
    let show = b.ok(&["source", "show", "products"]);
    assert!(show.contains("3 loaded, 1 failed"), "{show}");
    assert!(
        show.contains("failed: products/year=2026/month=11/day=23/part-0.csv (2 tries)")
            && show.contains("not-a-price"),
        "{show}"
    );
    // Fixed, the file is loaded at the next run.
    std::fs::write(bad.join("part-0.csv"), "id,name,price\n9,fixed,9.5\n").unwrap();
    let run = said(&b, &["source", "run", "products"]);
    assert!(run.contains("1 files loaded (1 rows), 0 failed"), "{run}");
    assert_eq!(count(&b), 10);

    // Declared again (its record of files gone), the source finds its loads in the table.
    b.ok(&["source", "remove", "products"]);
    add(&b, &drops);
    said(&b, &["source", "run", "products"]);
    assert_eq!(
        count(&b),
        10,
        "files loaded twice after the source was declared again"
    );

    let runs = b.json("SELECT outcome, files, failed_files FROM system.source_runs WHERE source = 'products' ORDER BY started_at");
    let outcomes: Vec<&str> = runs
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        vec!["ok", "partial", "partial", "ok", "ok"],
        "{runs:?}"
    );

    // A source runs as its owner: who may not load into the table may not declare one, and a
    // reader neither runs nor removes another's source.
    let reader = |args: &[&str]| {
        let mut all = vec!["--as", "reader"];
        all.extend_from_slice(args);
        b.fails(&all)
    };
    let e = reader(&[
        "source",
        "add",
        "mine",
        "--table",
        "shop.products",
        "--path",
        drops.to_str().unwrap(),
    ]);
    assert!(
        e.contains("permission denied") || e.contains("not found"),
        "{e}"
    );
    b.ok(&["sql", "GRANT SELECT ON TABLE shop.products TO reader"]);
    assert!(reader(&["source", "run", "products"]).contains("permission denied"));
    assert!(reader(&["source", "remove", "products"]).contains("permission denied"));
    let listed = b.ok(&["--as", "reader", "--output", "json", "source", "list"]);
    assert!(listed.contains("\"products\""), "{listed}");
    // Bad declarations are refused with what is wrong.
    let e = b.fails(&[
        "source",
        "add",
        "x",
        "--table",
        "shop.products",
        "--path",
        "/no/such/folder",
    ]);
    assert!(e.contains("is not a folder"), "{e}");
    let e = b.fails(&[
        "source",
        "add",
        "products",
        "--table",
        "shop.products",
        "--path",
        drops.to_str().unwrap(),
    ]);
    assert!(e.contains("already exists"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_runs_sources_on_schedule_and_a_kill_loads_nothing_twice() {
    let (b, drops) = shop();
    add(&b, &drops);
    let server = Server::start(&b, &[]);
    let s = server.client();
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    wait_for(&b, 5).await;
    let listed = s.call("GET", "/api/v1/sources", Some(&admin), None).await;
    assert_eq!(
        listed.body["sources"][0]["name"], "products",
        "{}",
        listed.text
    );
    // Paused, a source takes no new file; resumed, it does.
    let a = s
        .call("POST", "/api/v1/sources/products/pause", Some(&admin), None)
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    drop_day(&drops, 22, 5, 4);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count_via(&b), 5);
    let a = s
        .call(
            "POST",
            "/api/v1/sources/products/resume",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    wait_for(&b, 9).await;
    let shown = s
        .call("GET", "/api/v1/sources/products", Some(&admin), None)
        .await;
    assert_eq!(shown.body["files_loaded"], 3, "{}", shown.text);
    let ran = s
        .call("POST", "/api/v1/sources/products/run", Some(&admin), None)
        .await;
    assert!(ran.status == 200 || ran.status == 400, "{}", ran.text);
    // Declarations through REST are checked like the CLI's.
    for (body, says) in [
        (
            serde_json::json!({"name": "feed", "kind": "ftp", "table": "shop.feed", "location": "/tmp"}),
            "not available",
        ),
        (
            serde_json::json!({"name": "feed", "kind": "files", "table": "shop.feed", "location": "/no/such/folder"}),
            "is not a folder",
        ),
        (
            serde_json::json!({"name": "feed", "kind": "files", "table": "shop.feed", "location": "/tmp", "every_secs": 0}),
            "at least every second",
        ),
    ] {
        let a = s
            .call("POST", "/api/v1/sources", Some(&admin), Some(body))
            .await;
        crate::server::problem(&a, 400);
        assert!(a.text.contains(says), "{says}: {}", a.text);
    }
    let a = s
        .call("POST", "/api/v1/sources", Some(&admin), Some(serde_json::json!({"name": "feed", "kind": "files", "table": "shop.feed", "location": "/tmp", "cron": "every day"})))
        .await;
    crate::server::problem(&a, 400);
    assert!(a.text.contains("not a cron expression"), "{}", a.text);
    // A cron schedule (with seconds: every second) runs the source at its times.
    std::fs::create_dir_all(drops.join("feed")).unwrap();
    std::fs::write(drops.join("feed/a.csv"), "id,name\n1,x\n2,y\n").unwrap();
    let a = s
        .call("POST", "/api/v1/sources", Some(&admin), Some(serde_json::json!({"name": "feed", "kind": "files", "table": "shop.feed", "location": drops.to_str().unwrap(), "pattern": "feed/*.csv", "cron": "* * * * * *"})))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        (a.body["owner"].as_str(), a.body["cron"].as_str()),
        (Some("admin"), Some("* * * * * *"))
    );
    let mut fed = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let a = s.sql(&admin, "SELECT count(*) AS n FROM shop.feed").await;
        fed = a.body["rows"][0]["n"].as_i64().unwrap_or(0);
        if fed == 2 {
            break;
        }
    }
    assert_eq!(fed, 2, "the cron source did not run");
    drop(server); // SIGKILL
    drop_day(&drops, 23, 9, 1);
    let server = Server::start(&b, &[]);
    wait_for(&b, 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = server.client();
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    let a = s
        .call("DELETE", "/api/v1/sources/feed", Some(&admin), None)
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(
        s.count(&admin, "SELECT count(*) FROM shop.products").await,
        10
    );
    assert_eq!(
        s.count(&admin, "SELECT count(DISTINCT id) FROM shop.products")
            .await,
        10
    );
    let runs = s
        .count(
            &admin,
            "SELECT count(*) FROM system.source_runs WHERE trigger = 'schedule'",
        )
        .await;
    assert!(runs >= 3, "{runs} scheduled runs");
}

async fn wait_for(b: &Basin, rows: i64) {
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if count_via(b) == rows {
            return;
        }
    }
    panic!("the table never reached {rows} rows (now {})", count_via(b));
}

/// The row count as the CLI sees it (while a server may hold the catalog too).
fn count_via(b: &Basin) -> i64 {
    let out = b.run(&[
        "--output",
        "json",
        "sql",
        "SELECT count(*) AS n FROM shop.products",
    ]);
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .ok()
        .and_then(|rows| rows.first().and_then(|r| r["n"].as_i64()))
        .unwrap_or(-1)
}

/// A PostgreSQL table copied into Basin, then kept up to date by its `updated_at` watermark:
/// inserts and updates arrive (upserted by key), a soft-deleted row arrives flagged; the
/// password is read from the environment and never stored.
#[test]
fn a_postgres_source_copies_a_table_then_its_changes() {
    let pg = basin_testkit::postgres::Server::start();
    pg.psql(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT, region TEXT, deleted BOOLEAN NOT NULL DEFAULT false, updated_at TIMESTAMP NOT NULL);
         INSERT INTO customers VALUES (1, 'Ada', 'eu', false, '2026-11-01 10:00:00'), (2, 'Bob', 'us', false, '2026-11-01 11:00:00'), (3, 'Cy', 'eu', false, '2026-11-02 09:00:00');",
    );
    let b = Basin::new();
    b.ok(&["dataset", "create", "crm", "--layer", "source"]);
    let secret = "a-password-that-must-not-be-stored";
    let add = |args: &[&str]| {
        let mut all = vec!["source", "add"];
        all.extend_from_slice(args);
        b.command()
            .args(&all)
            .env("CRM_PG_PASSWORD", secret)
            .output()
            .unwrap()
    };
    let url = pg.url();
    let e = add(&[
        "bad",
        "--table",
        "crm.customers",
        "--postgres",
        &url.replace("postgres@", "postgres:pw@"),
        "--from-table",
        "customers",
    ]);
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("holds a password"),
        "{e:?}"
    );
    let e = add(&[
        "bad",
        "--table",
        "crm.customers",
        "--postgres",
        &url,
        "--from-table",
        "customers",
        "--watermark",
        "updated_at",
    ]);
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("give --key"),
        "{e:?}"
    );
    let out = add(&[
        "customers",
        "--table",
        "crm.customers",
        "--postgres",
        &url,
        "--password-env",
        "CRM_PG_PASSWORD",
        "--from-table",
        "public.customers",
        "--key",
        "id",
        "--watermark",
        "updated_at",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = |b: &Basin| {
        let out = b
            .command()
            .args(["source", "run", "customers"])
            .env("CRM_PG_PASSWORD", secret)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{text}");
        text
    };
    assert!(run(&b).contains("1 files loaded (3 rows)"));
    assert_eq!(b.json("SELECT count(*) AS n FROM crm.customers")[0]["n"], 3);
    // Nothing new: nothing read.
    assert!(run(&b).contains("0 files loaded (0 rows)"));
    // An update, an insert and a soft delete arrive; the old rows are not read again.
    pg.psql(
        "UPDATE customers SET region = 'apac', updated_at = '2026-11-03 08:00:00' WHERE id = 1;
         INSERT INTO customers VALUES (4, 'Dee', 'us', false, '2026-11-03 09:00:00');
         UPDATE customers SET deleted = true, updated_at = '2026-11-03 10:00:00' WHERE id = 2;",
    );
    assert!(run(&b).contains("1 files loaded (3 rows)"));
    let rows = b.json("SELECT id, region, deleted FROM crm.customers ORDER BY id");
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[0]["region"], "apac");
    assert_eq!(rows[1]["deleted"], true);
    let show = b.ok(&["source", "show", "customers"]);
    let shown = format!(
        "{show}{}",
        b.ok(&["--output", "json", "source", "show", "customers"])
    );
    assert!(shown.contains("2026-11-03 10:00:00"), "{shown}");
    // The password is in no catalog row, no output, no audit entry.
    assert!(!shown.contains(secret));
    let catalog = std::fs::read(b.data_dir().join("catalog.db")).unwrap();
    assert!(
        !catalog
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
        "the password is in the catalog"
    );
    // Without the password variable the run fails and says which variable is missing.
    let out = b
        .command()
        .args(["source", "run", "customers"])
        .env_remove("CRM_PG_PASSWORD")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CRM_PG_PASSWORD is not set"),
        "{out:?}"
    );
}

/// The same daily partitions as above, dropped on a real S3-compatible server: listed through
/// the S3 protocol, each object loaded once, `key=value` folders kept as columns; wrong keys are
/// refused when the source is declared.
#[tokio::test(flavor = "multi_thread")]
async fn a_files_source_on_an_s3_prefix_loads_each_new_object_once() {
    let s3 = basin_testkit::s3::S3Server::start();
    s3.create_bucket("drops");
    let day = |day: u32, first: u32, rows: u32| {
        let mut csv = String::from("id,name,price\n");
        for id in first..first + rows {
            csv.push_str(&format!("{id},product {id},{}.5\n", id % 90));
        }
        (
            format!("products/year=2026/month=11/day={day:02}/part-0.csv"),
            csv,
        )
    };
    for (key, csv) in [day(20, 0, 3), day(21, 3, 2)] {
        s3.put("drops", &key, &csv).await;
    }
    s3.put("drops", "products/README.txt", "not a product file")
        .await;
    let b = Basin::new();
    b.ok(&["dataset", "create", "shop", "--layer", "source"]);
    let basin = |args: &[&str], env: &[(String, String)]| {
        let out = b
            .command()
            .args(args)
            .envs(env.iter().cloned())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let add = [
        "source",
        "add",
        "products",
        "--table",
        "shop.products",
        "--path",
        "s3://drops/products",
        "--pattern",
        "year=*/month=*/day=*/*.csv",
    ];
    let mut wrong = s3.env();
    wrong[1].1 = "not-the-secret".into();
    let (ok, said) = basin(&add, &wrong);
    assert!(
        !ok && said.contains("s3://drops/products") && said.contains("cannot list"),
        "{said}"
    );
    let (ok, said) = basin(&add, &s3.env());
    assert!(ok, "{said}");
    let (ok, said) = basin(&["source", "run", "products"], &s3.env());
    assert!(ok && said.contains("2 files loaded (5 rows)"), "{said}");
    let days = b.json("SELECT day, count(*) AS n FROM shop.products GROUP BY day ORDER BY day");
    assert_eq!(days.len(), 2, "{days:?}");
    assert_eq!(days[0]["n"], 3);
    // A new day: only it is loaded.
    let (key, csv) = day(22, 5, 4);
    s3.put("drops", &key, &csv).await;
    let (ok, said) = basin(&["source", "run", "products"], &s3.env());
    assert!(ok && said.contains("1 files loaded (4 rows)"), "{said}");
    let (ok, said) = basin(&["source", "run", "products"], &s3.env());
    assert!(ok && said.contains("0 files loaded (0 rows)"), "{said}");
    assert_eq!(count(&b), 9);
    let shown = b.ok(&["--output", "json", "source", "show", "products"]);
    assert!(!shown.contains(basin_testkit::s3::SECRET_KEY), "{shown}");
    let lineage =
        b.json("SELECT upstream, downstream, via FROM system.lineage WHERE kind = 'source'");
    assert_eq!(lineage[0]["upstream"], "s3://drops/products", "{lineage:?}");
    assert_eq!(
        lineage[0]["downstream"], "main.shop.products",
        "{lineage:?}"
    );
}

/// A Kafka topic (a real Kafka-protocol broker, two partitions) read by a source: each record
/// once, a record that is not a row quarantined, then a
/// continuous source in the server killed with SIGKILL while records arrive: after the restart
/// every record is in the table exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_kafka_source_loads_each_record_once_even_across_a_kill() {
    let broker = basin_testkit::kafka::Broker::start();
    broker.create_topic("vehicle-events", 2).await;
    let event = |id: u32| {
        format!(
            r#"{{"id": {id}, "vin": "WVW{id:05}", "speed": {}, "position": {{"lat": 52.5, "lon": 13.4}}}}"#,
            id % 130
        )
    };
    broker
        .produce(
            "vehicle-events",
            0,
            &[event(1), event(2), "not json".into()],
        )
        .await;
    broker.produce("vehicle-events", 1, &[event(3)]).await;
    let b = Basin::new();
    b.ok(&["dataset", "create", "fleet", "--layer", "source"]);
    let e = b.fails(&[
        "source",
        "add",
        "x",
        "--table",
        "fleet.events",
        "--kafka",
        "nohost",
        "--topic",
        "t",
    ]);
    assert!(e.contains("host:port"), "{e}");
    let address = broker.address();
    said(
        &b,
        &[
            "source",
            "add",
            "events",
            "--table",
            "fleet.events",
            "--kafka",
            &address,
            "--topic",
            "vehicle-events",
            "--every",
            "1",
        ],
    );
    let run = said(&b, &["source", "run", "events"]);
    assert!(run.contains("(3 rows)"), "{run}");
    let rows = b.json("SELECT id, vin, position FROM fleet.events ORDER BY id");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0]["vin"], "WVW00001");
    assert!(
        rows[0]["position"].as_str().unwrap().contains("52.5"),
        "{rows:?}"
    );
    let rejected = b.json("SELECT count(*) AS n FROM fleet.events__rejected");
    assert_eq!(rejected[0]["n"], 1, "{rejected:?}");
    let run = said(&b, &["source", "run", "events"]);
    assert!(run.contains("(0 rows)"), "{run}");
    broker
        .produce("vehicle-events", 1, &[event(4), event(5)])
        .await;
    let run = said(&b, &["source", "run", "events"]);
    assert!(run.contains("(2 rows)"), "{run}");
    // The offsets live in the table's Delta log: declared again, the source reads on from them.
    b.ok(&["source", "remove", "events"]);
    said(
        &b,
        &[
            "source",
            "add",
            "events",
            "--table",
            "fleet.events",
            "--kafka",
            &address,
            "--topic",
            "vehicle-events",
            "--every",
            "1",
        ],
    );
    let run = said(&b, &["source", "run", "events"]);
    assert!(run.contains("(0 rows)"), "{run}");
    assert_eq!(b.json("SELECT count(*) AS n FROM fleet.events")[0]["n"], 5);
    let shown = b.ok(&["source", "show", "events"]);
    assert!(
        shown.contains("partition 0 at 3") && shown.contains("partition 1 at 3"),
        "{shown}"
    );
    b.ok(&["source", "remove", "events"]);

    // Continuous, in the server, killed while records arrive.
    let mut server = Server::start(&b, &[]);
    let s = server.client();
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    let a = s
        .call(
            "POST",
            "/api/v1/sources",
            Some(&admin),
            Some(serde_json::json!({
                "name": "live", "kind": "kafka", "table": "fleet.live", "brokers": [address],
                "topic": "vehicle-events", "continuous": true
            })),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let mut id = 100;
    for round in 0..6 {
        if round == 3 {
            drop(server); // SIGKILL, whatever the source was doing
            server = Server::start(&b, &[]);
        }
        for p in 0..2 {
            let batch: Vec<String> = (0..50).map(|i| event(id + i)).collect();
            id += 50;
            broker.produce("vehicle-events", p, &batch).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // 5 rows from before plus 600 produced: each once.
    let s = server.client();
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    // A lease of the killed server's run may hold the source for up to 15 s.
    let mut n = 0;
    for _ in 0..160 {
        n = s.count(&admin, "SELECT count(*) FROM fleet.live").await;
        if n >= 605 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let runs = s
        .sql(&admin, "SELECT outcome, files, rows, error FROM system.source_runs WHERE source = 'live' ORDER BY started_at DESC LIMIT 5")
        .await;
    assert_eq!(n, 605, "last runs: {}", runs.text);
    assert_eq!(
        s.count(&admin, "SELECT count(DISTINCT id) FROM fleet.live")
            .await,
        605
    );
    let shown = s
        .call("GET", "/api/v1/sources/live", Some(&admin), None)
        .await;
    assert_eq!(shown.body["every_secs"], 0, "{}", shown.text);
}
