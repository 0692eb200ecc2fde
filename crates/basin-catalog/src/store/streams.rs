//! Each table's settings for streamed records: when buffered records are committed, and what
//! happens to a record with a field the table has no column for.

use basin_core::TableRef;

use super::Catalog;
use crate::error::DbContext;
use crate::{CatalogError, Result};

/// What a record's field that is not a column of the table does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownFields {
    /// The record is refused (the answer says why).
    #[default]
    Reject,
    /// The column is added (typed from the values), then the record is taken.
    Evolve,
    /// The record goes to `<table>__rejected`, as batch loads do with bad rows.
    Quarantine,
}

impl UnknownFields {
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownFields::Reject => "reject",
            UnknownFields::Evolve => "evolve",
            UnknownFields::Quarantine => "quarantine",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "reject" => Ok(UnknownFields::Reject),
            "evolve" => Ok(UnknownFields::Evolve),
            "quarantine" => Ok(UnknownFields::Quarantine),
            other => Err(CatalogError::BadValue(format!(
                "unknown_fields '{other}' is not a policy: use reject, evolve or quarantine"
            ))),
        }
    }
}

/// How a table takes streamed records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamSettings {
    /// Buffered records are committed at the latest this long after the oldest arrived.
    pub max_age_ms: u64,
    /// … or once this many bytes are buffered, whichever comes first.
    pub max_bytes: u64,
    pub unknown_fields: UnknownFields,
    /// A timestamp field of the records from which the table's columns named `year`, `month`,
    /// `day` and `hour` (those it has) are filled, in UTC: a stream partitioned by time.
    pub partition_time_field: Option<String>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            max_age_ms: 5_000,
            max_bytes: 128 << 20,
            unknown_fields: UnknownFields::Reject,
            partition_time_field: None,
        }
    }
}

impl Catalog {
    /// The stream settings of a table (the defaults until some are set).
    pub async fn stream_settings(&self, t: &TableRef) -> Result<StreamSettings> {
        let row: Option<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT max_age_ms, max_bytes, unknown_fields, partition_time_field FROM table_streams WHERE hub = $1 AND dataset = $2 AND table_name = $3",
        )
        .bind(t.hub.as_str())
        .bind(t.dataset.as_str())
        .bind(t.table.as_str())
        .fetch_optional(&self.pool)
        .await
        .ctx(|| format!("reading the stream settings of '{t}'"))?;
        Ok(match row {
            None => StreamSettings::default(),
            Some((age, bytes, unknown, time_field)) => StreamSettings {
                max_age_ms: age.max(0) as u64,
                max_bytes: bytes.max(0) as u64,
                unknown_fields: UnknownFields::parse(&unknown)?,
                partition_time_field: Some(time_field).filter(|f| !f.is_empty()),
            },
        })
    }

    /// Sets the stream settings of a table.
    pub async fn set_stream_settings(&self, t: &TableRef, s: &StreamSettings) -> Result<()> {
        self.require_table(t).await?;
        if !(100..=3_600_000).contains(&s.max_age_ms)
            || !((1 << 20)..=(1 << 34)).contains(&s.max_bytes)
        {
            return Err(CatalogError::BadValue(
                "stream settings need max_age_ms between 100 and 3600000 (1 hour) and max_bytes between 1 MiB and 16 GiB".into(),
            ));
        }
        if let Some(f) = &s.partition_time_field {
            basin_core::Name::parse("field", f)?;
        }
        sqlx::query(
            "INSERT INTO table_streams (hub, dataset, table_name, max_age_ms, max_bytes, unknown_fields, partition_time_field)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (hub, dataset, table_name) DO UPDATE SET max_age_ms = excluded.max_age_ms,
               max_bytes = excluded.max_bytes, unknown_fields = excluded.unknown_fields,
               partition_time_field = excluded.partition_time_field",
        )
        .bind(t.hub.as_str())
        .bind(t.dataset.as_str())
        .bind(t.table.as_str())
        .bind(s.max_age_ms as i64)
        .bind(s.max_bytes as i64)
        .bind(s.unknown_fields.as_str())
        .bind(s.partition_time_field.as_deref().unwrap_or(""))
        .execute(&self.pool)
        .await
        .ctx(|| format!("setting the stream settings of '{t}'"))?;
        Ok(())
    }
}
