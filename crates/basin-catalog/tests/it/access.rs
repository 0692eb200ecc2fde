//! The access model against both backends: store round trips of users, roles, grants, row
//! filters, column masks, tags, tokens and the audit log (each change bumping the access version),
//! then the decision function on a small catalog (hub `us`, datasets `sales` and `hr`).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use basin_catalog::access::Privilege::{Manage, Modify, Select, Unmask, Usage};
use basin_catalog::access::{
    AccessSnapshot, AuditEvent, ColumnMask, ColumnPolicy, Grant, Mask, Principal, Privilege, Role,
    RowFilter, Securable, TablePolicy, TagKey, Token, TokenKind, User,
};
use basin_catalog::{
    Catalog, CatalogError, Column, Contract, Dataset, NewDataset, NewHub, NewTable, Table,
};
use basin_core::{DatasetRef, Layer, Name, TableRef};

use basin_testkit::{DataDir, postgres};

#[tokio::test]
async fn sqlite_access() {
    let data = DataDir::new().await;
    exercise_access(&data.catalog).await;
}

#[tokio::test]
async fn postgres_access() {
    let server = postgres::Server::start();
    let catalog = Catalog::connect(&server.url()).await.unwrap();
    exercise_access(&catalog).await;
}

/// Everything, on one fresh catalog. The store round trips leave no grant, row filter or mask
/// behind, so the decisions start from a clean access state.
async fn exercise_access(catalog: &Catalog) {
    store_round_trips(catalog).await;
    decisions(catalog).await;
}

// ---- helpers ------------------------------------------------------------------------------------

fn object(text: &str) -> Securable {
    Securable::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn table_ref(text: &str) -> TableRef {
    TableRef::parse(text).unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn attributes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn grant(grantee: &str, privilege: Privilege, on: &str) -> Grant {
    Grant {
        grantee: grantee.into(),
        privilege,
        object: object(on),
        column: None,
        granted_by: "tester".into(),
        granted_at: String::new(),
    }
}

fn column_grant(grantee: &str, privilege: Privilege, on: &str, column: &str) -> Grant {
    Grant {
        column: Some(column.into()),
        ..grant(grantee, privilege, on)
    }
}

async fn create_hub(catalog: &Catalog, name: &str) {
    catalog
        .create_hub(NewHub {
            name: Name::parse("hub", name).unwrap(),
            storage_root: format!("file:///tmp/{name}"),
            description: String::new(),
        })
        .await
        .unwrap();
}

async fn create_dataset(catalog: &Catalog, name: &str) {
    catalog
        .create_dataset(NewDataset {
            dataset: DatasetRef::parse(name).unwrap(),
            layer: Layer::Prepared,
            domain: None,
            owner: None,
            description: String::new(),
            tags: vec![],
            contract: Contract::default(),
        })
        .await
        .unwrap();
}

/// Registers a table whose columns are given as (name, tags).
async fn create_table(catalog: &Catalog, name: &str, columns: &[(&str, &[&str])]) {
    let columns = columns
        .iter()
        .map(|(column, tags)| Column {
            tags: strings(tags),
            ..Column::from((column.to_string(), "VARCHAR".to_string(), true))
        })
        .collect();
    catalog
        .create_table(NewTable {
            table: table_ref(name),
            location: format!("file:///tmp/{name}"),
            description: String::new(),
            primary_key: vec![],
            partition_columns: vec![],
            columns,
        })
        .await
        .unwrap();
}

async fn set_tags(catalog: &Catalog, on: &str, column: Option<&str>, tags: &[&str]) {
    catalog
        .set_tags(&object(on), column, &strings(tags))
        .await
        .unwrap_or_else(|e| panic!("tagging {on}: {e}"));
}

/// Runs one change of the access model, checks that it succeeded and bumped the access version
/// by exactly one, and returns its result.
async fn bumps<T>(
    catalog: &Catalog,
    what: &str,
    change: impl Future<Output = basin_catalog::Result<T>>,
) -> T {
    let before = catalog.access_snapshot().await.unwrap();
    let out = change.await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let after = catalog.access_snapshot().await.unwrap();
    assert_eq!(
        after.version(),
        before.version() + 1,
        "{what} must bump the access version"
    );
    out
}

/// Runs something that must leave the access state as it is: the cached snapshot is reused.
async fn keeps<T>(catalog: &Catalog, what: &str, action: impl Future<Output = T>) -> T {
    let before = catalog.access_snapshot().await.unwrap();
    let out = action.await;
    let after = catalog.access_snapshot().await.unwrap();
    assert!(
        Arc::ptr_eq(&before, &after),
        "{what} must not change the access version ({} → {})",
        before.version(),
        after.version()
    );
    out
}

/// Runs a change that must be refused without touching the access state; returns the error.
async fn refused<T: std::fmt::Debug>(
    catalog: &Catalog,
    what: &str,
    change: impl Future<Output = basin_catalog::Result<T>>,
) -> CatalogError {
    keeps(catalog, what, change)
        .await
        .expect_err(&format!("{what} must be refused"))
}

fn assert_not_found(err: &CatalogError, kind: &str) {
    assert!(
        matches!(err, CatalogError::NotFound { kind: k, .. } if *k == kind),
        "expected a {kind} not found, got: {err}"
    );
}

fn assert_bad_value(err: &CatalogError, message: &str) {
    assert!(
        matches!(err, CatalogError::BadValue(m) if m == message),
        "expected BadValue({message:?}), got: {err:?}"
    );
}

// ---- store round trips --------------------------------------------------------------------------

async fn store_round_trips(catalog: &Catalog) {
    create_hub(catalog, "rt").await;
    create_dataset(catalog, "rt.shop").await;
    create_table(catalog, "rt.shop.items", &[("name", &[]), ("price", &[])]).await;

    snapshot_is_cached(catalog).await;
    users(catalog).await;
    roles(catalog).await;
    tags(catalog).await;
    grants(catalog).await;
    row_filters(catalog).await;
    column_masks(catalog).await;
    tokens(catalog).await;
    audit_log(catalog).await;

    assert_eq!(catalog.grants().await.unwrap(), []);
    assert_eq!(catalog.row_filters().await.unwrap(), []);
    assert_eq!(catalog.column_masks().await.unwrap(), []);
}

async fn snapshot_is_cached(catalog: &Catalog) {
    let first = catalog.access_snapshot().await.unwrap();
    assert_eq!(first.version(), 0, "a fresh catalog is at access version 0");
    let again = catalog.access_snapshot().await.unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    // Clones of the handle share the cache.
    let clone = catalog.clone().access_snapshot().await.unwrap();
    assert!(Arc::ptr_eq(&first, &clone));
}

async fn users(catalog: &Catalog) {
    let ana = bumps(
        catalog,
        "creating a user",
        catalog.create_user("ana", Some("hash-1"), &attributes(&[("region", "eu")])),
    )
    .await;
    assert_eq!(
        ana,
        User {
            name: "ana".into(),
            attributes: attributes(&[("region", "eu")]),
            roles: vec![],
            disabled: false,
            has_password: true,
            created_at: ana.created_at.clone(),
        }
    );
    assert!(!ana.created_at.is_empty());
    assert_eq!(catalog.user("ana").await.unwrap(), Some(ana.clone()));

    let dup = refused(
        catalog,
        "a second user 'ana'",
        catalog.create_user("ana", None, &BTreeMap::new()),
    )
    .await;
    assert!(
        matches!(&dup, CatalogError::AlreadyExists { kind: "user", name } if name == "ana"),
        "{dup}"
    );
    let bad = refused(
        catalog,
        "an invalid user name",
        catalog.create_user("Ana", None, &BTreeMap::new()),
    )
    .await;
    assert!(matches!(bad, CatalogError::Invalid(_)), "{bad}");
    assert!(
        bad.to_string().starts_with("invalid user name 'Ana'"),
        "{bad}"
    );
    let bad = refused(
        catalog,
        "an invalid attribute name",
        catalog.create_user("ben", None, &attributes(&[("Region", "eu")])),
    )
    .await;
    assert!(
        bad.to_string()
            .starts_with("invalid attribute name 'Region'"),
        "{bad}"
    );

    // A federated user has no password.
    let fed = bumps(
        catalog,
        "creating a user without password",
        catalog.create_user("fed", None, &BTreeMap::new()),
    )
    .await;
    assert!(!fed.has_password);
    assert_eq!(catalog.password_hash("fed").await.unwrap(), None);
    assert_eq!(catalog.password_hash("nobody").await.unwrap(), None);

    assert_eq!(
        catalog.password_hash("ana").await.unwrap().as_deref(),
        Some("hash-1")
    );
    bumps(
        catalog,
        "setting a password",
        catalog.set_password_hash("ana", "hash-2"),
    )
    .await;
    assert_eq!(
        catalog.password_hash("ana").await.unwrap().as_deref(),
        Some("hash-2")
    );

    let new_attributes = attributes(&[("region", "us"), ("team", "data")]);
    bumps(
        catalog,
        "setting attributes",
        catalog.set_user_attributes("ana", &new_attributes),
    )
    .await;
    assert_eq!(
        catalog.require_user("ana").await.unwrap().attributes,
        new_attributes
    );
    let (_, ana) = principal(catalog, "ana", &[]).await;
    assert_eq!(ana.attributes, new_attributes);
    let missing = refused(
        catalog,
        "attributes of an unknown user",
        catalog.set_user_attributes("nobody", &new_attributes),
    )
    .await;
    assert_not_found(&missing, "user");

    // A disabled user keeps its hash but cannot sign in with it.
    bumps(
        catalog,
        "disabling a user",
        catalog.set_user_disabled("ana", true),
    )
    .await;
    assert!(catalog.require_user("ana").await.unwrap().disabled);
    assert_eq!(catalog.password_hash("ana").await.unwrap(), None);
    bumps(
        catalog,
        "enabling a user",
        catalog.set_user_disabled("ana", false),
    )
    .await;
    assert_eq!(
        catalog.password_hash("ana").await.unwrap().as_deref(),
        Some("hash-2")
    );

    let names: Vec<String> = catalog
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["ana", "fed"]);
}

async fn roles(catalog: &Catalog) {
    let readers = bumps(
        catalog,
        "creating a role",
        catalog.create_role("readers", "Read the shop"),
    )
    .await;
    assert_eq!(
        readers,
        Role {
            name: "readers".into(),
            description: "Read the shop".into(),
            members: vec![],
            created_at: readers.created_at.clone(),
        }
    );
    let dup = refused(
        catalog,
        "a second role 'readers'",
        catalog.create_role("readers", ""),
    )
    .await;
    assert!(
        matches!(&dup, CatalogError::AlreadyExists { kind: "role", name } if name == "readers"),
        "{dup}"
    );
    let bad = refused(
        catalog,
        "an invalid role name",
        catalog.create_role("read-ers", ""),
    )
    .await;
    assert!(matches!(bad, CatalogError::Invalid(_)), "{bad}");

    for member in ["ana", "ana", "fed"] {
        bumps(
            catalog,
            "adding a member",
            catalog.add_role_member("readers", member),
        )
        .await;
    }
    let members = |role: Role| role.members;
    assert_eq!(
        members(catalog.require_role("readers").await.unwrap()),
        ["ana", "fed"]
    );
    assert_eq!(
        catalog.require_user("ana").await.unwrap().roles,
        ["readers"]
    );
    assert_not_found(
        &refused(
            catalog,
            "a member of an unknown role",
            catalog.add_role_member("writers", "ana"),
        )
        .await,
        "role",
    );
    assert_not_found(
        &refused(
            catalog,
            "an unknown member",
            catalog.add_role_member("readers", "nobody"),
        )
        .await,
        "user",
    );

    bumps(
        catalog,
        "removing a member",
        catalog.remove_role_member("readers", "fed"),
    )
    .await;
    assert_eq!(
        members(catalog.require_role("readers").await.unwrap()),
        ["ana"]
    );
    assert!(catalog.require_user("fed").await.unwrap().roles.is_empty());
    let role_names: Vec<String> = catalog
        .roles()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(role_names, ["readers"]);

    // A principal acts in its own name, its roles and `public`.
    let (_, ana) = principal(catalog, "ana", &[]).await;
    assert_eq!(ana.roles, set(&["ana", "public", "readers"]));
    let (_, fed) = principal(catalog, "fed", &[]).await;
    assert_eq!(fed.roles, set(&["fed", "public"]));
}

async fn tags(catalog: &Catalog) {
    let classification = bumps(
        catalog,
        "defining a tag",
        catalog.define_tag("classification", &strings(&["public", "internal", "pii"])),
    )
    .await;
    assert_eq!(
        classification,
        TagKey {
            name: "classification".into(),
            allowed_values: strings(&["public", "internal", "pii"]),
        }
    );
    let pii = bumps(
        catalog,
        "defining a free tag",
        catalog.define_tag("pii", &[]),
    )
    .await;
    assert_eq!(catalog.tag_keys().await.unwrap(), [classification, pii]);
    let bad = refused(
        catalog,
        "an invalid allowed value",
        catalog.define_tag("level", &strings(&["High"])),
    )
    .await;
    assert!(matches!(bad, CatalogError::BadValue(_)), "{bad}");

    bumps(
        catalog,
        "tagging a dataset",
        catalog.set_tags(
            &object("dataset rt.shop"),
            None,
            &strings(&["classification=internal"]),
        ),
    )
    .await;
    let shop = catalog
        .require_dataset(&DatasetRef::parse("rt.shop").unwrap())
        .await
        .unwrap();
    assert_eq!(shop.tags, ["classification=internal"]);

    let items = object("table rt.shop.items");
    // Undefined keys (`team`) take any value; a defined key with no allowed values too.
    bumps(
        catalog,
        "tagging a table",
        catalog.set_tags(
            &items,
            None,
            &strings(&["classification=public", "team=data"]),
        ),
    )
    .await;
    bumps(
        catalog,
        "tagging a column",
        catalog.set_tags(&items, Some("price"), &strings(&["pii", "pii=yes"])),
    )
    .await;
    let stored = catalog
        .require_table(&table_ref("rt.shop.items"))
        .await
        .unwrap();
    assert_eq!(stored.tags, ["classification=public", "team=data"]);
    let column_tags: Vec<Vec<String>> = stored.columns.into_iter().map(|c| c.tags).collect();
    assert_eq!(column_tags, [vec![], strings(&["pii", "pii=yes"])]);

    let not_allowed = refused(
        catalog,
        "a value the tag does not allow",
        catalog.set_tags(&items, None, &strings(&["classification=secret"])),
    )
    .await;
    assert_bad_value(
        &not_allowed,
        "tag 'classification' does not allow the value 'secret': use one of public, internal, pii",
    );
    let no_value = refused(
        catalog,
        "a tag without its value",
        catalog.set_tags(&items, None, &strings(&["classification"])),
    )
    .await;
    assert_bad_value(
        &no_value,
        "tag 'classification' needs a value: write classification=VALUE with one of public, internal, pii",
    );
    assert_not_found(
        &refused(
            catalog,
            "tags on an unknown column",
            catalog.set_tags(&items, Some("nope"), &strings(&["pii"])),
        )
        .await,
        "column",
    );
    assert_bad_value(
        &refused(
            catalog,
            "tags on a hub",
            catalog.set_tags(&object("hub rt"), None, &strings(&["pii"])),
        )
        .await,
        "tags go on datasets, tables and columns, not on 'hub rt'",
    );
    let unchanged = catalog
        .require_table(&table_ref("rt.shop.items"))
        .await
        .unwrap();
    assert_eq!(unchanged.tags, ["classification=public", "team=data"]);
}

async fn grants(catalog: &Catalog) {
    let all = [
        grant("readers", Usage, "hub rt"),
        grant("public", Usage, "hub rt"),
        grant("readers", Select, "dataset rt.shop"),
        grant("ana", Modify, "table rt.shop.items"),
        column_grant("ana", Select, "table rt.shop.items", "price"),
        grant("readers", Select, "tag classification=public|internal"),
        grant("fed", Unmask, "tag pii"),
    ];
    for g in &all {
        bumps(catalog, &format!("granting {}", g.object), catalog.grant(g)).await;
    }
    // Granting again changes nothing but the time.
    bumps(catalog, "granting again", catalog.grant(&all[0])).await;

    let stored = catalog.grants().await.unwrap();
    for g in &stored {
        assert_eq!(g.granted_by, "tester");
        assert!(!g.granted_at.is_empty(), "{g:?}");
    }
    let summary: Vec<String> = stored
        .iter()
        .map(|g| {
            format!(
                "{} {}{} to {}",
                g.privilege,
                g.object,
                g.column
                    .as_ref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default(),
                g.grantee
            )
        })
        .collect();
    // Ordered by object, grantee, privilege, column.
    assert_eq!(
        summary,
        [
            "SELECT dataset rt.shop to readers",
            "USAGE hub rt to public",
            "USAGE hub rt to readers",
            "MODIFY table rt.shop.items to ana",
            "SELECT table rt.shop.items (price) to ana",
            "SELECT tag classification=public|internal to readers",
            "UNMASK tag pii to fed",
        ]
    );
    let without_time = |g: &Grant| Grant {
        granted_at: String::new(),
        ..g.clone()
    };
    let stored: Vec<Grant> = stored.iter().map(without_time).collect();
    for g in &all {
        assert!(stored.contains(g), "{g:?} not read back");
    }

    assert_not_found(
        &refused(
            catalog,
            "a grant to nobody",
            catalog.grant(&grant("nobody", Select, "hub rt")),
        )
        .await,
        "user or role",
    );
    assert_not_found(
        &refused(
            catalog,
            "a grant on a missing table",
            catalog.grant(&grant("ana", Select, "table rt.shop.nothing")),
        )
        .await,
        "table",
    );
    assert_not_found(
        &refused(
            catalog,
            "a grant on a missing column",
            catalog.grant(&column_grant("ana", Select, "table rt.shop.items", "nope")),
        )
        .await,
        "column",
    );
    assert_bad_value(
        &refused(
            catalog,
            "MODIFY on a column",
            catalog.grant(&column_grant("ana", Modify, "table rt.shop.items", "price")),
        )
        .await,
        "only SELECT can be granted on columns, not MODIFY",
    );
    assert_bad_value(
        &refused(
            catalog,
            "a column of a dataset",
            catalog.grant(&column_grant("ana", Select, "dataset rt.shop", "price")),
        )
        .await,
        "column grants are on tables; 'dataset rt.shop' is not a table",
    );
    assert_bad_value(
        &refused(
            catalog,
            "a tag value the tag does not allow",
            catalog.grant(&grant("ana", Select, "tag classification=secret")),
        )
        .await,
        "tag 'classification' does not allow the value 'secret': use one of public, internal, pii",
    );

    for g in &all {
        bumps(
            catalog,
            &format!("revoking {}", g.object),
            catalog.revoke(g),
        )
        .await;
    }
    assert_eq!(catalog.grants().await.unwrap(), []);
    let again = refused(catalog, "revoking twice", catalog.revoke(&all[4])).await;
    assert_eq!(
        again.to_string(),
        "grant 'SELECT(price) on table rt.shop.items to ana' not found"
    );
}

async fn row_filters(catalog: &Catalog) {
    let items = table_ref("rt.shop.items");
    let filter = |grantee: &str, expression: &str| RowFilter {
        table: items.clone(),
        grantee: grantee.into(),
        expression: expression.into(),
    };
    for f in [
        filter("readers", "price > 0"),
        filter("readers", "price > 10"),
        filter("ana", "name = current_user()"),
    ] {
        bumps(catalog, "setting a row filter", catalog.set_row_filter(&f)).await;
    }
    assert_eq!(
        catalog.row_filters().await.unwrap(),
        [
            filter("ana", "name = current_user()"),
            filter("readers", "price > 10")
        ]
    );
    assert_bad_value(
        &refused(
            catalog,
            "an empty row filter",
            catalog.set_row_filter(&filter("readers", "  ")),
        )
        .await,
        "a row filter needs a SQL boolean expression",
    );
    assert_not_found(
        &refused(
            catalog,
            "a row filter for nobody",
            catalog.set_row_filter(&filter("nobody", "true")),
        )
        .await,
        "user or role",
    );
    for grantee in ["readers", "ana"] {
        bumps(
            catalog,
            "dropping a row filter",
            catalog.drop_row_filter(&items, grantee),
        )
        .await;
    }
    assert_eq!(catalog.row_filters().await.unwrap(), []);
}

async fn column_masks(catalog: &Catalog) {
    for (text, mask) in [
        ("null", Mask::Null),
        ("HASH", Mask::Hash),
        ("keep_last(4)", Mask::KeepLast(4)),
        ("keep_last:2", Mask::KeepLast(2)),
        ("expr:upper(name)", Mask::Expr("upper(name)".into())),
    ] {
        let parsed: Mask = text.parse().unwrap();
        assert_eq!(parsed, mask, "{text}");
        assert_eq!(parsed.to_string().parse::<Mask>().unwrap(), mask);
    }
    for bad in ["keep_last(x)", "expr: ", "rot13"] {
        assert!(bad.parse::<Mask>().is_err(), "{bad}");
    }

    let items = table_ref("rt.shop.items");
    let mask = |column: &str, grantee: &str, mask: &str| ColumnMask {
        table: items.clone(),
        column: column.into(),
        grantee: grantee.into(),
        mask: mask.parse().unwrap(),
    };
    for m in [
        mask("price", "readers", "keep_last(2)"),
        mask("price", "readers", "hash"),
        mask("name", "ana", "expr:upper(name)"),
    ] {
        bumps(catalog, "setting a mask", catalog.set_column_mask(&m)).await;
    }
    assert_eq!(
        catalog.column_masks().await.unwrap(),
        [
            mask("name", "ana", "expr:upper(name)"),
            mask("price", "readers", "hash")
        ]
    );
    assert_not_found(
        &refused(
            catalog,
            "a mask on a missing column",
            catalog.set_column_mask(&mask("nope", "ana", "null")),
        )
        .await,
        "column",
    );
    for (column, grantee) in [("price", "readers"), ("name", "ana")] {
        bumps(
            catalog,
            "dropping a mask",
            catalog.drop_column_mask(&items, column, grantee),
        )
        .await;
    }
    assert_eq!(catalog.column_masks().await.unwrap(), []);
}

fn token(id: &str, owner: &str, kind: TokenKind, day: u32) -> Token {
    Token {
        id: id.into(),
        name: format!("{id}-name"),
        owner: owner.into(),
        kind,
        secret_hash: format!("hash-of-{id}"),
        created_at: format!("2024-01-{day:02}T00:00:00.000Z"),
        expires_at: "2099-01-01T00:00:00.000Z".into(),
        revoked_at: None,
    }
}

async fn tokens(catalog: &Catalog) {
    let etl = token("t1", "ana", TokenKind::Service, 1);
    let bi = token("t2", "fed", TokenKind::Service, 2);
    let session = token("t3", "ana", TokenKind::Session, 3);
    // Tokens are not part of the access state: no version bump.
    for t in [&etl, &bi, &session] {
        keeps(catalog, "storing a token", catalog.create_token(t))
            .await
            .unwrap();
    }
    let same_secret = Token {
        id: "t4".into(),
        ..etl.clone()
    };
    assert!(catalog.create_token(&same_secret).await.is_err());

    // A live token signs its user in; an unknown or expired one nobody.
    let user_of = |hash: &'static str| catalog.token_user(hash);
    assert_eq!(user_of("hash-of-t1").await.unwrap().as_deref(), Some("ana"));
    assert_eq!(user_of("hash-of-t3").await.unwrap().as_deref(), Some("ana"));
    assert_eq!(user_of("hash-of-nothing").await.unwrap(), None);
    let expired = Token {
        expires_at: "2001-01-01T00:00:00.000Z".into(),
        ..token("t5", "ana", TokenKind::Session, 5)
    };
    catalog.create_token(&expired).await.unwrap();
    assert_eq!(user_of("hash-of-t5").await.unwrap(), None);
    // Nor does a token of a disabled user.
    catalog.set_user_disabled("ana", true).await.unwrap();
    assert_eq!(user_of("hash-of-t3").await.unwrap(), None);
    catalog.set_user_disabled("ana", false).await.unwrap();
    assert_eq!(
        catalog.service_tokens(Some("ana")).await.unwrap(),
        std::slice::from_ref(&etl)
    );
    assert_eq!(
        catalog.service_tokens(None).await.unwrap(),
        [etl.clone(), bi.clone()]
    );
    assert_eq!(catalog.service_tokens(Some("nobody")).await.unwrap(), []);

    let revoked = catalog.revoke_token("t1").await.unwrap();
    let revoked_at = revoked.revoked_at.clone().expect("a revocation time");
    assert_eq!(
        revoked,
        Token {
            revoked_at: Some(revoked_at.clone()),
            ..etl.clone()
        }
    );
    assert_eq!(catalog.token("t1").await.unwrap(), Some(revoked.clone()));
    // A revoked token signs nobody in, and is still listed.
    assert_eq!(user_of("hash-of-t1").await.unwrap(), None);
    assert_eq!(
        catalog.service_tokens(Some("ana")).await.unwrap(),
        [revoked]
    );
    assert_not_found(&catalog.revoke_token("t1").await.unwrap_err(), "token");
    assert_not_found(&catalog.revoke_token("t9").await.unwrap_err(), "token");
    assert_eq!(catalog.token("t9").await.unwrap(), None);
}

/// An audit event at 10:00:`second` UTC, in the form the server writes (microseconds, `Z`).
fn event(second: u32, action: &str) -> AuditEvent {
    AuditEvent {
        at: format!("2024-05-01T10:00:{second:02}.000000Z"),
        principal: "ana".into(),
        source: "cli".into(),
        action: action.into(),
        target: "rt.shop.items".into(),
        outcome: "ok".into(),
        detail: format!(r#"{{"n":{second}}}"#),
    }
}

async fn audit_log(catalog: &Catalog) {
    let (first, second, third) = (event(0, "login"), event(1, "query"), event(2, "write"));
    // Appended out of order: reading orders them by time.
    for e in [&second, &first, &third] {
        keeps(catalog, "auditing", catalog.audit(e)).await.unwrap();
    }
    let read = |since: Option<&'static str>, limit: i64| catalog.audit_events(since, limit);
    let all = [first.clone(), second.clone(), third.clone()];
    assert_eq!(read(None, 100).await.unwrap(), all);
    assert_eq!(read(None, 2).await.unwrap(), all[..2]);
    // `since` is inclusive and compares instants, whatever the form of the time.
    for since in [
        "2024-05-01T10:00:01.000000Z",
        "2024-05-01T10:00:01Z",
        "2024-05-01T10:00:00.5Z",
        "2024-05-01T12:00:01+02:00",
    ] {
        assert_eq!(read(Some(since), 100).await.unwrap(), all[1..], "{since}");
    }
    assert_eq!(
        read(Some("2024-05-01T10:00:01Z"), 1).await.unwrap(),
        all[1..2]
    );
    assert_eq!(
        read(Some("2024-05-01T10:00:02.000001Z"), 100)
            .await
            .unwrap(),
        []
    );
    assert_eq!(read(Some("2024-05-02T00:00:00Z"), 100).await.unwrap(), []);

    // Rows that arrive together are written together; each is stored once and its writer
    // answered only when it is.
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..40 {
        let catalog = catalog.clone();
        writers.spawn(async move {
            let mut e = AuditEvent {
                at: format!("2024-06-01T10:00:{:02}.000000Z", i),
                ..event(0, "together")
            };
            if i == 7 {
                // PostgreSQL refuses a NUL in text: this row fails there, alone.
                e.target = "bad\0target".into();
                let _ = catalog.audit(&e).await;
            } else {
                catalog.audit(&e).await.unwrap();
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    let together = read(Some("2024-06-01T00:00:00Z"), 100).await.unwrap();
    let seconds: Vec<String> = together.iter().map(|e| e.at[17..19].to_string()).collect();
    let expected = |with_bad: bool| -> Vec<String> {
        (0..40)
            .filter(|&i| with_bad || i != 7)
            .map(|i| format!("{i:02}"))
            .collect()
    };
    assert!(
        seconds == expected(true) || seconds == expected(false),
        "{seconds:?}"
    );
    assert!(together.iter().all(|e| e.action == "together"));
}

// ---- decisions ----------------------------------------------------------------------------------

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn principal(
    catalog: &Catalog,
    name: &str,
    extra_roles: &[&str],
) -> (Arc<AccessSnapshot>, Principal) {
    let snapshot = catalog.access_snapshot().await.unwrap();
    let principal = snapshot.principal(name, &strings(extra_roles));
    (snapshot, principal)
}

/// Decisions as the engine takes them: on the current snapshot, with freshly read objects.
struct Decide<'a>(&'a Catalog);

impl Decide<'_> {
    /// Creates user `name` holding `grants`.
    async fn user(&self, name: &str, grants: &[(Privilege, &str)]) {
        self.0
            .create_user(name, None, &BTreeMap::new())
            .await
            .unwrap();
        for (privilege, on) in grants {
            self.grant(name, *privilege, on).await;
        }
    }

    async fn role(&self, name: &str, members: &[&str]) {
        self.0.create_role(name, "").await.unwrap();
        for m in members {
            self.0.add_role_member(name, m).await.unwrap();
        }
    }

    async fn grant(&self, grantee: &str, privilege: Privilege, on: &str) {
        self.0
            .grant(&grant(grantee, privilege, on))
            .await
            .unwrap_or_else(|e| panic!("granting {privilege} on {on} to {grantee}: {e}"));
    }

    async fn dataset(&self, name: &str) -> Dataset {
        self.0
            .require_dataset(&DatasetRef::parse(name).unwrap())
            .await
            .unwrap()
    }

    async fn table(&self, name: &str) -> Table {
        self.0.require_table(&table_ref(name)).await.unwrap()
    }

    async fn policy_as(&self, who: &str, extra_roles: &[&str], table: &str) -> Option<TablePolicy> {
        let (snapshot, p) = principal(self.0, who, extra_roles).await;
        let table = self.table(table).await;
        let dataset = self
            .dataset(&format!("{}.{}", table.hub, table.dataset))
            .await;
        snapshot.table_policy(&p, &dataset, &table)
    }

    async fn policy(&self, who: &str, table: &str) -> Option<TablePolicy> {
        self.policy_as(who, &[], table).await
    }

    async fn dataset_visible(&self, who: &str, dataset: &str) -> bool {
        let (snapshot, p) = principal(self.0, who, &[]).await;
        snapshot.dataset_visible(&p, &self.dataset(dataset).await)
    }

    async fn hub_visible(&self, who: &str, hub: &str) -> bool {
        let (snapshot, p) = principal(self.0, who, &[]).await;
        snapshot.hub_visible(&p, hub)
    }

    async fn allows_on_dataset(&self, who: &str, privilege: Privilege, dataset: &str) -> bool {
        let (snapshot, p) = principal(self.0, who, &[]).await;
        snapshot.allows_on_dataset(&p, privilege, &self.dataset(dataset).await)
    }

    async fn may_manage(&self, who: &str, on: &str) -> bool {
        let (snapshot, p) = principal(self.0, who, &[]).await;
        snapshot.may_manage(&p, &object(on))
    }
}

const ORDERS: &str = "us.sales.orders";
const REFUNDS: &str = "us.sales.refunds";
const STAFF: &str = "us.hr.staff";

fn col(name: &str) -> ColumnPolicy {
    ColumnPolicy {
        name: name.into(),
        mask: None,
        pii: false,
        clear: false,
    }
}

/// The columns, shown in clear (UNMASK).
fn cleared(mut columns: Vec<ColumnPolicy>) -> Vec<ColumnPolicy> {
    for c in &mut columns {
        c.clear = true;
    }
    columns
}

fn pii(name: &str) -> ColumnPolicy {
    ColumnPolicy {
        pii: true,
        ..col(name)
    }
}

/// Every column of a fixture table, unmasked.
fn all_columns(table: &str) -> Vec<ColumnPolicy> {
    match table {
        ORDERS => vec![col("id"), col("customer"), pii("email"), col("amount")],
        REFUNDS => vec![col("id"), col("amount")],
        STAFF => vec![col("name"), pii("salary")],
        other => panic!("no fixture table {other}"),
    }
}

/// The columns of orders with `email` masked.
fn orders_with_email_masked(mask: &str) -> Vec<ColumnPolicy> {
    let mut columns = all_columns(ORDERS);
    columns[2].mask = Some(mask.parse().unwrap());
    columns
}

/// What SELECT on `columns` gives, without row filter or unmask.
fn reads(columns: Vec<ColumnPolicy>, all_columns: bool) -> TablePolicy {
    TablePolicy {
        privileges: BTreeSet::from([Select]),
        columns,
        row_filter: None,
        unmask: false,
        all_columns,
    }
}

/// A policy that holds `privileges` but reads no column.
fn holds(privileges: &[Privilege]) -> TablePolicy {
    TablePolicy {
        privileges: privileges.iter().copied().collect(),
        columns: vec![],
        row_filter: None,
        unmask: false,
        all_columns: false,
    }
}

async fn decisions(catalog: &Catalog) {
    create_hub(catalog, "us").await;
    create_dataset(catalog, "us.sales").await;
    create_dataset(catalog, "us.hr").await;
    create_table(
        catalog,
        ORDERS,
        &[
            ("id", &[]),
            ("customer", &[]),
            ("email", &["pii"]),
            ("amount", &[]),
        ],
    )
    .await;
    create_table(catalog, REFUNDS, &[("id", &[]), ("amount", &[])]).await;
    create_table(
        catalog,
        STAFF,
        &[("name", &[]), ("salary", &["classification=pii"])],
    )
    .await;
    catalog
        .define_tag("classification", &strings(&["public", "internal", "pii"]))
        .await
        .unwrap();

    let d = Decide(catalog);
    no_grant_and_admin(&d).await;
    inheritance(&d).await;
    column_grants(&d).await;
    tag_grants(&d).await;
    masks_and_row_filters(&d).await;
    privileges_and_visibility(&d).await;
    public_and_extra_roles(&d).await;
}

async fn no_grant_and_admin(d: &Decide<'_>) {
    d.user("someone", &[]).await;
    for who in ["someone", "nobody"] {
        for table in [ORDERS, REFUNDS, STAFF] {
            assert_eq!(d.policy(who, table).await, None, "{who} on {table}");
        }
        assert!(!d.dataset_visible(who, "us.sales").await);
        assert!(!d.hub_visible(who, "us").await);
        assert!(!d.allows_on_dataset(who, Usage, "us.sales").await);
        assert!(!d.may_manage(who, "dataset us.sales").await);
    }

    d.user("root", &[]).await;
    d.role("admin", &["root"]).await;
    let everything = TablePolicy {
        privileges: Privilege::ALL.into_iter().collect(),
        columns: cleared(all_columns(ORDERS)),
        row_filter: None,
        unmask: true,
        all_columns: true,
    };
    assert_eq!(
        TablePolicy::unrestricted(&d.table(ORDERS).await),
        everything
    );
    assert_eq!(d.policy("root", ORDERS).await, Some(everything));
    assert!(d.dataset_visible("root", "us.hr").await);
    assert!(d.hub_visible("root", "us").await);
    assert!(d.allows_on_dataset("root", Manage, "us.hr").await);
    assert!(d.may_manage("root", "tag classification").await);
}

async fn inheritance(d: &Decide<'_>) {
    d.user("hub_reader", &[(Select, "hub us")]).await;
    d.user("dataset_reader", &[(Select, "dataset us.sales")])
        .await;
    d.user("table_reader", &[(Select, "table us.sales.orders")])
        .await;
    // Which of orders, refunds and staff each one sees.
    for (who, visible) in [
        ("hub_reader", [true, true, true]),
        ("dataset_reader", [true, true, false]),
        ("table_reader", [true, false, false]),
    ] {
        for (table, visible) in [ORDERS, REFUNDS, STAFF].into_iter().zip(visible) {
            let expected = visible.then(|| reads(all_columns(table), true));
            assert_eq!(d.policy(who, table).await, expected, "{who} on {table}");
        }
    }
}

async fn column_grants(d: &Decide<'_>) {
    d.user("column_reader", &[]).await;
    for column in ["amount", "id"] {
        d.0.grant(&column_grant(
            "column_reader",
            Select,
            "table us.sales.orders",
            column,
        ))
        .await
        .unwrap();
    }
    // In table order, whatever the order of the grants.
    assert_eq!(
        d.policy("column_reader", ORDERS).await,
        Some(reads(vec![col("id"), col("amount")], false))
    );
    assert_eq!(d.policy("column_reader", REFUNDS).await, None);
}

async fn tag_grants(d: &Decide<'_>) {
    let catalog = d.0;
    d.user("tag_reader", &[(Select, "tag classification=public")])
        .await;
    d.user(
        "wide_tag_reader",
        &[(Select, "tag classification=public|internal")],
    )
    .await;
    d.user("tag_writer", &[(Modify, "tag classification=internal")])
        .await;
    d.user("pii_reader", &[(Select, "tag pii")]).await;

    // The grant covers the table the moment it is tagged.
    assert_eq!(d.policy("tag_reader", REFUNDS).await, None);
    let untagged = d.table(REFUNDS).await;
    set_tags(
        catalog,
        "table us.sales.refunds",
        None,
        &["classification=public"],
    )
    .await;
    let (snapshot, p) = principal(catalog, "tag_reader", &[]).await;
    let sales = d.dataset("us.sales").await;
    assert_eq!(
        snapshot.table_policy(&p, &sales, &untagged),
        None,
        "the decision reads tags from the objects it is given"
    );
    assert_eq!(
        d.policy("tag_reader", REFUNDS).await,
        Some(reads(all_columns(REFUNDS), true))
    );

    // A column tag overrides the table's for that column.
    set_tags(
        catalog,
        "table us.sales.refunds",
        Some("amount"),
        &["classification=internal"],
    )
    .await;
    assert_eq!(
        d.policy("tag_reader", REFUNDS).await,
        Some(reads(vec![col("id")], false))
    );
    assert_eq!(
        d.policy("wide_tag_reader", REFUNDS).await,
        Some(reads(all_columns(REFUNDS), true))
    );
    // Privileges other than SELECT follow the table's tags, not its columns'.
    assert_eq!(d.policy("tag_writer", REFUNDS).await, None);

    // A dataset's tags reach its tables, unless the table (or column) says otherwise.
    set_tags(catalog, "dataset us.hr", None, &["classification=public"]).await;
    assert_eq!(
        d.policy("tag_reader", STAFF).await,
        Some(reads(vec![col("name")], false)),
        "salary is classification=pii"
    );
    assert_eq!(d.policy("tag_writer", STAFF).await, None);
    set_tags(
        catalog,
        "table us.hr.staff",
        None,
        &["classification=internal"],
    )
    .await;
    assert_eq!(d.policy("tag_reader", STAFF).await, None);
    assert_eq!(d.policy("tag_writer", STAFF).await, Some(holds(&[Modify])));
    assert_eq!(
        d.policy("wide_tag_reader", STAFF).await,
        Some(reads(vec![col("name")], false))
    );

    // A grant on a bare key covers any value of it; `classification=pii` is not key `pii`.
    assert_eq!(
        d.policy("pii_reader", ORDERS).await,
        Some(reads(vec![pii("email")], false))
    );
    assert_eq!(d.policy("pii_reader", STAFF).await, None);
}

async fn masks_and_row_filters(d: &Decide<'_>) {
    let catalog = d.0;
    for user in ["alice", "bob", "dave"] {
        d.user(user, &[]).await;
    }
    d.user("carol", &[(Select, "table us.sales.orders")]).await;
    d.role("analysts", &["alice", "bob"]).await;
    d.role("auditors", &["bob", "dave"]).await;
    for role in ["analysts", "auditors"] {
        d.grant(role, Select, "dataset us.sales").await;
    }
    let orders = table_ref(ORDERS);
    // Set in this order on purpose: the grantee sorting first wins, not the first set.
    for (grantee, mask) in [("auditors", "keep_last(4)"), ("analysts", "hash")] {
        catalog
            .set_column_mask(&ColumnMask {
                table: orders.clone(),
                column: "email".into(),
                grantee: grantee.into(),
                mask: mask.parse().unwrap(),
            })
            .await
            .unwrap();
    }
    for (grantee, expression) in [
        ("auditors", "amount < 100"),
        ("analysts", "customer = current_user()"),
    ] {
        catalog
            .set_row_filter(&RowFilter {
                table: orders.clone(),
                grantee: grantee.into(),
                expression: expression.into(),
            })
            .await
            .unwrap();
    }

    let seen_as = |mask: &str, filter: &str| TablePolicy {
        row_filter: Some(filter.into()),
        ..reads(orders_with_email_masked(mask), true)
    };
    let both = "(customer = current_user()) OR (amount < 100)";
    assert_eq!(
        d.policy("alice", ORDERS).await,
        Some(seen_as("hash", "customer = current_user()"))
    );
    assert_eq!(
        d.policy("dave", ORDERS).await,
        Some(seen_as("keep_last(4)", "amount < 100"))
    );
    assert_eq!(d.policy("bob", ORDERS).await, Some(seen_as("hash", both)));
    assert_eq!(
        d.policy("carol", ORDERS).await,
        Some(reads(all_columns(ORDERS), true)),
        "masks and filters are for the grantee's members only"
    );
    assert_eq!(
        d.policy("alice", REFUNDS).await,
        Some(reads(all_columns(REFUNDS), true)),
        "policies of one table do not reach another"
    );

    // UNMASK lifts the masks, not the row filters.
    d.grant("bob", Unmask, "table us.sales.orders").await;
    assert_eq!(
        d.policy("bob", ORDERS).await,
        Some(TablePolicy {
            privileges: BTreeSet::from([Select, Unmask]),
            row_filter: Some(both.into()),
            unmask: true,
            ..reads(cleared(all_columns(ORDERS)), true)
        })
    );

    // Administrators are unrestricted even as members of a masked, filtered role.
    catalog.add_role_member("analysts", "root").await.unwrap();
    assert_eq!(
        d.policy("root", ORDERS).await,
        Some(TablePolicy::unrestricted(&d.table(ORDERS).await))
    );
}

async fn privileges_and_visibility(d: &Decide<'_>) {
    d.user("writer", &[(Modify, "table us.sales.orders")]).await;
    d.user("dataset_user", &[(Usage, "dataset us.sales")]).await;
    assert_eq!(d.policy("writer", ORDERS).await, Some(holds(&[Modify])));
    assert_eq!(d.policy("dataset_user", ORDERS).await, None);

    // (who, sales visible, hr visible, hub us visible)
    for (who, sales, hr, us) in [
        ("nobody", false, false, false),
        ("dataset_user", true, false, true),
        ("table_reader", true, false, true),
        ("hub_reader", true, true, true),
        // hr carries classification=public; a tag grant alone does not reveal the hub.
        ("tag_reader", false, true, false),
    ] {
        assert_eq!(d.dataset_visible(who, "us.sales").await, sales, "{who}");
        assert_eq!(d.dataset_visible(who, "us.hr").await, hr, "{who}");
        assert_eq!(d.hub_visible(who, "us").await, us, "{who}");
        assert!(!d.hub_visible(who, "eu").await, "{who}");
    }

    for (who, privilege, dataset, allowed) in [
        ("dataset_user", Usage, "us.sales", true),
        ("dataset_user", Select, "us.sales", false),
        ("table_reader", Select, "us.sales", false),
        ("dataset_reader", Select, "us.sales", true),
        ("dataset_reader", Select, "us.hr", false),
        ("hub_reader", Select, "us.hr", true),
        ("tag_reader", Select, "us.hr", true),
        ("tag_reader", Select, "us.sales", false),
    ] {
        assert_eq!(
            d.allows_on_dataset(who, privilege, dataset).await,
            allowed,
            "{who} {privilege} on {dataset}"
        );
    }

    d.user("dataset_manager", &[(Manage, "dataset us.sales")])
        .await;
    d.user("table_manager", &[(Manage, "table us.sales.orders")])
        .await;
    d.user("hub_manager", &[(Manage, "hub us")]).await;
    d.user("tag_manager", &[]).await;
    // MANAGE covers objects by name only: on a tag it is refused.
    let refused =
        d.0.grant(&grant("tag_manager", Manage, "tag classification=public"))
            .await
            .unwrap_err()
            .to_string();
    assert!(
        refused.contains("MANAGE cannot be granted on a tag"),
        "{refused}"
    );
    assert_eq!(
        d.policy("dataset_manager", ORDERS).await,
        Some(holds(&[Manage]))
    );
    for (who, on, allowed) in [
        ("dataset_manager", "dataset us.sales", true),
        ("dataset_manager", "table us.sales.orders", true),
        ("dataset_manager", "dataset us.hr", false),
        ("dataset_manager", "table us.hr.staff", false),
        ("dataset_manager", "hub us", false),
        ("table_manager", "table us.sales.orders", true),
        ("table_manager", "table us.sales.refunds", false),
        ("table_manager", "dataset us.sales", false),
        ("hub_manager", "hub us", true),
        ("hub_manager", "dataset us.hr", true),
        ("hub_manager", "table us.hr.staff", true),
        ("hub_manager", "tag classification", false),
        ("tag_manager", "tag classification=public", false),
        ("tag_manager", "table us.sales.refunds", false),
        ("dataset_reader", "dataset us.sales", false),
        ("root", "tag classification=public", true),
    ] {
        assert_eq!(d.may_manage(who, on).await, allowed, "{who} manages {on}");
    }
}

async fn public_and_extra_roles(d: &Decide<'_>) {
    let catalog = d.0;
    let to_public = grant("public", Select, "table us.sales.refunds");
    assert_eq!(d.policy("nobody", REFUNDS).await, None);
    catalog.grant(&to_public).await.unwrap();
    for who in ["nobody", "writer", "someone"] {
        assert_eq!(
            d.policy(who, REFUNDS).await,
            Some(reads(all_columns(REFUNDS), true)),
            "{who}"
        );
    }
    catalog.revoke(&to_public).await.unwrap();
    assert_eq!(d.policy("nobody", REFUNDS).await, None);

    let (_, alice) = principal(catalog, "alice", &[]).await;
    assert_eq!(alice.roles, set(&["alice", "analysts", "public"]));
    assert!(!alice.is_admin());

    // Roles from an identity provider count like memberships.
    let (_, ext) = principal(catalog, "ext", &["analysts"]).await;
    assert_eq!(ext.roles, set(&["analysts", "ext", "public"]));
    assert_eq!(d.policy("ext", ORDERS).await, None);
    assert_eq!(
        d.policy_as("ext", &["analysts"], ORDERS).await,
        Some(TablePolicy {
            row_filter: Some("customer = current_user()".into()),
            ..reads(orders_with_email_masked("hash"), true)
        })
    );
    assert_eq!(
        d.policy_as("ext", &["admin"], ORDERS).await,
        Some(TablePolicy::unrestricted(&d.table(ORDERS).await))
    );
}
