//! Listings page through a large catalog once, in a stable order, whatever is added meanwhile.

use basin_catalog::{Column, NewTable};
use basin_core::{Layer, TableRef};
use basin_service::Page;
use basin_testkit::DataDir;

const TABLES: usize = 10_000;

/// A catalog entry of one column `x` (a listing never opens a table's files).
async fn entry(catalog: &basin_catalog::Catalog, table: &TableRef) {
    catalog
        .create_table(NewTable {
            location: format!("file:///nowhere/{}", table.table),
            table: table.clone(),
            description: String::new(),
            primary_key: vec![],
            partition_columns: vec![],
            columns: vec![Column {
                name: "x".into(),
                data_type: "BIGINT".into(),
                nullable: true,
                description: String::new(),
                tags: vec![],
            }],
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn ten_thousand_tables_page_in_a_stable_order() {
    let data = DataDir::with(&["main"], &[]).await;
    data.dataset("main.big", Layer::Source).await;
    data.dataset("main.other", Layer::Source).await;
    // Catalog entries only: a listing never opens a table's files.
    for i in 0..TABLES {
        let table = TableRef::parse(&format!("big.t{i:05}")).unwrap();
        entry(&data.catalog, &table).await;
    }
    let hub = crate::hub_of(&data);
    data.catalog.ensure_admin("admin").await.unwrap();
    let admin = hub.user_session("admin", &[], "test").await.unwrap();

    let mut names = Vec::new();
    let mut page = Page {
        size: Some(1000),
        token: None,
    };
    let mut pages = 0;
    loop {
        let p = admin.tables("main", "big", &page).await.unwrap();
        pages += 1;
        names.extend(p.items.into_iter().map(|(t, _)| t.name));
        if pages == 3 {
            // A table added behind the cursor does not shift what comes next.
            data.catalog
                .create_table(NewTable {
                    table: TableRef::parse("big.a_new_one").unwrap(),
                    location: "file:///nowhere/a_new_one".into(),
                    description: String::new(),
                    primary_key: vec![],
                    partition_columns: vec![],
                    columns: vec![],
                })
                .await
                .unwrap();
        }
        match p.next_page_token {
            Some(t) => page.token = Some(t),
            None => break,
        }
    }
    let expected: Vec<String> = (0..TABLES).map(|i| format!("t{i:05}")).collect();
    assert_eq!(pages, 10);
    assert_eq!(names, expected, "every table once, in name order");

    // A principal sees only its tables, in pages too.
    hub.catalog()
        .create_user("ann", None, &Default::default())
        .await
        .unwrap();
    for i in (0..TABLES).step_by(100) {
        hub.catalog()
            .grant(&basin_catalog::access::Grant {
                grantee: "ann".into(),
                privilege: basin_catalog::access::Privilege::Select,
                object: basin_catalog::access::Securable::table(
                    &TableRef::parse(&format!("big.t{i:05}")).unwrap(),
                ),
                column: None,
                granted_by: "admin".into(),
                granted_at: String::new(),
            })
            .await
            .unwrap();
    }
    let ann = hub.user_session("ann", &[], "test").await.unwrap();
    let first = ann
        .tables(
            "main",
            "big",
            &Page {
                size: Some(60),
                token: None,
            },
        )
        .await
        .unwrap();
    let rest = ann
        .tables(
            "main",
            "big",
            &Page {
                size: Some(60),
                token: first.next_page_token.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len() + rest.items.len(), TABLES / 100);
    assert_eq!(rest.next_page_token, None);
    assert_eq!(first.items[0].0.name, "t00000");
    let e = ann
        .tables("main", "other", &Page::default())
        .await
        .map(|p| p.items.len());
    assert!(
        matches!(&e, Err(err) if err.to_string().contains("not found")),
        "a dataset with nothing visible is not found: {e:?}"
    );
}

/// Hubs and datasets are listed by the same roll-up as the rest: a dataset is visible through a
/// grant on it or its hub, or through a visible table, including one shown by a tag grant on
/// the table or on one of its columns.
#[tokio::test]
async fn hubs_and_datasets_roll_up_from_grants_and_tagged_tables() {
    use basin_catalog::access::{Grant, Privilege, Securable};
    let data = DataDir::with(&["main", "other"], &[]).await;
    for d in [
        "main.plain",
        "main.tagged",
        "main.col_tagged",
        "main.used",
        "other.x",
    ] {
        data.dataset(d, Layer::Source).await;
    }
    let c = &data.catalog;
    c.define_tag("quality", &["gold".into()]).await.unwrap();
    for (t, column_tag) in [
        ("plain.t", false),
        ("tagged.t", false),
        ("col_tagged.t", true),
        ("used.t", false),
    ] {
        let table = TableRef::parse(t).unwrap();
        entry(c, &table).await;
        let gold = ["quality=gold".to_string()];
        match (t, column_tag) {
            ("tagged.t", _) => c.set_tags(&Securable::table(&table), None, &gold).await,
            (_, true) => {
                c.set_tags(&Securable::table(&table), Some("x"), &gold)
                    .await
            }
            _ => Ok(()),
        }
        .unwrap();
    }
    let grant = |grantee: &str, privilege, object: &str| Grant {
        grantee: grantee.into(),
        privilege,
        object: Securable::parse(object).unwrap(),
        column: None,
        granted_by: "admin".into(),
        granted_at: String::new(),
    };
    for user in ["tagger", "user", "nobody"] {
        c.create_user(user, None, &Default::default())
            .await
            .unwrap();
    }
    c.grant(&grant("tagger", Privilege::Select, "tag quality=gold"))
        .await
        .unwrap();
    c.grant(&grant("user", Privilege::Usage, "dataset main.used"))
        .await
        .unwrap();
    let hub = crate::hub_of(&data);
    let all = Page::default();
    let names = |datasets: Vec<basin_catalog::Dataset>| -> Vec<String> {
        datasets.into_iter().map(|d| d.name).collect()
    };
    let hubs = |p: basin_service::Paged<basin_catalog::Hub>| -> Vec<String> {
        p.items.into_iter().map(|h| h.name).collect()
    };

    let tagger = hub.user_session("tagger", &[], "test").await.unwrap();
    assert_eq!(hubs(tagger.hubs(&all).await.unwrap()), ["main"]);
    assert_eq!(
        names(tagger.datasets("main", &all).await.unwrap().items),
        ["col_tagged", "tagged"]
    );
    assert!(tagger.dataset("main", "plain").await.is_err());

    let user = hub.user_session("user", &[], "test").await.unwrap();
    assert_eq!(hubs(user.hubs(&all).await.unwrap()), ["main"]);
    assert_eq!(
        names(user.datasets("main", &all).await.unwrap().items),
        ["used"]
    );
    assert!(
        user.datasets("other", &all).await.is_err(),
        "a hidden hub is not found"
    );

    let nobody = hub.user_session("nobody", &[], "test").await.unwrap();
    assert!(hubs(nobody.hubs(&all).await.unwrap()).is_empty());
    assert!(nobody.datasets("main", &all).await.is_err());
}
