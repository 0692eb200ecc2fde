use basin_lake::{LakeTable, MergeTable, TimeTravel, WriteMode, WriteTable};
use datafusion::common::ScalarValue;
use datafusion::prelude::SessionContext;

use crate::*;

async fn new_table(dir: &tempfile::TempDir, partition: Vec<String>) -> LakeTable {
    let loc = location(dir, "t");
    let first = batch(vec![
        ("id", ints(&[1, 2, 3])),
        ("name", strs(&["a", "b", "c"])),
        ("day", strs(&["d1", "d1", "d2"])),
    ]);
    let out = WriteTable::new_table(&loc, partition, stream(first))
        .unwrap()
        .execute()
        .await
        .unwrap();
    assert_eq!((out.version, out.rows), (0, 3));
    LakeTable::open(&loc).await.unwrap()
}

#[tokio::test]
async fn append_and_overwrite_read_back_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let t = new_table(&dir, vec![]).await;
    assert_eq!(rows(&t).await, ["1|a|d1", "2|b|d1", "3|c|d2"]);

    let more = batch(vec![
        ("id", ints(&[4])),
        ("name", strs(&["d"])),
        ("day", strs(&["d3"])),
    ]);
    let out = t.write(stream(more)).execute().await.unwrap();
    assert_eq!((out.version, out.rows), (1, 1));
    let t = LakeTable::open(t.location()).await.unwrap();
    assert_eq!(rows(&t).await, ["1|a|d1", "2|b|d1", "3|c|d2", "4|d|d3"]);

    let replacement = batch(vec![
        ("id", ints(&[9])),
        ("name", strs(&["z"])),
        ("day", strs(&["d9"])),
    ]);
    t.write(stream(replacement))
        .with_mode(WriteMode::Overwrite(None))
        .execute()
        .await
        .unwrap();
    let t = LakeTable::open(t.location()).await.unwrap();
    assert_eq!(rows(&t).await, ["9|z|d9"]);
}

#[tokio::test]
async fn overwrite_only_matching_partition() {
    let dir = tempfile::tempdir().unwrap();
    let t = new_table(&dir, vec!["day".into()]).await;
    let d1 = batch(vec![
        ("id", ints(&[10])),
        ("name", strs(&["x"])),
        ("day", strs(&["d1"])),
    ]);
    t.write(stream(d1))
        .with_mode(WriteMode::Overwrite(Some("day = 'd1'".into())))
        .execute()
        .await
        .unwrap();
    let t = LakeTable::open(t.location()).await.unwrap();
    assert_eq!(rows(&t).await, ["10|x|d1", "3|c|d2"]);
    assert_eq!(t.partition_columns().unwrap(), ["day"]);
}

#[tokio::test]
async fn upsert_by_key_and_delete_by_key_or_predicate() {
    let dir = tempfile::tempdir().unwrap();
    let t = new_table(&dir, vec![]).await;
    let ctx = SessionContext::new();
    let changes = batch(vec![
        ("id", ints(&[2, 4])),
        ("name", strs(&["B", "d"])),
        ("day", strs(&["d1", "d4"])),
    ]);
    let source = ctx.read_batch(changes).unwrap();
    let out = MergeTable::upsert(&t, source, &["id".into()])
        .unwrap()
        .execute()
        .await
        .unwrap();
    assert_eq!((out.inserted, out.updated), (1, 1));
    let t = LakeTable::open(t.location()).await.unwrap();
    assert_eq!(rows(&t).await, ["1|a|d1", "2|B|d1", "3|c|d2", "4|d|d4"]);

    let (_, deleted) = t
        .delete()
        .with_keys(
            &["id".into()],
            vec![
                vec![ScalarValue::Int64(Some(1))],
                vec![ScalarValue::Int64(Some(4))],
            ],
        )
        .unwrap()
        .execute()
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let t = LakeTable::open(t.location()).await.unwrap();
    assert_eq!(rows(&t).await, ["2|B|d1", "3|c|d2"]);

    t.delete()
        .with_predicate("name = 'c'")
        .execute()
        .await
        .unwrap();
    let t = LakeTable::open(t.location()).await.unwrap();
    assert_eq!(rows(&t).await, ["2|B|d1"]);

    let missing = MergeTable::upsert(
        &t,
        ctx.read_batch(batch(vec![("x", ints(&[1]))])).unwrap(),
        &["id".into()],
    );
    assert!(
        missing
            .err()
            .unwrap()
            .to_string()
            .contains("column 'id' not found in the new data")
    );
}

#[tokio::test]
async fn schema_evolution_adds_widens_and_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let loc = location(&dir, "evolve");
    let first = batch(vec![("id", ints32(&[1])), ("price", floats(&[1.5]))]);
    WriteTable::new_table(&loc, vec![], stream(first))
        .unwrap()
        .execute()
        .await
        .unwrap();
    let t = LakeTable::open(&loc).await.unwrap();

    // A new column: older rows read NULL.
    let with_note = batch(vec![
        ("id", ints32(&[2])),
        ("price", floats(&[2.5])),
        ("note", strs(&["new"])),
    ]);
    let out = t.write(stream(with_note)).execute().await.unwrap();
    assert_eq!(out.evolution.unwrap().added, ["note"]);
    let t = LakeTable::open(&loc).await.unwrap();
    assert_eq!(rows(&t).await, ["1|1.5|null", "2|2.5|new"]);

    // INT widens to BIGINT; the old rows are kept, in one commit.
    let wide = batch(vec![
        ("id", ints(&[5_000_000_000])),
        ("price", floats(&[3.0])),
    ]);
    let version_before = t.version();
    let out = t.write(stream(wide)).execute().await.unwrap();
    assert_eq!(out.version, version_before + 1);
    assert_eq!(
        out.evolution.unwrap().widened,
        [("id".to_string(), "INT".to_string(), "BIGINT".to_string())]
    );
    let t = LakeTable::open(&loc).await.unwrap();
    assert_eq!(
        t.schema()
            .unwrap()
            .field_with_name("id")
            .unwrap()
            .data_type(),
        &DataType::Int64
    );
    assert_eq!(
        rows(&t).await,
        ["1|1.5|null", "2|2.5|new", "5000000000|3.0|null"]
    );

    // An incompatible change is refused and the table stays as it was.
    let bad = batch(vec![("price", strs(&["cheap"]))]);
    let err = t
        .write(stream(bad))
        .execute()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'price'") && err.contains("DOUBLE") && err.contains("VARCHAR"),
        "{err}"
    );
    let after = LakeTable::open(&loc).await.unwrap();
    assert_eq!(after.version(), t.version());
}

#[tokio::test]
async fn time_travel_restore_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let t = new_table(&dir, vec![]).await;
    std::thread::sleep(std::time::Duration::from_millis(20));
    let between = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(20));
    t.delete().with_predicate("id = 1").execute().await.unwrap();
    let loc = t.location().to_string();

    let v0 = LakeTable::open_at(&loc, TimeTravel::Version(0))
        .await
        .unwrap();
    assert_eq!(rows(&v0).await.len(), 3);
    let at = LakeTable::open_at(&loc, TimeTravel::Timestamp(between))
        .await
        .unwrap();
    assert_eq!(at.version(), 0);
    let err = LakeTable::open_at(&loc, TimeTravel::Version(7))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no version 7"), "{err}");
    // Far beyond the newest: refused at once (delta-rs alone searched for minutes).
    let err = LakeTable::open_at(&loc, TimeTravel::Version(4_444_444_444_440))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("its newest version is 1"), "{err}");

    let latest = LakeTable::open(&loc).await.unwrap();
    assert_eq!(rows(&latest).await.len(), 2);
    let restored = latest.restore(0).execute().await.unwrap();
    assert_eq!(restored, 2);
    let now = LakeTable::open(&loc).await.unwrap();
    assert_eq!(rows(&now).await, ["1|a|d1", "2|b|d1", "3|c|d2"]);
    let history = now.history(None).await.unwrap();
    assert_eq!(
        history.iter().map(|c| c.version).collect::<Vec<_>>(),
        [2, 1, 0]
    );
    assert_eq!(history[0].operation, "RESTORE");
    assert!(
        now.restore(5)
            .execute()
            .await
            .unwrap_err()
            .to_string()
            .contains("pick a version from 0 to 1")
    );
}

#[tokio::test]
async fn load_id_makes_writes_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let t = new_table(&dir, vec![]).await;
    let b = || {
        batch(vec![
            ("id", ints(&[7])),
            ("name", strs(&["g"])),
            ("day", strs(&["d7"])),
        ])
    };
    let first = t
        .write(stream(b()))
        .with_load_id(Some("load-1".into()))
        .execute()
        .await
        .unwrap();
    assert!(!first.skipped);
    let t = LakeTable::open(t.location()).await.unwrap();
    assert!(t.has_load("load-1").await.unwrap());
    let second = t
        .write(stream(b()))
        .with_load_id(Some("load-1".into()))
        .execute()
        .await
        .unwrap();
    assert!(second.skipped);
    let t = LakeTable::open(t.location()).await.unwrap();
    assert_eq!(rows(&t).await.len(), 4);
    let history = t.history(Some(1)).await.unwrap();
    assert!(
        history[0]
            .parameters
            .contains("\"basin.load_id\":\"load-1\""),
        "{}",
        history[0].parameters
    );
}

#[tokio::test]
async fn a_write_that_loses_to_a_concurrent_one_is_a_conflict_that_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stale = new_table(&dir, vec![]).await;
    let fresh = LakeTable::open(stale.location()).await.unwrap();
    let more = batch(vec![
        ("id", ints(&[4])),
        ("name", strs(&["d"])),
        ("day", strs(&["d1"])),
    ]);
    fresh.write(stream(more)).execute().await.unwrap();

    // The update read version 0, but an append to the rows it reads committed first.
    let err = stale
        .update()
        .with_predicate("day = 'd1'")
        .set("name", "'x'")
        .execute()
        .await
        .unwrap_err();
    assert!(
        matches!(err, basin_lake::LakeError::Conflict { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("running it again is safe"), "{text}");
    assert!(!text.contains("Isolation"), "{text}");
    let now = LakeTable::open(stale.location()).await.unwrap();
    assert_eq!(now.version(), 1);
    assert_eq!(rows(&now).await, ["1|a|d1", "2|b|d1", "3|c|d2", "4|d|d1"]);
}

/// Opening a table again reads only the commits made since, yet a table made anew at the same
/// location (dropped here, or removed by another process) is read as the new table.
#[tokio::test]
async fn reopening_follows_new_commits_and_new_tables_at_the_same_location() {
    let dir = tempfile::tempdir().unwrap();
    let t = new_table(&dir, vec![]).await;
    let loc = t.location().to_string();
    // A row appended through a handle of its own, as another process would write it.
    async fn append(loc: &str, id: i64, name: &str) {
        let row = batch(vec![
            ("id", ints(&[id])),
            ("name", strs(&[name])),
            ("day", strs(&["d"])),
        ]);
        WriteTable::new_table(loc, vec![], stream(row))
            .unwrap()
            .execute()
            .await
            .unwrap();
    }
    for id in 4..7 {
        append(&loc, id, "x").await;
        let t = LakeTable::open(&loc).await.unwrap();
        assert_eq!(t.version(), id - 3);
        assert_eq!(rows(&t).await.len() as i64, id);
    }

    // Dropped by this process, then created again: version 0 of a new log.
    LakeTable::open(&loc)
        .await
        .unwrap()
        .drop_files()
        .execute()
        .await
        .unwrap();
    append(&loc, 100, "new").await;
    let t = LakeTable::open(&loc).await.unwrap();
    assert_eq!(
        (t.version(), rows(&t).await),
        (0, vec!["100|new|d".to_string()])
    );

    // Removed behind this process's back and created again with as many versions as the cached
    // state has, and more: each time the new table, never the old one brought up to date.
    for versions in [1, 3] {
        std::fs::remove_dir_all(loc.trim_start_matches("file://")).unwrap();
        for v in 0..versions {
            append(&loc, 200 + v, "new").await;
        }
        let t = LakeTable::open(&loc).await.unwrap();
        assert_eq!(t.version(), versions - 1);
        assert_eq!(rows(&t).await.len() as i64, versions);
        assert!(
            rows(&t).await.iter().all(|r| r.starts_with("20")),
            "{:?}",
            rows(&t).await
        );
    }
}

/// A version's files reach the planner with their Delta statistics: exact row counts answer
/// `count(*)` without reading a file, and value bounds leave out the files a filter cannot match.
#[tokio::test]
async fn scans_prune_files_by_their_statistics_and_count_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let t = new_table(&dir, vec![]).await;
    let more = batch(vec![
        ("id", ints(&[101, 102])),
        ("name", strs(&["x", "y"])),
        ("day", strs(&["d5", "d5"])),
    ]);
    t.write(stream(more)).execute().await.unwrap();
    let t = LakeTable::open(t.location()).await.unwrap();
    assert_eq!(t.file_count().unwrap(), 2);
    let ctx = SessionContext::new();
    ctx.register_table("t", t.provider().await.unwrap())
        .unwrap();
    let plan = |sql: &'static str| {
        let ctx = ctx.clone();
        async move {
            let df = ctx.sql(sql).await.unwrap();
            let physical = df.create_physical_plan().await.unwrap();
            datafusion::physical_plan::displayable(physical.as_ref())
                .indent(true)
                .to_string()
        }
    };
    let count = plan("SELECT count(*) FROM t").await;
    assert!(!count.contains("DataSourceExec"), "{count}");
    let filtered = plan("SELECT name FROM t WHERE id > 100").await;
    assert_eq!(filtered.matches(".parquet").count(), 1, "{filtered}");
    let all = plan("SELECT name FROM t WHERE id > 0").await;
    assert_eq!(all.matches(".parquet").count(), 2, "{all}");
    let rows = ctx
        .sql("SELECT name FROM t WHERE id > 100 ORDER BY id")
        .await
        .unwrap();
    let rows = rows.collect().await.unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
}

#[tokio::test]
async fn compaction_splits_small_files_into_bins_of_equal_size() {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let t = new_table(&dir, vec![]).await;
    for f in 0..9i64 {
        let ids: Vec<i64> = (f * 100..f * 100 + 100).collect();
        let names = vec!["n"; 100];
        let days = vec!["d"; 100];
        let more = batch(vec![
            ("id", ints(&ids)),
            ("name", strs(&names)),
            ("day", strs(&days)),
        ]);
        t.write(stream(more)).execute().await.unwrap();
    }
    let t = LakeTable::open(t.location()).await.unwrap();
    let path = t.location().trim_start_matches("file://").to_string();
    let before: std::collections::HashSet<_> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let (bytes, _) = t.size().unwrap();
    // A target of about 7.5 of the 10 files: filled greedily, bins of 7 files and 3.
    let done = t
        .optimize()
        .with_target_size(bytes * 3 / 4)
        .execute()
        .await
        .unwrap();
    assert_eq!((done.files_before, done.files_after), (10, 2));
    let mut rows_per_file: Vec<i64> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !before.contains(p) && p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| {
            let reader = SerializedFileReader::new(std::fs::File::open(p).unwrap()).unwrap();
            reader.metadata().file_metadata().num_rows()
        })
        .collect();
    rows_per_file.sort();
    // Balanced: the cores that compact the bins finish together (one file of slack).
    assert_eq!(rows_per_file.iter().sum::<i64>(), 903);
    assert!(
        rows_per_file[1] - rows_per_file[0] <= 300,
        "{rows_per_file:?}"
    );
    let t = LakeTable::open(t.location()).await.unwrap();
    assert_eq!(rows(&t).await.len(), 903);
}
