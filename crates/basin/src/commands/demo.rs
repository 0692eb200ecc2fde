//! `basin demo`: the sample shop data loaded and queried.

use std::path::Path;

use anyhow::bail;
use basin_catalog::{Contract, NewDataset};
use basin_core::{DatasetRef, Layer};
use basin_service::{ServiceError, Session};

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
    let hint = format!(
        "Try it yourself: basin --data-dir {} sql",
        g.data_dir.display()
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&answers)?);
        eprintln!("{hint}");
    } else {
        println!("\n{hint}");
    }
    Ok(())
}
