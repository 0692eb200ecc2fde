//! A table's change data feed as a DataFusion table.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

/// delta-rs's change feed, whose scan may hold a file scan of no partitions (a kind of change
/// no version made): such a scan becomes an empty one, which sorts and joins accept.
#[derive(Debug)]
pub(crate) struct Changes(pub(crate) Arc<dyn TableProvider>);

#[async_trait]
impl TableProvider for Changes {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.0.scan(state, projection, filters, limit).await?;
        let plan = plan.transform_up(|p| {
            if p.children().is_empty()
                && p.properties().output_partitioning().partition_count() == 0
            {
                let empty: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(p.schema()));
                Ok(Transformed::yes(empty))
            } else {
                Ok(Transformed::no(p))
            }
        })?;
        Ok(plan.data)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }
}
