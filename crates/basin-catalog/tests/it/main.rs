//! The catalog against both of its backends: SQLite and a real PostgreSQL server that the test
//! starts itself (initdb + pg_ctl on a free loopback port).

mod access;

use basin_catalog::{Catalog, CatalogError, Column, Contract, NewDataset, NewHub, NewTable};
use basin_core::{DatasetRef, Layer, Name, TableRef};
use basin_testkit::{DataDir, postgres};

async fn exercise(catalog: &Catalog) {
    let hub = catalog
        .create_hub(NewHub {
            name: Name::parse("hub", "us").unwrap(),
            storage_root: "file:///tmp/us".into(),
            description: "US market".into(),
        })
        .await
        .unwrap();
    assert_eq!(hub.name, "us");
    let dup = catalog
        .create_hub(NewHub {
            name: Name::parse("hub", "us").unwrap(),
            storage_root: "x".into(),
            description: String::new(),
        })
        .await
        .unwrap_err();
    assert!(matches!(dup, CatalogError::AlreadyExists { .. }), "{dup}");

    let ds = catalog
        .create_dataset(NewDataset {
            dataset: DatasetRef::parse("us.sales").unwrap(),
            layer: Layer::Prepared,
            domain: Some("sales".into()),
            owner: Some("ana@example.com".into()),
            description: "Orders".into(),
            tags: vec!["pii".into(), "classification=internal".into()],
            contract: Contract {
                update_frequency: Some("daily".into()),
                support_contact: Some("#sales".into()),
            },
        })
        .await
        .unwrap();
    assert_eq!(ds.layer, Layer::Prepared);
    let read = catalog
        .dataset(&DatasetRef::parse("us.sales").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, ds);
    assert_eq!(read.tags, ["pii", "classification=internal"]);
    assert_eq!(read.contract.support_contact.as_deref(), Some("#sales"));

    let reserved = catalog
        .create_dataset(NewDataset {
            dataset: DatasetRef::parse("us.system").unwrap(),
            layer: Layer::Source,
            domain: None,
            owner: None,
            description: String::new(),
            tags: vec![],
            contract: Contract::default(),
        })
        .await
        .unwrap_err();
    assert!(reserved.to_string().contains("reserved"), "{reserved}");

    let column = |n: &str, t: &str| Column::from((n.to_string(), t.to_string(), true));
    let table = TableRef::parse("us.sales.orders").unwrap();
    let created = catalog
        .create_table(NewTable {
            table: table.clone(),
            location: "file:///tmp/us/sales/orders".into(),
            description: String::new(),
            primary_key: vec!["id".into()],
            partition_columns: vec!["day".into()],
            columns: vec![column("id", "BIGINT"), column("day", "DATE")],
        })
        .await
        .unwrap();
    assert_eq!(created.columns.len(), 2);
    assert_eq!(created.primary_key, ["id"]);

    // Schema sync keeps people's descriptions, adds new columns in order.
    let mut described = created.columns.clone();
    described[0].description = "order id".into();
    catalog.sync_columns(&table, &described).await.unwrap();
    catalog
        .sync_columns(
            &table,
            &[
                column("id", "BIGINT"),
                column("day", "DATE"),
                column("note", "VARCHAR"),
            ],
        )
        .await
        .unwrap();
    let t = catalog.require_table(&table).await.unwrap();
    assert_eq!(
        t.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["id", "day", "note"]
    );
    assert_eq!(t.columns[0].description, "order id");

    let typo = catalog
        .require_table(&TableRef::parse("us.sales.ordres").unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        typo.to_string(),
        "table 'us.sales.ordres' not found; did you mean 'us.sales.orders'?"
    );
    let no_ds = catalog
        .require_table(&TableRef::parse("us.sale.orders").unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        no_ds.to_string(),
        "dataset 'us.sale' not found; did you mean 'us.sales'?"
    );
    let no_hub = catalog
        .require_table(&TableRef::parse("uk.sales.orders").unwrap())
        .await
        .unwrap_err();
    assert!(
        no_hub.to_string().starts_with("hub 'uk' not found"),
        "{no_hub}"
    );

    assert_eq!(catalog.tables(Some("us"), None).await.unwrap().len(), 1);
    assert_eq!(catalog.columns_in(None, None).await.unwrap().len(), 3);
    assert_eq!(
        catalog
            .columns_in(Some("us"), Some("other"))
            .await
            .unwrap()
            .len(),
        0
    );
    catalog.drop_table(&table).await.unwrap();
    assert!(catalog.table(&table).await.unwrap().is_none());
}

#[tokio::test]
async fn sqlite_catalog() {
    let data = DataDir::new().await;
    exercise(&data.catalog).await;
    // Reopening runs no migration twice and keeps the data.
    let again = Catalog::open_sqlite(&data.catalog_path()).await.unwrap();
    assert_eq!(again.hubs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn postgres_catalog() {
    let server = postgres::Server::start();
    let catalog = Catalog::connect(&server.url()).await.unwrap();
    exercise(&catalog).await;
    let again = Catalog::connect(&server.url()).await.unwrap();
    assert_eq!(again.hubs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn bad_catalog_urls_are_explained() {
    let err = Catalog::connect("mysql://user:secret@host/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unsupported catalog URL") && !err.contains("secret"),
        "{err}"
    );
    let err = Catalog::connect("postgres://user:secret@127.0.0.1:1/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("connecting to") && !err.contains("secret"),
        "{err}"
    );
}
