use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use basin_catalog::Catalog;
use basin_catalog::access::Principal;
use basin_core::DEFAULT_HUB;
use basin_keys::HubKey;
use basin_tables::{Actor, Tables};
use datafusion::catalog::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::parser::Parser;
use futures::TryStreamExt;

use crate::dialect::BasinDialect;
use crate::{Result, SqlError, dml, governance, principal_sql, resolve};

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
}

impl Engine {
    /// An engine over the tables of a catalog; its writes go through `tables`.
    pub fn new(tables: Tables) -> Self {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(DEFAULT_HUB, "default")
            .with_information_schema(false)
            .with_create_default_catalog_and_schema(false);
        let base = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
            .build();
        Engine {
            tables,
            scan_planner: Arc::new(scan_planner(&base)),
            base,
            principal: None,
            origin: "cli".into(),
        }
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
        let statements = parse(sql)?;
        let mut last = None;
        for statement in statements {
            last = Some(self.run(statement).await?);
        }
        last.ok_or_else(|| SqlError::Parse("the SQL text has no statement".into()))
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
        let df = self.plan(statement).await?;
        Ok(df.execute_stream().await?)
    }

    async fn run(&self, mut statement: Statement) -> Result<QueryOutput> {
        principal_sql::bind_statement(&mut statement, self.principal())?;
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
                let df = self.plan(statement).await?;
                let schema = Arc::new(df.schema().as_arrow().clone());
                let batches: Vec<RecordBatch> = df.execute_stream().await?.try_collect().await?;
                Ok(QueryOutput { schema, batches })
            }
            other => dml::run(self, other).await,
        }
    }

    /// A DataFrame over one table provider, in the engine's session.
    pub(crate) fn read(&self, provider: Arc<dyn TableProvider>) -> Result<DataFrame> {
        Ok(SessionContext::new_with_state(self.base.clone()).read_table(provider)?)
    }

    /// Plans a query (or any statement DataFusion plans) against the tables it names.
    pub(crate) async fn plan(&self, mut statement: Statement) -> Result<DataFrame> {
        let catalogs = resolve::statement_catalog(self, &mut statement).await?;
        let state = SessionStateBuilder::new_from_existing(self.base.clone())
            .with_catalog_list(catalogs)
            .build();
        let plan = state
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                statement,
            )))
            .await?;
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

/// Parses SQL text into statements.
pub(crate) fn parse(sql: &str) -> Result<Vec<Statement>> {
    Parser::parse_sql(&BasinDialect, sql).map_err(|e| SqlError::Parse(e.to_string()))
}
