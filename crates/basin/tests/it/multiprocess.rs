//! Writers in several processes on one table: the CLI beside a server, and two servers sharing
//! one PostgreSQL catalog and one storage root; readers during the writes. Every answer can be
//! trusted — 200 means committed exactly once, `409 write_conflict` means nothing committed —
//! and the table ends as exactly the acknowledged writes; every reader sees whole commits.

use std::collections::BTreeMap;
use std::process::Output;

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Answer, Api, Server};
use basin_testkit::postgres;

/// Room for every writer and reader of a test at once: the default (twice the cores) would make
/// some wait and answer `503 busy` on a small machine, which is not what these tests are about.
const ROOMY: &[&str] = &["--max-concurrent-queries", "32"];

/// Whether a write answered with `a` committed: 200 yes, a clean 409 write conflict no;
/// anything else fails the test.
fn committed(a: &Answer, sql: &str) -> bool {
    match a.status {
        200 => true,
        409 => {
            assert_eq!(a.body["code"], "write_conflict", "{sql}: {}", a.text);
            false
        }
        other => panic!("{sql}: unexpected {other}: {}", a.text),
    }
}

/// INSERTs of one batch of 10 rows each (`batch`, `row`) into `table`, one after another;
/// returns the batches answered 200.
fn insert_batches(
    api: Api,
    token: String,
    table: &'static str,
    batches: Vec<i64>,
) -> JoinHandle<Vec<i64>> {
    tokio::spawn(async move {
        let mut ok = Vec::new();
        for b in batches {
            let values: Vec<String> = (0..10).map(|r| format!("({b}, {r})")).collect();
            let sql = format!("INSERT INTO {table} VALUES {}", values.join(", "));
            if committed(&api.sql(&token, &sql).await, &sql) {
                ok.push(b);
            }
        }
        ok
    })
}

/// Batch → number of rows, as `api` reads them now.
async fn batches(api: &Api, token: &str, table: &str) -> BTreeMap<i64, i64> {
    api.rows(
        token,
        &format!("SELECT batch, count(*) AS n FROM {table} GROUP BY batch"),
    )
    .await
    .iter()
    .map(|r| (r["batch"].as_i64().unwrap(), r["n"].as_i64().unwrap()))
    .collect()
}

/// Readers that, until `stop`, read the table again and again: every batch they see is whole
/// (10 rows) and what one reader sees never shrinks. Returns the number of reads.
fn readers(
    apis: Vec<Api>,
    token: String,
    table: &'static str,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<JoinHandle<usize>> {
    apis.into_iter()
        .map(|api| {
            let token = token.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut reads = 0;
                let mut seen = 0;
                while !*stop.borrow() {
                    let now = batches(&api, &token, table).await;
                    for (b, n) in &now {
                        assert_eq!(*n, 10, "a reader saw batch {b} with {n} of its 10 rows");
                    }
                    assert!(now.len() >= seen, "a reader saw the table shrink");
                    seen = now.len();
                    reads += 1;
                }
                reads
            })
        })
        .collect()
}

/// The CLI loads into a table while the server's clients INSERT into it.
#[tokio::test(flavor = "multi_thread")]
async fn cli_and_server_write_one_table() {
    let basin = Basin::new();
    basin.ok(&["dataset", "create", "mp", "--layer", "source"]);
    basin.ok(&["sql", "CREATE TABLE mp.t (batch BIGINT, row BIGINT)"]);
    let s = Server::start(&basin, ROOMY);
    let admin = s.client().login("admin", ADMIN_PASSWORD).await;

    // The CLI: 15 loads of one batch each (batches 1000…), with load ids.
    let files: Vec<(i64, String)> = (1000..1015)
        .map(|b| {
            let csv: String = std::iter::once("batch,row\n".to_string())
                .chain((0..10).map(|r| format!("{b},{r}\n")))
                .collect();
            (b, basin.file(&format!("b{b}.csv"), &csv))
        })
        .collect();
    let cli = {
        let files = files.clone();
        let command = basin.command();
        let program = command.get_program().to_owned();
        let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
        std::thread::spawn(move || {
            files
                .iter()
                .map(|(b, file)| {
                    let out: Output = std::process::Command::new(&program)
                        .args(&args)
                        .current_dir(crate::repo_root())
                        .args(["ingest", "mp.t", file, "--load-id", &format!("b{b}")])
                        .output()
                        .unwrap();
                    (*b, out)
                })
                .collect::<Vec<_>>()
        })
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let reading = readers(vec![s.client(), s.client()], admin.clone(), "mp.t", stop);
    let writers: Vec<_> = (0..4)
        .map(|c| {
            insert_batches(
                s.client(),
                admin.clone(),
                "mp.t",
                (c * 100..c * 100 + 10).collect(),
            )
        })
        .collect();
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    let loads = tokio::task::spawn_blocking(move || cli.join().unwrap())
        .await
        .unwrap();
    stop_tx.send(true).unwrap();
    for r in reading {
        assert!(r.await.unwrap() > 0);
    }
    let mut unsure = Vec::new();
    for (b, out) in loads {
        if out.status.success() {
            acknowledged.push(b);
        } else {
            unsure.push(b);
            println!("load b{b} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let now = batches(&s.client(), &admin, "mp.t").await;
    for b in &unsure {
        // A failed load committed nothing: its retry lands it, once.
        assert!(!now.contains_key(b), "load b{b} failed but committed");
        let file = &files.iter().find(|(x, _)| x == b).unwrap().1;
        basin.ok(&["ingest", "mp.t", file, "--load-id", &format!("b{b}")]);
        acknowledged.push(*b);
    }
    acknowledged.sort();
    let now = batches(&s.client(), &admin, "mp.t").await;
    assert_eq!(now.keys().copied().collect::<Vec<_>>(), acknowledged);
    assert!(now.values().all(|n| *n == 10), "{now:?}");
    println!(
        "{} of 40 INSERTs and {} of 15 loads committed at the first try",
        acknowledged.len() - 15,
        15 - unsure.len()
    );
}

/// Two servers on one PostgreSQL catalog and one storage root: INSERTs and UPDATEs of one
/// counter through both, readers on both.
#[tokio::test(flavor = "multi_thread")]
async fn two_servers_share_a_catalog_and_storage() {
    let pg = postgres::Server::start();
    let url = pg.url();
    let basin = Basin::new();
    let cli = |args: &[&str]| {
        let mut all = vec!["--catalog", url.as_str()];
        all.extend(args);
        basin.ok(&all)
    };
    cli(&["dataset", "create", "mp", "--layer", "source"]);
    cli(&["sql", "CREATE TABLE mp.t (batch BIGINT, row BIGINT)"]);
    cli(&[
        "sql",
        "CREATE TABLE mp.counter (id BIGINT, n BIGINT); INSERT INTO mp.counter VALUES (1, 0)",
    ]);
    let one = Server::start(&basin, &[&["--catalog", url.as_str()], ROOMY].concat());
    let two = Server::start(&basin, &[&["--catalog", url.as_str()], ROOMY].concat());
    let admin = one.client().login("admin", ADMIN_PASSWORD).await;

    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let reading = readers(
        vec![one.client(), two.client()],
        admin.clone(),
        "mp.t",
        stop,
    );
    let mut writers = Vec::new();
    for c in 0..4 {
        let api = if c % 2 == 0 {
            one.client()
        } else {
            two.client()
        };
        writers.push(insert_batches(
            api,
            admin.clone(),
            "mp.t",
            (c * 100..c * 100 + 10).collect(),
        ));
    }
    let mut updaters = Vec::new();
    for c in 0..4 {
        let api = if c % 2 == 0 {
            one.client()
        } else {
            two.client()
        };
        let admin = admin.clone();
        updaters.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..5 {
                let sql = "UPDATE mp.counter SET n = n + 1 WHERE id = 1";
                if committed(&api.sql(&admin, sql).await, sql) {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    let mut updates = 0;
    for u in updaters {
        updates += u.await.unwrap();
    }
    stop_tx.send(true).unwrap();
    for r in reading {
        assert!(r.await.unwrap() > 0);
    }
    acknowledged.sort();
    for api in [one.client(), two.client()] {
        let now = batches(&api, &admin, "mp.t").await;
        assert_eq!(
            now.keys().copied().collect::<Vec<_>>(),
            acknowledged,
            "the table is not the acknowledged INSERTs"
        );
        let n: Vec<Value> = api.rows(&admin, "SELECT n FROM mp.counter").await;
        assert_eq!(
            n[0]["n"].as_i64(),
            Some(updates),
            "n must count exactly the UPDATEs answered 200"
        );
    }
    println!(
        "{} of 40 INSERTs and {updates} of 20 UPDATEs answered 200",
        acknowledged.len()
    );
}
