//! Tags on a dataset or a table protect its columns as tags on the columns do: `pii` is
//! inherited, so the text columns of a dataset or table tagged `pii` are stored encrypted, and
//! read in clear only with UNMASK.

use basin_core::Layer;
use basin_service::TagAssignment;
use basin_testkit::{DataDir, error, rows};

use crate::user_with;

fn tag(object: &str, tags: &[&str]) -> TagAssignment {
    TagAssignment {
        object: object.into(),
        column: None,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

#[test]
fn a_dataset_or_table_tagged_pii_encrypts_its_text_columns() {
    crate::on_large_stack(dataset_and_table_tags);
}

async fn dataset_and_table_tags() {
    let data = DataDir::with(&["main"], &["crm"]).await;
    data.dataset("main.shop", Layer::Source).await;
    let hub = crate::hub_of(&data);
    data.catalog.ensure_admin("admin").await.unwrap();
    let admin = hub.user_session("admin", &[], "test").await.unwrap();
    let a = admin.engine();
    rows(a, "CREATE TABLE crm.people AS SELECT * FROM (VALUES (1, 'ada@x.org'), (2, 'alan@x.org')) AS v(id, email)").await;
    rows(
        a,
        "CREATE TABLE shop.buyers AS SELECT 7 AS id, 'grace@x.org' AS email",
    )
    .await;
    let reader = user_with(
        &hub,
        &data,
        "reader",
        &[
            "GRANT SELECT ON DATASET crm",
            "GRANT SELECT ON TABLE shop.buyers",
        ],
    )
    .await;
    let people = "SELECT id, email FROM crm.people ORDER BY id";
    assert_eq!(
        rows(reader.engine(), people).await,
        ["1|ada@x.org", "2|alan@x.org"]
    );

    // Tagging the dataset encrypts its existing tables at once.
    let version = admin
        .set_tags(&tag("dataset main.crm", &["classification=pii"]))
        .await
        .unwrap();
    assert_eq!(version, Some(1), "one commit encrypted crm.people");
    let seen = rows(reader.engine(), people).await;
    assert!(
        seen.iter().all(|r| r.contains("|enc:v")) && seen[0].starts_with("1|"),
        "numbers stay clear, text becomes tokens: {seen:?}"
    );
    // Administrators read in clear: the stored values are tokens (decrypting clear text fails).
    assert_eq!(rows(a, people).await, ["1|ada@x.org", "2|alan@x.org"]);

    // New rows and new tables of the dataset are encrypted on their way in.
    rows(a, "INSERT INTO crm.people VALUES (3, 'edsger@x.org')").await;
    rows(
        a,
        "CREATE TABLE crm.leads AS SELECT 'barbara@x.org' AS email",
    )
    .await;
    rows(a, "GRANT SELECT ON TABLE crm.leads TO reader").await;
    for sql in [
        "SELECT email FROM crm.people WHERE id = 3",
        "SELECT email FROM crm.leads",
    ] {
        let seen = rows(reader.engine(), sql).await;
        assert!(seen[0].starts_with("enc:v"), "{sql}: {seen:?}");
    }
    assert_eq!(
        rows(a, "SELECT email FROM crm.leads").await,
        ["barbara@x.org"]
    );
    // Writing an inherited PII column needs a clear view of it, as for a column tagged itself.
    let writer = user_with(
        &hub,
        &data,
        "writer",
        &["GRANT SELECT, MODIFY ON TABLE crm.people"],
    )
    .await;
    let e = error(
        writer.engine(),
        "INSERT INTO crm.people VALUES (4, 'guess@x.org')",
    )
    .await;
    assert!(e.contains("personal data"), "{e}");

    // UNMASK on the tag the columns inherit shows them in clear.
    let unmasked = user_with(
        &hub,
        &data,
        "auditor",
        &[
            "GRANT SELECT ON DATASET crm",
            "GRANT UNMASK ON TAG classification IN ('pii')",
        ],
    )
    .await;
    assert_eq!(
        rows(unmasked.engine(), people).await,
        ["1|ada@x.org", "2|alan@x.org", "3|edsger@x.org"]
    );

    // A table tagged pii: the same.
    admin
        .set_tags(&tag("table main.shop.buyers", &["pii"]))
        .await
        .unwrap();
    let seen = rows(reader.engine(), "SELECT id, email FROM shop.buyers").await;
    assert!(seen[0].starts_with("7|enc:v"), "{seen:?}");
    assert_eq!(
        rows(a, "SELECT email FROM shop.buyers").await,
        ["grace@x.org"]
    );
    // Tagging pii on a dataset is for administrators, as on a column.
    let owner = user_with(&hub, &data, "owner", &["GRANT MANAGE ON DATASET shop"]).await;
    let e = owner
        .set_tags(&tag("dataset main.shop", &["pii"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("administrator"), "{e}");
}
