//! Streamed records: acknowledged once durable in the table's write-ahead log, part of every
//! scan of the table from then on, and committed to the Delta table in micro-batches.
//!
//! - [`Tables::accept_records`] decides (MODIFY and a full view, like a file upload), encrypts
//!   PII columns, and hands the rows to the table's log writer, which appends the requests
//!   waiting together with one fsync (group commit), puts their rows in the table's buffer and
//!   only then acknowledges them.
//! - The flusher commits a table's buffer when it is old or large enough (its
//!   [`CommitPolicy`]), on the one write path, with a Delta `txn` action `(node, last sequence
//!   number)` in the same commit: after a crash the log is read back and the records the table
//!   already holds are skipped, so every acknowledged record lands exactly once.
//! - Every other write to the table commits its buffer first, so an UPDATE or DELETE sees
//!   every acknowledged row.
//! - Readers take [`Tables::pending_rows`] before they open the table, and ask for the rows a
//!   given version does not hold yet ([`PendingRows::beyond`]).
//! - An `Idempotency-Key` is remembered with its answer, in the log and then in `keys.log`,
//!   for the configured window, across restarts.

mod wal;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use basin_catalog::access::Privilege;
use basin_core::TableRef;
use basin_lake::LakeTable;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::write::{Rows, in_memory, write_rows};
use crate::{Actor, Committed, Result, Tables, TablesError, WriteNeeds};

/// How this node keeps streamed records until they are committed.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The log directory (`<data-dir>/wal`); each process takes a slot of its own in it.
    pub dir: PathBuf,
    /// Records buffered over all tables, in bytes, beyond which requests are refused with
    /// [`TablesError::Full`] until commits catch up.
    pub buffer_bytes: usize,
    /// How long an `Idempotency-Key` and its answer are remembered.
    pub idempotency_window: Duration,
}

/// When a table's buffered records are committed: the first of `max_age` (since the oldest
/// buffered record) and `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPolicy {
    pub max_age: Duration,
    pub max_bytes: usize,
}

impl Default for CommitPolicy {
    fn default() -> Self {
        CommitPolicy {
            max_age: Duration::from_secs(5),
            max_bytes: 128 << 20,
        }
    }
}

/// The answer to a request of records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Records taken.
    pub accepted: u64,
    /// Records refused, with their index in the request (from 0) and why.
    pub refused: Vec<Refused>,
    /// The request's place in the table's stream on this node.
    pub sequence: u64,
    /// True when this is the remembered answer to an earlier request with the same
    /// `Idempotency-Key` (nothing was taken again).
    #[serde(default)]
    pub replayed: bool,
}

/// A record that was not taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub index: u64,
    pub reason: String,
}

/// What the log keeps of a request besides its rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Header {
    /// The caller's `Idempotency-Key`, scoped by principal.
    key: Option<String>,
    /// When it was acknowledged (ms since the epoch).
    at_ms: u64,
    ack: Ack,
    /// The columns whose values were encrypted before they were logged.
    pii: Vec<String>,
}

/// What a caller learns of an `Idempotency-Key` before it sends its records.
pub enum Recall {
    /// The key was used before: its answer.
    Answered(Ack),
    /// The key is new (or none was given): the request goes on, holding it.
    Go(Claim),
}

/// A request's hold on its `Idempotency-Key`: another request with the same key waits for
/// this one's answer (it is refused as busy meanwhile). Released when dropped.
pub struct Claim {
    stream: Option<(Arc<TableStream>, String)>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some((stream, key)) = self.stream.take() {
            stream.lock().claimed.remove(&key);
        }
    }
}

/// The streams of this node, one per table that has received records.
pub(crate) struct Streams {
    config: StreamConfig,
    /// The application id of this node's `txn` actions.
    app_id: String,
    tables: Mutex<HashMap<TableRef, Arc<TableStream>>>,
    /// Bytes buffered over all tables.
    buffered: Arc<AtomicUsize>,
    /// Wakes the flusher early (a table's buffer is full).
    wake: Arc<Notify>,
    /// One table's log is opened at a time (two writers must never share one).
    opening: tokio::sync::Mutex<()>,
    /// Held while the process runs: one process per log directory.
    _lock: std::fs::File,
}

/// Where the `Streams` of a [`Tables`] live once opened (`basin serve` opens them).
pub(crate) type StreamsCell = Arc<OnceLock<Arc<Streams>>>;

/// One table's log writer, buffer and remembered keys.
pub(crate) struct TableStream {
    t: TableRef,
    location: String,
    dir: PathBuf,
    ops: mpsc::Sender<LogOp>,
    state: Mutex<Buffer>,
    /// A commit of the buffer ended (readers waiting to learn its version).
    settled: Notify,
    /// One commit of the buffer at a time.
    flush_turn: Arc<tokio::sync::Mutex<()>>,
}

struct Buffer {
    entries: VecDeque<Arc<Entry>>,
    bytes: usize,
    next_seq: u64,
    policy: CommitPolicy,
    /// The commit in flight: the last sequence number it takes, and the table version it
    /// started from (the version it makes is later).
    flushing: Option<(u64, i64)>,
    /// Recent commits of the buffer: (version made, last sequence number in it).
    flushed: VecDeque<(i64, u64)>,
    keys: HashMap<String, Ack>,
    /// Keys by age, to forget them after the window.
    key_ages: VecDeque<(u64, String)>,
    claimed: HashSet<String>,
    /// After a failed commit, the next is not tried before this.
    retry_at: Option<Instant>,
    failures: u32,
}

impl Buffer {
    /// Remembers the answer to an `Idempotency-Key` given at `at_ms`.
    fn remember(&mut self, key: String, at_ms: u64, ack: Ack) {
        self.key_ages.push_back((at_ms, key.clone()));
        self.keys.insert(key, ack);
    }

    /// Forgets the keys given before `oldest` (ms).
    fn forget_keys_before(&mut self, oldest: u64) {
        while let Some((at, key)) = self.key_ages.front()
            && *at < oldest
        {
            self.keys.remove(key);
            self.key_ages.pop_front();
        }
    }
}

/// One acknowledged request's rows, as stored (PII encrypted).
pub(crate) struct Entry {
    seq: u64,
    batch: RecordBatch,
    pii: Vec<String>,
    key: Option<String>,
    ack: Ack,
    at: Instant,
    at_ms: u64,
    size: usize,
}

enum LogOp {
    Append {
        header: Header,
        batch: RecordBatch,
        payload: Vec<u8>,
        answer: oneshot::Sender<std::io::Result<Ack>>,
    },
    /// Close the segment: answers the segments to retire after a commit of every record up
    /// to the sequence number also answered.
    Rotate {
        answer: oneshot::Sender<(Vec<PathBuf>, u64)>,
    },
    Retire {
        segments: Vec<PathBuf>,
        answer: oneshot::Sender<std::io::Result<()>>,
    },
}

/// The buffered rows of a table as a reader found them before it opened the table.
pub struct PendingRows {
    stream: Arc<TableStream>,
    entries: Vec<Arc<Entry>>,
}

impl PendingRows {
    /// The rows that the table's `version` does not hold yet. When a commit of the buffer is
    /// landing at that moment, waits for it to say which version it made.
    pub async fn beyond(self, version: i64) -> Vec<RecordBatch> {
        let committed = loop {
            let settled = self.stream.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            {
                let state = self.stream.lock();
                let ambiguous = state
                    .flushing
                    .is_some_and(|(_, started_from)| version > started_from);
                if !ambiguous {
                    break state
                        .flushed
                        .iter()
                        .filter(|(v, _)| *v <= version)
                        .map(|(_, seq)| *seq)
                        .max()
                        .unwrap_or(0);
                }
            }
            settled.await;
        };
        self.entries
            .iter()
            .filter(|e| e.seq > committed)
            .map(|e| e.batch.clone())
            .collect()
    }
}

impl TableStream {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the buffer should be committed now: it is old or large enough, or the node's
    /// buffer is full (`node_full`) and it holds something — unless a commit is in flight or a
    /// failed one's backoff has not passed.
    fn due(&self, now: Instant, node_full: bool) -> bool {
        let state = self.lock();
        if state.flushing.is_some() || state.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        (node_full && !state.entries.is_empty())
            || state.bytes >= state.policy.max_bytes
            || state
                .entries
                .front()
                .is_some_and(|e| now.duration_since(e.at) >= state.policy.max_age)
    }

    fn keys_path(&self) -> PathBuf {
        self.dir.join("keys.log")
    }

    async fn op<T>(&self, op: impl FnOnce(oneshot::Sender<T>) -> LogOp) -> Result<T> {
        let (answer, answered) = oneshot::channel();
        let gone = || TablesError::Invalid(format!("the stream log of '{}' is closed", self.t));
        self.ops.send(op(answer)).await.map_err(|_| gone())?;
        answered.await.map_err(|_| gone())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn log_error(what: &str, dir: &Path, e: std::io::Error) -> TablesError {
    TablesError::Invalid(format!(
        "cannot {what} the stream log in {}: {e}",
        dir.display()
    ))
}

/// The log writer of one table: appends the requests that arrived together with one fsync,
/// buffers their rows, then answers them. It ends when the table's stream is dropped.
async fn run_log(
    stream: std::sync::Weak<TableStream>,
    mut wal: wal::Wal,
    mut ops: mpsc::Receiver<LogOp>,
    buffered: Arc<AtomicUsize>,
    wake: Arc<Notify>,
) {
    while let Some(first) = ops.recv().await {
        let Some(stream) = stream.upgrade() else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < 4096
            && let Ok(op) = ops.try_recv()
        {
            batch.push(op);
        }
        let mut appends = Vec::new();
        for op in batch {
            match op {
                LogOp::Append {
                    header,
                    batch,
                    payload,
                    answer,
                } => appends.push((header, batch, payload, answer)),
                other => {
                    // Appends that arrived before it go first.
                    wal =
                        append_group(&stream, wal, std::mem::take(&mut appends), &buffered, &wake)
                            .await;
                    match other {
                        LogOp::Rotate { answer } => {
                            let through = stream.lock().next_seq - 1;
                            let _ = answer.send((wal.rotate(), through));
                        }
                        LogOp::Retire { segments, answer } => {
                            let _ = answer.send(wal.retire(&segments));
                        }
                        LogOp::Append { .. } => unreachable!("matched above"),
                    }
                }
            }
        }
        wal = append_group(&stream, wal, appends, &buffered, &wake).await;
    }
}

type Appended = (
    Header,
    RecordBatch,
    Vec<u8>,
    oneshot::Sender<std::io::Result<Ack>>,
);

async fn append_group(
    stream: &Arc<TableStream>,
    mut wal: wal::Wal,
    appends: Vec<Appended>,
    buffered: &AtomicUsize,
    wake: &Notify,
) -> wal::Wal {
    if appends.is_empty() {
        return wal;
    }
    let first = stream.lock().next_seq;
    let count = appends.len() as u64;
    let (frames, appends): (Vec<(u64, Vec<u8>)>, Vec<_>) = appends
        .into_iter()
        .enumerate()
        .map(|(i, (header, batch, payload, answer))| {
            ((first + i as u64, payload), (header, batch, answer))
        })
        .unzip();
    let (wal, written) = tokio::task::spawn_blocking(move || {
        let written = wal.append(&frames);
        (wal, written)
    })
    .await
    .expect("the log writer does not panic");
    match written {
        Ok(()) => {
            let now = Instant::now();
            let mut state = stream.lock();
            let mut full = false;
            for (i, (header, batch, answer)) in appends.into_iter().enumerate() {
                let seq = first + i as u64;
                let ack = Ack {
                    sequence: seq,
                    ..header.ack
                };
                let size = batch.get_array_memory_size();
                state.bytes += size;
                buffered.fetch_add(size, Ordering::Relaxed);
                if let Some(key) = &header.key {
                    state.remember(key.clone(), header.at_ms, ack.clone());
                }
                state.entries.push_back(Arc::new(Entry {
                    seq,
                    batch,
                    pii: header.pii,
                    key: header.key,
                    ack: ack.clone(),
                    at: now,
                    at_ms: header.at_ms,
                    size,
                }));
                full |= state.bytes >= state.policy.max_bytes;
                let _ = answer.send(Ok(ack));
            }
            state.next_seq = first + count;
            if full {
                wake.notify_one();
            }
        }
        Err(e) => {
            tracing::error!(table = %stream.t, "cannot write the stream log: {e}");
            for (_, _, answer) in appends {
                let _ = answer.send(Err(std::io::Error::new(e.kind(), e.to_string())));
            }
        }
    }
    wal
}

impl Streams {
    /// Opens the log directory (one process at a time), or fails naming what holds it.
    fn open(mut config: StreamConfig) -> Result<Streams> {
        let (dir, lock) = take_slot(&config.dir)?;
        config.dir = dir;
        let dir = &config.dir;
        let node_file = dir.join("node");
        let node = match std::fs::read_to_string(&node_file) {
            Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => {
                let id = format!("{:032x}", rand::random::<u128>());
                std::fs::write(&node_file, &id).map_err(|e| log_error("write", dir, e))?;
                id
            }
        };
        Ok(Streams {
            app_id: format!("basin-stream:{node}"),
            config,
            tables: Mutex::new(HashMap::new()),
            buffered: Arc::new(AtomicUsize::new(0)),
            wake: Default::default(),
            opening: Default::default(),
            _lock: lock,
        })
    }

    /// When the oldest `Idempotency-Key` still remembered was given (ms since the epoch).
    fn oldest_key_ms(&self) -> u64 {
        now_ms().saturating_sub(self.config.idempotency_window.as_millis() as u64)
    }

    fn table_dir(&self, t: &TableRef) -> PathBuf {
        self.config
            .dir
            .join(t.hub.as_str())
            .join(t.dataset.as_str())
            .join(t.table.as_str())
    }

    fn get(&self, t: &TableRef) -> Option<Arc<TableStream>> {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(t)
            .cloned()
    }

    fn all(&self) -> Vec<Arc<TableStream>> {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The stream of `t` at `location`, opened from its log (records the table already holds
    /// are dropped; the rest are buffered again) when it is not open yet.
    async fn open_table(
        self: &Arc<Self>,
        t: &TableRef,
        location: &str,
    ) -> Result<Arc<TableStream>> {
        if let Some(s) = self.get(t)
            && s.location == location
        {
            return Ok(s);
        }
        let _opening = self.opening.lock().await;
        match self.get(t) {
            Some(s) if s.location == location => return Ok(s),
            // The table was dropped and created again by another node.
            Some(_) => self.discard(t),
            None => {}
        }
        let dir = self.table_dir(t);
        let (wal, logged) = {
            let opened = dir.clone();
            tokio::task::spawn_blocking(move || wal::Wal::open(&opened))
                .await
                .expect("opening a log does not panic")
                .map_err(|e| log_error("read", &dir, e))?
        };
        let lake = LakeTable::open(location).await?;
        let committed = lake
            .transaction_version(&self.app_id)
            .await?
            .unwrap_or(0)
            .max(0) as u64;
        let oldest = self.oldest_key_ms();
        let mut remembered = read_keys(&dir.join("keys.log"), oldest);
        let mut buffer = Buffer {
            entries: VecDeque::new(),
            bytes: 0,
            next_seq: committed + 1,
            policy: CommitPolicy::default(),
            flushing: None,
            flushed: VecDeque::new(),
            keys: HashMap::new(),
            key_ages: VecDeque::new(),
            claimed: HashSet::new(),
            retry_at: None,
            failures: 0,
        };
        // Recovered records are due at once.
        let due = Instant::now()
            .checked_sub(Duration::from_secs(3600))
            .unwrap_or_else(Instant::now);
        for l in logged {
            buffer.next_seq = buffer.next_seq.max(l.seq + 1);
            let ack = Ack {
                sequence: l.seq,
                ..l.header.ack
            };
            if let Some(key) = &l.header.key
                && l.header.at_ms >= oldest
            {
                if l.seq <= committed {
                    // Committed before the crash, its segment not yet retired: its key moves
                    // to the keys file now.
                    remembered.push((l.header.at_ms, key.clone(), ack.clone()));
                } else {
                    buffer.remember(key.clone(), l.header.at_ms, ack.clone());
                }
            }
            if l.seq <= committed {
                continue;
            }
            let size = l.batch.get_array_memory_size();
            buffer.bytes += size;
            buffer.entries.push_back(Arc::new(Entry {
                seq: l.seq,
                batch: l.batch,
                pii: l.header.pii,
                key: l.header.key,
                ack,
                at: due,
                at_ms: l.header.at_ms,
                size,
            }));
        }
        rewrite_keys(&dir.join("keys.log"), &remembered)
            .map_err(|e| log_error("write", &dir, e))?;
        for (at, key, ack) in remembered {
            buffer.remember(key, at, ack);
        }
        if !buffer.entries.is_empty() {
            tracing::info!(table = %t, records = buffer.entries.len(), "stream log read back: acknowledged records not yet committed are buffered again");
        }
        self.buffered.fetch_add(buffer.bytes, Ordering::Relaxed);
        let (ops, receiver) = mpsc::channel(1024);
        let stream = Arc::new(TableStream {
            t: t.clone(),
            location: location.to_string(),
            dir,
            ops,
            state: Mutex::new(buffer),
            settled: Notify::new(),
            flush_turn: Default::default(),
        });
        let wake = self.wake.clone();
        tokio::spawn(run_log(
            Arc::downgrade(&stream),
            wal,
            receiver,
            self.buffered.clone(),
            wake,
        ));
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(t.clone(), stream.clone());
        Ok(stream)
    }

    /// Forgets the buffered records of a dropped table and removes its log.
    fn discard(&self, t: &TableRef) {
        let removed = self
            .tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(t);
        if let Some(stream) = removed {
            let mut state = stream.lock();
            let bytes = std::mem::take(&mut state.bytes);
            state.entries.clear();
            drop(state);
            self.buffered.fetch_sub(bytes, Ordering::Relaxed);
            let _ = std::fs::remove_dir_all(&stream.dir);
        }
    }
}

/// Most processes that share one data directory's log.
const SLOTS: usize = 64;

/// The first slot of the log directory `root` no other process holds (`node-0`, `node-1`, …),
/// locked for as long as the process runs: several servers may share a data directory, each
/// with a log of its own, and a server that starts after a crash takes over a free slot's
/// records, whoever left them.
fn take_slot(root: &Path) -> Result<(PathBuf, std::fs::File)> {
    for i in 0..SLOTS {
        let dir = root.join(format!("node-{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| log_error("create", &dir, e))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(|e| log_error("open", &dir, e))?;
        if lock.try_lock().is_ok() {
            return Ok((dir, lock));
        }
    }
    Err(TablesError::Invalid(format!(
        "all {SLOTS} stream logs in {} are in use by other basin processes",
        root.display()
    )))
}

/// The remembered keys of `path` not older than `oldest` (ms).
fn read_keys(path: &Path, oldest: u64) -> Vec<(u64, String, Ack)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<(u64, String, Ack)>(l).ok())
        .filter(|(at, _, _)| *at >= oldest)
        .collect()
}

fn rewrite_keys(path: &Path, keys: &[(u64, String, Ack)]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    for k in keys {
        serde_json::to_writer(&mut f, k)?;
        f.write_all(b"\n")?;
    }
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

fn append_keys(path: &Path, entries: &[Arc<Entry>]) -> std::io::Result<()> {
    let mut text = Vec::new();
    for e in entries {
        if let Some(key) = &e.key {
            serde_json::to_writer(&mut text, &(e.at_ms, key, &e.ack))?;
            text.push(b'\n');
        }
    }
    if text.is_empty() {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&text)?;
    f.sync_data()
}

impl WriteNeeds {
    /// What a request of records needs: MODIFY, and a view of every row and column (its
    /// records are not checked against a row filter), as a file upload.
    pub fn records(columns: Vec<String>) -> WriteNeeds {
        WriteNeeds {
            operation: "stream",
            privilege: Privilege::Modify,
            full_view: false,
            rows_unchecked: true,
            administer: false,
            columns,
        }
    }
}

/// The actor of the commits of buffered records (each request was decided when it came).
fn streamer() -> Actor {
    Actor {
        principal: None,
        origin: "stream".into(),
    }
}

impl Tables {
    /// Opens this node's stream log (`basin serve` does, once): records acknowledged before a
    /// crash and not yet committed are read back and committed.
    pub async fn open_streams(&self, config: StreamConfig) -> Result<()> {
        let streams = Arc::new(Streams::open(config)?);
        if self.streams.set(streams.clone()).is_err() {
            return Err(TablesError::Invalid(
                "the stream log is open already".into(),
            ));
        }
        // Every table with a log left behind is read back now.
        for hub in subdirs(&streams.config.dir) {
            for dataset in subdirs(&hub) {
                for table in subdirs(&dataset) {
                    let name = |p: &Path| {
                        p.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    };
                    let Ok(t) = TableRef::new(&name(&hub), &name(&dataset), &name(&table)) else {
                        continue;
                    };
                    match self.catalog.table(&t).await? {
                        Some(entry) if !entry.is_view() => {
                            streams.open_table(&t, &entry.location).await?;
                        }
                        _ => {
                            tracing::warn!(table = %t, "the stream log of a table that no longer exists is removed");
                            let _ = std::fs::remove_dir_all(&table);
                        }
                    }
                }
            }
        }
        let tables = self.clone();
        tokio::spawn(async move { tables.run_flusher().await });
        for s in streams.all() {
            if let Err(e) = self.flush_stream(&s.t).await {
                tracing::error!(table = %s.t, "cannot commit the records read back from the stream log (retried): {e}");
            }
        }
        Ok(())
    }

    fn streams(&self) -> Option<&Arc<Streams>> {
        self.streams.get()
    }

    /// Looks up `key` (an `Idempotency-Key` of `actor`) on table `t`: its answer when it was
    /// used within the window, else a claim on it for this request.
    pub async fn recall_records(
        &self,
        actor: &Actor,
        t: &TableRef,
        key: Option<&str>,
    ) -> Result<Recall> {
        let Some(key) = key else {
            return Ok(Recall::Go(Claim { stream: None }));
        };
        let streams = self.streams().ok_or_else(no_streams)?;
        let entry = self.entry(t).await?;
        let stream = streams.open_table(t, &entry.location).await?;
        let key = format!("{}\u{1f}{key}", actor.name());
        let mut state = stream.lock();
        if let Some(ack) = state.keys.get(&key) {
            return Ok(Recall::Answered(Ack {
                replayed: true,
                ..ack.clone()
            }));
        }
        if !state.claimed.insert(key.clone()) {
            return Err(TablesError::InProgress {
                table: t.to_string(),
            });
        }
        drop(state);
        Ok(Recall::Go(Claim {
            stream: Some((stream, key)),
        }))
    }

    /// Takes streamed records for `actor` into table `t`: decided like a file upload (MODIFY
    /// and a view of every row and column), PII encrypted, durable in the log when this
    /// returns, visible to every scan of the table on this node from then on, and committed
    /// by the flusher under `policy`. `refused` are the request's records that were not
    /// taken (reported in the answer). Refused with [`TablesError::Full`] while this node's
    /// buffer is full.
    pub async fn accept_records(
        &self,
        actor: &Actor,
        t: &TableRef,
        rows: RecordBatch,
        refused: Vec<Refused>,
        policy: CommitPolicy,
        claim: Claim,
    ) -> Result<Ack> {
        let streams = self.streams().ok_or_else(no_streams)?;
        let entry = self.entry(t).await?;
        let columns = rows
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let needs = WriteNeeds::records(columns);
        self.decide(actor, &entry, &needs).await?;
        crate::write::not_a_view(&entry)?;
        if !entry.primary_key.is_empty() {
            return Err(TablesError::Invalid(format!(
                "table '{t}' has a primary key ({}), which streamed records cannot be checked against before they are acknowledged; load keyed rows as a file upload with mode=upsert",
                entry.primary_key.join(", ")
            )));
        }
        let limit = streams.config.buffer_bytes;
        if streams.buffered.load(Ordering::Relaxed) >= limit {
            streams.wake.notify_one();
            return Err(TablesError::Full {
                table: t.to_string(),
                limit,
                retry_after: 1,
            });
        }
        let (pii, key) = self.protection(&entry, Some(rows.schema()))?;
        let rows = match &key {
            Some(key) => key.encrypt_batch(&rows, &pii)?,
            None => rows,
        };
        let stream = streams.open_table(t, &entry.location).await?;
        stream.lock().policy = policy;
        let header = Header {
            key: claim.stream.as_ref().map(|(_, k)| k.clone()),
            at_ms: now_ms(),
            ack: Ack {
                accepted: rows.num_rows() as u64,
                refused,
                sequence: 0,
                replayed: false,
            },
            pii,
        };
        let payload = wal::encode(&header, &rows)
            .map_err(|e| log_error("encode records for", &stream.dir, e))?;
        let ack = stream
            .op(|answer| LogOp::Append {
                header,
                batch: rows,
                payload,
                answer,
            })
            .await?
            .map_err(|e| log_error("write", &stream.dir, e))?;
        drop(claim);
        Ok(ack)
    }

    /// The records of `t` buffered on this node, as a reader takes them before it opens the
    /// table (see [`PendingRows::beyond`]); `None` when there are none.
    pub fn pending_rows(&self, t: &TableRef) -> Option<PendingRows> {
        let stream = self.streams()?.get(t)?;
        let entries: Vec<Arc<Entry>> = stream.lock().entries.iter().cloned().collect();
        (!entries.is_empty()).then_some(PendingRows { stream, entries })
    }

    /// Commits every record of `t` buffered on this node so far (each write other than an
    /// append does this first).
    pub async fn flush_stream(&self, t: &TableRef) -> Result<()> {
        let Some(streams) = self.streams() else {
            return Ok(());
        };
        let Some(stream) = streams.get(t) else {
            return Ok(());
        };
        let turn = stream.flush_turn.clone().lock_owned().await;
        self.flush_in_turn(&stream, turn).await
    }

    /// A commit of a table's buffer, holding its one flush turn.
    async fn flush_in_turn(
        &self,
        stream: &Arc<TableStream>,
        _turn: tokio::sync::OwnedMutexGuard<()>,
    ) -> Result<()> {
        let streams = self.streams().ok_or_else(no_streams)?;
        let result = self.flush_unlocked(streams, stream).await;
        let mut state = stream.lock();
        state.flushing = None;
        match &result {
            Ok(()) => {
                state.failures = 0;
                state.retry_at = None;
            }
            Err(_) => {
                state.failures += 1;
                let wait = Duration::from_millis(250 << state.failures.min(7));
                state.retry_at = Some(Instant::now() + wait);
            }
        }
        drop(state);
        stream.settled.notify_waiters();
        result
    }

    async fn flush_unlocked(
        &self,
        streams: &Arc<Streams>,
        stream: &Arc<TableStream>,
    ) -> Result<()> {
        let t = &stream.t;
        let _turn = self.sequencer.turn(&t.to_string()).await?;
        let (segments, through) = stream.op(|answer| LogOp::Rotate { answer }).await?;
        let failed_before = stream.lock().failures > 0;
        let mut entries: Vec<Arc<Entry>> = stream
            .lock()
            .entries
            .iter()
            .filter(|e| e.seq <= through)
            .cloned()
            .collect();
        if !entries.is_empty() {
            let Some(entry) = self.catalog.table(t).await? else {
                tracing::warn!(table = %t, "the table was dropped: its buffered records go with it");
                self.discard_stream(t);
                return Ok(());
            };
            let lake = LakeTable::open(&entry.location).await?;
            if failed_before {
                // A commit that failed may have landed all the same (its answer lost): what
                // the table holds already is not committed again.
                let held = lake
                    .transaction_version(&streams.app_id)
                    .await?
                    .unwrap_or(0)
                    .max(0) as u64;
                let (landed, rest) = entries.into_iter().partition(|e| e.seq <= held);
                entries = rest;
                release(streams, stream, landed, held, lake.version()).await?;
            }
            if !entries.is_empty() {
                stream.lock().flushing = Some((through, lake.version()));
                let started = Instant::now();
                let result = self
                    .commit_entries(streams, &lake, &entry, &entries, through)
                    .await;
                let actor = streamer();
                self.record(&actor, "commit", t, "stream", &result).await;
                crate::log::commit(&actor, t, "stream", started, &result);
                let committed = result?;
                self.announce(&actor, t, "stream", &committed);
                release(streams, stream, entries, through, committed.version).await?;
            }
        }
        stream
            .op(|answer| LogOp::Retire { segments, answer })
            .await?
            .map_err(|e| log_error("retire segments of", &stream.dir, e))
    }

    /// One Delta commit of buffered rows, with the `txn` action that marks them committed.
    async fn commit_entries(
        &self,
        streams: &Streams,
        lake: &LakeTable,
        entry: &basin_catalog::Table,
        entries: &[Arc<Entry>],
        through: u64,
    ) -> Result<Committed> {
        let schema = lake.schema()?;
        let (pii, key) = self.protection(entry, None)?;
        let mut batches = Vec::with_capacity(entries.len());
        for e in entries {
            // A column tagged pii after the records came is encrypted now.
            let late: Vec<String> = pii.iter().filter(|c| !e.pii.contains(c)).cloned().collect();
            let batch = match &key {
                Some(key) if !late.is_empty() => key.encrypt_batch(&e.batch, &late)?,
                _ => e.batch.clone(),
            };
            batches.push(basin_lake::evolution::conform(&batch, &schema)?);
        }
        let rows = Rows {
            rows: in_memory(schema, batches),
            load_id: None,
            operation: "stream",
            transactions: vec![(streams.app_id.clone(), through as i64)],
        };
        let mut committed =
            write_rows(lake, entry, rows, basin_lake::WriteMode::Append, None, &[]).await?;
        committed.rows = entries.iter().map(|e| e.batch.num_rows() as u64).sum();
        Ok(committed)
    }

    /// Forgets the buffered records of a dropped table and removes its log.
    pub(crate) fn discard_stream(&self, t: &TableRef) {
        if let Some(streams) = self.streams() {
            streams.discard(t);
        }
    }

    /// Commits every table's buffer that is due, until the process ends.
    async fn run_flusher(&self) {
        let Some(streams) = self.streams().cloned() else {
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = streams.wake.notified() => {}
            }
            let now = Instant::now();
            let full = streams.buffered.load(Ordering::Relaxed) >= streams.config.buffer_bytes;
            for stream in streams.all() {
                if !stream.due(now, full) {
                    continue;
                }
                // A table whose buffer is being committed waits for the next pass.
                let Ok(turn) = stream.flush_turn.clone().try_lock_owned() else {
                    continue;
                };
                let tables = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = tables.flush_in_turn(&stream, turn).await {
                        tracing::error!(table = %stream.t, "cannot commit buffered records (kept in the log and retried): {e}");
                    }
                });
            }
        }
    }

    /// Commits every buffered record (a graceful shutdown does this last).
    pub async fn close_streams(&self) -> Result<()> {
        let Some(streams) = self.streams() else {
            return Ok(());
        };
        for stream in streams.all() {
            self.flush_stream(&stream.t).await?;
        }
        Ok(())
    }
}

/// Takes committed entries (every sequence number up to `through`, in table `version`) out of
/// the buffer; their keys move to the keys file before their log segments are retired.
async fn release(
    streams: &Streams,
    stream: &Arc<TableStream>,
    entries: Vec<Arc<Entry>>,
    through: u64,
    version: i64,
) -> Result<()> {
    let released: usize = entries.iter().map(|e| e.size).sum();
    {
        let mut state = stream.lock();
        state.entries.retain(|e| e.seq > through);
        state.bytes -= released;
        state.flushed.push_back((version, through));
        if state.flushed.len() > 64 {
            state.flushed.pop_front();
        }
        state.forget_keys_before(streams.oldest_key_ms());
    }
    streams.buffered.fetch_sub(released, Ordering::Relaxed);
    let path = stream.keys_path();
    tokio::task::spawn_blocking(move || append_keys(&path, &entries))
        .await
        .expect("writing keys does not panic")
        .map_err(|e| log_error("write keys to", &stream.dir, e))
}

fn no_streams() -> TablesError {
    TablesError::Invalid(
        "streamed records are taken by a running server (`basin serve`), which keeps their log"
            .into(),
    )
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = read
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}
