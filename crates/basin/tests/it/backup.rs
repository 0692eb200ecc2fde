//! `basin backup` while `basin serve` runs and a writer commits, then `basin restore` into a
//! fresh data directory at another path: every table at its backed-up version (and earlier ones
//! by time travel), every user, role, grant, row filter and mask, views, and PII columns that
//! still decrypt. A damaged backup, a non-empty target and a non-administrator are refused.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Server};

const EMAILS: [&str; 3] = ["ann@example.com", "bob@example.com", "cem@example.com"];

/// Rows of `sql` run by `user` on the data directory `data_dir`, as JSON.
fn rows(data_dir: &Path, user: &str, sql: &str) -> Vec<Value> {
    let out = stdout(data_dir, user, &["--output", "json", "sql", sql]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// `basin --data-dir DATA_DIR` as `user`, on the catalog `catalog` (default: SQLite).
fn basin_on(data_dir: &Path, catalog: Option<&str>, user: &str) -> std::process::Command {
    let mut command = std::process::Command::new(basin_testkit::basin::basin_bin());
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env("BASIN_USER", user)
        .env("BASIN_PASSWORD", format!("{user}-password"));
    if let Some(url) = catalog {
        command.env("BASIN_CATALOG", url);
    }
    command
}

/// Runs `basin` as `user` on `data_dir`, expecting success; its stdout.
fn stdout(data_dir: &Path, user: &str, args: &[&str]) -> String {
    stdout_on(data_dir, None, user, args)
}

fn stdout_on(data_dir: &Path, catalog: Option<&str>, user: &str, args: &[&str]) -> String {
    let out = basin_on(data_dir, catalog, user)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "basin {args:?} on {}:\n{}",
        data_dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `basin` on `data_dir`, expecting failure; its stderr.
fn fails(data_dir: &Path, user: &str, args: &[&str]) -> String {
    fails_on(data_dir, None, user, args)
}

fn fails_on(data_dir: &Path, catalog: Option<&str>, user: &str, args: &[&str]) -> String {
    let out = basin_on(data_dir, catalog, user)
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "basin {args:?} should have failed");
    String::from_utf8(out.stderr).unwrap()
}

fn setup(basin: &Basin) {
    basin.ok(&["dataset", "create", "shop", "--layer", "prepared"]);
    basin.ok(&["dataset", "create", "crm", "--layer", "source"]);
    basin.ok(&["role", "create", "readers"]);
    let out = basin
        .command()
        .args([
            "user",
            "create",
            "analyst",
            "--attr",
            "region=eu",
            "--role",
            "readers",
        ])
        .env("BASIN_PASSWORD", "analyst-password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for sql in [
        // Partitioned, with a partition value that needs escaping in file paths.
        "CREATE TABLE shop.orders (id BIGINT, region VARCHAR, amount DOUBLE) PARTITIONED BY (region)",
        "INSERT INTO shop.orders VALUES (1, 'eu', 10.0), (2, 'north america', 20.0)",
        "INSERT INTO shop.orders VALUES (3, 'eu', 30.0)",
        "UPDATE shop.orders SET amount = amount + 1 WHERE id = 1",
        "CREATE TABLE shop.people (id BIGINT, email VARCHAR, phone VARCHAR, region VARCHAR)",
        "CREATE VIEW shop.eu_people AS SELECT id, phone FROM shop.people WHERE region = 'eu'",
        "CREATE TABLE crm.notes AS SELECT 1 AS id, 'first' AS note",
        "GRANT SELECT ON DATASET shop TO analyst",
        "GRANT SELECT ON DATASET crm TO readers",
    ] {
        basin.ok(&["sql", sql]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_writes_restores_every_table_grant_and_key() {
    let basin = Basin::new();
    setup(&basin);
    let s = Server::start(&basin, &[]);
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    // PII before its rows arrive (stored encrypted), a row filter and a mask.
    for (path, body) in [
        (
            "/api/v1/tags",
            json!({"object": "table main.shop.people", "column": "email", "tags": ["pii"]}),
        ),
        (
            "/api/v1/policies/row-filters",
            json!({"table": "shop.orders", "grantee": "analyst", "expression": "region = user_attribute('region')"}),
        ),
        (
            "/api/v1/policies/masks",
            json!({"table": "shop.people", "column": "phone", "grantee": "analyst", "mask": "hash"}),
        ),
    ] {
        let a = s.call("PUT", path, Some(&admin), Some(body)).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
    }
    for (i, email) in EMAILS.iter().enumerate() {
        let region = if i == 1 { "us" } else { "eu" };
        let a = s
            .sql(
                &admin,
                &format!("INSERT INTO shop.people VALUES ({i}, '{email}', '+49 151 {i}{i}{i}', '{region}')"),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }

    // A writer commits to shop.orders all through the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (api, token, stop, acked) = (s.client(), admin.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut id = 100;
            while !stop.load(Ordering::SeqCst) {
                let a = api
                    .sql(
                        &token,
                        &format!("INSERT INTO shop.orders VALUES ({id}, 'eu', 1.0)"),
                    )
                    .await;
                assert_eq!(a.status, 200, "{}", a.text);
                acked.fetch_add(1, Ordering::SeqCst);
                id += 1;
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let backup_dir = basin.dir.path().join("backup");
    let mut command = basin.command();
    command
        .args(["--output", "json", "backup"])
        .arg(&backup_dir);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let during = acked.load(Ordering::SeqCst);
    while acked.load(Ordering::SeqCst) < during + 2 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let version_of = |table: &str| {
        summary["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table)
            .unwrap_or_else(|| panic!("{table} not in {summary}"))["version"]
            .as_i64()
            .unwrap()
    };
    // Views have no files; every table is in the backup.
    assert_eq!(summary["tables"].as_array().unwrap().len(), 3, "{summary}");
    let orders_version = version_of("main.shop.orders");
    assert!(orders_version >= 4, "{summary}");

    // The backup directory keeps the keys private.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&backup_dir), 0o700);
    assert_eq!(mode(&backup_dir.join("keys")), 0o700);
    for f in std::fs::read_dir(backup_dir.join("keys")).unwrap() {
        assert_eq!(mode(&f.unwrap().path()), 0o600);
    }

    // Restored on "another machine": a fresh data directory at another path.
    let elsewhere = Basin::new();
    let restored = elsewhere.data_dir();
    let live = basin.data_dir();
    let backup = backup_dir.to_str().unwrap();
    stdout(&restored, "admin", &["restore", backup]);
    for f in std::fs::read_dir(restored.join("keys")).unwrap() {
        assert_eq!(mode(&f.unwrap().path()), 0o600);
    }

    // Every table as it was at its backed-up version, for the administrator and under the
    // analyst's row filter and mask; the writes after the backup point are not there.
    for (table, order) in [
        ("shop.orders", "id"),
        ("shop.people", "id"),
        ("crm.notes", "id"),
    ] {
        let version = version_of(&format!("main.{table}"));
        for user in ["admin", "analyst"] {
            let then = rows(
                &live,
                user,
                &format!("SELECT * FROM {table} VERSION AS OF {version} ORDER BY {order}"),
            );
            let now = rows(
                &restored,
                user,
                &format!("SELECT * FROM {table} ORDER BY {order}"),
            );
            assert_eq!(now, then, "{table} as {user}");
        }
    }
    let count = |dir: &Path, sql: &str| rows(dir, "admin", sql)[0]["n"].as_i64().unwrap();
    let backed_up = count(&restored, "SELECT count(*) AS n FROM shop.orders");
    let latest = count(&live, "SELECT count(*) AS n FROM shop.orders");
    assert!(
        backed_up < latest,
        "{backed_up} rows backed up, {latest} now"
    );
    assert!(
        backed_up >= 3 + 2,
        "the writes acknowledged before the backup"
    );
    // Time travel to an earlier version, and the table's history.
    for sql in [
        "SELECT * FROM shop.orders VERSION AS OF 1 ORDER BY id",
        "SELECT * FROM shop.orders VERSION AS OF 3 ORDER BY id",
        "SELECT * FROM shop.eu_people ORDER BY id",
    ] {
        assert_eq!(
            rows(&restored, "admin", sql),
            rows(&live, "admin", sql),
            "{sql}"
        );
    }
    let history = |dir: &Path| {
        rows(
            dir,
            "admin",
            &format!(
                "SELECT version, operation FROM system.history WHERE table_name = 'orders' AND version <= {orders_version} ORDER BY version"
            ),
        )
    };
    assert_eq!(history(&restored), history(&live));
    // PII decrypts for the administrator; the analyst sees tokens and a masked phone.
    let emails = rows(
        &restored,
        "admin",
        "SELECT email FROM shop.people ORDER BY id",
    );
    let emails: Vec<&str> = emails
        .iter()
        .map(|r| r["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, EMAILS);
    let seen = rows(
        &restored,
        "analyst",
        "SELECT email, phone FROM shop.people ORDER BY id",
    );
    assert_eq!(seen.len(), 3);
    for (row, email) in seen.iter().zip(EMAILS) {
        assert_ne!(row["email"], email);
        assert!(!row["phone"].as_str().unwrap().starts_with("+49"), "{row}");
    }
    // The analyst's row filter holds.
    let regions = rows(
        &restored,
        "analyst",
        "SELECT DISTINCT region FROM shop.orders",
    );
    assert_eq!(regions, [json!({"region": "eu"})]);

    // Users, roles, grants, tags and the catalog's descriptions of every object are the same.
    for args in [
        &["--output", "json", "user", "list"][..],
        &["--output", "json", "role", "list"],
        &["--output", "json", "grant", "list"],
    ] {
        assert_eq!(
            stdout(&restored, "admin", args),
            stdout(&live, "admin", args),
            "{args:?}"
        );
    }
    for sql in [
        "SELECT * FROM system.datasets ORDER BY hub, name",
        "SELECT hub, dataset, name, kind, description, primary_key, partition_columns FROM system.tables ORDER BY hub, dataset, name",
        "SELECT * FROM system.columns ORDER BY hub, dataset, table_name, ordinal",
    ] {
        for user in ["admin", "analyst"] {
            assert_eq!(
                rows(&restored, user, sql),
                rows(&live, user, sql),
                "{sql} as {user}"
            );
        }
    }
    // The restored hub works on: a write commits and the restore is in its audit log.
    stdout(
        &restored,
        "admin",
        &["sql", "INSERT INTO shop.orders VALUES (999, 'eu', 9.0)"],
    );
    let audit = rows(
        &restored,
        "admin",
        "SELECT principal, action, outcome FROM system.audit WHERE action = 'hub.restore'",
    );
    assert_eq!(
        audit,
        [json!({"principal": "admin", "action": "hub.restore", "outcome": "ok"})]
    );

    // Refusals: a non-empty target, a damaged backup (the target stays empty), a
    // non-administrator.
    let e = fails(&restored, "admin", &["restore", backup]);
    assert!(e.contains("is not empty"), "{e}");
    let fourth = Basin::new();
    let e = fails(&fourth.data_dir(), "analyst", &["restore", backup]);
    assert!(e.to_lowercase().contains("admin"), "{e}");
    assert!(
        !fourth.data_dir().exists(),
        "a refused restore leaves nothing behind"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(backup_dir.join("manifest.json")).unwrap()).unwrap();
    let data_file = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .find(|p| p.ends_with(".parquet"))
        .unwrap()
        .to_string();
    let damaged = backup_dir.join(&data_file);
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    let third = Basin::new();
    let e = fails(&third.data_dir(), "admin", &["restore", backup]);
    assert!(e.contains(&data_file) && e.contains("damaged"), "{e}");
    assert!(
        !third.data_dir().exists(),
        "a refused restore writes nothing"
    );
    let e = fails(
        &live,
        "analyst",
        &["backup", basin.dir.path().join("b2").to_str().unwrap()],
    );
    assert!(e.to_lowercase().contains("admin"), "{e}");
    assert!(!basin.dir.path().join("b2").exists());
}

/// A hub on a PostgreSQL catalog: `pg_dump` of a snapshot in the backup, `pg_restore` into a
/// new, empty database on another server; a database that is not empty is refused untouched.
#[test]
fn a_postgres_catalog_is_backed_up_with_pg_dump_and_restored_into_an_empty_database() {
    let (pg_live, pg_target) = (
        basin_testkit::postgres::Server::start(),
        basin_testkit::postgres::Server::start(),
    );
    let (live_url, target_url) = (pg_live.url(), pg_target.url());
    let live = Basin::new();
    let on_live =
        |user: &str, args: &[&str]| stdout_on(&live.data_dir(), Some(&live_url), user, args);
    on_live("admin", &["dataset", "create", "shop", "--layer", "source"]);
    on_live("admin", &["user", "create", "analyst"]);
    for sql in [
        "CREATE TABLE shop.orders (id BIGINT, region VARCHAR) PARTITIONED BY (region)",
        "INSERT INTO shop.orders VALUES (1, 'eu'), (2, 'us')",
        "INSERT INTO shop.orders VALUES (3, 'eu')",
        "GRANT SELECT ON TABLE shop.orders TO analyst",
    ] {
        on_live("admin", &["sql", sql]);
    }
    let backup_dir = live.dir.path().join("backup");
    let backup = backup_dir.to_str().unwrap();
    let summary: Value =
        serde_json::from_str(&on_live("admin", &["--output", "json", "backup", backup])).unwrap();
    assert_eq!(summary["catalog"], "postgres", "{summary}");
    assert!(backup_dir.join("catalog.dump").is_file());

    let elsewhere = Basin::new();
    let restored = elsewhere.data_dir();
    let e = fails_on(&restored, None, "admin", &["restore", backup]);
    assert!(
        e.contains("PostgreSQL catalog") && e.contains("--catalog"),
        "{e}"
    );
    stdout_on(&restored, Some(&target_url), "admin", &["restore", backup]);
    let on =
        |dir: &Path, url: &str, user: &str, args: &[&str]| stdout_on(dir, Some(url), user, args);
    for (user, args) in [
        (
            "analyst",
            &[
                "--output",
                "json",
                "sql",
                "SELECT * FROM shop.orders ORDER BY id",
            ][..],
        ),
        (
            "admin",
            &[
                "--output",
                "json",
                "sql",
                "SELECT * FROM shop.orders VERSION AS OF 1 ORDER BY id",
            ],
        ),
        ("admin", &["--output", "json", "grant", "list"]),
        ("admin", &["--output", "json", "user", "list"]),
    ] {
        assert_eq!(
            on(&restored, &target_url, user, args),
            on(&live.data_dir(), &live_url, user, args),
            "{args:?} as {user}"
        );
    }
    // The target database now holds a catalog: a second restore into it is refused and leaves
    // it (and the new data directory) as they were.
    let third = Basin::new();
    let e = fails_on(
        &third.data_dir(),
        Some(&target_url),
        "admin",
        &["restore", backup],
    );
    assert!(e.contains("is not empty"), "{e}");
    assert!(!third.data_dir().exists());
    assert_eq!(
        on(
            &restored,
            &target_url,
            "admin",
            &[
                "--output",
                "json",
                "sql",
                "SELECT count(*) AS n FROM shop.orders"
            ]
        ),
        "[{\"n\":3}]\n"
    );
}
