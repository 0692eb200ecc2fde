//! `basin dataset create|list|show|update|delete`.

use basin_catalog::{Contract, DatasetUpdate, NewDataset};
use basin_core::{DatasetRef, Layer, Name};
use basin_service::Session;

use super::print_sql;
use crate::cli::{DatasetCommand, Global, OutputFormat};
use crate::output;

pub async fn run(g: &Global, session: &Session, cmd: DatasetCommand) -> anyhow::Result<()> {
    match cmd {
        DatasetCommand::Update(u) => {
            let d = DatasetRef::parse(&u.name)?;
            let update = DatasetUpdate {
                layer: u.layer.map(|l| l.parse::<Layer>()).transpose()?,
                domain: u.domain,
                owner: u.owner,
                description: u.description,
                update_frequency: u.update_frequency,
                support_contact: u.support_contact,
            };
            session.update_dataset(&d, &update).await?;
            eprintln!("Updated dataset '{d}'.");
            Ok(())
        }
        DatasetCommand::Delete { name } => {
            let d = DatasetRef::parse(&name)?;
            session.delete_dataset(&d).await?;
            eprintln!("Deleted dataset '{d}'.");
            Ok(())
        }
        DatasetCommand::Create(d) => {
            let created = session
                .create_dataset(NewDataset {
                    dataset: DatasetRef::parse(&d.name)?,
                    layer: d.layer.parse::<Layer>()?,
                    domain: d.domain,
                    owner: d.owner,
                    description: d.description,
                    tags: d.tags,
                    contract: Contract {
                        update_frequency: d.update_frequency,
                        support_contact: d.support_contact,
                    },
                })
                .await?;
            let message = format!(
                "Created dataset '{}.{}' in layer {}.",
                created.hub, created.name, created.layer
            );
            super::done(g, &message, created)
        }
        DatasetCommand::List { hub } => {
            let filter = match hub {
                Some(h) => format!(" WHERE hub = '{}'", Name::parse("hub", &h)?),
                None => String::new(),
            };
            print_sql(g, session, &format!(
                "SELECT hub, name, layer, domain, owner, description, tags FROM system.datasets{filter} ORDER BY hub, name"
            ))
            .await
        }
        DatasetCommand::Show { name } => {
            let d = DatasetRef::parse(&name)?;
            let (hub, name) = (d.hub.to_string(), d.dataset.to_string());
            let shown = format!(
                "SELECT hub, name, layer, domain, owner, description, tags, update_frequency, support_contact, created_at FROM system.datasets WHERE hub = '{hub}' AND name = '{name}'"
            );
            let dataset = session.query(&shown).await?;
            if dataset.num_rows() == 0 {
                anyhow::bail!("dataset '{hub}.{name}' not found; see `basin dataset list`");
            }
            let tables = format!(
                "SELECT name AS table_name, description, primary_key, partition_columns, updated_at FROM system.tables WHERE hub = '{hub}' AND dataset = '{name}' ORDER BY name"
            );
            if g.output == OutputFormat::Json {
                // One document: the dataset with its tables.
                let mut shown = output::json_rows(&dataset.batches)?.remove(0);
                let tables = output::json_rows(&session.query(&tables).await?.batches)?;
                shown["tables"] = serde_json::Value::Array(tables);
                println!("{}", serde_json::to_string_pretty(&shown)?);
                return Ok(());
            }
            output::print(g.output, &dataset.schema, &dataset.batches)?;
            print_sql(g, session, &tables).await
        }
    }
}
