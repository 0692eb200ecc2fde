//! A Kafka topic read for a source with a pure-Rust client (rskafka): the JSON values of a
//! partition's records from one offset on, into an NDJSON file that a load then takes like any
//! other. No consumer group: the source assigns itself every partition and keeps its offsets
//! (see the service's sources).

use std::io::Write;
use std::path::Path;

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};

use crate::{IngestError, Result};

/// Most bytes of values a run takes from one partition (the rest wait for the next run), so
/// that a long backlog loads in bounded pieces.
pub const MAX_BYTES_PER_RUN: u64 = 256 << 20;

/// A connection to a Kafka-protocol cluster.
pub struct KafkaTopic {
    client: Client,
    topic: String,
}

fn failed(what: &str, e: impl std::fmt::Display) -> IngestError {
    IngestError::Input(format!("Kafka source: {what}: {e}"))
}

impl KafkaTopic {
    /// Connects to `brokers` (`host:port`, …) for `topic`.
    pub async fn connect(brokers: &[String], topic: &str) -> Result<KafkaTopic> {
        let client = ClientBuilder::new(brokers.to_vec())
            .build()
            .await
            .map_err(|e| failed(&format!("connecting to {}", brokers.join(",")), e))?;
        Ok(KafkaTopic {
            client,
            topic: topic.to_string(),
        })
    }

    /// The topic's partitions.
    pub async fn partitions(&self) -> Result<Vec<i32>> {
        let topics = self
            .client
            .list_topics()
            .await
            .map_err(|e| failed("listing topics", e))?;
        let topic = topics
            .into_iter()
            .find(|t| t.name == self.topic)
            .ok_or_else(|| failed("topic", format!("'{}' does not exist", self.topic)))?;
        Ok(topic.partitions.into_iter().collect())
    }

    /// Writes the values of partition `p`'s records from offset `from` (or the earliest kept)
    /// up to the end of the partition, or [`MAX_BYTES_PER_RUN`] of values, to `file`, one per
    /// line. Returns the first and the next
    /// offset of what was written. Records without a value (tombstones) are skipped.
    pub async fn read(&self, p: i32, from: Option<i64>, file: &Path) -> Result<(i64, i64)> {
        let client = self
            .client
            .partition_client(self.topic.clone(), p, UnknownTopicHandling::Error)
            .await
            .map_err(|e| failed(&format!("partition {p}"), e))?;
        let earliest = client
            .get_offset(OffsetAt::Earliest)
            .await
            .map_err(|e| failed(&format!("the earliest offset of partition {p}"), e))?;
        // Records the broker deleted (retention) before they were read are gone: go on from
        // the earliest one it keeps.
        let from = from.map_or(earliest, |o| o.max(earliest));
        let io = |source| IngestError::Io {
            path: file.display().to_string(),
            source,
        };
        let mut out = std::io::BufWriter::new(std::fs::File::create(file).map_err(io)?);
        let (mut offset, mut bytes) = (from, 0u64);
        loop {
            if bytes >= MAX_BYTES_PER_RUN {
                break;
            }
            let (records, high) = client
                .fetch_records(offset, 1..8 << 20, 200)
                .await
                .map_err(|e| failed(&format!("reading partition {p} at offset {offset}"), e))?;
            if records.is_empty() {
                break;
            }
            for r in records {
                if r.offset < offset {
                    continue;
                }
                if let Some(value) = r.record.value {
                    out.write_all(&value).map_err(io)?;
                    out.write_all(b"\n").map_err(io)?;
                    bytes += value.len() as u64 + 1;
                }
                offset = r.offset + 1;
            }
            if offset >= high {
                break;
            }
        }
        out.flush().map_err(io)?;
        Ok((from, offset))
    }
}
