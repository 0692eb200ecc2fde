//! Streamed records: a principal's requests of records into a table, and each table's stream
//! settings. The node's log is opened by `basin serve` ([`Hub::open_streams`]).

use basin_catalog::StreamSettings;
use basin_catalog::access::{Action, Securable};
use basin_core::TableRef;
use basin_ingest::{Framing, RecordsRequest};
use basin_tables::{Ack, StreamConfig};
use serde_json::json;

use crate::{Hub, Result, Session};

impl Session {
    /// Takes a request of records into table `t` (see [`basin_ingest::append_records`]):
    /// acknowledged once durable, queryable at once. Audited.
    pub async fn append_records(
        &self,
        t: &TableRef,
        body: &[u8],
        framing: Framing,
        idempotency_key: Option<String>,
    ) -> Result<Ack> {
        let request = RecordsRequest {
            table: t.clone(),
            body,
            framing,
            idempotency_key,
        };
        let engine = self.engine();
        let result = basin_ingest::append_records(engine.tables(), &engine.actor(), request)
            .await
            .map_err(Into::into);
        let (outcome, detail) = match &result {
            Ok(ack) => (
                "ok",
                json!({"accepted": ack.accepted, "refused": ack.refused.len(), "sequence": ack.sequence, "replayed": ack.replayed}),
            ),
            Err(e) if crate::session::is_denial(e) => ("denied", json!({"error": e.to_string()})),
            Err(e) => ("error", json!({"error": e.to_string()})),
        };
        self.audit("records", &t.to_string(), outcome, detail).await;
        result
    }

    /// A table's stream settings (for those who see the table).
    pub async fn stream_settings(&self, t: &TableRef) -> Result<StreamSettings> {
        basin_sql::access::table_policy(self.engine(), t).await?;
        Ok(self.engine().catalog().stream_settings(t).await?)
    }

    /// Sets a table's stream settings (MANAGE on the table). Audited.
    pub async fn set_stream_settings(&self, t: &TableRef, s: &StreamSettings) -> Result<()> {
        let result = async {
            let object = Securable::table(t);
            self.require_on(&object, Action::Manage(&object)).await?;
            Ok(self.engine().catalog().set_stream_settings(t, s).await?)
        }
        .await;
        self.audited("table.stream", &t.to_string(), result).await
    }
}

impl Hub {
    /// Opens this node's log of streamed records in `<data-dir>/wal` (one process at a time):
    /// records acknowledged before a crash and not yet committed are committed now.
    pub async fn open_streams(
        &self,
        buffer_bytes: usize,
        idempotency_window: std::time::Duration,
    ) -> Result<()> {
        let config = StreamConfig {
            dir: self.data_dir.join("wal"),
            buffer_bytes,
            idempotency_window,
        };
        Ok(self.tables().open_streams(config).await?)
    }

    /// Commits every buffered record (the last step of a graceful shutdown).
    pub async fn close_streams(&self) -> Result<()> {
        Ok(self.tables().close_streams().await?)
    }
}
