//! Export: `COPY (query) TO 'folder'` and export models write Parquet or CSV files that DuckDB
//! reads, under partition folders replaced whole, as the principal reads the data (PII stays
//! tokens for a reader without UNMASK), and only inside the export folder.

use std::path::Path;
use std::process::Command;

use crate::Basin;

/// DuckDB's answer (JSON rows) to `sql`.
fn duckdb(sql: &str) -> Vec<serde_json::Value> {
    let script = "import duckdb, json, sys\ncon = duckdb.connect()\nr = con.sql(sys.argv[1])\nnames = r.columns\nprint(json.dumps([dict(zip(names, row)) for row in r.fetchall()], default=str))";
    let out = Command::new("python3")
        .args(["-c", script, sql])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "duckdb: {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The files under `dir`, relative, sorted, with their modification times.
fn files(dir: &Path) -> Vec<(String, std::time::SystemTime)> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                all.push((rel, e.metadata().unwrap().modified().unwrap()));
            }
        }
    }
    all.sort();
    all
}

fn shop() -> Basin {
    let b = Basin::new();
    b.ok(&["dataset", "create", "shop", "--layer", "source"]);
    b.ok(&[
        "sql",
        "CREATE TABLE shop.sales AS SELECT * FROM (VALUES ('2026-11-21', 'pen', 3), ('2026-11-21', 'ink', 4), ('2026-11-22', 'pen', 5)) AS v(day, product, amount)",
    ]);
    b
}

#[test]
fn exports_are_partitioned_replaced_whole_and_read_by_duckdb() {
    let b = shop();
    let exports = b.data_dir().join("exports/admin");
    let out = b.json("COPY (SELECT day, product, amount FROM shop.sales) TO 'sales' (FORMAT parquet, PARTITION_BY (day))");
    assert_eq!(
        (out[0]["rows"].as_i64(), out[0]["files"].as_i64()),
        (Some(3), Some(2))
    );
    let glob = format!("{}/sales/**/*.parquet", exports.display());
    let read = format!(
        "SELECT day, count(*) AS n, sum(amount) AS total FROM read_parquet('{glob}', hive_partitioning = true) GROUP BY day ORDER BY day"
    );
    let got = duckdb(&read);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0]["n"].as_i64(), got[0]["total"].as_f64()),
        (Some(2), Some(7.0))
    );
    // Exporting one day again replaces that day's folder only.
    let day21 = files(&exports.join("sales/day=2026-11-21"));
    b.ok(&[
        "sql",
        "UPDATE shop.sales SET amount = 50 WHERE day = '2026-11-22'",
    ]);
    b.ok(&["sql", "COPY (SELECT day, product, amount FROM shop.sales WHERE day = '2026-11-22') TO 'sales' (FORMAT parquet, PARTITION_BY (day))"]);
    assert_eq!(
        files(&exports.join("sales/day=2026-11-21")),
        day21,
        "the other partition was untouched"
    );
    let got = duckdb(&read);
    assert_eq!(got[1]["total"].as_f64(), Some(50.0), "{got:?}");
    // Nothing half-written or replaced is left behind.
    let hidden: Vec<_> = files(&exports)
        .into_iter()
        .filter(|(f, _)| f.contains(".basin-"))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
    // CSV, unpartitioned.
    b.ok(&["sql", "COPY (SELECT product, amount FROM shop.sales ORDER BY product) TO 'sales_csv' (FORMAT csv)"]);
    let csv = duckdb(&format!(
        "SELECT count(*) AS n FROM read_csv('{}/sales_csv/*.csv')",
        exports.display()
    ));
    assert_eq!(csv[0]["n"].as_i64(), Some(3));
}

#[test]
fn exports_stay_in_the_export_folder_and_under_governance() {
    let b = shop();
    for (sql, want) in [
        (
            "COPY (SELECT 1 AS a) TO '../outside'",
            "inside the export folder",
        ),
        (
            "COPY (SELECT 1 AS a) TO '/tmp/outside'",
            "inside the export folder",
        ),
        (
            "COPY (SELECT 1 AS a) TO 'x' (FORMAT json)",
            "use parquet or csv",
        ),
        (
            "COPY (SELECT 1 AS a) TO 'x' (PARTITION_BY (b))",
            "'b' is not a column",
        ),
        (
            "COPY shop.sales FROM '/etc/passwd'",
            "COPY FROM is not supported",
        ),
    ] {
        let e = b.fails(&["sql", sql]);
        assert!(e.contains(want), "{sql}: {e}");
    }
    assert!(!b.data_dir().join("outside").exists());
    // Personal data leaves as the reader sees it: tokens without UNMASK.
    b.ok(&[
        "dataset", "create", "people", "--layer", "source", "--tag", "pii",
    ]);
    b.ok(&[
        "sql",
        "CREATE TABLE people.contacts AS SELECT 1 AS id, 'ada@example.com' AS email",
    ]);
    b.create_user("analyst", "a-long-password-1", &[]);
    b.ok(&["grant", "SELECT ON TABLE people.contacts TO analyst"]);
    b.ok(&[
        "--as",
        "analyst",
        "sql",
        "COPY (SELECT id, email FROM people.contacts) TO 'mine'",
    ]);
    b.ok(&[
        "sql",
        "COPY (SELECT id, email FROM people.contacts) TO 'admins'",
    ]);
    let exports = b.data_dir().join("exports");
    let email = |dir: &str| {
        duckdb(&format!(
            "SELECT email FROM read_parquet('{}/{dir}/*.parquet')",
            exports.display()
        ))[0]["email"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_ne!(email("analyst/mine"), "ada@example.com");
    assert_eq!(email("admin/admins"), "ada@example.com");
}

#[test]
fn an_export_model_writes_its_partitions_after_its_checks() {
    let b = shop();
    let project = b.dir.path().join("project");
    std::fs::create_dir_all(project.join("models/shop")).unwrap();
    std::fs::write(project.join("basin.toml"), "[project]\nname = \"unload\"\n").unwrap();
    std::fs::write(
        project.join("models/shop/daily.sql"),
        "-- materialized: export\n-- export_to: daily\n-- partition_by: day\n-- check not_null: product\nSELECT day, product, sum(amount) AS total FROM shop.sales GROUP BY day, product\n",
    )
    .unwrap();
    let out = b.ok(&["apply", project.to_str().unwrap()]);
    assert!(out.contains("+ model main.shop.daily (export)"), "{out}");
    assert!(out.contains("exported 3 rows in 2 files to"), "{out}");
    let again = b.ok(&["plan", project.to_str().unwrap()]);
    assert!(again.contains("No changes"), "{again}");
    let glob = format!(
        "{}/admin/daily/**/*.parquet",
        b.data_dir().join("exports").display()
    );
    let got = duckdb(&format!(
        "SELECT sum(total)::DOUBLE AS t FROM read_parquet('{glob}', hive_partitioning = true)"
    ));
    assert_eq!(got[0]["t"].as_f64(), Some(12.0));
    // A model that is not an export may not name a folder.
    std::fs::write(
        project.join("models/shop/daily.sql"),
        "-- materialized: table\n-- export_to: daily\nSELECT 1 AS x\n",
    )
    .unwrap();
    let e = b.fails(&["plan", project.to_str().unwrap()]);
    assert!(
        e.contains("models/shop/daily.sql:2: export_to only applies to materialized: export"),
        "{e}"
    );
}

/// With `--exports s3://bucket/prefix`, each folder an export writes gets one object under a
/// fixed name, uploaded whole (replacing the old one in one step), and the folder's older
/// objects are deleted; other partitions stay. Read back through the S3 protocol.
#[tokio::test(flavor = "multi_thread")]
async fn exports_to_an_s3_prefix_replace_each_partition_whole() {
    let s3 = basin_testkit::s3::S3Server::start();
    s3.create_bucket("out");
    let b = shop();
    let copy = |sql: &str, env: &[(String, String)]| {
        let out = b
            .command()
            .args([
                "--exports",
                "s3://out/lake-exports",
                "--output",
                "json",
                "sql",
                sql,
            ])
            .envs(env.iter().cloned())
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    let by_day = "COPY (SELECT day, product, amount FROM shop.sales) TO 'sales' (FORMAT parquet, PARTITION_BY (day))";
    let (ok, said) = copy(by_day, &s3.env());
    assert!(ok, "{said}");
    assert!(
        said.contains("\"location\":\"s3://out/lake-exports/admin/sales\"")
            && said.contains("\"rows\":3")
            && said.contains("\"files\":2"),
        "{said}"
    );
    let prefix = "lake-exports/admin/sales";
    let day21 = format!("{prefix}/day=2026-11-21/data.parquet");
    let day22 = format!("{prefix}/day=2026-11-22/data.parquet");
    assert_eq!(s3.keys("out", prefix).await, [day21.clone(), day22.clone()]);
    let first21 = s3.get("out", &day21).await;

    // A file an older export left in day 22 is replaced with it; day 21 is not touched.
    s3.put(
        "out",
        &format!("{prefix}/day=2026-11-22/old.parquet"),
        "old",
    )
    .await;
    b.ok(&[
        "sql",
        "UPDATE shop.sales SET amount = 50 WHERE day = '2026-11-22'",
    ]);
    let (ok, said) = copy(
        &by_day.replace(
            "FROM shop.sales",
            "FROM shop.sales WHERE day = '2026-11-22'",
        ),
        &s3.env(),
    );
    assert!(ok, "{said}");
    assert_eq!(s3.keys("out", prefix).await, [day21.clone(), day22.clone()]);
    assert_eq!(s3.get("out", &day21).await, first21);
    let local = b.dir.path().join("day22.parquet");
    std::fs::write(&local, s3.get("out", &day22).await).unwrap();
    let got = duckdb(&format!(
        "SELECT count(*) AS n, sum(amount)::DOUBLE AS total FROM '{}'",
        local.display()
    ));
    assert_eq!(
        (got[0]["n"].as_i64(), got[0]["total"].as_f64()),
        (Some(1), Some(50.0))
    );

    // Unpartitioned CSV: one object for the whole target.
    let (ok, said) = copy(
        "COPY (SELECT product, amount FROM shop.sales ORDER BY product, amount) TO 'summary' (FORMAT csv)",
        &s3.env(),
    );
    assert!(ok, "{said}");
    let csv = s3.get("out", "lake-exports/admin/summary/data.csv").await;
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "product,amount\nink,4\npen,3\npen,50\n"
    );

    // Refused by the store: a clear error naming the location, and nothing changed.
    let mut wrong = s3.env();
    wrong[1].1 = "not-the-secret".into();
    let (ok, said) = copy(by_day, &wrong);
    assert!(
        !ok && said.contains("export to s3://out/lake-exports/admin/sales: access denied"),
        "{said}"
    );
    assert!(!said.contains("not-the-secret"), "{said}");
    assert_eq!(s3.get("out", &day21).await, first21);
}
