//! The access-request store and the catalog versions, on SQLite and PostgreSQL.

use basin_catalog::access::{Privilege, RequestStatus, Securable};
use basin_catalog::{Catalog, Column, NewTable};
use basin_core::{Layer, TableRef};
use basin_testkit::{DataDir, postgres};

#[tokio::test]
async fn sqlite_requests_and_versions() {
    let data = DataDir::with(&["main"], &[]).await;
    data.dataset("main.sales", Layer::Source).await;
    exercise(&data.catalog).await;
}

#[tokio::test]
async fn postgres_requests_and_versions() {
    let server = postgres::Server::start();
    let catalog = Catalog::connect(&server.url()).await.unwrap();
    catalog
        .create_hub(basin_catalog::NewHub {
            name: basin_core::Name::parse("hub", "main").unwrap(),
            storage_root: "file:///nowhere/main".into(),
            description: String::new(),
        })
        .await
        .unwrap();
    catalog
        .create_dataset(basin_catalog::NewDataset {
            dataset: basin_core::DatasetRef::parse("main.sales").unwrap(),
            layer: Layer::Source,
            domain: None,
            owner: None,
            description: String::new(),
            tags: vec![],
            contract: Default::default(),
        })
        .await
        .unwrap();
    exercise(&catalog).await;
}

async fn exercise(c: &Catalog) {
    let sales = Securable::parse("dataset main.sales").unwrap();
    let r = c
        .create_access_request("r1", "ann", &sales, Privilege::Select, "reports")
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.decided_by.as_deref(), r.comment.as_str()),
        (RequestStatus::Pending, None, "")
    );
    // One pending request per requester and object.
    let e = c
        .create_access_request("r2", "ann", &sales, Privilege::Select, "again")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("already has a pending request"), "{e}");
    c.create_access_request("r3", "bob", &sales, Privilege::Select, "me too")
        .await
        .unwrap();
    assert!(
        c.decide_access_request("r1", RequestStatus::Denied, "owner", "no")
            .await
            .unwrap()
    );
    // A decided request does not change again; a new one may be made.
    assert!(
        !c.decide_access_request("r1", RequestStatus::Approved, "owner", "")
            .await
            .unwrap()
    );
    c.create_access_request("r4", "ann", &sales, Privilege::Select, "please")
        .await
        .unwrap();
    let r1 = c.access_request("r1").await.unwrap().unwrap();
    assert_eq!(
        (r1.status, r1.decided_by.as_deref(), r1.comment.as_str()),
        (RequestStatus::Denied, Some("owner"), "no")
    );
    assert!(r1.decided_at.is_some());
    let anns: Vec<String> = c
        .access_requests(Some("ann"), None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(anns.len(), 2);
    let pending: Vec<String> = c
        .access_requests(None, Some(RequestStatus::Pending))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(
        pending.contains(&"r3".to_string())
            && pending.contains(&"r4".to_string())
            && pending.len() == 2
    );
    assert!(c.access_request("nope").await.unwrap().is_none());

    // Every change of what search indexes moves the versions.
    let mut last = c.versions().await.unwrap();
    let mut moved = |now: (i64, i64), what: &str| {
        assert_ne!(now, last, "{what} did not change the catalog versions");
        last = now;
    };
    let t = TableRef::parse("main.sales.orders").unwrap();
    c.create_table(NewTable {
        table: t.clone(),
        location: "file:///nowhere/orders".into(),
        description: String::new(),
        primary_key: vec![],
        partition_columns: vec![],
        columns: vec![Column::from(("id".to_string(), "BIGINT".to_string(), true))],
    })
    .await
    .unwrap();
    moved(c.versions().await.unwrap(), "create_table");
    c.set_description(&Securable::table(&t), Some("id"), "the key")
        .await
        .unwrap();
    moved(c.versions().await.unwrap(), "a column description");
    c.sync_columns(
        &t,
        &[
            Column::from(("id".to_string(), "BIGINT".to_string(), true)),
            Column::from(("n".to_string(), "BIGINT".to_string(), true)),
        ],
    )
    .await
    .unwrap();
    moved(c.versions().await.unwrap(), "sync_columns");
    c.update_dataset(
        &basin_core::DatasetRef::parse("main.sales").unwrap(),
        &basin_catalog::DatasetUpdate {
            owner: Some("team-a".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    moved(c.versions().await.unwrap(), "update_dataset");
}
