//! The catalog against both of its backends: SQLite and a real PostgreSQL server that the test
//! starts itself (initdb + pg_ctl on a free loopback port).

mod access;
mod leases;
mod maintenance;
mod requests;

use basin_catalog::access::{Grant, Privilege, Securable};
use basin_catalog::{
    Catalog, CatalogError, Column, Contract, DatasetUpdate, NewDataset, NewHub, NewTable,
};
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
    describe_update_and_delete(catalog).await;
}

/// Descriptions, dataset updates, and deletes that refuse what is not empty and take the access
/// rules of what they delete along (so that a new object of the same name starts without them).
async fn describe_update_and_delete(catalog: &Catalog) {
    catalog
        .create_hub(NewHub {
            name: Name::parse("hub", "lab").unwrap(),
            storage_root: "file:///tmp/lab".into(),
            description: String::new(),
        })
        .await
        .unwrap();
    let new_dataset = || NewDataset {
        dataset: DatasetRef::parse("lab.tmp").unwrap(),
        layer: Layer::Source,
        domain: Some("misc".into()),
        owner: None,
        description: String::new(),
        tags: vec![],
        contract: Contract::default(),
    };
    catalog.create_dataset(new_dataset()).await.unwrap();
    let t = TableRef::parse("lab.tmp.items").unwrap();
    catalog
        .create_table(NewTable {
            table: t.clone(),
            location: "file:///tmp/lab/tmp/items".into(),
            description: String::new(),
            primary_key: vec![],
            partition_columns: vec![],
            columns: vec![Column::from((
                "sku".to_string(),
                "VARCHAR".to_string(),
                true,
            ))],
        })
        .await
        .unwrap();
    let hub = Securable::Hub { hub: "lab".into() };
    let table = Securable::table(&t);
    catalog
        .set_description(&hub, None, "Experiments")
        .await
        .unwrap();
    catalog
        .set_description(&table, None, "Items")
        .await
        .unwrap();
    catalog
        .set_description(&table, Some("sku"), "Stock unit")
        .await
        .unwrap();
    assert_eq!(
        catalog.require_hub("lab").await.unwrap().description,
        "Experiments"
    );
    let items = catalog.require_table(&t).await.unwrap();
    assert_eq!(
        (
            items.description.as_str(),
            items.columns[0].description.as_str()
        ),
        ("Items", "Stock unit")
    );
    let err = catalog
        .set_description(&table, Some("skew"), "x")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("column 'lab.tmp.items.skew' not found"),
        "{err}"
    );
    let err = catalog
        .set_description(&hub, None, &"x".repeat(10_001))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("longer than 10000"), "{err}");

    let d = DatasetRef::parse("lab.tmp").unwrap();
    let updated = catalog
        .update_dataset(
            &d,
            &DatasetUpdate {
                layer: Some(Layer::Semantic),
                domain: Some(String::new()),
                owner: Some("ops".into()),
                description: Some("Scratch".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(catalog.require_dataset(&d).await.unwrap(), updated);
    assert_eq!(
        (
            updated.layer,
            updated.domain,
            updated.owner.as_deref(),
            updated.description.as_str()
        ),
        (Layer::Semantic, None, Some("ops"), "Scratch")
    );

    catalog
        .create_user("someone", None, &Default::default())
        .await
        .unwrap();
    for object in ["dataset lab.tmp", "table lab.tmp.items", "hub lab"] {
        catalog
            .grant(&Grant {
                grantee: "someone".into(),
                privilege: Privilege::Select,
                object: Securable::parse(object).unwrap(),
                column: None,
                granted_by: "test".into(),
                granted_at: String::new(),
            })
            .await
            .unwrap();
    }
    let err = catalog.delete_dataset(&d).await.unwrap_err();
    assert!(matches!(err, CatalogError::NotEmpty(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "dataset 'lab.tmp' is not empty: it holds 1 table(s) (items); drop them first"
    );
    let err = catalog.delete_hub("lab").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "hub 'lab' is not empty: it holds 1 dataset(s) (tmp); delete them first"
    );
    catalog.drop_table(&t).await.unwrap();
    catalog.delete_dataset(&d).await.unwrap();
    let grants = catalog.grants().await.unwrap();
    let left: Vec<String> = grants
        .iter()
        .filter(|g| g.grantee == "someone")
        .map(|g| g.object.to_string())
        .collect();
    assert_eq!(left, ["hub lab"]);
    catalog.create_dataset(new_dataset()).await.unwrap();
    catalog.delete_dataset(&d).await.unwrap();
    catalog.delete_hub("lab").await.unwrap();
    assert!(
        catalog
            .grants()
            .await
            .unwrap()
            .iter()
            .all(|g| g.grantee != "someone")
    );
    let err = catalog.delete_hub("lab").await.unwrap_err();
    assert!(matches!(err, CatalogError::NotFound { .. }), "{err}");
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
