//! Row filters, masks and tag keys are listed to those who manage them: administrators see
//! all, a table's managers see those of their tables, a reader sees none.

use basin_catalog::access::{ColumnMask, RowFilter};
use basin_core::{Layer, TableRef};
use basin_service::ServiceError;
use basin_testkit::{DataDir, rows};

use crate::user_with;

#[test]
fn policies_and_tag_keys_are_listed_to_their_managers_only() {
    crate::on_large_stack(listings);
}

async fn listings() {
    let data = DataDir::with(&["main"], &["crm"]).await;
    data.dataset("main.shop", Layer::Source).await;
    let hub = crate::hub_of(&data);
    data.catalog.ensure_admin("admin").await.unwrap();
    let admin = hub.user_session("admin", &[], "test").await.unwrap();
    for sql in [
        "CREATE TABLE crm.people AS SELECT 1 AS id, 'eu' AS region, '555-0100' AS phone",
        "CREATE TABLE shop.orders AS SELECT 1 AS id, 'eu' AS region",
    ] {
        rows(admin.engine(), sql).await;
    }
    data.catalog.create_role("analyst", "").await.unwrap();
    let people = TableRef::parse("crm.people").unwrap();
    let orders = TableRef::parse("shop.orders").unwrap();
    for table in [&people, &orders] {
        admin
            .set_row_filter(&RowFilter {
                table: table.clone(),
                grantee: "analyst".into(),
                expression: "region = 'eu'".into(),
            })
            .await
            .unwrap();
    }
    admin
        .set_mask(&ColumnMask {
            table: people.clone(),
            column: "phone".into(),
            grantee: "analyst".into(),
            mask: "keep_last(4)".parse().unwrap(),
        })
        .await
        .unwrap();
    admin.define_tag("quality", &["gold".into()]).await.unwrap();

    let owner = user_with(&hub, &data, "owner", &["GRANT MANAGE ON TABLE shop.orders"]).await;
    let reader = user_with(&hub, &data, "reader", &["GRANT SELECT ON TABLE crm.people"]).await;

    let tables = |filters: Vec<RowFilter>| -> Vec<String> {
        filters.iter().map(|f| f.table.to_string()).collect()
    };
    assert_eq!(
        tables(admin.row_filters().await.unwrap()),
        ["main.crm.people", "main.shop.orders"]
    );
    assert_eq!(
        tables(owner.row_filters().await.unwrap()),
        ["main.shop.orders"]
    );
    assert!(reader.row_filters().await.unwrap().is_empty());

    let masks = admin.masks().await.unwrap();
    assert_eq!(masks.len(), 1);
    assert_eq!(
        (masks[0].column.as_str(), masks[0].mask.to_string()),
        ("phone", "keep_last(4)".to_string())
    );
    assert!(owner.masks().await.unwrap().is_empty());
    assert!(reader.masks().await.unwrap().is_empty());

    for manager in [&admin, &owner] {
        let keys = manager.tag_keys().await.unwrap();
        assert!(keys.iter().any(|k| k.name == "quality"), "{keys:?}");
    }
    assert!(matches!(
        reader.tag_keys().await,
        Err(ServiceError::Denied(_))
    ));
}
