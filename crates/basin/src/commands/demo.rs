//! `basin demo`: the sample shop data loaded and queried, and sample users with different
//! access to sign in to the portal as.

use std::path::Path;

use anyhow::bail;
use basin_catalog::access::{ColumnMask, Mask, Privilege, RowFilter, Securable};
use basin_catalog::{CatalogError, Contract, NewDataset};
use basin_core::{DatasetRef, Layer, TableRef};
use basin_service::{NewUser, ServiceError, Session, grants_of};

use super::{ingest, print_sql};
use crate::cli::{Global, IngestArgs, IngestMode, OutputFormat};
use crate::output;

pub async fn run(g: &Global, session: &Session, samples: &Path) -> anyhow::Result<()> {
    if !samples.join("customers.csv").exists() {
        bail!(
            "sample data not found in {}: run `basin demo` from the repository root or pass --samples DIR",
            samples.display()
        );
    }
    let created = session
        .create_dataset(NewDataset {
            dataset: DatasetRef::parse("sales")?,
            layer: Layer::Source,
            domain: Some("sales".into()),
            owner: Some("demo@basin.local".into()),
            description: "Customers and orders of the demo shop".into(),
            tags: vec!["demo".into(), "classification=internal".into()],
            contract: Contract {
                update_frequency: Some("daily".into()),
                support_contact: Some("#sales-data".into()),
            },
        })
        .await;
    // A second demo run finds the dataset in place.
    match created {
        Ok(_) | Err(ServiceError::Catalog(basin_catalog::CatalogError::AlreadyExists { .. })) => {}
        Err(e) => return Err(e.into()),
    }
    let load =
        |table: &str, input: &Path, mode: IngestMode, key: &str, partition: &str, id: &str| {
            IngestArgs {
                table: table.into(),
                inputs: vec![input.display().to_string()],
                format: None,
                mode,
                predicate: None,
                key: if key.is_empty() {
                    vec![]
                } else {
                    vec![key.into()]
                },
                partition_by: if partition.is_empty() {
                    vec![]
                } else {
                    vec![partition.into()]
                },
                schema: None,
                delimiter: ",".into(),
                quote: "\"".into(),
                no_header: false,
                null: None,
                infer_rows: 10_000,
                max_bad_rows: 0,
                load_id: Some(id.into()),
            }
        };
    ingest::run(
        session,
        load(
            "sales.customers",
            &samples.join("customers.csv"),
            IngestMode::Append,
            "customer_id",
            "",
            "demo-customers-1",
        ),
        false,
    )
    .await?;
    ingest::run(
        session,
        load(
            "sales.orders",
            &samples.join("orders"),
            IngestMode::Append,
            "order_id",
            "month",
            "demo-orders-1",
        ),
        false,
    )
    .await?;
    ingest::run(
        session,
        load(
            "sales.customers",
            &samples.join("customer_updates.csv"),
            IngestMode::Upsert,
            "",
            "",
            "demo-customers-2",
        ),
        false,
    )
    .await?;

    let queries = [
        (
            "Revenue by country (a join across tables)",
            "SELECT c.country, count(*) AS orders, round(sum(o.amount), 2) AS revenue
          FROM sales.orders o JOIN sales.customers c ON o.customer_id = c.customer_id
          GROUP BY c.country ORDER BY revenue DESC",
        ),
        (
            "Orders per month (from hive-style folders)",
            "SELECT month, count(*) AS orders FROM sales.orders GROUP BY month ORDER BY month",
        ),
        (
            "Customer 3 now, after the upsert",
            "SELECT customer_id, name, segment FROM sales.customers WHERE customer_id = 3",
        ),
        (
            "Customer 3 as first loaded (time travel)",
            "SELECT customer_id, name, segment FROM sales.customers VERSION AS OF 0 WHERE customer_id = 3",
        ),
        (
            "Tables in the catalog",
            "SELECT hub, dataset, name, primary_key, partition_columns FROM system.tables ORDER BY dataset, name",
        ),
    ];
    let json = g.output == OutputFormat::Json;
    let mut answers = Vec::new();
    for (title, query) in queries {
        let query = query.split_whitespace().collect::<Vec<_>>().join(" ");
        if json {
            // One document: each query with its rows.
            let rows = output::json_rows(&session.query(&query).await?.batches)?;
            answers.push(serde_json::json!({"title": title, "sql": query, "rows": rows}));
            continue;
        }
        println!("\n== {title}\n{query}");
        print_sql(g, session, &query).await?;
    }
    let users = users(session).await?;
    let hint = format!(
        "Try it yourself: basin --data-dir {dir} sql\n\n{}",
        sign_in(&g.data_dir.display().to_string(), &users),
        dir = g.data_dir.display()
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&answers)?);
        eprintln!("{hint}");
    } else {
        println!("\n{hint}");
    }
    Ok(())
}

/// The variable that sets the demo users' password (else each gets a new one, printed once).
pub const DEMO_PASSWORD_ENV: &str = "BASIN_DEMO_PASSWORD";

/// The sample users: name, what they may do, and their grants on `main.sales`.
const USERS: [(&str, &str); 4] = [
    (
        "owner",
        "owns main.sales (MANAGE): approves access requests, edits descriptions",
    ),
    (
        "analyst",
        "reads main.sales: customers of GB only, names masked",
    ),
    (
        "consumer",
        "sees main.sales (USAGE) but no rows: can request access",
    ),
    (
        "outsider",
        "no access: main.sales is hidden from them everywhere",
    ),
];

/// Creates the sample users with their grants, row filter and mask; returns each user with
/// its new password (`None` for a user of an earlier run, whose password stays).
async fn users(session: &Session) -> anyhow::Result<Vec<(&'static str, Option<String>)>> {
    let fixed = std::env::var(DEMO_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty());
    // Passwords are hashed (deliberately slow) at once, off the async workers.
    let created = futures::future::join_all(USERS.iter().map(|(name, _)| {
        let password = fixed
            .clone()
            .unwrap_or_else(basin_service::credentials::generate_password);
        let fixed = fixed.is_some();
        async move {
            let new = NewUser {
                name: name.to_string(),
                password: Some(password.clone()),
                attributes: Default::default(),
                roles: vec![],
            };
            match session.create_user(new).await {
                Ok(_) => Ok((*name, Some(password))),
                Err(ServiceError::Catalog(CatalogError::AlreadyExists { .. })) => {
                    if fixed {
                        session.set_password(name, None, password.clone()).await?;
                        return Ok((*name, Some(password)));
                    }
                    Ok((*name, None))
                }
                Err(e) => Err(e),
            }
        }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    let by = session.principal().name.clone();
    let sales = Securable::parse("dataset main.sales")?;
    for (privilege, grantee) in [
        (Privilege::Manage, "owner"),
        (Privilege::Select, "owner"),
        (Privilege::Select, "analyst"),
        (Privilege::Usage, "consumer"),
    ] {
        let grants = grants_of(privilege, sales.clone(), &[], grantee, &by);
        session.change_grants(&grants, false).await?;
    }
    session
        .set_row_filter(&RowFilter {
            table: TableRef::parse("sales.customers")?,
            grantee: "analyst".into(),
            expression: "country = 'GB'".into(),
        })
        .await?;
    session
        .set_mask(&ColumnMask {
            table: TableRef::parse("sales.customers")?,
            column: "name".into(),
            grantee: "analyst".into(),
            mask: Mask::KeepLast(3),
        })
        .await?;
    Ok(created)
}

/// How to start the server and sign in to the portal as each sample user.
fn sign_in(data_dir: &str, users: &[(&str, Option<String>)]) -> String {
    let mut text = format!(
        "See it in the browser: basin --data-dir {data_dir} serve --listen 127.0.0.1:8080\n\
         then open http://127.0.0.1:8080/ and sign in as one of these users (as `admin`, set a\n\
         password first: basin --data-dir {data_dir} user password admin):\n"
    );
    for ((name, does), (_, password)) in USERS.iter().zip(users) {
        let password = match password {
            Some(p) => format!("password {p}"),
            None => "(password of an earlier run)".to_string(),
        };
        text.push_str(&format!("  {name:<9} {password:<34} {does}\n"));
    }
    if users.iter().any(|(_, p)| p.is_some()) {
        text.push_str("The passwords are shown only now.");
    } else {
        text.push_str(&format!(
            "To set new passwords, run `basin demo` again with {DEMO_PASSWORD_ENV}."
        ));
    }
    text
}
