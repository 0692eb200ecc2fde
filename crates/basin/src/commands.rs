use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use basin_catalog::{Catalog, Contract, NewDataset, NewHub};
use basin_core::{DEFAULT_HUB, DatasetRef, Layer, Name, TableRef};
use basin_ingest::{CsvOptions, LoadMode, LoadRequest, Progress, ReadOptions};
use basin_sql::Engine;

use crate::cli::{
    Cli, Command, DatasetCommand, Global, HubCommand, IngestArgs, IngestMode, TableCommand,
};
use crate::{governance, output};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    match cli.command {
        Command::Init => {
            let catalog = open(&g).await?;
            let hubs = catalog.hubs().await?;
            println!(
                "Basin is ready in {} ({} hub(s): {}).",
                g.data_dir.display(),
                hubs.len(),
                hubs.iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Command::Demo { samples } => demo(&g, &samples).await,
        Command::Hub(cmd) => {
            let catalog = open(&g).await?;
            match cmd {
                HubCommand::Create { name, storage_root, description } => {
                    let name = Name::parse("hub", &name)?;
                    let storage_root = match storage_root {
                        Some(r) => r,
                        None => hub_root(&g, name.as_str())?,
                    };
                    let hub = catalog.create_hub(NewHub { name, storage_root, description }).await?;
                    eprintln!("Created hub '{}' at {}.", hub.name, hub.storage_root);
                    Ok(())
                }
                HubCommand::List => sql(&g, &catalog, "SELECT name, storage_root, description, created_at FROM system.hubs ORDER BY name").await,
            }
        }
        Command::Dataset(cmd) => {
            let catalog = open(&g).await?;
            match cmd {
                DatasetCommand::Create(d) => {
                    let dataset = DatasetRef::parse(&d.name)?;
                    let layer: Layer = d.layer.parse()?;
                    let created = catalog
                        .create_dataset(NewDataset {
                            dataset,
                            layer,
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
                    eprintln!(
                        "Created dataset '{}.{}' in layer {}.",
                        created.hub, created.name, created.layer
                    );
                    Ok(())
                }
                DatasetCommand::List { hub } => {
                    let filter = match hub {
                        Some(h) => format!(" WHERE hub = '{}'", Name::parse("hub", &h)?),
                        None => String::new(),
                    };
                    sql(&g, &catalog, &format!(
                        "SELECT hub, name, layer, domain, owner, description, tags FROM system.datasets{filter} ORDER BY hub, name"
                    ))
                    .await
                }
                DatasetCommand::Show { name } => {
                    let d = catalog.require_dataset(&DatasetRef::parse(&name)?).await?;
                    let (hub, name) = (d.hub.clone(), d.name.clone());
                    sql(&g, &catalog, &format!(
                        "SELECT hub, name, layer, domain, owner, description, tags, update_frequency, support_contact, created_at FROM system.datasets WHERE hub = '{hub}' AND name = '{name}'"
                    ))
                    .await?;
                    sql(&g, &catalog, &format!(
                        "SELECT name AS table_name, primary_key, partition_columns, updated_at FROM system.tables WHERE hub = '{hub}' AND dataset = '{name}' ORDER BY name"
                    ))
                    .await
                }
            }
        }
        Command::Table(cmd) => {
            let catalog = open(&g).await?;
            table(&g, &catalog, cmd).await
        }
        Command::Ingest(args) => {
            let catalog = open(&g).await?;
            ingest(&g, &catalog, args, true).await.map(|_| ())
        }
        Command::Sql { query, file } => {
            let catalog = open(&g).await?;
            let engine = engine(&g, &catalog).await?;
            let text = match (query, file) {
                (Some(q), _) => q,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read {}", f.display()))?,
                (None, None) if std::io::stdin().is_terminal() => return repl(&g, &engine).await,
                (None, None) => std::io::read_to_string(std::io::stdin())
                    .context("cannot read SQL from stdin")?,
            };
            let out = engine.execute(&text).await?;
            output::print(g.output, &out.schema, &out.batches)
        }
        Command::Serve(args) => serve(&g, args).await,
        Command::User(cmd) => governance::user(&engine(&g, &open(&g).await?).await?, cmd).await,
        Command::Role(cmd) => governance::role(&engine(&g, &open(&g).await?).await?, cmd).await,
        Command::Token(cmd) => governance::token(&engine(&g, &open(&g).await?).await?, cmd).await,
        Command::Grant { words } => {
            let catalog = open(&g).await?;
            if words == ["list"] {
                return governance::list_grants(&engine(&g, &catalog).await?).await;
            }
            sql(&g, &catalog, &format!("GRANT {}", words.join(" "))).await
        }
        Command::Revoke { words } => {
            let catalog = open(&g).await?;
            sql(&g, &catalog, &format!("REVOKE {}", words.join(" "))).await
        }
    }
}

/// The keystore of the data dir (or `--keystore`), with the master key from `BASIN_MASTER_KEY`.
pub fn keystore(g: &Global) -> anyhow::Result<basin_keys::Keystore> {
    let dir = g
        .keystore
        .clone()
        .unwrap_or_else(|| g.data_dir.join("keys"));
    let master = std::env::var("BASIN_MASTER_KEY").ok();
    Ok(basin_keys::Keystore::open(&dir, master.as_deref())?)
}

/// The SQL engine acting as the catalog user the CLI runs as (`--as USER`, default the
/// administrator `admin`): every command is decided and audited as that user.
pub(crate) async fn engine(g: &Global, catalog: &Catalog) -> anyhow::Result<Engine> {
    let tables = basin_tables::Tables::new(catalog.clone(), Some(keystore(g)?));
    let mut engine = Engine::new(tables).with_origin("cli");
    if let Some(bytes) = g.memory_limit {
        engine = engine.with_memory_limit(bytes);
    }
    let user = g.as_user.as_str();
    if user == ADMIN_USER {
        // Whoever holds the data directory administers it.
        catalog.ensure_admin(ADMIN_USER).await?;
    }
    match catalog.user(user).await? {
        Some(u) if u.disabled => bail!("user '{user}' is disabled"),
        Some(_) => {}
        None => bail!("user '{user}' not found; see `basin user list`"),
    }
    let principal = catalog.access_snapshot().await?.principal(user, &[]);
    Ok(engine.as_principal(principal))
}

/// The user the CLI acts as unless `--as` names another.
pub(crate) const ADMIN_USER: &str = "admin";

async fn serve(g: &Global, args: crate::cli::ServeArgs) -> anyhow::Result<()> {
    use basin_server::auth::{JwksSource, OidcConfig};
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("BASIN_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let catalog = open(g).await?;
    let keystore = keystore(g)?;
    if let Some(password) =
        basin_server::ensure_admin(&catalog, std::env::var("BASIN_ADMIN_PASSWORD").ok())
            .await
            .map_err(|e| anyhow::anyhow!(e.detail))?
    {
        println!(
            "basin: created user 'admin' with password {password}  (shown once; change it or set BASIN_ADMIN_PASSWORD)"
        );
    }
    let oidc = match (args.oidc_issuer, args.oidc_audience, args.oidc_jwks) {
        (Some(issuer), Some(audience), Some(jwks)) => Some(OidcConfig {
            issuer,
            audience,
            jwks: if jwks.starts_with("http://") || jwks.starts_with("https://") {
                JwksSource::Url(jwks)
            } else {
                JwksSource::File(jwks.into())
            },
            roles_claim: args.oidc_roles_claim,
            user_claim: args.oidc_user_claim,
            jwks_refresh: Duration::from_secs(args.oidc_jwks_refresh_secs),
        }),
        _ => None,
    };
    let config = basin_server::ServerConfig {
        listen: args.listen,
        oidc,
        session_ttl: Duration::from_secs(args.session_hours * 3600),
        max_body_bytes: args.max_body_mib * 1024 * 1024,
        query_timeout: Duration::from_secs(args.query_timeout_secs),
        max_rows: args.max_rows,
        memory_limit: g.memory_limit,
        max_concurrent_queries: args.max_concurrent_queries.map_or(0, |n| n as usize),
    };
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        eprintln!("basin: shutting down; finishing requests in flight");
    };
    basin_server::serve(catalog, keystore, config, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!(e))
}

/// Opens (creating on first use) the data directory's catalog, with the hub `main`.
async fn open(g: &Global) -> anyhow::Result<Catalog> {
    std::fs::create_dir_all(&g.data_dir)
        .with_context(|| format!("cannot create data directory {}", g.data_dir.display()))?;
    let catalog = match &g.catalog {
        Some(url) => Catalog::connect(url).await?,
        None => Catalog::open_sqlite(&g.data_dir.join("catalog.db")).await?,
    };
    if catalog.hub(DEFAULT_HUB).await?.is_none() {
        let storage_root = hub_root(g, DEFAULT_HUB)?;
        let created = catalog
            .create_hub(NewHub {
                name: Name::parse("hub", DEFAULT_HUB)?,
                storage_root,
                description: "The default hub".into(),
            })
            .await;
        // Another process may have created it at the same moment.
        if let Err(e) = created {
            if catalog.hub(DEFAULT_HUB).await?.is_none() {
                return Err(e.into());
            }
        }
    }
    Ok(catalog)
}

fn hub_root(g: &Global, hub: &str) -> anyhow::Result<String> {
    let dir = std::path::absolute(g.data_dir.join("hubs").join(hub))?;
    let url = basin_lake::location_url(&dir.display().to_string())?;
    Ok(url.as_str().trim_end_matches('/').to_string())
}

async fn sql(g: &Global, catalog: &Catalog, text: &str) -> anyhow::Result<()> {
    let out = engine(g, catalog).await?.execute(text).await?;
    output::print(g.output, &out.schema, &out.batches)
}

async fn repl(g: &Global, engine: &Engine) -> anyhow::Result<()> {
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = g.data_dir.join(".sql_history");
    let _ = editor.load_history(&history);
    println!("Basin SQL. End statements with ';'. Ctrl-D quits.");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "basin> "
        } else {
            "   ..> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                buffer.push_str(&line);
                buffer.push('\n');
                if !line.trim_end().ends_with(';') {
                    continue;
                }
                let _ = editor.add_history_entry(buffer.trim());
                match engine.execute(&buffer).await {
                    Ok(out) => output::print(g.output, &out.schema, &out.batches)?,
                    Err(e) => eprintln!("error: {e}"),
                }
                buffer.clear();
            }
            Err(rustyline::error::ReadlineError::Interrupted) => buffer.clear(),
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let _ = editor.save_history(&history);
    Ok(())
}

async fn table(g: &Global, catalog: &Catalog, cmd: TableCommand) -> anyhow::Result<()> {
    match cmd {
        TableCommand::Show { table } => {
            let engine = engine(g, catalog).await?;
            let (t, _, stats) =
                basin_sql::access::table_details(&engine, &TableRef::parse(&table)?).await?;
            println!("table:       {}.{}.{}", t.hub, t.dataset, t.name);
            if !t.location.is_empty() {
                println!("location:    {}", t.location);
            }
            println!("version:     {}", stats.version);
            println!("files:       {}", stats.files);
            let list = |l: &[String]| {
                if l.is_empty() {
                    "-".to_string()
                } else {
                    l.join(", ")
                }
            };
            println!("primary key: {}", list(&t.primary_key));
            println!("partitions:  {}", list(&t.partition_columns));
            sql(g, catalog, &format!(
                "SELECT ordinal, name, data_type, nullable, description, tags FROM system.columns WHERE hub = '{}' AND dataset = '{}' AND table_name = '{}' ORDER BY ordinal",
                t.hub, t.dataset, t.name
            ))
            .await
        }
        TableCommand::History { table, limit } => {
            let engine = engine(g, catalog).await?;
            let (t, _) =
                basin_sql::access::table_policy(&engine, &TableRef::parse(&table)?).await?;
            let limit = limit.map(|l| format!(" LIMIT {l}")).unwrap_or_default();
            sql(g, catalog, &format!(
                "SELECT version, timestamp, operation, parameters FROM system.history WHERE hub = '{}' AND dataset = '{}' AND table_name = '{}' ORDER BY version DESC{limit}",
                t.hub, t.dataset, t.name
            ))
            .await
        }
        TableCommand::Restore { table, version } => {
            let engine = engine(g, catalog).await?;
            let done = engine
                .tables()
                .commit(
                    &engine.actor(),
                    &TableRef::parse(&table)?,
                    basin_tables::Write::Restore { version },
                )
                .await?;
            eprintln!(
                "Restored {table} to version {version} (new version {}).",
                done.version
            );
            Ok(())
        }
    }
}

async fn ingest(
    g: &Global,
    catalog: &Catalog,
    args: IngestArgs,
    show_progress: bool,
) -> anyhow::Result<basin_ingest::LoadReport> {
    let table = TableRef::parse(&args.table)?;
    let engine = engine(g, catalog).await?;
    let delimiter = one_byte("--delimiter", &args.delimiter.replace("\\t", "\t"))?;
    let quote = one_byte("--quote", &args.quote)?;
    let read = ReadOptions {
        format: args.format.as_deref().map(str::parse).transpose()?,
        csv: CsvOptions {
            delimiter,
            quote,
            has_header: !args.no_header,
            null_marker: args.null,
        },
        schema: args
            .schema
            .as_deref()
            .map(basin_ingest::parse_schema)
            .transpose()?,
        infer_rows: args.infer_rows.max(1),
        ..ReadOptions::default()
    };
    let mode = match (args.mode, args.predicate) {
        (IngestMode::Append, None) => LoadMode::Append,
        (IngestMode::Overwrite, p) => LoadMode::Overwrite(p),
        (IngestMode::Upsert, None) => LoadMode::Upsert,
        (_, Some(_)) => bail!("--where only applies to --mode overwrite"),
    };
    let request = LoadRequest {
        table: Some(table),
        inputs: args.inputs,
        read,
        mode,
        key: args.key,
        partition_by: args.partition_by,
        max_bad_rows: args.max_bad_rows,
        load_id: args.load_id.clone(),
    };
    let progress = Arc::new(Progress::default());
    let bar = show_progress.then(|| tokio::spawn(progress_bar(progress.clone())));
    let result = basin_ingest::load(engine.tables(), &engine.actor(), request, progress).await;
    if let Some(bar) = bar {
        bar.abort();
        let _ = bar.await;
    }
    let report = result?;
    if report.skipped {
        eprintln!(
            "Load '{}' was committed before; nothing to do ({} is at version {}).",
            args.load_id.as_deref().unwrap_or_default(),
            report.table,
            report.version
        );
    } else {
        eprintln!(
            "Loaded {} row(s) from {} file(s) ({}) into {} (version {}{}).",
            report.rows,
            report.files,
            human_bytes(report.bytes),
            report.table,
            report.version,
            if report.created { ", new table" } else { "" }
        );
        if let Some(q) = &report.quarantine {
            eprintln!("{} bad row(s) went to {q}.", report.bad_rows);
        }
        if !report.added_columns.is_empty() {
            eprintln!("New column(s): {}.", report.added_columns.join(", "));
        }
        if !report.widened_columns.is_empty() {
            eprintln!("Widened column(s): {}.", report.widened_columns.join(", "));
        }
    }
    Ok(report)
}

fn one_byte(flag: &str, s: &str) -> anyhow::Result<u8> {
    match s.as_bytes() {
        [b] => Ok(*b),
        _ => bail!("{flag} must be a single ASCII character, not '{s}'"),
    }
}

/// A progress bar (rows, bytes, rate) that appears once a load has run for a moment.
async fn progress_bar(progress: Arc<Progress>) {
    tokio::time::sleep(Duration::from_millis(700)).await;
    if !std::io::stderr().is_terminal() {
        return;
    }
    let total = progress.total_bytes.load(Ordering::Relaxed);
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    loop {
        let rows = progress.rows.load(Ordering::Relaxed);
        let rate = rows as f64 / started.elapsed().as_secs_f64().max(0.001);
        bar.set_position(progress.bytes.load(Ordering::Relaxed));
        bar.set_message(format!("{rows} rows ({rate:.0} rows/s)"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

async fn demo(g: &Global, samples: &Path) -> anyhow::Result<()> {
    if !samples.join("customers.csv").exists() {
        bail!(
            "sample data not found in {}: run `basin demo` from the repository root or pass --samples DIR",
            samples.display()
        );
    }
    let catalog = open(g).await?;
    let sales = DatasetRef::parse("sales")?;
    if catalog.dataset(&sales).await?.is_none() {
        catalog
            .create_dataset(NewDataset {
                dataset: sales,
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
            .await?;
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
    ingest(
        g,
        &catalog,
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
    ingest(
        g,
        &catalog,
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
    ingest(
        g,
        &catalog,
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
    for (title, query) in queries {
        println!(
            "\n== {title}\n{}",
            query.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        sql(g, &catalog, query).await?;
    }
    println!(
        "\nTry it yourself: basin --data-dir {} sql",
        g.data_dir.display()
    );
    Ok(())
}
