//! Governed tables: the only way a principal's query reads a Delta table.
//!
//! A [`GovernedTable`] wraps the table's provider and applies the principal's policy inside its
//! own scan — row filter first, then decryption and masks, then the column restriction — and
//! shows only the visible columns to the planner. A user's predicate reaches the scan only when it
//! is *leakproof* (a comparison of an unprotected column with a literal, `IS [NOT] NULL`,
//! `IN (literals)`); anything else runs above the policy, on admitted rows only. The scan's inner
//! plan is hidden from `EXPLAIN`.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use basin_catalog::access::{Mask, TablePolicy};
use basin_keys::HubKey;
use basin_tables::pii::{self, Direction};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::{TableType, provider_as_source};
use datafusion::error::Result as DfResult;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, LogicalPlanBuilder, Operator, TableProviderFilterPushDown,
};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};
use datafusion::prelude::col;

use crate::principal_sql::bind_principal;
use crate::{Result, SqlError};

/// A table seen through a principal's policy.
#[derive(Debug)]
pub(crate) struct GovernedTable {
    name: String,
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    row_filter: Option<Expr>,
    /// One expression per visible column (named as in `schema`), over the inner table's columns.
    outputs: Vec<Expr>,
    /// Visible columns shown as stored (no mask, no encryption): filters on them may be pushed.
    open_columns: HashSet<String>,
    /// Parses the policy's SQL and plans the scan's inside.
    planner: Arc<SessionState>,
}

impl GovernedTable {
    /// Wraps `inner` (the Delta table `name`) in `policy`. `key` decrypts PII columns for
    /// principals who see them in clear; `planner` parses the policy's SQL and plans the scan.
    pub(crate) fn try_new(
        name: String,
        inner: Arc<dyn TableProvider>,
        policy: &TablePolicy,
        key: Option<&HubKey>,
        principal: Option<&basin_catalog::access::Principal>,
        planner: Arc<SessionState>,
    ) -> Result<Self> {
        let state = planner.as_ref();
        let inner_schema = inner.schema();
        let df_schema = DFSchema::try_from(inner_schema.as_ref().clone())?;
        let parse = |sql: &str, what: &str| -> Result<Expr> {
            let sql = bind_principal(sql, principal)?;
            state.create_logical_expr(&sql, &df_schema).map_err(|e| {
                SqlError::Invalid(format!(
                    "the {what} of table '{name}' is not a valid SQL expression ({e}); an administrator must fix it"
                ))
            })
        };
        // The scan's inside is planned without the analyzer: expressions get their casts here.
        let coercer = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(Arc::new(df_schema.clone()))
                .build(),
        );
        // Functions such as coalesce() only run once simplified (into CASE), as the optimizer
        // does for the rest of the query.
        let coerce = |e: Expr| coercer.simplify(coercer.coerce(e, &df_schema)?);
        let row_filter = policy
            .row_filter
            .as_deref()
            .map(|f| -> Result<Expr> { Ok(coerce(parse(f, "row filter")?)?) })
            .transpose()?;
        let mut outputs = Vec::new();
        let mut fields = Vec::new();
        let mut open_columns = HashSet::new();
        for c in &policy.columns {
            let Ok(field) = inner_schema.field_with_name(&c.name) else {
                continue; // not in this version of the table (time travel)
            };
            // A PII column is read through the current policy, in every version: decrypted for
            // those who may see it in clear (or through a mask), tokens for everyone else. A
            // value stored before the column became PII (an older version, or a restore of one)
            // is clear text: shown as it is to the former, as its token to the latter.
            let clear = c.pii && (c.clear || c.mask.is_some());
            let direction = match (c.pii, clear) {
                (false, _) => None,
                (true, true) => Some(Direction::Reveal),
                (true, false) => Some(Direction::Shield),
            };
            let base = match (direction, key) {
                (Some(d), Some(k)) => pii::udf(k.clone(), d).call(vec![col(&c.name)]),
                (Some(_), None) => {
                    return Err(SqlError::Invalid(format!(
                        "table '{name}' has encrypted columns but no keystore is open"
                    )));
                }
                (None, _) => col(&c.name),
            };
            let expr = match &c.mask {
                None => base,
                Some(Mask::Null) => {
                    let null = ScalarValue::try_from(field.data_type())?;
                    Expr::Literal(if clear { ScalarValue::Utf8(None) } else { null }, None)
                }
                Some(mask) => {
                    let sql = match mask {
                        Mask::Hash => {
                            format!("encode(sha256(CAST(\"{0}\" AS VARCHAR)), 'hex')", c.name)
                        }
                        Mask::KeepLast(n) => format!(
                            "concat(repeat('*', greatest(character_length(CAST(\"{0}\" AS VARCHAR)) - {n}, 0)), right(CAST(\"{0}\" AS VARCHAR), {n}))",
                            c.name
                        ),
                        Mask::Expr(e) => e.clone(),
                        Mask::Null => unreachable!("handled above"),
                    };
                    let masked = parse(&sql, &format!("mask of column '{}'", c.name))?;
                    // The mask sees the column in clear where the principal may decrypt it.
                    masked
                        .transform_up(|e| match &e {
                            Expr::Column(x) if x.name == c.name => {
                                Ok(Transformed::yes(base.clone()))
                            }
                            _ => Ok(Transformed::no(e)),
                        })?
                        .data
                }
            };
            let expr = coerce(expr)?;
            let (_, out) = expr.to_field(&df_schema)?;
            let (data_type, nullable) = (out.data_type().clone(), out.is_nullable());
            if c.mask.is_none() && !c.pii {
                open_columns.insert(c.name.clone());
            }
            fields.push(Field::new(&c.name, data_type, nullable || c.mask.is_some()));
            outputs.push(expr);
        }
        // A change data feed's own columns (which change, in which version) are not the
        // table's: they pass through as they are.
        for name in basin_lake::CHANGE_COLUMNS {
            if let Ok(field) = inner_schema.field_with_name(name) {
                open_columns.insert(name.to_string());
                fields.push(field.clone());
                outputs.push(col(name));
            }
        }
        Ok(GovernedTable {
            name,
            inner,
            schema: Arc::new(Schema::new(fields)),
            row_filter,
            outputs,
            open_columns,
            planner,
        })
    }

    /// Whether a predicate may run below the policy: it cannot fail and reads only open columns.
    fn leakproof(&self, e: &Expr) -> bool {
        let open = |e: &Expr| matches!(e, Expr::Column(c) if self.open_columns.contains(&c.name));
        let literal = |e: &Expr| matches!(e, Expr::Literal(..));
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And | Operator::Or => self.leakproof(left) && self.leakproof(right),
                Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq => {
                    (open(left) && literal(right)) || (literal(left) && open(right))
                }
                _ => false,
            },
            Expr::IsNull(x) | Expr::IsNotNull(x) => open(x),
            Expr::InList(l) => open(&l.expr) && l.list.iter().all(literal),
            _ => false,
        }
    }
}

#[async_trait]
impl TableProvider for GovernedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.leakproof(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.outputs.len()).collect(),
        };
        // The source reads only the columns the policy and the query need; the row filter goes
        // to it as a pruning hint, but is enforced here, whatever the source claims to apply.
        let inner_schema = self.inner.schema();
        let mut needed: BTreeSet<usize> = wanted
            .iter()
            .map(|i| &self.outputs[*i])
            .chain(self.row_filter.as_ref())
            .flat_map(|e| e.column_refs())
            .filter_map(|c| inner_schema.index_of(&c.name).ok())
            .collect();
        if needed.is_empty() {
            needed.insert(0); // a scan that needs no column (COUNT(*)) still needs rows
        }
        let hints: Vec<Expr> = filters
            .iter()
            .filter(|f| self.leakproof(f))
            .chain(self.row_filter.as_ref())
            .cloned()
            .collect();
        let source = LogicalPlanBuilder::scan_with_filters(
            self.name.as_str(),
            provider_as_source(self.inner.clone()),
            Some(needed.into_iter().collect()),
            hints,
        )?
        .build()?;
        let mut plan = self.planner.create_physical_plan(&source).await?;
        let scanned = DFSchema::try_from(plan.schema().as_ref().clone())?;
        if let Some(f) = &self.row_filter {
            let predicate = self.planner.create_physical_expr(f.clone(), &scanned)?;
            plan = Arc::new(FilterExec::try_new(predicate, plan)?);
        }
        let outputs = wanted
            .iter()
            .map(|i| {
                let expr = self
                    .planner
                    .create_physical_expr(self.outputs[*i].clone(), &scanned)?;
                Ok(ProjectionExpr::new(expr, self.schema.field(*i).name()))
            })
            .collect::<DfResult<Vec<_>>>()?;
        let plan = Arc::new(ProjectionExec::try_new(outputs, plan)?);
        Ok(Arc::new(GovernedExec::new(self.name.clone(), plan)))
    }
}

/// Runs a governed scan's inner plan as a leaf, so that neither optimizers nor `EXPLAIN` see
/// (or move anything into) the policy.
#[derive(Debug)]
struct GovernedExec {
    name: String,
    inner: Arc<dyn ExecutionPlan>,
}

impl GovernedExec {
    fn new(name: String, inner: Arc<dyn ExecutionPlan>) -> Self {
        GovernedExec { name, inner }
    }
}

impl DisplayAs for GovernedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "GovernedScan: {}", self.name)
    }
}

impl ExecutionPlan for GovernedExec {
    fn name(&self) -> &str {
        "GovernedScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.inner.execute(partition, context)
    }
}

/// A table a principal may read whole: the Delta table's own scan (every pushdown and
/// statistic), but nothing that writes. A plan a user submits must never reach the raw table's
/// `insert_into`, which would write around the write path.
#[derive(Debug)]
pub(crate) struct ReadOnlyTable(pub(crate) Arc<dyn TableProvider>);

#[async_trait]
impl TableProvider for ReadOnlyTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        self.0.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<datafusion::common::Statistics> {
        self.0.statistics()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }
}
