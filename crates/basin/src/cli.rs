use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Basin: a self-hosted data hub. Files in, governed Delta tables organised in hubs, datasets and
/// layers, SQL out.
#[derive(Parser, Debug)]
#[command(name = "basin", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Where Basin keeps its catalog and tables.
    #[arg(
        long,
        global = true,
        env = "BASIN_DATA_DIR",
        default_value = "./basin-data"
    )]
    pub data_dir: PathBuf,
    /// Catalog database URL (default: SQLite at <data-dir>/catalog.db), e.g. postgres://user@host/db.
    #[arg(long, global = true, env = "BASIN_CATALOG")]
    pub catalog: Option<String>,
    /// Directory of the keys that encrypt PII columns (default: <data-dir>/keys). The master key
    /// comes from BASIN_MASTER_KEY, or is generated into this directory.
    #[arg(long, global = true, env = "BASIN_KEYSTORE")]
    pub keystore: Option<PathBuf>,
    /// How results are printed.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// The catalog user commands run as, under its grants and policies, and in whose name they
    /// are audited. The default, `admin`, administers the data directory.
    #[arg(
        long = "as",
        global = true,
        value_name = "USER",
        env = "BASIN_USER",
        default_value = "admin"
    )]
    pub as_user: String,
    /// Memory one query may hold (sorts, aggregations and joins; sorts and aggregations spill
    /// to disk beyond it), e.g. 512MiB or 2GiB. Default: half the machine's memory; for
    /// `serve`, divided by --max-concurrent-queries.
    #[arg(long, global = true, env = "BASIN_MEMORY_LIMIT", value_name = "SIZE", value_parser = basin_server::limits::parse_bytes)]
    pub memory_limit: Option<usize>,
    /// Where exports (`COPY … TO`, export models) go: a folder, or an `s3://bucket/prefix` URL
    /// reached with the `AWS_*` environment (keys, region, AWS_ENDPOINT_URL). Default:
    /// <data-dir>/exports. Each user writes under its own `<user>/` folder of it.
    #[arg(long, global = true, env = "BASIN_EXPORTS", value_name = "LOCATION")]
    pub exports: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the data directory, the catalog and the default hub `main`.
    Init,
    /// Load the sample data shipped with Basin into `main.sales` and run a few queries.
    Demo {
        /// Folder with the sample files.
        #[arg(long, default_value = "examples/demo")]
        samples: PathBuf,
    },
    /// Manage hubs (markets, tenants).
    #[command(subcommand)]
    Hub(HubCommand),
    /// Manage datasets.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Inspect and restore tables.
    #[command(subcommand)]
    Table(TableCommand),
    /// Load files (CSV, JSON, NDJSON, Parquet; .gz/.zst) into a table in one commit.
    Ingest(IngestArgs),
    /// Run SQL: a query argument, a file, statements on stdin, or an interactive prompt.
    Sql {
        /// The SQL to run.
        query: Option<String>,
        /// Read the SQL from this file.
        #[arg(short = 'f', long = "file", conflicts_with = "query")]
        file: Option<PathBuf>,
    },
    /// Run the hub server: REST API, authentication, governance.
    Serve(ServeArgs),
    /// Manage users and their roles.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage roles.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Grant privileges: `basin grant SELECT ON TABLE sales.orders TO analyst`
    /// (also `SELECT (a, b)`, `ON HUB h`, `ON DATASET d`, `ON TAG classification = 'public'`).
    Grant {
        /// The grant, in GRANT statement words; `list` prints all grants.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// Revoke privileges: `basin revoke SELECT ON TABLE sales.orders FROM analyst`.
    Revoke {
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// Manage service tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Copy the catalog, every table and the keystore into DIR (new or empty), at one point in
    /// time, while the hub runs (administrators). DIR holds the keys: keep it private.
    Backup {
        /// The backup directory.
        dir: PathBuf,
    },
    /// Restore a backup into a new or empty --data-dir (and --keystore), verifying every file
    /// against its manifest first (as an administrator of the backed-up hub).
    Restore {
        /// A directory written by `basin backup`.
        dir: PathBuf,
    },
    /// Search the names, descriptions, tags, domains and owners of the hubs, datasets, tables
    /// and columns the user may see (typos forgiven; exact names first, then the most used).
    Search(SearchArgs),
    /// Ask for access to a dataset or table, and approve or deny others' requests.
    #[command(subcommand)]
    Access(AccessCommand),
    /// Sources: connectors that keep a table fed (run by `basin serve` as their owner).
    #[command(subcommand)]
    Source(SourceCommand),
    /// Compare a project folder (basin.toml and models/<dataset>/<table>.sql) with a hub: what
    /// `basin apply` would create, change, rebuild and drop. Changes nothing.
    Plan {
        dir: PathBuf,
        /// The hub to compare with (default: the project's `hub`, else main) — e.g. prod, to
        /// promote a project tried on dev.
        #[arg(long)]
        hub: Option<String>,
    },
    /// Apply a project folder to a hub: its datasets and models created, changed and dropped,
    /// then the changed models (and those downstream) built, upstream first. Applying the same
    /// folder again changes nothing.
    Apply {
        dir: PathBuf,
        #[arg(long)]
        hub: Option<String>,
    },
    /// Models: SQL that builds a table from other tables (declared in a project folder).
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// The models whose tables you see, with their last run.
    List,
    /// Run a model now, as its owner (`hub.dataset.table` or `dataset.table`).
    Run {
        name: String,
        /// Also run every model that reads it, directly or not, after it.
        #[arg(long)]
        downstream: bool,
        /// Rebuild it in full even if it is incremental.
        #[arg(long)]
        full: bool,
    },
    /// The last runs of a model (or of all): status, rows, version, checks with failing rows.
    Status { name: Option<String> },
}

#[derive(Subcommand, Debug)]
pub enum SourceCommand {
    /// Declare a source. Files: each new file under a folder matching a pattern, once, in path
    /// order (`--path /drops --pattern 'products/year=*/month=*/day=*/*.csv'`). PostgreSQL:
    /// a query's rows, as a snapshot or incrementally by a watermark column (`--postgres URL
    /// --from-table public.customers --key id --watermark updated_at`). Kafka: a topic's JSON
    /// records, each once (`--kafka broker:9092 --topic vehicle-events`).
    Add {
        name: String,
        /// The table it feeds (created by the first run when it does not exist).
        #[arg(long)]
        table: String,
        /// Files: the folder to watch, or an object-store prefix `s3://bucket/drops` (read
        /// with the server's AWS_* environment).
        #[arg(long, required_unless_present_any = ["postgres", "kafka"], conflicts_with_all = ["postgres", "kafka"])]
        path: Option<String>,
        /// Kafka: the brokers, host:port (comma-separated) …
        #[arg(
            long,
            value_delimiter = ',',
            conflicts_with = "postgres",
            requires = "topic"
        )]
        kafka: Option<Vec<String>>,
        /// … and the topic whose records' JSON values become rows.
        #[arg(long, requires = "kafka")]
        topic: Option<String>,
        /// PostgreSQL: postgres://USER@HOST:PORT/DATABASE (no password in it).
        #[arg(long)]
        postgres: Option<String>,
        /// PostgreSQL: the environment variable of the server holding the password.
        #[arg(long, requires = "postgres")]
        password_env: Option<String>,
        /// PostgreSQL: a file holding the password.
        #[arg(long, requires = "postgres")]
        password_file: Option<PathBuf>,
        /// PostgreSQL: the rows to read (a SELECT) …
        #[arg(long, requires = "postgres", conflicts_with = "from_table")]
        query: Option<String>,
        /// … or a whole table (`schema.table`).
        #[arg(long, requires = "postgres")]
        from_table: Option<String>,
        /// PostgreSQL, with --watermark: the key changed rows are upserted by (comma-separated).
        #[arg(long, value_delimiter = ',')]
        key: Vec<String>,
        /// PostgreSQL: a column that grows with every change (`updated_at`); each run reads the
        /// rows past the last run's highest value. Without it, each run replaces the table.
        #[arg(long, requires = "postgres")]
        watermark: Option<String>,
        /// A glob over paths relative to the folder (`*` stays within one folder level).
        #[arg(long, default_value = "**/*")]
        pattern: String,
        /// The files' format when their names do not say it (csv, json, ndjson, parquet).
        #[arg(long)]
        format: Option<String>,
        /// Seconds between runs …
        #[arg(long, default_value_t = 60)]
        every: u64,
        /// … or a cron expression (UTC): '0 2 * * *' runs at 02:00 every day …
        #[arg(long, conflicts_with = "every")]
        cron: Option<String>,
        /// … or continuously: again as soon as a run ends (a Kafka topic read as it grows).
        #[arg(long, conflicts_with_all = ["every", "cron"])]
        continuous: bool,
        /// Tries of a failing file before it is left failed.
        #[arg(long, default_value_t = 3)]
        max_attempts: u64,
        /// Bad rows a file may have (they go to `<table>__rejected`) before it fails.
        #[arg(long, default_value_t = 0)]
        max_bad_rows: u64,
    },
    /// List the sources whose table you see.
    List,
    /// A source's settings, files loaded and failed (with why), and last runs.
    Show { name: String },
    /// Run a source now (its owner, or who manages its table).
    Run { name: String },
    /// Stop running a source on schedule.
    Pause { name: String },
    /// Run a paused source on schedule again.
    Resume { name: String },
    /// Remove a source (what it loaded stays in its table).
    Remove { name: String },
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Words to search for.
    pub query: String,
    /// Only hits in this hub.
    #[arg(long)]
    pub hub: Option<String>,
    /// Only hits in datasets of this layer (source, prepared, semantic).
    #[arg(long)]
    pub layer: Option<String>,
    /// Only hits in datasets of this domain.
    #[arg(long)]
    pub domain: Option<String>,
    /// Only hits carrying this tag (KEY or KEY=VALUE), inherited tags included.
    #[arg(long)]
    pub tag: Option<String>,
    /// Only hits in datasets of this owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Hits per page (1–100).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Continue after the page that printed this token.
    #[arg(long)]
    pub page_token: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AccessCommand {
    /// Ask for SELECT on a hub, dataset or table you can see:
    /// `basin access request dataset sales --reason "monthly report"`.
    Request {
        /// The object: `hub NAME`, `dataset [HUB.]NAME` or `table [HUB.]DATASET.NAME`.
        #[arg(required = true, num_args = 1..)]
        object: Vec<String>,
        /// Why you need it, for those who decide.
        #[arg(long)]
        reason: String,
        /// The privilege asked for (only SELECT can be requested).
        #[arg(long, default_value = "SELECT")]
        privilege: String,
    },
    /// List your requests, or with --review those you may decide.
    List {
        /// Others' requests on objects you may manage, instead of your own.
        #[arg(long)]
        review: bool,
        /// Only requests with this status: pending, approved, denied, cancelled.
        #[arg(long)]
        status: Option<String>,
    },
    /// Approve a pending request: the privilege is granted to the requester.
    Approve {
        id: String,
        /// A note for the requester.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Deny a pending request, saying why.
    Deny {
        id: String,
        /// Why, for the requester (required).
        #[arg(long)]
        comment: String,
    },
    /// Cancel your own pending request.
    Cancel { id: String },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "BASIN_LISTEN")]
    pub listen: std::net::SocketAddr,
    /// OIDC issuer whose JWTs are accepted (with --oidc-audience and --oidc-jwks).
    #[arg(long, env = "BASIN_OIDC_ISSUER", requires_all = ["oidc_audience", "oidc_jwks"])]
    pub oidc_issuer: Option<String>,
    /// Audience the JWTs must be for.
    #[arg(long, env = "BASIN_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The provider's keys: an https:// URL or a JWKS file.
    #[arg(long, env = "BASIN_OIDC_JWKS")]
    pub oidc_jwks: Option<String>,
    /// How often the provider's key set is fetched again, in seconds (a key the provider
    /// withdraws is refused after the next fetch).
    #[arg(long, env = "BASIN_OIDC_JWKS_REFRESH_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub oidc_jwks_refresh_secs: u64,
    /// JWT claim holding Basin role names (only names of Basin roles are used).
    #[arg(long, default_value = "roles")]
    pub oidc_roles_claim: String,
    /// JWT claim naming the user.
    #[arg(long, default_value = "preferred_username")]
    pub oidc_user_claim: String,
    /// The portal's client id at the OIDC provider: enables "Sign in with SSO" (authorization
    /// code with PKCE, via the issuer's /.well-known/openid-configuration).
    #[arg(long, env = "BASIN_OIDC_CLIENT_ID", requires = "oidc_issuer")]
    pub oidc_client_id: Option<String>,
    /// The portal client's secret (confidential clients; omit for a public client).
    #[arg(
        long,
        env = "BASIN_OIDC_CLIENT_SECRET",
        requires = "oidc_client_id",
        hide_env_values = true
    )]
    pub oidc_client_secret: Option<String>,
    /// The callback URL registered at the provider, e.g. https://basin.example.com/auth/callback
    /// (default: derived from the request's Host and X-Forwarded-Proto).
    #[arg(long, env = "BASIN_OIDC_REDIRECT_URL", requires = "oidc_client_id")]
    pub oidc_redirect_url: Option<String>,
    /// Lifetime of login sessions, in hours.
    #[arg(long, default_value_t = 12)]
    pub session_hours: u64,
    /// Largest request body (uploads), in MiB.
    #[arg(long, default_value_t = 1024)]
    pub max_body_mib: usize,
    /// Longest a query may run, in seconds.
    #[arg(long, default_value_t = 300)]
    pub query_timeout_secs: u64,
    /// Most rows a query returns.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_rows: usize,
    /// Queries that run at once (default: twice the number of cores); more wait up to 2 s,
    /// then get 503 with Retry-After.
    #[arg(long, env = "BASIN_MAX_CONCURRENT_QUERIES", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_concurrent_queries: Option<u64>,
    /// Seconds between the maintainer's passes over every table (compaction and vacuum by each
    /// table's policy, see `basin table maintenance`); 0 turns it off. With several servers on
    /// one catalog, one of them runs each pass.
    #[arg(long, env = "BASIN_MAINTENANCE_INTERVAL_SECS", default_value_t = 600)]
    pub maintenance_interval_secs: u64,
    /// Streamed records this server buffers (acknowledged, not yet committed) over all tables,
    /// in MiB; beyond it, requests of records get 429 until commits catch up.
    #[arg(long, env = "BASIN_STREAM_BUFFER_MIB", default_value_t = 512, value_parser = clap::value_parser!(u64).range(16..))]
    pub stream_buffer_mib: u64,
    /// How long an `Idempotency-Key` of a request of records is remembered, in seconds.
    #[arg(long, env = "BASIN_IDEMPOTENCY_WINDOW_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub idempotency_window_secs: u64,
    /// How the server's log lines on stderr are written: `text` for people, `json` (one object
    /// per line) for log shippers. What is logged is chosen by BASIN_LOG (see docs/cli.md).
    #[arg(long, env = "BASIN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The format of `basin serve`'s log lines.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user. The password is read from BASIN_PASSWORD or, on a terminal, asked for.
    Create {
        name: String,
        /// Attributes for row filters, e.g. --attr region=eu.
        #[arg(long = "attr", value_name = "KEY=VALUE")]
        attributes: Vec<String>,
        /// Roles to join.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// No password (the user signs in through the identity provider).
        #[arg(long)]
        no_password: bool,
    },
    /// List users.
    List,
    /// Replace a user's attributes.
    SetAttributes {
        name: String,
        #[arg(value_name = "KEY=VALUE")]
        attributes: Vec<String>,
    },
    /// Disable a user (its tokens stop working).
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
    /// Set a user's password, read from BASIN_PASSWORD, the prompt or stdin (never from the
    /// command line). Users who are not administrators change only their own and give the
    /// current one first (BASIN_CURRENT_PASSWORD, the prompt, or the first line of stdin).
    /// The user's login sessions end; its service tokens stay.
    Password { name: String },
}

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Create a role.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List roles and their members.
    List,
    /// Add a user to a role.
    AddMember { role: String, user: String },
    /// Remove a user from a role.
    RemoveMember { role: String, user: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a service token; its secret is printed once.
    Create {
        /// A name for the token.
        name: String,
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// Lifetime in days.
        #[arg(long, default_value_t = 90)]
        ttl_days: u64,
    },
    /// List service tokens.
    List,
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
pub enum HubCommand {
    /// Create a hub.
    Create {
        name: String,
        /// Object-store URL or directory of the hub's tables (default: <data-dir>/hubs/<name>;
        /// a relative path is taken from the working directory).
        #[arg(long)]
        storage_root: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List hubs.
    List,
    /// Change a hub's description (MANAGE on the hub).
    Update {
        name: String,
        /// The new description ("" clears it).
        #[arg(long)]
        description: String,
    },
    /// Delete an empty hub (administrators); a hub that holds datasets is refused.
    Delete { name: String },
    /// Move a hub's tables to a new local directory (new or empty) and point the catalog
    /// there; on failure nothing changes. Stop writers to the hub first.
    Move {
        name: String,
        /// The new storage root (a relative path is taken from the working directory).
        new_root: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Create a dataset (`dataset` or `hub.dataset`).
    Create(DatasetCreate),
    /// List datasets.
    List {
        /// Only this hub's datasets.
        #[arg(long)]
        hub: Option<String>,
    },
    /// Show a dataset and its tables.
    Show { name: String },
    /// Change a dataset's layer, domain, owner, description or contract (MANAGE on it); options
    /// left out stay as they are, "" clears.
    Update(DatasetUpdateArgs),
    /// Delete an empty dataset (MANAGE on it or its hub); one that holds tables is refused.
    Delete { name: String },
}

#[derive(Args, Debug)]
pub struct DatasetUpdateArgs {
    pub name: String,
    /// source, prepared or semantic.
    #[arg(long)]
    pub layer: Option<String>,
    #[arg(long)]
    pub domain: Option<String>,
    #[arg(long)]
    pub owner: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub update_frequency: Option<String>,
    #[arg(long)]
    pub support_contact: Option<String>,
}

#[derive(Args, Debug)]
pub struct DatasetCreate {
    pub name: String,
    /// source, prepared or semantic.
    #[arg(long)]
    pub layer: String,
    /// Business object, e.g. customer, vehicle.
    #[arg(long)]
    pub domain: Option<String>,
    #[arg(long)]
    pub owner: Option<String>,
    #[arg(long, default_value = "")]
    pub description: String,
    /// A tag (`key` or `key=value`); repeat for several.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Expected update frequency (contract), e.g. daily.
    #[arg(long)]
    pub update_frequency: Option<String>,
    /// Support contact (contract).
    #[arg(long)]
    pub support_contact: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TableCommand {
    /// Show a table: location, key, partitioning, version, files and columns.
    Show { table: String },
    /// Set the description of a table, or with --column of one of its columns ("" clears it;
    /// MANAGE on the table).
    Comment {
        table: String,
        /// The new description.
        description: String,
        /// Describe this column instead of the table.
        #[arg(long)]
        column: Option<String>,
    },
    /// List a table's commits, newest first.
    History {
        table: String,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Make an earlier version current again (as a new commit).
    Restore {
        table: String,
        #[arg(long)]
        version: i64,
    },
    /// Compact the table's small files into large ones, optionally Z-ordered by columns (no
    /// row changes; MANAGE on the table).
    Optimize {
        table: String,
        /// Size to pack files to (default: the table's policy, 128 MiB).
        #[arg(long)]
        target_file_mib: Option<u64>,
        /// Z-order the files by these columns (comma-separated), so filters on them skip files.
        #[arg(long, value_delimiter = ',')]
        zorder: Option<Vec<String>>,
    },
    /// Remove the files and log that no version within the retention needs (MANAGE on the
    /// table); older versions can no longer be read by time travel.
    Vacuum {
        table: String,
        /// Keep every version of the last N hours (default: the table's policy, 168 = 7 days).
        #[arg(long)]
        retain_hours: Option<u64>,
    },
    /// Show, or with options set, how the server's maintainer compacts and vacuums the table.
    Maintenance {
        table: String,
        /// Whether the maintainer looks after the table.
        #[arg(long)]
        auto: Option<bool>,
        /// Compact once the table has this many files under half the target size.
        #[arg(long)]
        min_files: Option<u64>,
        #[arg(long)]
        target_file_mib: Option<u64>,
        #[arg(long)]
        retain_hours: Option<u64>,
        /// Z-order columns for compaction (comma-separated; "" for none).
        #[arg(long, value_delimiter = ',')]
        zorder: Option<Vec<String>>,
    },
    /// Show, or with options set, how the table takes streamed records (docs/streaming.md).
    Stream {
        table: String,
        /// Commit buffered records at the latest this many milliseconds after the oldest came …
        #[arg(long)]
        max_age_ms: Option<u64>,
        /// … or once this many MiB are buffered.
        #[arg(long)]
        max_mib: Option<u64>,
        /// A record's field that is not a column: reject, evolve or quarantine.
        #[arg(long)]
        unknown_fields: Option<String>,
        /// A TIMESTAMP field that fills the year/month/day/hour columns ("" for none).
        #[arg(long)]
        partition_time_field: Option<String>,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMode {
    Append,
    Overwrite,
    Upsert,
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Target table: `dataset.table` or `hub.dataset.table` (created if it does not exist).
    pub table: String,
    /// Files, globs or directories.
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// csv, json, ndjson or parquet (default: from each file's extension).
    #[arg(long)]
    pub format: Option<String>,
    /// How the rows meet the table's existing rows.
    #[arg(long, value_enum, default_value_t = IngestMode::Append)]
    pub mode: IngestMode,
    /// With --mode overwrite: replace only the rows matching this SQL predicate.
    #[arg(long = "where", requires = "mode")]
    pub predicate: Option<String>,
    /// Primary key column(s), comma-separated (for a new table, or the match key of an upsert).
    #[arg(long, value_delimiter = ',')]
    pub key: Vec<String>,
    /// Partition column(s) of a new table, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub partition_by: Vec<String>,
    /// Schema instead of inference: "id BIGINT, name VARCHAR, at TIMESTAMP".
    #[arg(long)]
    pub schema: Option<String>,
    /// CSV field delimiter (one character; `\t` for tab).
    #[arg(long, default_value = ",")]
    pub delimiter: String,
    /// CSV quote character.
    #[arg(long, default_value = "\"")]
    pub quote: String,
    /// CSV files have no header line.
    #[arg(long)]
    pub no_header: bool,
    /// Text that stands for NULL in CSV files (empty fields are always NULL).
    #[arg(long)]
    pub null: Option<String>,
    /// Records per file that type inference looks at.
    #[arg(long, default_value_t = 10_000)]
    pub infer_rows: usize,
    /// Up to this many bad rows go to `<table>__rejected` instead of refusing the load.
    #[arg(long, default_value_t = 0)]
    pub max_bad_rows: u64,
    /// Idempotency key: a load with an id that was loaded before adds nothing.
    #[arg(long)]
    pub load_id: Option<String>,
}
