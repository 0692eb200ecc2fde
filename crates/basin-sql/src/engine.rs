use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use basin_catalog::Catalog;
use basin_catalog::access::Principal;
use basin_core::{DEFAULT_HUB, TableRef};
use basin_keys::HubKey;
use basin_tables::{Actor, Tables};
use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::{FunctionRegistry, SendableRecordBatchStream};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::Statement;
use futures::TryStreamExt;

use crate::{Result, SqlError, browse, dml, governance, principal_sql, resolve};

/// The rows a statement returned.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryOutput {
    /// Total number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The one-row summary of a write: operation, rows affected, new table version.
    pub(crate) fn write_summary(operation: &str, rows: u64, version: i64) -> Result<Self> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("operation", DataType::Utf8, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("version", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![operation])),
                Arc::new(Int64Array::from(vec![rows as i64])),
                Arc::new(Int64Array::from(vec![version])),
            ],
        )
        .map_err(|e| SqlError::Query(e.to_string()))?;
        Ok(QueryOutput {
            schema,
            batches: vec![batch],
        })
    }
}

/// Runs SQL against the hubs of one catalog.
#[derive(Clone)]
pub struct Engine {
    tables: Tables,
    base: SessionState,
    /// Plans the inside of governed scans (see [`scan_planner`]).
    scan_planner: Arc<SessionState>,
    /// Whose statements these are; `None` for the trusted operator (the CLI on a data dir).
    principal: Option<Arc<Principal>>,
    /// Where statements come from (`cli`, a client address), for the audit log.
    origin: Arc<str>,
    /// Bytes each statement may hold in DataFusion's memory pool (see [`Engine::with_memory_limit`]).
    memory_limit: usize,
    /// Where `COPY … TO` writes (see [`crate::export`]).
    export_root: Option<Arc<crate::export::ExportRoot>>,
}

/// The memory limit when none is given and the machine's memory is unknown.
const FALLBACK_MEMORY_LIMIT: usize = 2 << 30;

/// The machine's physical memory in bytes (from `/proc/meminfo`), if known.
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The default memory limit of one statement: half of the machine's memory, or
/// [`FALLBACK_MEMORY_LIMIT`] when that is unknown.
fn default_memory_limit() -> usize {
    physical_memory()
        .map(|m| usize::try_from(m / 2).unwrap_or(usize::MAX))
        .unwrap_or(FALLBACK_MEMORY_LIMIT)
}

/// A size in bytes as people read it (`64 MiB`).
fn format_bytes(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = "bytes";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    if unit == "bytes" {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {unit}").replace(".0 ", " ")
    }
}

/// A statement's memory pool: DataFusion's fair spill pool, tracking its largest consumers, whose
/// refusal names the limit and the setting that raises it (DataFusion's own message does not).
#[derive(Debug)]
struct QueryPool {
    inner: TrackConsumersPool<FairSpillPool>,
    limit: usize,
}

impl QueryPool {
    fn new(limit: usize) -> Self {
        QueryPool {
            inner: TrackConsumersPool::new(
                FairSpillPool::new(limit),
                std::num::NonZeroUsize::new(3).expect("3 is not zero"),
            ),
            limit,
        }
    }
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Basin query pool of {}", format_bytes(self.limit))
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "basin"
    }
    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }
    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }
    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional)
    }
    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }
    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        self.inner.try_grow(reservation, additional).map_err(|e| {
            DataFusionError::ResourcesExhausted(format!(
                "the query needs more memory than its limit of {} (--memory-limit or \
                 BASIN_MEMORY_LIMIT); filter or aggregate earlier, select fewer columns, or raise \
                 the limit. Detail: {}",
                format_bytes(self.limit),
                e.strip_backtrace()
                    .trim_start_matches("Resources exhausted: ")
            ))
        })
    }
    fn reserved(&self) -> usize {
        self.inner.reserved()
    }
    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

type DfResult<T> = std::result::Result<T, DataFusionError>;

/// A runtime like `base` (same object stores, caches and spill directory) with a pool of its own
/// of `limit` bytes; without `base`, a new one that spills to the OS's temporary directory.
fn runtime(base: Option<&RuntimeEnv>, limit: usize) -> Arc<RuntimeEnv> {
    let builder = match base {
        Some(b) => RuntimeEnvBuilder::from_runtime_env(b),
        None => RuntimeEnvBuilder::new(),
    };
    builder
        .with_memory_pool(Arc::new(QueryPool::new(limit)))
        .build_arc()
        // The default disk manager (the OS's temporary directory) cannot fail to build.
        .unwrap_or_else(|_| Arc::new(RuntimeEnv::default()))
}

impl Engine {
    /// DataFusion's settings with those given as `DATAFUSION_*` environment variables (the
    /// setting's name in capitals, dots as underscores, e.g. `DATAFUSION_EXECUTION_BATCH_SIZE`);
    /// the error names the variable whose value the engine does not accept.
    pub fn settings_from_env() -> Result<datafusion::config::ConfigOptions> {
        let mut options = datafusion::config::ConfigOptions::default();
        for entry in options.entries() {
            let variable = entry.key.to_uppercase().replace('.', "_");
            if let Some(value) = std::env::var_os(&variable) {
                let value = value.to_string_lossy();
                options.set(&entry.key, &value).map_err(|e| {
                    SqlError::Invalid(format!(
                        "environment variable {variable}='{value}' is not a valid value of the engine setting {}: {}",
                        entry.key,
                        e.strip_backtrace()
                    ))
                })?;
            }
        }
        Ok(options)
    }

    /// An engine over the tables of a catalog, its writes going through `tables`; each
    /// statement may use [`default_memory_limit`] bytes.
    pub fn new(tables: Tables) -> Self {
        let memory_limit = default_memory_limit();
        // Operators may tune the engine with DataFusion's own `DATAFUSION_*` variables
        // (programs check them first with `Engine::settings_from_env`).
        let mut config = SessionConfig::from(Self::settings_from_env().unwrap_or_default())
            .with_default_catalog_and_schema(DEFAULT_HUB, "default")
            .with_information_schema(false)
            .with_create_default_catalog_and_schema(false);
        // Identifiers keep where they were written, so that planning errors can say where.
        config.options_mut().sql_parser.collect_spans = true;
        let mut base = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_runtime_env(runtime(None, memory_limit))
            .with_analyzer_rules(crate::checked::analyzer_rules(
                &datafusion::optimizer::Analyzer::new().rules,
            ))
            .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
            .build();
        // Replaces nothing: the name is Basin's own.
        let _ = base.register_udf(crate::sample::sample_function());
        Engine {
            tables,
            scan_planner: Arc::new(scan_planner(&base)),
            base,
            principal: None,
            origin: "cli".into(),
            memory_limit,
            export_root: None,
        }
    }

    /// The same engine, each statement holding at most `bytes` in its memory pool: operators
    /// that can spill (sorts, aggregations) spill to disk beyond it, others fail with an error
    /// naming the limit.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes.max(1);
        self.base = SessionStateBuilder::new_from_existing(self.base.clone())
            .with_runtime_env(runtime(
                Some(self.base.runtime_env().as_ref()),
                self.memory_limit,
            ))
            .build();
        self.scan_planner = Arc::new(scan_planner(&self.base));
        self
    }

    /// Bytes each statement may hold in its memory pool.
    pub fn memory_limit(&self) -> usize {
        self.memory_limit
    }

    /// The machine's physical memory in bytes, if known (for sizing limits).
    pub fn physical_memory() -> Option<u64> {
        physical_memory()
    }

    /// The memory limit of [`Engine::new`]: half the machine's memory, 2 GiB when unknown.
    pub fn default_memory_limit() -> usize {
        default_memory_limit()
    }

    /// A size in bytes as people read it (`64 MiB`).
    pub fn format_bytes(bytes: usize) -> String {
        format_bytes(bytes)
    }

    /// The same engine, recording `origin` as where its statements come from.
    pub fn with_origin(&self, origin: &str) -> Engine {
        Engine {
            origin: origin.into(),
            ..self.clone()
        }
    }

    /// Who the engine's writes are made for.
    pub fn actor(&self) -> Actor {
        Actor {
            principal: self.principal.as_deref().cloned(),
            origin: self.origin.to_string(),
        }
    }

    /// The write path.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The same engine, running statements on behalf of `principal` under its policies.
    pub fn as_principal(&self, principal: Principal) -> Engine {
        Engine {
            principal: Some(Arc::new(principal)),
            ..self.clone()
        }
    }

    /// The principal statements run for (`None`: the trusted operator).
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_deref()
    }

    /// The current key of a hub, for encrypting and decrypting its PII columns.
    pub fn hub_key(&self, hub: &str) -> Result<HubKey> {
        Ok(self.tables.hub_key(hub)?)
    }

    /// The session that plans the inside of governed scans.
    pub(crate) fn scan_planner(&self) -> &Arc<SessionState> {
        &self.scan_planner
    }

    /// The catalog this engine reads.
    pub fn catalog(&self) -> &Catalog {
        self.tables.catalog()
    }

    /// Runs every statement of `sql` in order; returns the output of the last one.
    pub async fn execute(&self, sql: &str) -> Result<QueryOutput> {
        if governance::is_grant(sql) {
            return governance::run(self, sql).await;
        }
        if crate::export::is_copy(sql) {
            return crate::export::run(self, sql).await;
        }
        let statements = parse(sql)?;
        let many = statements.len() > 1;
        let mut last = None;
        for (i, statement) in statements.into_iter().enumerate() {
            let text = statement.to_string();
            match self.run(statement).await {
                Ok(output) => last = Some(output),
                Err(e) => {
                    let e = self.name_locations(e, &text).await;
                    return Err(if many {
                        SqlError::InStatement {
                            statement: format!("statement {} ({})", i + 1, beginning(&text)),
                            error: Box::new(e),
                        }
                    } else {
                        e
                    });
                }
            }
        }
        last.ok_or_else(|| SqlError::Parse("the SQL text has no statement".into()))
    }

    /// A failure of the engine or the write path as users should read it: the storage
    /// locations of the tables `sql` names replaced by the tables' names (users know tables,
    /// not paths), engine wrappers and repetitions gone ([`crate::error::clean`]). Refusals
    /// and "not found" are Basin's own messages and stay as they are.
    async fn name_locations(&self, e: SqlError, sql: &str) -> SqlError {
        if !matches!(
            e,
            SqlError::Query(_) | SqlError::Lake(_) | SqlError::Tables(_)
        ) {
            return e;
        }
        let message = e.to_string();
        let mut named = message.clone();
        for name in Self::tables_named(sql) {
            let parts: Vec<String> = name.split('.').map(str::to_string).collect();
            let Ok(table) = (match parts.as_slice() {
                [d, t] => basin_core::TableRef::new(DEFAULT_HUB, d, t),
                [h, d, t] => basin_core::TableRef::new(h, d, t),
                _ => continue,
            }) else {
                continue;
            };
            let Ok(Some(entry)) = self.catalog().table(&table).await else {
                continue;
            };
            let location = entry.location.trim_end_matches('/');
            if location.is_empty() {
                continue;
            }
            let path = location.trim_start_matches("file://");
            for form in [
                format!("file://{path}/"),
                format!("file://{path}"),
                format!("{path}/"),
                path.to_string(),
            ] {
                named = named.replace(&form, &format!("'{table}'"));
            }
        }
        let named = crate::error::clean(&named.replace(" table at '", " table '"));
        if named == message {
            e
        } else {
            SqlError::Query(named)
        }
    }

    /// Exports (`COPY … TO`) write under `root`.
    pub fn with_export_root(mut self, root: crate::export::ExportRoot) -> Engine {
        self.export_root = Some(root.into());
        self
    }

    /// Where exports write, if anywhere.
    pub fn export_root(&self) -> Option<&crate::export::ExportRoot> {
        self.export_root.as_deref()
    }

    /// Whether the text is exactly one query (which [`Engine::stream`] can run).
    pub fn is_query(sql: &str) -> bool {
        !governance::is_grant(sql) && matches!(parse(sql).as_deref(), Ok([Statement::Query(_)]))
    }

    /// The tables a statement names (for the audit log); empty when it does not parse.
    pub fn tables_named(sql: &str) -> Vec<String> {
        let Ok(statements) = parse(sql) else {
            return Vec::new();
        };
        let mut names = Vec::new();
        for s in statements {
            let wrapped = datafusion::sql::parser::Statement::Statement(Box::new(s));
            if let Ok((relations, _)) =
                datafusion::sql::resolve::resolve_table_references(&wrapped, true)
            {
                names.extend(relations.into_iter().map(|r| r.to_string()));
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Exactly one query (`SELECT …`, `WITH … SELECT …`), parsed with Basin's dialect, for
    /// code that rewrites queries (incremental models); `what` names it in the error.
    pub fn parse_query(sql: &str, what: &str) -> Result<Statement> {
        let mut statements = parse(sql)?;
        if statements.len() != 1 || !matches!(statements[0], Statement::Query(_)) {
            return Err(SqlError::Invalid(format!(
                "{what} is exactly one query (SELECT … or WITH … SELECT …)"
            )));
        }
        Ok(statements.remove(0))
    }

    /// One SELECT with its `dataset.table` names qualified by `hub` (so that it reads the same
    /// tables whichever hub it is applied to), and the tables it reads (CTE names excluded).
    pub fn qualify_query(sql: &str, hub: &str) -> Result<(String, Vec<TableRef>)> {
        use datafusion::sql::sqlparser::ast::{Ident, ObjectNamePart, visit_relations_mut};
        let mut statements = parse(sql)?;
        if statements.len() != 1 || !matches!(statements[0], Statement::Query(_)) {
            return Err(SqlError::Invalid(
                "a model is exactly one query (SELECT … or WITH … SELECT …)".into(),
            ));
        }
        let mut statement = statements.remove(0);
        let wrapped = datafusion::sql::parser::Statement::Statement(Box::new(statement.clone()));
        let (relations, _) = datafusion::sql::resolve::resolve_table_references(&wrapped, true)?;
        let _ = visit_relations_mut(&mut statement, |name| {
            let virtual_schema = name
                .0
                .first()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| is_virtual_schema(&i.value.to_lowercase()));
            if name.0.len() == 2 && !virtual_schema {
                name.0
                    .insert(0, ObjectNamePart::Identifier(Ident::new(hub)));
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        let mut read = Vec::new();
        for r in relations {
            let parts: Vec<&str> = match &r {
                datafusion::common::TableReference::Bare { table } => vec![table],
                datafusion::common::TableReference::Partial { schema, table } => {
                    vec![schema, table]
                }
                datafusion::common::TableReference::Full {
                    catalog,
                    schema,
                    table,
                } => vec![catalog, schema, table],
            };
            let t = match parts.as_slice() {
                [d, _] if is_virtual_schema(d) => {
                    continue;
                }
                [d, t] => TableRef::new(hub, d, t)?,
                [h, d, t] => TableRef::new(h, d, t)?,
                _ => {
                    return Err(SqlError::Invalid(format!(
                        "'{r}' is not a table name: name tables as 'dataset.table' or 'hub.dataset.table'"
                    )));
                }
            };
            if !read.contains(&t) {
                read.push(t);
            }
        }
        Ok((statement.to_string(), read))
    }

    /// Runs a single query and streams its rows (for large results).
    pub async fn stream(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        let mut statements = parse(sql)?;
        if statements.len() != 1 || !matches!(statements[0], Statement::Query(_)) {
            return Err(SqlError::Invalid(
                "streaming takes exactly one SELECT query".into(),
            ));
        }
        let mut statement = statements.remove(0);
        principal_sql::bind_statement(&mut statement, self.principal())?;
        let text = statement.to_string();
        match self.plan_at(statement).await {
            Ok(df) => Ok(df.execute_stream().await?),
            Err(e) => Err(self.name_locations(e, &text).await),
        }
    }

    async fn run(&self, mut statement: Statement) -> Result<QueryOutput> {
        // A view keeps `current_user()` unbound: it is bound for whoever queries the view.
        if !matches!(statement, Statement::CreateView(_)) {
            principal_sql::bind_statement(&mut statement, self.principal())?;
        }
        if let Statement::Explain {
            statement: inner, ..
        } = &statement
            && !matches!(inner.as_ref(), Statement::Query(_))
        {
            // DataFusion would plan (and with ANALYZE run) the write itself, around Basin's
            // write path and its checks.
            return Err(SqlError::Unsupported(
                "EXPLAIN works on queries (SELECT …) only, not on statements that write".into(),
            ));
        }
        match statement {
            Statement::Query(_) | Statement::Explain { .. } => {
                let df = self.plan_at(statement).await?;
                let schema = Arc::new(df.schema().as_arrow().clone());
                let batches: Vec<RecordBatch> = df.execute_stream().await?.try_collect().await?;
                Ok(QueryOutput { schema, batches })
            }
            s if browse::handles(&s) => browse::run(self, s).await,
            other => dml::run(self, other).await,
        }
    }

    /// A DataFrame over one table provider, in the engine's session.
    pub(crate) fn read(&self, provider: Arc<dyn TableProvider>) -> Result<DataFrame> {
        Ok(SessionContext::new_with_state(self.base.clone()).read_table(provider)?)
    }

    /// [`Engine::plan`] of a statement as the user wrote it: an error gets the position the
    /// planner gives, or, for a table that is missing (or hidden), where the statement names it.
    async fn plan_at(&self, statement: Statement) -> Result<DataFrame> {
        let mut named = Vec::new();
        let _ = datafusion::sql::sqlparser::ast::visit_relations(&statement, |name| {
            let start = datafusion::sql::sqlparser::ast::Spanned::span(name).start;
            if let Ok(t) = resolve::table_ref_of(name)
                && start.line > 0
            {
                named.push((
                    t.to_string(),
                    crate::Position {
                        line: start.line,
                        column: start.column,
                    },
                ));
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        self.plan_placed(statement)
            .await
            .map_err(|(e, at)| match &e {
                SqlError::NotFound {
                    kind: "table",
                    name,
                    ..
                } if at.is_none() => {
                    let at = named.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
                    e.at(at)
                }
                _ => e.at(at),
            })
    }

    /// Plans a query (or any statement DataFusion plans) against the tables it names.
    pub(crate) async fn plan(&self, statement: Statement) -> Result<DataFrame> {
        self.plan_placed(statement).await.map_err(|(e, _)| e)
    }

    /// [`Engine::plan`], a planning error with the position DataFusion gives it.
    async fn plan_placed(
        &self,
        mut statement: Statement,
    ) -> std::result::Result<DataFrame, (SqlError, Option<crate::Position>)> {
        let catalogs = resolve::statement_catalog(self, &mut statement)
            .await
            .map_err(|e| (e, None))?;
        // A pool per statement: the limit is per query, not shared by all queries.
        let state = SessionStateBuilder::new_from_existing(self.base.clone())
            .with_catalog_list(catalogs)
            .with_runtime_env(runtime(
                Some(self.base.runtime_env().as_ref()),
                self.memory_limit,
            ))
            .build();
        let plan = state
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                statement,
            )))
            .await
            .map_err(|e| {
                let at = crate::error::Position::of_diagnostic(&e);
                (SqlError::from(e), at)
            })?;
        Ok(DataFrame::new(state, plan))
    }
}

/// A session for the source of a governed scan. The governed scan hands it a bare table scan
/// whose columns and pruning hints it has chosen itself, and adds the policy's filter and
/// projection on top; the query around it is optimized in full already. So no optimizer rule
/// runs here but the one that keeps the source's stream cooperative: a second full optimizer
/// pass used to be most of the planning cost of a policy.
fn scan_planner(base: &SessionState) -> SessionState {
    SessionStateBuilder::new_from_existing(base.clone())
        .with_optimizer_rules(vec![])
        .with_physical_optimizer_rules(vec![Arc::new(
            datafusion::physical_optimizer::ensure_coop::EnsureCooperative::new(),
        )])
        .build()
}

/// The start of a statement, for saying which statement of a script failed.
fn beginning(text: &str) -> String {
    const SHOWN: usize = 40;
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{} …", text[..at].trim_end()),
        None => text,
    }
}

/// Whether `schema` is one of the virtual schemas (`system`, `information_schema`), which are
/// not datasets of a hub.
fn is_virtual_schema(schema: &str) -> bool {
    [crate::system::SCHEMA, crate::system::INFORMATION_SCHEMA].contains(&schema)
}

/// Parses SQL text into statements.
pub(crate) fn parse(sql: &str) -> Result<Vec<Statement>> {
    crate::dialect::parse_statements(sql).map_err(|e| SqlError::Parse(e.to_string()))
}
