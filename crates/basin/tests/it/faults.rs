//! Faults below the lake, on the real `basin`: a full disk (a real tmpfs) for every writer, and
//! the PostgreSQL catalog stopped in the middle of requests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Server, problem};
use basin_testkit::fixtures::{files_under, incompressible_csv};
use basin_testkit::postgres;

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped; `None` (with the
/// reason printed) where mounting is not permitted.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                println!(
                    "skipped: cannot mount a tmpfs here ({}); run the tests as root on Linux",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("skipped: cannot run mount ({e})");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the file system at `dir` (a file `filler`) until at most `leave` bytes are free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let filler = dir.join("filler");
    let free = free_bytes(dir);
    let size = free.saturating_sub(leave);
    std::fs::write(&filler, vec![0xA5u8; size as usize]).unwrap();
    filler
}

/// Takes the last free bytes of the file system at `dir` (a file `filler-last`).
fn fill_more(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler-last");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0x5Au8; 4096];
    while f.write_all(&block).is_ok() {}
    while f.write_all(&block[..1]).is_ok() {}
    path
}

fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A CSV of `rows` rows of incompressible text, about 100 bytes a row.
fn random_csv(rows: usize, first_id: usize) -> String {
    incompressible_csv("payload", 6, rows, first_id)
}

/// Every writer on a full disk: a clear error, the table as it was, no partial files left, and
/// the server keeps serving; once space is freed, writes work again.
#[tokio::test(flavor = "multi_thread")]
async fn disk_full_fails_every_writer_cleanly() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let basin = Basin::new();
    let root = fs.path().join("full");
    basin.ok(&[
        "hub",
        "create",
        "full",
        "--storage-root",
        root.to_str().unwrap(),
    ]);
    basin.ok(&["dataset", "create", "full.d", "--layer", "source"]);
    let first = basin.file("first.csv", &random_csv(100, 0));
    basin.ok(&["ingest", "full.d.t", &first, "--key", "id"]);
    // Small loads, so that a compaction has files to rewrite.
    for first_id in [200, 300] {
        let small = basin.file(&format!("small-{first_id}.csv"), &random_csv(10, first_id));
        basin.ok(&["ingest", "full.d.t", &small]);
    }
    let big = basin.file("big.csv", &random_csv(60_000, 1000)); // ~6 MB, more than is left
    let s = Server::start(&basin, &[]);
    let admin = s.client().login("admin", ADMIN_PASSWORD).await;
    let count = "SELECT count(*) FROM full.d.t";
    let table_dir = root.join("d").join("t");
    let files_before = files_under(&table_dir);
    let version = s.table_version(&admin, "full.d.t").await;
    let filler = fill(fs.path(), 64 * 1024);

    // The table as it was, no file added, and the server still answers.
    let unchanged = |what: &str| {
        let after = files_under(&table_dir);
        let added: Vec<_> = after.iter().filter(|f| !files_before.contains(f)).collect();
        assert!(added.is_empty(), "{what} left files behind: {added:?}");
    };
    let clear = |what: &str, text: &str| {
        let lower = text.to_lowercase();
        assert!(
            lower.contains("no space left") || lower.contains("storage"),
            "{what}: the error does not say the storage failed: {text}"
        );
        // object_store's BufWriter panics ("Already shut down") when delta-rs aborts a file
        // whose close failed (apache/arrow-rs-object-store#810), in a detached task that tokio
        // catches: noise on stderr, not a crash. The answer itself must be the clear error.
        let last = text.trim_end().lines().last().unwrap_or_default();
        assert!(!last.contains("panicked"), "{what}: {text}");
    };

    let err = basin.fails(&["ingest", "full.d.t", &big]);
    clear("basin ingest", &err);
    unchanged("basin ingest");

    let err = basin.fails(&["ingest", "full.d.t", &big, "--mode", "upsert"]);
    clear("basin ingest --mode upsert", &err);
    unchanged("basin ingest --mode upsert");

    let a = s
        .client()
        .upload_csv(&admin, "full.d.t", std::fs::read(&big).unwrap())
        .await;
    problem(&a, 503);
    clear("upload", &a.text);
    unchanged("upload");

    // SQL writes are small: the last bytes go too.
    let last = fill_more(fs.path());
    let bulk = "SELECT id + 100000 AS id, payload FROM full.d.t";
    for sql in [
        format!("INSERT INTO full.d.t {bulk}"),
        format!(
            "MERGE INTO full.d.t t USING ({bulk}) s ON t.id = s.id \
             WHEN MATCHED THEN UPDATE SET payload = s.payload \
             WHEN NOT MATCHED THEN INSERT (id, payload) VALUES (s.id, s.payload)"
        ),
        "UPDATE full.d.t SET payload = payload || 'x'".to_string(),
        "DELETE FROM full.d.t WHERE id < 50".to_string(),
    ] {
        let a = s.client().sql(&admin, &sql).await;
        problem(&a, 503);
        clear(&sql, &a.text);
        unchanged(&sql);
    }

    // A compaction rewrites the small files: it fails the same way and leaves no file behind.
    let err = basin.fails(&["table", "optimize", "full.d.t"]);
    clear("basin table optimize", &err);
    unchanged("basin table optimize");

    // A new table from a query is refused, and not registered.
    let ctas = "CREATE TABLE full.d.copy AS SELECT * FROM full.d.t";
    let a = s.client().sql(&admin, ctas).await;
    problem(&a, 503);
    clear(ctas, &a.text);
    let copy = s.client().sql(&admin, "SELECT * FROM full.d.copy").await;
    problem(&copy, 404);
    let copy_files = files_under(&root.join("d").join("copy"));
    assert!(
        !copy_files
            .iter()
            .any(|f| f.to_string_lossy().ends_with(".parquet")),
        "the refused CREATE TABLE AS left data files: {copy_files:?}"
    );

    assert_eq!(s.table_version(&admin, "full.d.t").await, version);
    assert_eq!(
        s.client().count(&admin, count).await,
        120,
        "the table changed"
    );

    // Space again: the same writes work.
    std::fs::remove_file(filler).unwrap();
    std::fs::remove_file(last).unwrap();
    let a = s
        .client()
        .upload_csv(&admin, "full.d.t", std::fs::read(&big).unwrap())
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(s.client().count(&admin, count).await, 60_120);
}

/// The PostgreSQL catalog stopped in the middle of requests: they answer `503` (never a 500 nor
/// a hang), no table is half registered, and the server serves again once PostgreSQL is back.
#[tokio::test(flavor = "multi_thread")]
async fn catalog_outage_answers_503_and_recovers() {
    let pg = postgres::Server::start();
    let url = pg.url();
    let basin = Basin::new();
    let cli = |args: &[&str]| {
        let mut all = vec!["--catalog", url.as_str()];
        all.extend(args);
        basin.ok(&all)
    };
    cli(&["dataset", "create", "ops", "--layer", "source"]);
    cli(&["sql", "CREATE TABLE ops.events (id BIGINT)"]);
    // Room for every client at once: a `503 busy` is not the 503 this test is about.
    let s = Server::start(
        &basin,
        &["--catalog", &url, "--max-concurrent-queries", "32"],
    );
    let api = s.client();
    let admin = api.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(
        api.sql(&admin, "INSERT INTO ops.events VALUES (1)")
            .await
            .status,
        200
    );

    // Writers and creators run while the catalog goes away and comes back: until it is back
    // (and at least 30 statements each), so that some of them surely meet the outage.
    let met_outage = Arc::new(AtomicUsize::new(0));
    let back = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..3 {
        let api = s.client();
        let admin = admin.clone();
        let (met_outage, back) = (met_outage.clone(), back.clone());
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..400 {
                if i >= 30 && back.load(Ordering::SeqCst) {
                    break;
                }
                let name = format!("c{client}_{i}");
                let sql = if i % 2 == 0 {
                    format!("CREATE TABLE ops.{name} (id BIGINT)")
                } else {
                    format!(
                        "INSERT INTO ops.events VALUES ({})",
                        1000 * (client + 1) + i
                    )
                };
                let a = tokio::time::timeout(Duration::from_secs(60), api.sql(&admin, &sql))
                    .await
                    .unwrap_or_else(|_| panic!("{sql} hung while the catalog was away"));
                if a.status == 503 {
                    met_outage.fetch_add(1, Ordering::SeqCst);
                }
                answers.push((name, sql, a.status, a.text));
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg.stop();
    let during = api.sql(&admin, "SELECT count(*) FROM ops.events").await;
    problem(&during, 503);
    assert!(during.retry_after.is_some(), "a 503 says when to retry");
    assert!(
        during.text.contains("catalog") || during.text.contains("unavailable"),
        "{}",
        during.text
    );
    // The outage lasts until a writer has met it (at most 20 s).
    for _ in 0..200 {
        if met_outage.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pg.start_again();
    back.store(true, Ordering::SeqCst);

    let mut created = BTreeSet::new();
    let mut answers_503 = BTreeSet::new();
    let mut inserted = 0;
    let mut outages = 0;
    for t in tasks {
        for (name, sql, status, text) in t.await.unwrap() {
            match status {
                200 if sql.starts_with("CREATE") => {
                    created.insert(name);
                }
                200 => inserted += 1,
                503 => {
                    println!("503 for {sql}: {text}");
                    if sql.starts_with("CREATE") {
                        answers_503.insert(name);
                    }
                    outages += 1
                }
                other => panic!("{sql}: {other} while the catalog was away: {text}"),
            }
        }
    }
    println!("{outages} requests answered 503 during the outage");
    assert!(outages > 0, "no request met the outage");

    // Back: the server serves; the catalog holds exactly the tables answered 200; a table
    // refused during the outage can be created now (nothing half-registered is in its way).
    let mut back = api.sql(&admin, "SELECT count(*) FROM ops.events").await;
    for _ in 0..50 {
        if back.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        back = api.sql(&admin, "SELECT count(*) FROM ops.events").await;
    }
    assert_eq!(
        back.status, 200,
        "the server did not recover: {}",
        back.text
    );
    let rows = api
        .rows(
            &admin,
            "SELECT name FROM system.tables WHERE dataset = 'ops' AND name <> 'events'",
        )
        .await;
    let listed: BTreeSet<String> = rows
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        created.is_subset(&listed),
        "tables answered 200 are missing: {:?}",
        created.difference(&listed).collect::<Vec<_>>()
    );
    // Every registered table opens (none is registered without its files) and has its owner's
    // grants (registered in the same catalog transaction).
    let grants = api.call("GET", "/api/v1/grants", Some(&admin), None).await;
    assert_eq!(grants.status, 200, "{}", grants.text);
    for name in &listed {
        let n = api
            .count(&admin, &format!("SELECT count(*) FROM ops.{name}"))
            .await;
        assert_eq!(n, 0, "{name}");
        let object = format!("table main.ops.{name}");
        let held: BTreeSet<String> = grants.body["grants"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["object"] == object.as_str() && g["grantee"] == "admin")
            .map(|g| g["privilege"].as_str().unwrap().to_ascii_uppercase())
            .collect();
        assert_eq!(
            held,
            BTreeSet::from(["MANAGE".into(), "MODIFY".into(), "SELECT".into()]),
            "{name} is registered without its owner's grants"
        );
    }
    // A CREATE answered 503 left nothing in the way: unless its catalog transaction committed
    // as the connection broke (then the table is whole, as checked above), creating the table
    // again works — at once, or once the files of the creation cut short are old enough to be
    // cleared (until then `503 busy` with Retry-After: another creation may still be under way).
    let refused: Vec<String> = answers_503
        .iter()
        .filter(|n| !listed.contains(*n))
        .cloned()
        .collect();
    println!(
        "re-creating {} tables whose CREATE met the outage",
        refused.len()
    );
    for name in &refused {
        let sql = format!("CREATE TABLE ops.{name} (id BIGINT)");
        let mut a = api.sql(&admin, &sql).await;
        for _ in 0..60 {
            if a.status != 503 {
                break;
            }
            assert_eq!(a.body["code"], "busy", "{sql}: {}", a.text);
            tokio::time::sleep(Duration::from_secs(1)).await;
            a = api.sql(&admin, &sql).await;
        }
        assert_eq!(a.status, 200, "{sql} after the outage: {}", a.text);
        let n = api
            .count(&admin, &format!("SELECT count(*) FROM ops.{name}"))
            .await;
        assert_eq!(n, 0, "{name}");
    }
    // No INSERT answered 503 committed, and none answered 200 is lost.
    let n = api.count(&admin, "SELECT count(*) FROM ops.events").await;
    assert_eq!(
        n,
        inserted + 1,
        "the events table is not the acknowledged inserts ({inserted} answered 200, {outages} 503)"
    );
    let a = api.sql(&admin, "INSERT INTO ops.events VALUES (2)").await;
    assert_eq!(a.status, 200, "{}", a.text);
}
