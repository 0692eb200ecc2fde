//! Backup of a table whose early commits were cleaned out of its Delta log: the copy starts at
//! its checkpoint, and the restored table reads at every version still in the log.

use basin_service::{Hub, HubConfig};
use basin_testkit::DataDir;

fn config(dir: &std::path::Path) -> HubConfig {
    HubConfig {
        data_dir: dir.to_path_buf(),
        catalog_url: None,
        keystore_dir: None,
        master_key: None,
    }
}

async fn count(hub: &Hub, sql: &str) -> usize {
    let session = hub.user_session("admin", &[], "test").await.unwrap();
    session.query(sql).await.unwrap().num_rows()
}

#[tokio::test]
async fn a_table_whose_early_commits_were_cleaned_up_is_copied_from_its_checkpoint() {
    let data = DataDir::with(&["main"], &["shop"]).await;
    data.catalog.ensure_admin("admin").await.unwrap();
    let hub = Hub::open(&config(data.path())).await.unwrap();
    let admin = hub.user_session("admin", &[], "test").await.unwrap();
    admin
        .query("CREATE TABLE shop.t (id BIGINT)")
        .await
        .unwrap();
    let insert = |range: std::ops::RangeInclusive<i32>| {
        range
            .map(|i| format!("INSERT INTO shop.t VALUES ({i})"))
            .collect::<Vec<_>>()
            .join(";\n")
    };
    admin.query(&insert(1..=10)).await.unwrap();
    // A checkpoint at version 10 (Basin writes none itself; other Delta writers and a later
    // maintenance do), two more commits, and the commits before the checkpoint cleaned up, as
    // delta-rs's log cleanup does once they expire.
    let dir = data.path().join("hubs/main/shop/t");
    let table = deltalake::open_table(url::Url::from_directory_path(&dir).unwrap())
        .await
        .unwrap();
    deltalake::checkpoints::create_checkpoint(&table, None)
        .await
        .unwrap();
    admin.query(&insert(11..=12)).await.unwrap();
    let log = dir.join("_delta_log");
    assert!(
        log.join("00000000000000000010.checkpoint.parquet")
            .is_file()
    );
    for v in 0..10 {
        std::fs::remove_file(log.join(format!("{v:020}.json"))).unwrap();
    }

    let tmp = tempfile::tempdir().unwrap();
    let report = admin.backup(&tmp.path().join("backup")).await.unwrap();
    let t = &report.tables[0];
    assert_eq!(
        (t.table.as_str(), t.version, t.oldest_version),
        ("main.shop.t", 12, 10)
    );
    assert_eq!(t.data_files, 12);

    basin_service::restore(
        &config(&tmp.path().join("restored")),
        &tmp.path().join("backup"),
        "admin",
        "test",
    )
    .await
    .unwrap();
    let restored = Hub::open(&config(&tmp.path().join("restored")))
        .await
        .unwrap();
    assert_eq!(count(&restored, "SELECT * FROM shop.t").await, 12);
    assert_eq!(
        count(&restored, "SELECT * FROM shop.t VERSION AS OF 11").await,
        11
    );
    // Time travel reaches what it reached in the original, no more and no less.
    let restored_admin = restored.user_session("admin", &[], "test").await.unwrap();
    for v in 8..=12 {
        let sql = format!("SELECT * FROM shop.t VERSION AS OF {v}");
        let rows = |r: basin_service::Result<basin_sql::QueryOutput>| {
            r.map(|o| o.num_rows()).map_err(|e| e.to_string())
        };
        assert_eq!(
            rows(restored_admin.query(&sql).await),
            rows(admin.query(&sql).await),
            "{sql}"
        );
    }
}

/// Tables outside the data directory are not silently left out: the backup is refused, naming
/// the table, and leaves nothing behind.
#[tokio::test]
async fn a_table_outside_the_data_directory_is_refused() {
    let data = DataDir::with(&["main"], &[]).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let root = url::Url::from_directory_path(elsewhere.path()).unwrap();
    data.catalog
        .create_hub(basin_catalog::NewHub {
            name: basin_core::Name::parse("hub", "ext").unwrap(),
            storage_root: root.as_str().trim_end_matches('/').to_string(),
            description: String::new(),
        })
        .await
        .unwrap();
    data.dataset("ext.d", basin_core::Layer::Source).await;
    data.catalog.ensure_admin("admin").await.unwrap();
    let hub = Hub::open(&config(data.path())).await.unwrap();
    let admin = hub.user_session("admin", &[], "test").await.unwrap();
    admin
        .query("CREATE TABLE ext.d.t (id BIGINT)")
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let e = admin
        .backup(&tmp.path().join("backup"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'ext.d.t'") && e.contains("outside the data directory"),
        "{e}"
    );
    assert!(!tmp.path().join("backup").exists());
}
