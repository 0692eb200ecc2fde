//! Writes under a row filter: a principal may only write rows it can read back, and writes
//! that could touch rows it cannot see are refused; a refused write changes nothing.

use std::collections::BTreeMap;

use basin_catalog::access::{Grant, Privilege, RowFilter, Securable};
use basin_core::TableRef;
use basin_sql::Engine;

use crate::{error, fixture, rows};

/// `eve` may read and modify `crm.customers`, but only its GB rows.
pub(crate) async fn eve(engine: &Engine) -> Engine {
    let catalog = engine.catalog();
    let mut attributes = BTreeMap::new();
    attributes.insert("country".to_string(), "GB".to_string());
    catalog.create_user("eve", None, &attributes).await.unwrap();
    let table = TableRef::parse("crm.customers").unwrap();
    for privilege in [Privilege::Select, Privilege::Modify] {
        catalog
            .grant(&Grant {
                grantee: "eve".into(),
                privilege,
                object: Securable::table(&table),
                column: None,
                granted_by: "test".into(),
                granted_at: String::new(),
            })
            .await
            .unwrap();
    }
    catalog
        .set_row_filter(&RowFilter {
            table,
            grantee: "eve".into(),
            expression: "country = user_attribute('country')".into(),
        })
        .await
        .unwrap();
    let snapshot = catalog.access_snapshot().await.unwrap();
    engine.as_principal(snapshot.principal("eve", &[]))
}

const ALL: &str = "SELECT id, name, country FROM crm.customers ORDER BY id";
const VERSION: &str = "SELECT max(version) FROM system.history WHERE table_name = 'customers'";

#[tokio::test]
async fn writes_stay_inside_the_row_filter() {
    let f = fixture().await;
    let eve = eve(&f.engine).await;
    assert_eq!(rows(&eve, ALL).await, ["1|Ada|GB", "3|Alan|GB"]);
    assert_eq!(
        rows(
            &eve,
            "SELECT current_user() AS a, current_user AS b, session_user() AS c"
        )
        .await,
        ["eve|eve|eve"]
    );
    let before = rows(&f.engine, ALL).await;
    let version = rows(&f.engine, VERSION).await;

    // Rows outside the filter, or whose filter column stays NULL, are refused whole.
    for refused in [
        "INSERT INTO crm.customers VALUES (4, 'Bo', 'GB'), (5, 'Cy', 'US')",
        "INSERT INTO crm.customers (id, name) VALUES (6, 'Di')",
        "INSERT INTO crm.customers SELECT id + 10, name, 'FR' FROM crm.customers",
        "UPDATE crm.customers SET country = 'US' WHERE id = 1",
        "UPDATE crm.customers SET country = NULL",
    ] {
        let e = error(&eve, refused).await;
        assert!(
            e.contains("permission denied") && e.contains("outside the rows you may see"),
            "{refused}: {e}"
        );
    }
    assert_eq!(rows(&f.engine, ALL).await, before, "nothing changed");
    assert_eq!(rows(&f.engine, VERSION).await, version, "no commit");

    // MERGE and INSERT OVERWRITE could touch rows eve cannot see.
    for (statement, named) in [
        (
            "MERGE INTO crm.customers t USING (SELECT 2 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE",
            "MERGE INTO",
        ),
        (
            "INSERT OVERWRITE crm.customers VALUES (1, 'Ada', 'GB')",
            "INSERT OVERWRITE",
        ),
    ] {
        let e = error(&eve, statement).await;
        assert!(e.contains("permission denied") && e.contains(named), "{e}");
    }
    assert_eq!(rows(&f.engine, ALL).await, before, "nothing changed");

    // Rows inside the filter are written; UPDATE only reaches eve's rows.
    eve.execute("INSERT INTO crm.customers VALUES (4, 'Bo', 'GB')")
        .await
        .unwrap();
    eve.execute("UPDATE crm.customers SET name = upper(name)")
        .await
        .unwrap();
    assert_eq!(
        rows(&f.engine, ALL).await,
        ["1|ADA|GB", "2|Grace|US", "3|ALAN|GB", "4|BO|GB"]
    );
}
