//! A table's latest version together with the streamed records this node has acknowledged but
//! not yet committed: what every read of the latest version scans, so that a record is
//! queryable as soon as it is acknowledged. The governed scan wraps it like any table, so the
//! buffered rows are filtered, masked and decrypted exactly like committed ones.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;

use crate::Result;

/// A table's scan unioned with rows held in memory.
#[derive(Debug)]
pub(crate) struct WithPending {
    table: Arc<dyn TableProvider>,
    rows: Vec<RecordBatch>,
}

impl WithPending {
    /// `rows` (in the table's stored form, perhaps from before a column was added) over
    /// `table`.
    pub(crate) fn new(table: Arc<dyn TableProvider>, rows: Vec<RecordBatch>) -> Result<Self> {
        let schema = table.schema();
        let rows = rows
            .iter()
            .map(|b| basin_lake::evolution::conform(b, &schema))
            .collect::<std::result::Result<_, _>>()?;
        Ok(WithPending { table, rows })
    }
}

#[async_trait]
impl TableProvider for WithPending {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        self.table.table_type()
    }

    /// The buffered rows are not filtered by the scan: every filter stays above it.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(self
            .table
            .supports_filters_pushdown(filters)?
            .into_iter()
            .map(|p| match p {
                TableProviderFilterPushDown::Exact => TableProviderFilterPushDown::Inexact,
                other => other,
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
        let committed = self.table.scan(state, projection, filters, limit).await?;
        let buffered = MemorySourceConfig::try_new_exec(
            &[self.rows.clone()],
            self.schema(),
            projection.cloned(),
        )?;
        UnionExec::try_new(vec![committed, buffered])
    }
}
