//! A throw-away S3-compatible server for tests: s3s-fs over a temp folder on a free loopback
//! port, with one access key, killed on drop.

use std::process::{Child, Command};
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::tools::{free_port, start_listening, tool};

pub const ACCESS_KEY: &str = "basin-test-access";
pub const SECRET_KEY: &str = "basin-test-secret";
pub const REGION: &str = "us-east-1";

pub struct S3Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl S3Server {
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let root = dir.path().join("data");
        std::fs::create_dir(&root).unwrap();
        let mut command = Command::new(tool("s3s-fs"));
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root);
        let child = start_listening(command, port, &dir.path().join("s3s-fs.log"));
        S3Server { child, port, dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `AWS_*` environment a client of this server needs.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Creates `bucket` (s3s-fs keeps a bucket as a folder of its root).
    pub fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir_all(self.dir.path().join("data").join(bucket)).unwrap();
    }

    fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_access_key_id(ACCESS_KEY)
                .with_secret_access_key(SECRET_KEY)
                .with_region(REGION)
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .build()
                .expect("a client of the test S3 server"),
        )
    }

    /// The keys of `bucket` under `prefix`, sorted, through the S3 protocol.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        let mut keys: Vec<String> = self
            .store(bucket)
            .list(Some(&Path::from(prefix)))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .expect("the bucket is listed");
        keys.sort();
        keys
    }

    /// The body of `key` of `bucket`, through the S3 protocol.
    pub async fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let got = self.store(bucket).get(&Path::from(key)).await;
        got.expect("the object exists")
            .bytes()
            .await
            .expect("the object is read")
            .to_vec()
    }

    /// Uploads `body` as `key` of `bucket`, through the S3 protocol.
    pub async fn put(&self, bucket: &str, key: &str, body: &str) {
        self.store(bucket)
            .put(&Path::from(key), PutPayload::from(body.to_string()))
            .await
            .expect("the object is uploaded");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
