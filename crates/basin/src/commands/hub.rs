//! `basin hub create|list|update|delete|move`.

use basin_service::Session;

use super::print_sql;
use crate::cli::{Global, HubCommand};

pub async fn run(g: &Global, session: &Session, cmd: HubCommand) -> anyhow::Result<()> {
    match cmd {
        HubCommand::Create {
            name,
            storage_root,
            description,
        } => {
            let hub = session.create_hub(&name, storage_root, description).await?;
            let message = format!("Created hub '{}' at {}.", hub.name, hub.storage_root);
            super::done(g, &message, hub)
        }
        HubCommand::Move { name, new_root } => {
            let hub = session.move_hub(&name, &new_root).await?;
            let message = format!("Moved hub '{}' to {}.", hub.name, hub.storage_root);
            super::done(g, &message, hub)
        }
        HubCommand::List => {
            print_sql(
                g,
                session,
                "SELECT name, storage_root, description, created_at FROM system.hubs ORDER BY name",
            )
            .await
        }
        HubCommand::Update { name, description } => {
            session.update_hub(&name, &description).await?;
            eprintln!("Updated hub '{name}'.");
            Ok(())
        }
        HubCommand::Delete { name } => {
            session.delete_hub(&name).await?;
            eprintln!("Deleted hub '{name}'.");
            Ok(())
        }
    }
}
