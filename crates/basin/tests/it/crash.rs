//! The crash harness: the real `basin` killed with SIGKILL at random points (seeded; the seed is
//! printed, `BASIN_CRASH_SEED` replays it) while it writes, and after each kill: every table
//! opens, its state is exactly the acknowledged writes (a model the harness keeps), nothing is
//! duplicated, and a retried load with the same load id lands exactly once.
//!
//! `BASIN_CRASH_KILLS` sets the number of kills (short by default, for `.ci/run`);
//! `scripts/reliability N` runs it at length and writes the results into docs/reliability.md.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Api, Server};

/// A small seeded generator (splitmix64): the same seed replays the same kills.
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded from `BASIN_CRASH_SEED`, else from the clock; prints the seed.
    pub(crate) fn seeded(test: &str) -> Rng {
        let seed = std::env::var("BASIN_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("{test}: seed {seed} (replay with BASIN_CRASH_SEED={seed})");
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A delay in `[0, max)`.
    pub(crate) fn delay(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.below(max.as_micros() as u64))
    }
}

/// The number of kills a crash test makes: `BASIN_CRASH_KILLS`, else `default`.
pub(crate) fn kills(default: usize) -> usize {
    std::env::var("BASIN_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs `command`, and kills it with SIGKILL after `after` unless it exits first. `Some(output)`
/// when it exited by itself (its answer counts), `None` when it was killed.
fn run_or_kill(mut command: Command, after: Duration) -> Option<Output> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("basin starts");
    let deadline = Instant::now() + after;
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if Instant::now() >= deadline {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// The harness's model of `crash.t`: its columns (beyond `id` and `v`, added by loads) and rows by id.
#[derive(Clone, PartialEq, Debug)]
struct Model {
    columns: Vec<String>,
    rows: BTreeMap<i64, BTreeMap<String, Value>>,
}

impl Model {
    /// The rows as `SELECT * … ORDER BY id` prints them in JSON: every column, NULLs included.
    fn render(&self) -> Vec<BTreeMap<String, Value>> {
        self.rows
            .values()
            .map(|r| {
                self.columns
                    .iter()
                    .map(|c| (c.clone(), r.get(c).cloned().unwrap_or(Value::Null)))
                    .collect()
            })
            .collect()
    }

    fn csv(&self, ids: &BTreeSet<i64>, columns: &[String]) -> String {
        let mut out = columns.join(",") + "\n";
        for id in ids {
            let row = &self.rows[id];
            let cells: Vec<String> = columns
                .iter()
                .map(|c| match row.get(c) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => String::new(),
                })
                .collect();
            out += &(cells.join(",") + "\n");
        }
        out
    }
}

/// The kinds of write the harness kills.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Op {
    Append,
    Upsert,
    Merge,
    Update,
    Delete,
    Evolve,
    Compact,
    Vacuum,
}

const OPS: [Op; 8] = [
    Op::Append,
    Op::Upsert,
    Op::Merge,
    Op::Update,
    Op::Delete,
    Op::Evolve,
    Op::Compact,
    Op::Vacuum,
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Append => "ingest (append)",
            Op::Upsert => "ingest (upsert)",
            Op::Merge => "MERGE",
            Op::Update => "UPDATE",
            Op::Delete => "DELETE",
            Op::Evolve => "ingest adding a column",
            Op::Compact => "compaction (optimize)",
            Op::Vacuum => "vacuum (retaining 0 hours)",
        }
    }

    /// Maintenance rewrites or removes files but no row: whether it committed shows in the
    /// table's version, not its rows.
    fn keeps_rows(self) -> bool {
        matches!(self, Op::Compact | Op::Vacuum)
    }
}

/// A write planned on the model: the `basin` arguments and the model once it committed.
struct Planned {
    args: Vec<String>,
    load_id: Option<String>,
    after: Model,
}

/// What the runs found, per operation: [runs, killed writes found committed, killed writes found
/// not committed, runs that finished before the kill].
pub(crate) type Tally = BTreeMap<&'static str, [u64; 4]>;

/// Prints the results in the form `scripts/reliability` collects.
pub(crate) fn report(test: &str, tally: &Tally) {
    for (op, [kills, committed, absent, finished]) in tally {
        println!("RELIABILITY|{test}|{op}|{kills}|{committed}|{absent}|{finished}|ok",);
    }
}

struct Harness {
    basin: Basin,
    rng: Rng,
    model: Model,
    next_id: i64,
    serial: u64,
}

impl Harness {
    fn plan(&mut self, op: Op) -> Planned {
        self.serial += 1;
        let n = self.serial;
        let mut after = self.model.clone();
        let existing: Vec<i64> = self.model.rows.keys().copied().collect();
        let fresh = |count: i64, next_id: &mut i64| -> BTreeSet<i64> {
            let ids = (*next_id..*next_id + count).collect();
            *next_id += count;
            ids
        };
        let ingest = |file: String, load_id: &str, extra: &[&str]| -> Vec<String> {
            let mut args: Vec<String> = ["--output", "json", "ingest", "crash.t"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            args.push(file);
            args.extend(["--load-id".into(), load_id.into()]);
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        };
        match op {
            Op::Append | Op::Evolve => {
                let ids = fresh(1000, &mut self.next_id);
                let mut columns = vec!["id".to_string(), "v".to_string()];
                if op == Op::Evolve {
                    // Up to 8 new columns; later loads write the last one.
                    let added = self.model.columns.len() - 2;
                    let column = format!("c{}", added.min(7));
                    if !after.columns.contains(&column) {
                        after.columns.push(column.clone());
                    }
                    columns.push(column);
                }
                for &id in &ids {
                    let mut row = BTreeMap::new();
                    row.insert("id".into(), json!(id));
                    row.insert("v".into(), json!(self.rng.below(1000)));
                    if let Some(c) = columns.get(2) {
                        row.insert(c.clone(), json!(format!("note-{n}-{id}")));
                    }
                    after.rows.insert(id, row);
                }
                let file = self
                    .basin
                    .file(&format!("load-{n}.csv"), &after.csv(&ids, &columns));
                let load_id = format!("load-{n}");
                Planned {
                    args: ingest(file, &load_id, &[]),
                    load_id: Some(load_id),
                    after,
                }
            }
            Op::Upsert => {
                // Every column, so that the upsert's result does not depend on how it fills
                // missing ones: 200 existing keys get new values, 200 new keys arrive.
                let mut ids: BTreeSet<i64> = (0..200)
                    .map(|_| existing[self.rng.below(existing.len() as u64) as usize])
                    .collect();
                ids.extend(fresh(200, &mut self.next_id));
                for &id in &ids {
                    let row = after.rows.entry(id).or_default();
                    row.insert("id".into(), json!(id));
                    row.insert("v".into(), json!(self.rng.below(1000)));
                    for c in &self.model.columns[2..] {
                        row.insert(c.clone(), json!(format!("up-{n}-{id}")));
                    }
                }
                let file = self
                    .basin
                    .file(&format!("upsert-{n}.csv"), &after.csv(&ids, &after.columns));
                let load_id = format!("upsert-{n}");
                Planned {
                    args: ingest(file, &load_id, &["--mode", "upsert", "--key", "id"]),
                    load_id: Some(load_id),
                    after,
                }
            }
            Op::Merge => {
                let mut ids: BTreeSet<i64> = (0..20)
                    .map(|_| existing[self.rng.below(existing.len() as u64) as usize])
                    .collect();
                ids.extend(fresh(20, &mut self.next_id));
                let mut source = Vec::new();
                for &id in &ids {
                    let v = self.rng.below(1000) as i64;
                    source.push(format!("SELECT {id} AS id, {v} AS v"));
                    let row = after.rows.entry(id).or_default();
                    row.insert("id".into(), json!(id));
                    row.insert("v".into(), json!(v));
                }
                let sql = format!(
                    "MERGE INTO crash.t t USING ({}) s ON t.id = s.id \
                     WHEN MATCHED THEN UPDATE SET v = s.v \
                     WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)",
                    source.join(" UNION ALL ")
                );
                Planned {
                    args: vec!["sql".into(), sql],
                    load_id: None,
                    after,
                }
            }
            Op::Update => {
                let r = self.rng.below(3) as i64;
                for (id, row) in after.rows.iter_mut() {
                    if id % 3 == r {
                        let v = row["v"].as_i64().unwrap();
                        row.insert("v".into(), json!(v + 1));
                    }
                }
                Planned {
                    args: vec![
                        "sql".into(),
                        format!("UPDATE crash.t SET v = v + 1 WHERE id % 3 = {r}"),
                    ],
                    load_id: None,
                    after,
                }
            }
            Op::Compact | Op::Vacuum => {
                let args: &[&str] = match op {
                    Op::Compact => &["table", "optimize", "crash.t"],
                    _ => &["table", "vacuum", "crash.t", "--retain-hours", "0"],
                };
                Planned {
                    args: args.iter().map(|s| s.to_string()).collect(),
                    load_id: None,
                    after,
                }
            }
            Op::Delete => {
                // The first 100 rows stay, so the table never empties.
                let r = self.rng.below(4) as i64;
                after.rows.retain(|id, _| *id < 100 || id % 4 != r);
                Planned {
                    args: vec![
                        "sql".into(),
                        format!("DELETE FROM crash.t WHERE id >= 100 AND id % 4 = {r}"),
                    ],
                    load_id: None,
                    after,
                }
            }
        }
    }

    /// The table as it is: it must open and read.
    fn state(&self) -> Vec<BTreeMap<String, Value>> {
        self.basin
            .json("SELECT * FROM crash.t ORDER BY id")
            .into_iter()
            .map(|row| match row {
                Value::Object(m) => m.into_iter().collect(),
                other => panic!("not a row: {other}"),
            })
            .collect()
    }

    /// The table's current version.
    fn version(&self) -> i64 {
        let shown = self
            .basin
            .ok(&["--output", "json", "table", "show", "crash.t"]);
        let shown: Value = serde_json::from_str(&shown).unwrap();
        shown["version"].as_i64().expect("a version")
    }

    fn run(&self, args: &[String]) -> Output {
        let mut command = self.basin.command();
        command.args(args);
        command.output().unwrap()
    }
}

/// Random writes of every kind on one table, each killed at a random point; after each kill the
/// table holds exactly the acknowledged writes, and retries land once.
#[test]
fn crash_cli_writers_killed_at_random_points() {
    let mut h = Harness {
        basin: Basin::new(),
        rng: Rng::seeded("crash_cli_writers_killed_at_random_points"),
        model: Model {
            columns: vec!["id".into(), "v".into()],
            rows: BTreeMap::new(),
        },
        next_id: 0,
        serial: 0,
    };
    h.basin
        .ok(&["dataset", "create", "crash", "--layer", "source"]);
    h.basin
        .ok(&["sql", "CREATE TABLE crash.t (id BIGINT, v BIGINT)"]);
    // How long each kind of write takes when it is not killed: kills land within that.
    let mut took: BTreeMap<Op, Duration> = BTreeMap::new();
    for op in OPS {
        let p = h.plan(op);
        let start = Instant::now();
        let out = h.run(&p.args);
        assert!(
            out.status.success(),
            "{op:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        took.insert(op, start.elapsed());
        h.model = p.after;
        assert_eq!(h.state(), h.model.render(), "after an uninterrupted {op:?}");
    }
    println!("uninterrupted writes took {took:?}");

    let mut tally = Tally::new();
    for kill in 0..kills(30) {
        let op = OPS[kill % OPS.len()]; // every kind as often; the kill point is random
        let p = h.plan(op);
        let before = h.model.render();
        let after = p.after.render();
        let version = op.keeps_rows().then(|| h.version());
        let delay = h.rng.delay(took[&op].mul_f64(1.3));
        let finished = run_or_kill(
            {
                let mut c = h.basin.command();
                c.args(&p.args);
                c
            },
            delay,
        );
        let state = h.state();
        let counts = tally.entry(op.name()).or_default();
        counts[0] += 1;
        let committed = match &finished {
            Some(out) => {
                assert!(
                    out.status.success(),
                    "kill {kill}: {op:?} failed by itself: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                counts[3] += 1;
                assert!(
                    state == after,
                    "kill {kill}: an acknowledged {op:?} is not exactly in the table"
                );
                true
            }
            None if op.keeps_rows() => {
                assert!(
                    state == after,
                    "kill {kill} during {op:?} after {delay:?}: the rows changed"
                );
                let landed = Some(h.version()) > version;
                counts[if landed { 1 } else { 2 }] += 1;
                landed
            }
            None if state == after => {
                counts[1] += 1;
                true
            }
            None if state == before => {
                counts[2] += 1;
                false
            }
            None => {
                let ids: Vec<&Value> = state.iter().map(|r| &r["id"]).collect();
                let unique: BTreeSet<String> = ids.iter().map(|v| v.to_string()).collect();
                panic!(
                    "kill {kill} during {op:?} after {delay:?}: the table is neither as before nor as \
                     after the write ({} rows, {} distinct ids; before {}, after {})",
                    state.len(),
                    unique.len(),
                    before.len(),
                    after.len()
                );
            }
        };
        if finished.is_none() {
            if let Some(load_id) = &p.load_id {
                // The client does not know whether the load landed: it retries with its load id.
                let out = h.run(&p.args);
                assert!(
                    out.status.success(),
                    "retry of {load_id}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let report: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(
                    report["skipped"],
                    json!(committed),
                    "kill {kill}: the retry of load {load_id} must be skipped exactly when it had committed"
                );
                assert!(
                    h.state() == after,
                    "kill {kill}: the retried load {load_id} did not land exactly once"
                );
            } else if !committed {
                let out = h.run(&p.args);
                assert!(
                    out.status.success(),
                    "rerun of {op:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    h.state() == after,
                    "kill {kill}: the rerun {op:?} is not exactly in the table"
                );
            }
        }
        h.model = p.after;
    }
    // Every load id is remembered: replaying the first load adds nothing.
    let out = h.run(&h.plan_replay());
    assert!(out.status.success());
    assert_eq!(h.state(), h.model.render(), "a replayed load id added rows");
    report("crash_cli", &tally);
}

impl Harness {
    /// The arguments of the very first load again (the append of the warm-up).
    fn plan_replay(&self) -> Vec<String> {
        vec![
            "ingest".into(),
            "crash.t".into(),
            self.basin
                .dir
                .path()
                .join("load-1.csv")
                .display()
                .to_string(),
            "--load-id".into(),
            "load-1".into(),
        ]
    }
}

/// A request that may meet a killed server: `None` when no answer came.
async fn try_sql(api: &Api, token: &str, sql: &str) -> Option<u16> {
    let resp = api
        .http
        .post(format!("{}/api/v1/query", api.url))
        .bearer_auth(token)
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    resp.text().await.ok()?;
    Some(status)
}

/// The people table's rows through a fresh server: id → email, in clear for the admin; fails on
/// a duplicated id.
async fn people(s: &Server, admin: &str) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    for row in s
        .client()
        .rows(admin, "SELECT id, email FROM crash.people ORDER BY id")
        .await
    {
        let id = row["id"].as_i64().unwrap();
        let email = row["email"].as_str().unwrap().to_string();
        assert!(
            out.insert(id, email).is_none(),
            "id {id} is in the table twice"
        );
    }
    out
}

/// `basin serve` killed with SIGKILL during concurrent INSERTs and during key rotation (the
/// table has a PII column): after each restart every acknowledged INSERT is there once, nothing
/// unacknowledged is there twice, and every value still decrypts.
#[tokio::test(flavor = "multi_thread")]
async fn crash_server_killed_during_inserts_and_key_rotation() {
    let mut rng = Rng::seeded("crash_server_killed_during_inserts_and_key_rotation");
    let basin = Basin::new();
    basin.ok(&["dataset", "create", "crash", "--layer", "source"]);
    basin.ok(&[
        "sql",
        "CREATE TABLE crash.people (id BIGINT, email VARCHAR)",
    ]);
    let mut model: BTreeMap<i64, String> = BTreeMap::new();
    {
        let s = Server::start(&basin, &[]);
        let admin = s.client().login("admin", ADMIN_PASSWORD).await;
        let api = s.client();
        let a = api
            .call(
                "PUT",
                "/api/v1/tags/classification",
                Some(&admin),
                Some(json!({"allowed_values": ["public", "pii"]})),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        let a = api.call("PUT", "/api/v1/tags", Some(&admin), Some(json!({"object": "table main.crash.people", "column": "email", "tags": ["classification=pii"]}))).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let email = |id: i64| format!("person{id}@example.test");
    let mut next_id = 0;
    let mut tally = Tally::new();
    for kill in 0..kills(30) / 5 {
        let s = Server::start(&basin, &[]);
        let admin = s.client().login("admin", ADMIN_PASSWORD).await;
        let rotate = kill % 3 == 2;
        let op = if rotate {
            "key rotation (REST)"
        } else {
            "INSERT (REST, 4 clients)"
        };
        let mut tasks = Vec::new();
        if rotate {
            let api = s.client();
            let admin = admin.clone();
            tasks.push(tokio::spawn(async move {
                let r = api
                    .http
                    .post(format!("{}/api/v1/hubs/main/keys/rotate", api.url))
                    .bearer_auth(&admin)
                    .send()
                    .await;
                vec![(-1, r.ok().map(|r| r.status().as_u16()))]
            }));
        } else {
            for _ in 0..4 {
                let api = s.client();
                let admin = admin.clone();
                let ids: Vec<i64> = (next_id..next_id + 25).collect();
                next_id += 25;
                tasks.push(tokio::spawn(async move {
                    let mut answers = Vec::new();
                    for id in ids {
                        let sql =
                            format!("INSERT INTO crash.people VALUES ({id}, '{}')", email(id));
                        let status = try_sql(&api, &admin, &sql).await;
                        answers.push((id, status));
                        if status.is_none() {
                            break;
                        }
                    }
                    answers
                }));
            }
        }
        tokio::time::sleep(rng.delay(Duration::from_millis(if rotate { 150 } else { 1500 }))).await;
        drop(s); // SIGKILL
        let mut acknowledged = BTreeSet::new();
        let mut unknown = BTreeSet::new();
        let mut finished = true;
        for t in tasks {
            for (id, status) in t.await.unwrap() {
                match status {
                    Some(200) => {
                        acknowledged.insert(id);
                    }
                    Some(_) => {}
                    None => {
                        finished = false;
                        unknown.insert(id);
                    }
                }
            }
        }
        let s = Server::start(&basin, &[]);
        let admin = s.client().login("admin", ADMIN_PASSWORD).await;
        let now = people(&s, &admin).await;
        for id in &acknowledged {
            if *id >= 0 {
                assert_eq!(
                    now.get(id),
                    Some(&email(*id)),
                    "kill {kill}: acknowledged INSERT of {id} is lost"
                );
                model.insert(*id, email(*id));
            }
        }
        for (id, e) in &now {
            assert_eq!(
                e,
                &email(*id),
                "kill {kill}: the email of {id} does not read back"
            );
            if !model.contains_key(id) {
                // Only a write whose answer was lost with the server may have landed.
                assert!(
                    unknown.contains(id),
                    "kill {kill}: row {id} is there but its INSERT was answered with an error"
                );
                model.insert(*id, e.clone());
            }
        }
        assert_eq!(
            now, model,
            "kill {kill}: the table is not the acknowledged writes"
        );
        let counts = tally.entry(op).or_default();
        counts[0] += 1;
        let landed = unknown.iter().filter(|id| now.contains_key(id)).count() as u64;
        counts[1] += landed;
        counts[2] += unknown.iter().filter(|id| **id >= 0).count() as u64 - landed;
        if finished {
            counts[3] += 1;
        }
        if rotate {
            // Rotating again after the crash works and leaves every value readable.
            let a = s
                .client()
                .call("POST", "/api/v1/hubs/main/keys/rotate", Some(&admin), None)
                .await;
            assert_eq!(
                a.status, 200,
                "kill {kill}: rotation after a crash: {}",
                a.text
            );
            assert_eq!(
                people(&s, &admin).await,
                model,
                "kill {kill}: after rotating again"
            );
        }
    }
    report("crash_server", &tally);
}
