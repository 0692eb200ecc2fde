//! Governed tables: the only way a principal's query reads a Delta table.
//!
//! A [`GovernedTable`] wraps the table's provider and applies the principal's policy inside its
//! own scan — row filter first, then decryption and masks, then the column restriction — and
//! shows only the visible columns to the planner. A user's predicate reaches the scan only when it
//! is *leakproof* (a comparison of an unprotected column with a literal, `IS [NOT] NULL`,
//! `IN (literals)`); anything else runs above the policy, on admitted rows only. The scan's inner
//! plan is hidden from `EXPLAIN`.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use basin_catalog::access::{Mask, TablePolicy};
use basin_lake::HubKey;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::{TableType, provider_as_source};
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, LogicalPlanBuilder, Operator, TableProviderFilterPushDown,
    cast,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::projection::ProjectionExec;
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
    /// One expression per visible column, over the inner table's columns.
    outputs: Vec<Expr>,
    /// Visible columns shown as stored (no mask, no encryption): filters on them may be pushed.
    open_columns: HashSet<String>,
}

impl GovernedTable {
    /// Wraps `inner` (the Delta table `name`) in `policy`. `key` decrypts PII columns for
    /// principals who see them in clear; `state` parses the policy's SQL.
    pub(crate) fn try_new(
        name: String,
        inner: Arc<dyn TableProvider>,
        policy: &TablePolicy,
        key: Option<&HubKey>,
        principal: Option<&basin_catalog::access::Principal>,
        state: &datafusion::execution::SessionState,
    ) -> Result<Self> {
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
        let row_filter = policy
            .row_filter
            .as_deref()
            .map(|f| parse(f, "row filter"))
            .transpose()?;
        let mut outputs = Vec::new();
        let mut fields = Vec::new();
        let mut open_columns = HashSet::new();
        for c in &policy.columns {
            let Ok(field) = inner_schema.field_with_name(&c.name) else {
                continue; // not in this version of the table (time travel)
            };
            let clear = c.pii && (policy.unmask || c.mask.is_some());
            let base = match (clear, key) {
                (true, Some(k)) => {
                    basin_lake::crypto::decrypt_udf(k.clone()).call(vec![col(&c.name)])
                }
                (true, None) => {
                    return Err(SqlError::Invalid(format!(
                        "table '{name}' has encrypted columns but no keystore is open"
                    )));
                }
                (false, _) => col(&c.name),
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
            let (_, out) = expr.to_field(&df_schema)?;
            let (data_type, nullable) = (out.data_type().clone(), out.is_nullable());
            if c.mask.is_none() && !clear {
                open_columns.insert(c.name.clone());
            }
            fields.push(Field::new(&c.name, data_type, nullable || c.mask.is_some()));
            outputs.push(expr.alias(&c.name));
        }
        Ok(GovernedTable {
            name,
            inner,
            schema: Arc::new(Schema::new(fields)),
            row_filter,
            outputs,
            open_columns,
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
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let pushed: Vec<Expr> = filters
            .iter()
            .filter(|f| self.leakproof(f))
            .cloned()
            .collect();
        let mut plan = LogicalPlanBuilder::scan_with_filters(
            self.name.as_str(),
            provider_as_source(self.inner.clone()),
            None,
            pushed,
        )?;
        if let Some(f) = &self.row_filter {
            plan = plan.filter(f.clone())?;
        }
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.outputs.len()).collect(),
        };
        // A scan that needs no column (COUNT(*)) still needs rows: project one, drop it below.
        let planned: Vec<Expr> = if wanted.is_empty() {
            vec![
                cast(
                    Expr::Literal(ScalarValue::Boolean(Some(true)), None),
                    arrow::datatypes::DataType::Boolean,
                )
                .alias("_row"),
            ]
        } else {
            wanted.iter().map(|i| self.outputs[*i].clone()).collect()
        };
        plan = plan.project(planned)?;
        if limit.is_some() {
            plan = plan.limit(0, limit)?;
        }
        let mut physical = state.create_physical_plan(&plan.build()?).await?;
        if wanted.is_empty() {
            physical = Arc::new(ProjectionExec::try_new(
                Vec::<datafusion::physical_plan::projection::ProjectionExpr>::new(),
                physical,
            )?);
        }
        Ok(Arc::new(GovernedExec::new(self.name.clone(), physical)))
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
