#![allow(dead_code)] // each target uses a part of the world
//! A hub for the `sql` and `rest` targets, made once per process in a temporary directory: the
//! administrator `admin`, the user `analyst` (attribute region=eu) who may read `sales.orders`
//! only through a row filter and a mask, a table `sales.secret` hidden from the analyst, and a
//! view.

use std::collections::BTreeMap;

use basin_catalog::access::{ColumnMask, Mask, RowFilter};
use basin_core::{DatasetRef, Layer, TableRef};
use basin_service::{Hub, HubConfig, NewUser, Session};

pub const ADMIN_PASSWORD: &str = "fuzz-admin-password-1";
pub const ANALYST_PASSWORD: &str = "fuzz-analyst-password-1";

pub struct World {
    pub runtime: tokio::runtime::Runtime,
    pub hub: Hub,
    pub analyst: Session,
}

pub fn make() -> World {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap().keep();
    let (hub, analyst) = runtime.block_on(async {
        let hub = Hub::open(&HubConfig {
            data_dir: dir,
            catalog_url: None,
            keystore_dir: None,
            master_key: None,
        })
        .await
        .unwrap();
        hub.catalog().ensure_admin("admin").await.unwrap();
        let admin = hub.user_session("admin", &[], "fuzz").await.unwrap();
        admin
            .create_dataset(basin_catalog::NewDataset {
                dataset: DatasetRef::parse("sales").unwrap(),
                layer: Layer::Prepared,
                domain: None,
                owner: None,
                description: String::new(),
                tags: vec![],
                contract: Default::default(),
            })
            .await
            .unwrap();
        admin
            .create_user(NewUser {
                name: "analyst".into(),
                password: Some(ANALYST_PASSWORD.into()),
                attributes: BTreeMap::from([("region".into(), "eu".into())]),
                roles: vec![],
            })
            .await
            .unwrap();
        for sql in [
            "CREATE TABLE sales.orders (id BIGINT, region VARCHAR, amount DOUBLE, email VARCHAR, day DATE)",
            "INSERT INTO sales.orders VALUES (1, 'eu', 10.5, 'a@x.eu', DATE '2026-01-01'), (2, 'us', 20, 'b@x.us', NULL), (3, 'eu', NULL, NULL, DATE '2026-02-01')",
            "CREATE TABLE sales.secret (x BIGINT, note VARCHAR)",
            "INSERT INTO sales.secret VALUES (42, 'hidden')",
            "CREATE VIEW sales.big AS SELECT id, amount FROM sales.orders WHERE amount > 15",
            "GRANT SELECT ON TABLE sales.orders TO analyst",
            "GRANT SELECT ON TABLE sales.big TO analyst",
        ] {
            admin.query(sql).await.unwrap();
        }
        let orders = TableRef::parse("sales.orders").unwrap();
        admin
            .set_row_filter(&RowFilter {
                table: orders.clone(),
                grantee: "analyst".into(),
                expression: "region = user_attribute('region')".into(),
            })
            .await
            .unwrap();
        admin
            .set_mask(&ColumnMask {
                table: orders,
                column: "email".into(),
                grantee: "analyst".into(),
                mask: Mask::Hash,
            })
            .await
            .unwrap();
        let analyst = hub.user_session("analyst", &[], "fuzz").await.unwrap();
        // The world is as described: the analyst sees the EU rows only, and no secret.
        let rows = analyst.query("SELECT * FROM sales.orders").await.unwrap();
        assert_eq!(rows.num_rows(), 2);
        let hidden = analyst.query("SELECT * FROM sales.secret").await.unwrap_err();
        assert!(hidden.to_string().contains("not found"), "{hidden}");
        (hub, analyst)
    });
    World {
        runtime,
        hub,
        analyst,
    }
}
