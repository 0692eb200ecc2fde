//! Maintenance policies and runs, on SQLite and on a real PostgreSQL.

use basin_catalog::{
    Catalog, Column, Contract, MaintenancePolicy, MaintenanceRun, NewDataset, NewHub, NewTable,
};
use basin_core::{DatasetRef, Layer, Name, TableRef};
use basin_testkit::{DataDir, postgres};

async fn exercise(c: &Catalog) {
    c.create_hub(NewHub {
        name: Name::parse("hub", "ops").unwrap(),
        storage_root: "file:///tmp/ops".into(),
        description: String::new(),
    })
    .await
    .unwrap();
    c.create_dataset(NewDataset {
        dataset: DatasetRef::parse("ops.logs").unwrap(),
        layer: Layer::Source,
        domain: None,
        owner: None,
        description: String::new(),
        tags: vec![],
        contract: Contract::default(),
    })
    .await
    .unwrap();
    let tables: Vec<TableRef> = ["ops.logs.a", "ops.logs.b"]
        .iter()
        .map(|t| TableRef::parse(t).unwrap())
        .collect();
    for t in &tables {
        c.create_table(NewTable {
            table: t.clone(),
            location: format!("file:///tmp/{}", t.table),
            description: String::new(),
            primary_key: vec![],
            partition_columns: vec![],
            columns: vec![Column::from(("x".to_string(), "BIGINT".to_string(), true))],
        })
        .await
        .unwrap();
    }
    let (a, b) = (&tables[0], &tables[1]);
    assert_eq!(
        c.maintenance_policy(a).await.unwrap(),
        MaintenancePolicy::default()
    );
    let mine = MaintenancePolicy {
        auto: false,
        min_files: 4,
        target_file_bytes: 64 << 20,
        retention_hours: 24,
        zorder: vec!["x".into()],
    };
    c.set_maintenance_policy(a, &mine).await.unwrap();
    // Setting again replaces it.
    let mine = MaintenancePolicy {
        min_files: 8,
        ..mine
    };
    c.set_maintenance_policy(a, &mine).await.unwrap();
    assert_eq!(c.maintenance_policy(a).await.unwrap(), mine);
    let all = c.maintenance_policies().await.unwrap();
    assert_eq!((all.len(), all.get(a)), (1, Some(&mine)));
    let bad = MaintenancePolicy {
        min_files: 1,
        ..mine.clone()
    };
    assert!(c.set_maintenance_policy(a, &bad).await.is_err());
    let missing = TableRef::parse("ops.logs.nope").unwrap();
    assert!(c.set_maintenance_policy(&missing, &mine).await.is_err());

    let run = |t: &TableRef, operation: &str, at: &str, outcome: &str| MaintenanceRun {
        table: t.clone(),
        operation: operation.into(),
        trigger: "auto".into(),
        started_at: at.into(),
        duration_ms: 12,
        outcome: outcome.into(),
        version: 3,
        files_before: 20,
        files_after: 1,
        bytes_rewritten: 1 << 20,
        files_deleted: 0,
        error: String::new(),
    };
    for r in [
        run(a, "vacuum", "2026-11-20T00:00:00.000Z", "ok"),
        run(a, "vacuum", "2026-11-21T00:00:00.000Z", "ok"),
        run(a, "vacuum", "2026-11-22T00:00:00.000Z", "error"),
        run(b, "optimize", "2026-11-23T00:00:00.000Z", "ok"),
    ] {
        c.record_maintenance_run(&r).await.unwrap();
    }
    let newest = c.maintenance_runs(None, 10).await.unwrap();
    assert_eq!(newest.len(), 4);
    assert_eq!(
        newest[0],
        run(b, "optimize", "2026-11-23T00:00:00.000Z", "ok")
    );
    assert_eq!(c.maintenance_runs(Some(a), 2).await.unwrap().len(), 2);
    let last = c.last_maintenance_runs("vacuum").await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(
        last[a], "2026-11-21T00:00:00.000Z",
        "the last successful one"
    );

    // Dropping a table drops its policy; its runs stay on record.
    c.drop_table(a).await.unwrap();
    assert!(c.maintenance_policies().await.unwrap().is_empty());
    assert_eq!(c.maintenance_runs(None, 10).await.unwrap().len(), 4);
}

#[tokio::test]
async fn maintenance_on_sqlite() {
    exercise(&DataDir::new().await.catalog).await;
}

#[tokio::test]
async fn maintenance_on_postgres() {
    let server = postgres::Server::start();
    exercise(&Catalog::connect(&server.url()).await.unwrap()).await;
}
