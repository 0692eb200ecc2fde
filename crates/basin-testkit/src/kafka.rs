//! A throw-away Kafka-protocol broker for tests: Tansu with in-memory storage on a free
//! loopback port, killed on drop; topics created and records produced with a Kafka client.

use std::process::{Child, Command};

use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;

use crate::tools::{free_port, start_listening, tool};

pub struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(tool("tansu"));
        command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"]);
        let child = start_listening(command, port, &dir.path().join("tansu.log"));
        Broker {
            child,
            port,
            _dir: dir,
        }
    }

    /// `host:port` of the broker.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn client(&self) -> Client {
        ClientBuilder::new(vec![self.address()])
            .build()
            .await
            .expect("a Kafka client of the test broker")
    }

    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        self.client()
            .await
            .controller_client()
            .expect("a controller")
            .create_topic(topic, partitions, 1, 5_000)
            .await
            .expect("the topic is created");
    }

    /// Produces `values` (each a record's value, no key) to `partition` of `topic`.
    pub async fn produce(&self, topic: &str, partition: i32, values: &[String]) {
        let records = values
            .iter()
            .map(|v| Record {
                key: None,
                value: Some(v.clone().into_bytes()),
                headers: Default::default(),
                timestamp: chrono::Utc::now(),
            })
            .collect();
        self.client()
            .await
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .expect("a partition client")
            .produce(records, Compression::NoCompression)
            .await
            .expect("the records are produced");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
