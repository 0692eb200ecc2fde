//! OpenLineage run events for model runs: a START event when a run begins, a COMPLETE or FAIL
//! event when it ends, each naming the tables the model reads (inputs) and builds (output, with
//! its schema and column lineage), per the OpenLineage spec 2-0-2
//! (<https://openlineage.io/spec/2-0-2/OpenLineage.json>).
//!
//! Configured by `BASIN_OPENLINEAGE_URL` (read once per process, by `basin serve` and the
//! CLI alike): an `http://` or `https://` URL receives each event as a JSON `POST` (with
//! `BASIN_OPENLINEAGE_API_KEY`, if set, as a bearer token); anything else is a file that each
//! event is appended to as one line of JSON. Sending never fails nor holds up a run: posts go
//! out from a thread of their own with a short timeout, and what fails is logged (as an error: the
//! CLI shows it too) without the endpoint's credentials or query.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use basin_core::TableRef;
use basin_pipelines::{ModelSpec, RunOutcome};
use basin_sql::column_lineage::QueryLineage;
use serde_json::{Value, json};

/// Where events go: an `http(s)://` URL, or a file.
pub const ENV_URL: &str = "BASIN_OPENLINEAGE_URL";
/// A bearer token for the endpoint (never logged).
pub const ENV_API_KEY: &str = "BASIN_OPENLINEAGE_API_KEY";

/// The spec version of the events.
pub const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const SCHEMA_FACET: &str =
    "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
const COLUMN_LINEAGE_FACET: &str = "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet";
const SQL_FACET: &str =
    "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet";
const JOB_TYPE_FACET: &str =
    "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const ERROR_FACET: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";

/// What produced the events: the spec asks for a URI naming the producer and its version.
pub const PRODUCER: &str = concat!("urn:basin:", env!("CARGO_PKG_VERSION"));

/// How long one POST may take before it is given up (and logged).
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// The namespace of a hub's datasets and jobs.
pub fn namespace(hub: &str) -> String {
    format!("basin://{hub}")
}

/// The events of one model run, sent at its start ([`RunEvents::start`]) and end
/// ([`RunEvents::end`]).
pub(crate) struct RunEvents {
    run_id: String,
    target: TableRef,
    spec: ModelSpec,
    lineage: Option<QueryLineage>,
}

impl RunEvents {
    /// Sends the START event of a run of `spec` building `target` (nothing when no endpoint
    /// is configured).
    pub(crate) fn start(
        target: &TableRef,
        spec: &ModelSpec,
        lineage: Option<QueryLineage>,
    ) -> Option<RunEvents> {
        let sink = sink()?;
        let run = RunEvents {
            run_id: uuid_v7(),
            target: target.clone(),
            spec: spec.clone(),
            lineage,
        };
        sink.send(run.event("START", None));
        Some(run)
    }

    /// Sends the COMPLETE (or, when the run failed, FAIL) event.
    pub(crate) fn end(self, outcome: &RunOutcome) {
        let Some(sink) = sink() else { return };
        let event = if outcome.status == "failed" {
            self.event("FAIL", Some(&outcome.error))
        } else {
            self.event("COMPLETE", None)
        };
        sink.send(event);
    }

    fn event(&self, event_type: &str, error: Option<&str>) -> Value {
        run_event(
            event_type,
            &self.run_id,
            &self.target,
            &self.spec,
            self.lineage.as_ref(),
            error,
        )
    }
}

/// A `RunEvent` of a run `run_id` of the model `spec` that builds `target`.
pub fn run_event(
    event_type: &str,
    run_id: &str,
    target: &TableRef,
    spec: &ModelSpec,
    lineage: Option<&QueryLineage>,
    error: Option<&str>,
) -> Value {
    let facet = |schema: &str| json!({"_producer": PRODUCER, "_schemaURL": schema});
    let dataset = |t: &TableRef| json!({"namespace": namespace(t.hub.as_str()), "name": format!("{}.{}", t.dataset, t.table)});
    let inputs: Vec<Value> = spec.reads().iter().map(dataset).collect();
    let mut output = dataset(target);
    if let Some(lineage) = lineage {
        let mut schema = facet(SCHEMA_FACET);
        schema["fields"] = lineage
            .columns
            .iter()
            .enumerate()
            .map(|(i, (name, kind))| json!({"name": name, "type": kind, "ordinal_position": i + 1}))
            .collect();
        let input_field = |e: &basin_sql::column_lineage::ColumnEdge| {
            let (namespace, name) = match TableRef::parse(&e.upstream) {
                Ok(t) => (
                    namespace(t.hub.as_str()),
                    format!("{}.{}", t.dataset, t.table),
                ),
                Err(_) => (String::new(), e.upstream.clone()),
            };
            let kind = if e.kind.is_direct() {
                "DIRECT"
            } else {
                "INDIRECT"
            };
            json!({
                "namespace": namespace,
                "name": name,
                "field": e.upstream_column,
                "transformations": [{"type": kind, "subtype": e.kind.as_str().to_uppercase()}],
            })
        };
        let mut fields = serde_json::Map::new();
        for (name, _) in &lineage.columns {
            let inputs: Vec<Value> = lineage
                .edges
                .iter()
                .filter(|e| e.column.as_deref() == Some(name))
                .map(input_field)
                .collect();
            if !inputs.is_empty() {
                fields.insert(name.clone(), json!({"inputFields": inputs}));
            }
        }
        let mut column_lineage = facet(COLUMN_LINEAGE_FACET);
        column_lineage["fields"] = Value::Object(fields);
        column_lineage["dataset"] = lineage
            .edges
            .iter()
            .filter(|e| e.column.is_none())
            .map(input_field)
            .collect();
        output["facets"] = json!({"schema": schema, "columnLineage": column_lineage});
    }
    let mut sql = facet(SQL_FACET);
    sql["query"] = json!(spec.query);
    let mut job_type = facet(JOB_TYPE_FACET);
    job_type["processingType"] = json!("BATCH");
    job_type["integration"] = json!("BASIN");
    job_type["jobType"] = json!("MODEL");
    let mut run = json!({"runId": run_id});
    if let Some(message) = error {
        let mut e = facet(ERROR_FACET);
        e["message"] = json!(message);
        e["programmingLanguage"] = json!("SQL");
        run["facets"] = json!({"errorMessage": e});
    }
    json!({
        "eventType": event_type,
        "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "run": run,
        "job": {
            "namespace": namespace(target.hub.as_str()),
            "name": format!("{}.{}", target.dataset, target.table),
            "facets": {"sql": sql, "jobType": job_type},
        },
        "inputs": inputs,
        "outputs": [output],
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
    })
}

/// A UUID v7 (time-ordered, as the spec recommends for run ids).
fn uuid_v7() -> String {
    let mut b: [u8; 16] = rand::random();
    let ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Where events go.
enum Sink {
    /// Appended, one line each (the lock keeps lines of concurrent runs whole).
    File(PathBuf, Mutex<()>),
    /// Posted in order by a thread of their own.
    Http {
        queue: Mutex<mpsc::Sender<String>>,
        pending: Arc<AtomicUsize>,
    },
}

fn sink() -> Option<&'static Sink> {
    static SINK: OnceLock<Option<Sink>> = OnceLock::new();
    SINK.get_or_init(|| {
        let target = std::env::var(ENV_URL)
            .ok()
            .filter(|v| !v.trim().is_empty())?;
        let target = target.trim().to_string();
        if target.starts_with("http://") || target.starts_with("https://") {
            Some(http_sink(target))
        } else {
            Some(Sink::File(PathBuf::from(target), Mutex::new(())))
        }
    })
    .as_ref()
}

impl Sink {
    fn send(&self, event: Value) {
        let line = event.to_string();
        match self {
            Sink::File(path, lock) => {
                let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
                if let Err(e) = written {
                    tracing::error!(
                        "could not append an OpenLineage event to {} ({ENV_URL}): {e}",
                        path.display()
                    );
                }
            }
            Sink::Http { queue, pending } => {
                pending.fetch_add(1, Ordering::SeqCst);
                let queue = queue.lock().unwrap_or_else(|e| e.into_inner());
                if queue.send(line).is_err() {
                    pending.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }
}

/// The endpoint without credentials, query or fragment: what logs may show.
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            ) + u.path()
        }
        Err(_) => "the configured endpoint".into(),
    }
}

fn http_sink(url: String) -> Sink {
    let (tx, rx) = mpsc::channel::<String>();
    let pending = Arc::new(AtomicUsize::new(0));
    let left = pending.clone();
    let key = std::env::var(ENV_API_KEY).ok().filter(|k| !k.is_empty());
    // A thread with a runtime of its own: events outlive the request or task that raised
    // them, and a slow endpoint holds up no run.
    let started = std::thread::Builder::new()
        .name("openlineage".into())
        .spawn(move || {
            let where_to = shown(&url);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let client = reqwest::Client::builder()
                .timeout(POST_TIMEOUT)
                .connect_timeout(Duration::from_secs(2))
                .build();
            let (runtime, client) = match (runtime, client) {
                (Ok(r), Ok(c)) => (r, c),
                (Err(e), _) => return discard(rx, &left, &where_to, &e.to_string()),
                (_, Err(e)) => return discard(rx, &left, &where_to, &e.to_string()),
            };
            while let Ok(body) = rx.recv() {
                let mut post = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body);
                if let Some(key) = &key {
                    post = post.bearer_auth(key);
                }
                // The request is made inside the runtime: its timeout needs the runtime's timer.
                match runtime.block_on(async move { post.send().await }) {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::error!(
                        "the OpenLineage endpoint {where_to} refused an event: HTTP {}",
                        r.status()
                    ),
                    Err(e) => tracing::error!(
                        "could not post an OpenLineage event to {where_to}: {}",
                        e.without_url()
                    ),
                }
                left.fetch_sub(1, Ordering::SeqCst);
            }
        });
    if let Err(e) = started {
        tracing::error!("OpenLineage events are off: cannot start their thread: {e}");
    }
    Sink::Http {
        queue: Mutex::new(tx),
        pending,
    }
}

/// Drops the events of a sink that cannot post (said once), so that none waits for them.
fn discard(rx: mpsc::Receiver<String>, pending: &AtomicUsize, where_to: &str, why: &str) {
    tracing::error!("OpenLineage events to {where_to} are off: {why}");
    while rx.recv().is_ok() {
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits, at most `timeout`, for the events still being posted (a command that ends right
/// after a run calls it so that the run's last event is not lost).
pub fn flush(timeout: Duration) {
    let Some(Sink::Http { pending, .. }) = sink() else {
        return;
    };
    let until = Instant::now() + timeout;
    while pending.load(Ordering::SeqCst) > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_uuid_v7() {
        let id = uuid_v7();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "7");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, uuid_v7());
    }

    #[test]
    fn logs_show_no_credentials() {
        assert_eq!(
            shown("https://user:secret@lineage.example:8443/api/v1/lineage?api_key=x"),
            "https://lineage.example:8443/api/v1/lineage"
        );
    }
}
