//! One module per noun of the CLI. Each parses its arguments, calls a
//! [`basin_service::Session`] of the user the CLI runs as (`--as`, default `admin`), and prints.

mod access;
mod backup;
mod dataset;
mod demo;
mod governance;
mod hub;
mod ingest;
mod model;
mod search;
mod serve;
mod source;
mod sql;
mod table;

use anyhow::bail;
use basin_service::{Hub, HubConfig, Session};

use crate::cli::{Cli, Command, Global};
use crate::output;

/// The user the CLI acts as unless `--as` names another.
pub(crate) const ADMIN_USER: &str = "admin";

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    if !matches!(cli.command, Command::Serve(_)) {
        // The server logs what it does (see serve.rs); a command tells its user only what went
        // wrong beside its answer (an audit row that could not be written, …).
        let _ = tracing_subscriber::fmt()
            .with_env_filter("off,basin=error")
            .with_writer(std::io::stderr)
            .without_time()
            .with_target(false)
            .try_init();
    }
    match cli.command {
        Command::Init => {
            let session = session(&g).await?;
            let hubs = session.hubs(&Default::default()).await?;
            if g.output == crate::cli::OutputFormat::Json {
                let names: Vec<&str> = hubs.items.iter().map(|h| h.name.as_str()).collect();
                let ready = serde_json::json!({"data_dir": g.data_dir, "hubs": names});
                println!("{}", serde_json::to_string_pretty(&ready)?);
                return Ok(());
            }
            println!(
                "Basin is ready in {} ({} hub(s): {}).",
                g.data_dir.display(),
                hubs.items.len(),
                hubs.items
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Command::Demo { samples } => demo::run(&g, &session(&g).await?, &samples).await,
        Command::Hub(cmd) => hub::run(&g, &session(&g).await?, cmd).await,
        Command::Dataset(cmd) => dataset::run(&g, &session(&g).await?, cmd).await,
        Command::Table(cmd) => table::run(&g, &session(&g).await?, cmd).await,
        Command::Ingest(args) => {
            let report = ingest::run(&session(&g).await?, args, true).await?;
            if g.output == crate::cli::OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(())
        }
        Command::Sql { query, file } => sql::run(&g, &session(&g).await?, query, file).await,
        Command::Serve(args) => serve::run(&g, args).await,
        Command::User(cmd) => governance::user(&g, &session(&g).await?, cmd).await,
        Command::Role(cmd) => governance::role(&g, &session(&g).await?, cmd).await,
        Command::Token(cmd) => governance::token(&g, &session(&g).await?, cmd).await,
        Command::Grant { words } => {
            let session = session(&g).await?;
            if words == ["list"] {
                return governance::list_grants(&g, &session).await;
            }
            print_sql(&g, &session, &format!("GRANT {}", words.join(" "))).await
        }
        Command::Backup { dir } => backup::backup(&g, &session(&g).await?, &dir).await,
        Command::Restore { dir } => backup::restore(&g, &dir).await,
        Command::Search(args) => search::run(&g, &session(&g).await?, args).await,
        Command::Access(cmd) => access::run(&g, &session(&g).await?, cmd).await,
        Command::Source(cmd) => source::run(&g, &session(&g).await?, cmd).await,
        Command::Plan { dir, hub } => model::plan(&g, &session(&g).await?, &dir, hub).await,
        Command::Apply { dir, hub } => model::apply(&g, &session(&g).await?, &dir, hub).await,
        Command::Model(cmd) => model::run(&g, &session(&g).await?, cmd).await,
        Command::Revoke { words } => {
            print_sql(
                &g,
                &session(&g).await?,
                &format!("REVOKE {}", words.join(" ")),
            )
            .await
        }
    }
}

/// Opens the data directory's hub (creating it on first use).
pub(crate) async fn open(g: &Global) -> anyhow::Result<Hub> {
    let mut hub = Hub::open(&HubConfig {
        data_dir: g.data_dir.clone(),
        catalog_url: g.catalog.clone(),
        keystore_dir: g.keystore.clone(),
        master_key: std::env::var(basin_keys::MASTER_KEY_ENV).ok(),
    })
    .await?;
    if let Some(bytes) = g.memory_limit {
        hub = hub.with_memory_limit(bytes);
    }
    if let Some(location) = &g.exports {
        hub = hub.with_exports(location)?;
    }
    Ok(hub)
}

/// A session of the catalog user the CLI runs as (`--as USER`, default the administrator
/// `admin`, created on first use: whoever holds the data directory administers it).
async fn session(g: &Global) -> anyhow::Result<Session> {
    let hub = open(g).await?;
    let user = g.as_user.as_str();
    if user == ADMIN_USER {
        hub.catalog().ensure_admin(ADMIN_USER).await?;
    }
    match hub.user_session(user, &[], "cli").await {
        Ok(s) => Ok(s),
        Err(e) => bail!("{e}"),
    }
}

/// Runs SQL in the session and prints its result.
pub(crate) async fn print_sql(g: &Global, session: &Session, text: &str) -> anyhow::Result<()> {
    let out = session.query(text).await?;
    output::print(g.output, &out.schema, &out.batches)
}

/// Says on stderr what a command did; with `--output json`, also prints its result on stdout.
pub(crate) fn done(g: &Global, message: &str, result: impl serde::Serialize) -> anyhow::Result<()> {
    eprintln!("{message}");
    if g.output == crate::cli::OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    Ok(())
}
