//! End-to-end: describing, updating and deleting hubs, datasets, tables and columns through REST
//! (PATCH / DELETE) and the CLI, and browsing the catalog with SHOW / DESCRIBE.

use serde_json::json;

use crate::Basin;
use crate::server::{ADMIN_PASSWORD, Server, problem};

const T: &str = "/api/v1/hubs/main/datasets/scratch/tables/t";

/// A data directory with hub `lab` (holding the empty dataset `lab.empty`), the dataset
/// `scratch` with table `t`, and the user `dan`, who may read `t`.
fn lab() -> Basin {
    let b = Basin::new();
    b.ok(&["hub", "create", "lab"]);
    b.ok(&["dataset", "create", "lab.empty", "--layer", "source"]);
    b.ok(&["dataset", "create", "scratch", "--layer", "source"]);
    b.ok(&[
        "sql",
        "CREATE TABLE scratch.t (id BIGINT, email VARCHAR, secret VARCHAR)",
    ]);
    b.create_user("dan", "dan-password", &[]);
    b.ok(&[
        "grant",
        "SELECT",
        "(id,",
        "email)",
        "ON",
        "TABLE",
        "scratch.t",
        "TO",
        "dan",
    ]);
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_patches_and_deletes_hubs_datasets_and_tables() {
    let b = lab();
    let mut server = Server::start(&b, &[]);
    server.kill_at_exit(None);
    let s = server.client();
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    let dan = s.login("dan", "dan-password").await;

    // Descriptions and the other fields of a dataset.
    let a = s
        .call(
            "PATCH",
            "/api/v1/hubs/lab",
            Some(&admin),
            Some(json!({"description": "Experiments"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["description"], "Experiments");
    let a = s
        .call(
            "PATCH",
            "/api/v1/hubs/main/datasets/scratch",
            Some(&admin),
            Some(json!({"description": "Scratch space", "owner": "team-a", "layer": "prepared"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (
            &a.body["description"],
            &a.body["owner"],
            &a.body["layer"],
            &a.body["domain"]
        ),
        (
            &json!("Scratch space"),
            &json!("team-a"),
            &json!("prepared"),
            &json!(null)
        )
    );
    let a = s
        .call(
            "PATCH",
            "/api/v1/hubs/main/datasets/scratch",
            Some(&admin),
            Some(json!({"descripton": "typo"})),
        )
        .await;
    // Refused, naming the field (400 or 422, whichever the body rules of the API say).
    assert!(
        matches!(a.status, 400 | 422) && a.text.contains("descripton"),
        "{}",
        a.text
    );
    let a = s
        .call(
            "PATCH",
            "/api/v1/hubs/main/datasets/scratch",
            Some(&admin),
            Some(json!({"layer": "gold"})),
        )
        .await;
    assert!(problem(&a, 400).text.contains("gold"), "{}", a.text);
    let a = s
        .call(
            "PATCH",
            T,
            Some(&admin),
            Some(json!({"description": "One row per thing", "columns": {"email": "Contact address"}})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["description"], "One row per thing");
    let email = a.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "email")
        .unwrap()
        .clone();
    assert_eq!(email["description"], "Contact address");
    // All or nothing: a missing column changes nothing.
    let a = s
        .call(
            "PATCH",
            T,
            Some(&admin),
            Some(json!({"description": "changed", "columns": {"emial": "x"}})),
        )
        .await;
    assert!(
        problem(&a, 404).text.contains("did you mean 'email'"),
        "{}",
        a.text
    );
    let a = s.call("GET", T, Some(&admin), None).await;
    assert_eq!(a.body["description"], "One row per thing");
    // Listings show the descriptions.
    let a = s
        .call(
            "GET",
            "/api/v1/hubs/main/datasets/scratch/tables",
            Some(&dan),
            None,
        )
        .await;
    assert_eq!(
        a.body["tables"][0]["description"], "One row per thing",
        "{}",
        a.text
    );

    // Over POST /api/v1/query, SHOW and DESCRIBE list what dan may see.
    let tables = s.rows(&dan, "SHOW TABLES").await;
    assert_eq!(tables.len(), 1, "{tables:?}");
    assert_eq!(tables[0]["description"], "One row per thing");
    let columns = s.rows(&dan, "DESCRIBE scratch.t").await;
    let names: Vec<&str> = columns
        .iter()
        .map(|c| c["column_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "email"]);
    problem(&s.sql(&dan, "SHOW DATASETS IN lab").await, 404);

    // dan may read t but not manage it; the hub lab is hidden from him; the column he cannot
    // see is "not found" even to name it.
    problem(
        &s.call("PATCH", T, Some(&dan), Some(json!({"description": "mine"})))
            .await,
        403,
    );
    problem(
        &s.call(
            "PATCH",
            T,
            Some(&dan),
            Some(json!({"columns": {"secret": "x"}})),
        )
        .await,
        404,
    );
    problem(
        &s.call(
            "PATCH",
            "/api/v1/hubs/lab",
            Some(&dan),
            Some(json!({"description": "x"})),
        )
        .await,
        404,
    );
    problem(
        &s.call("DELETE", "/api/v1/hubs/lab", Some(&dan), None).await,
        404,
    );
    let a = s
        .call(
            "DELETE",
            "/api/v1/hubs/main/datasets/scratch",
            Some(&dan),
            None,
        )
        .await;
    assert!(problem(&a, 403).text.contains("MANAGE"), "{}", a.text);
    let a = s
        .call("DELETE", "/api/v1/hubs/main", Some(&dan), None)
        .await;
    assert!(
        problem(&a, 403).text.contains("only administrators"),
        "{}",
        a.text
    );

    // Deleting refuses what is not empty, saying what is inside.
    let a = s
        .call(
            "DELETE",
            "/api/v1/hubs/main/datasets/scratch",
            Some(&admin),
            None,
        )
        .await;
    assert!(
        problem(&a, 409).text.contains("holds 1 table(s) (t)"),
        "{}",
        a.text
    );
    let a = s
        .call("DELETE", "/api/v1/hubs/lab", Some(&admin), None)
        .await;
    assert!(
        problem(&a, 409).text.contains("holds 1 dataset(s) (empty)"),
        "{}",
        a.text
    );
    problem(
        &s.call("DELETE", "/api/v1/hubs/main", Some(&admin), None)
            .await,
        400,
    );
    let a = s
        .call(
            "DELETE",
            "/api/v1/hubs/lab/datasets/empty",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    let a = s
        .call("DELETE", "/api/v1/hubs/lab", Some(&admin), None)
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    problem(
        &s.call("DELETE", "/api/v1/hubs/lab", Some(&admin), None)
            .await,
        404,
    );
    let hubs = s.call("GET", "/api/v1/hubs", Some(&admin), None).await;
    assert_eq!(
        hubs.body["hubs"].as_array().unwrap().len(),
        1,
        "{}",
        hubs.text
    );

    let audit = s
        .rows(
            &admin,
            "SELECT principal, action, target, outcome FROM system.audit WHERE action IN ('comment', 'dataset.update', 'dataset.delete', 'hub.delete') ORDER BY at",
        )
        .await;
    let audit: Vec<String> = audit
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["principal"], r["action"], r["target"], r["outcome"]
            )
            .replace('"', "")
        })
        .collect();
    for expected in [
        "admin comment hub lab ok",
        "admin dataset.update main.scratch ok",
        "admin comment table main.scratch.t.email ok",
        "dan comment table main.scratch.t denied",
        "dan dataset.delete main.scratch denied",
        "admin dataset.delete main.scratch error",
        "admin dataset.delete lab.empty ok",
        "admin hub.delete lab ok",
    ] {
        assert!(
            audit.iter().any(|a| a == expected),
            "{expected} in {audit:#?}"
        );
    }
}

#[test]
fn cli_updates_deletes_and_describes() {
    let b = lab();
    b.ok(&["hub", "update", "lab", "--description", "Experiments"]);
    b.ok(&[
        "dataset",
        "update",
        "scratch",
        "--description",
        "Scratch space",
        "--domain",
        "misc",
    ]);
    b.ok(&["table", "comment", "scratch.t", "One row per thing"]);
    b.ok(&[
        "table",
        "comment",
        "scratch.t",
        "--column",
        "email",
        "Contact address",
    ]);
    let shown = b.ok(&["table", "show", "scratch.t"]);
    assert!(shown.contains("description: One row per thing"), "{shown}");
    assert!(shown.contains("Contact address"), "{shown}");
    let rows = b.json("SHOW DATASETS IN main");
    assert_eq!(rows[0]["description"], "Scratch space", "{rows:?}");
    let rows = b.json("SHOW DATABASES LIKE 'lab'");
    assert_eq!(rows[0]["description"], "Experiments", "{rows:?}");
    let rows = b.json("DESCRIBE scratch.t");
    assert_eq!(rows.len(), 3);
    // dan sees only his two columns, and may not describe or delete.
    let out = b.ok(&[
        "--as",
        "dan",
        "--output",
        "json",
        "sql",
        "DESCRIBE scratch.t",
    ]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["column_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "email"]);
    let err = b.fails(&["--as", "dan", "table", "comment", "scratch.t", "x"]);
    assert!(err.contains("permission denied"), "{err}");
    let err = b.fails(&["--as", "dan", "hub", "delete", "lab"]);
    assert!(err.contains("hub 'lab' not found"), "{err}");
    // MANAGE on a dataset is enough to update and delete it.
    b.ok(&["dataset", "create", "notes", "--layer", "source"]);
    b.ok(&["grant", "MANAGE", "ON", "DATASET", "notes", "TO", "dan"]);
    b.ok(&[
        "--as", "dan", "dataset", "update", "notes", "--owner", "dan",
    ]);
    let rows = b.json("SELECT owner FROM system.datasets WHERE name = 'notes'");
    assert_eq!(rows[0]["owner"], "dan", "{rows:?}");
    b.ok(&["--as", "dan", "dataset", "delete", "notes"]);
    // Deleting: refused while not empty, then done.
    let err = b.fails(&["dataset", "delete", "scratch"]);
    assert!(
        err.contains("dataset 'main.scratch' is not empty") && err.contains("(t)"),
        "{err}"
    );
    let err = b.fails(&["hub", "delete", "lab"]);
    assert!(err.contains("hub 'lab' is not empty"), "{err}");
    b.ok(&["dataset", "delete", "lab.empty"]);
    b.ok(&["hub", "delete", "lab"]);
    let rows = b.json("SHOW HUBS");
    assert_eq!(rows.len(), 1, "{rows:?}");
}
