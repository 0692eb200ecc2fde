//! Column-level lineage of models: derived from a model's query plan when it runs, kept with
//! the model's record (so that reading lineage plans nothing), and read back as the principal
//! may see it.

use std::collections::HashSet;

use basin_core::TableRef;
use basin_pipelines::ModelSpec;
use basin_sql::column_lineage::{self, QueryLineage};
use basin_sql::lineage::{ColumnLineageEdge, LineageEdge, MODEL_COLUMN_LINEAGE};

use crate::models::Direction;
use crate::{Result, Session};

impl Session {
    /// The column lineage of the model `spec` that builds `t`, planned as this principal (the
    /// model's owner), and recorded with the model when it changed. `None` when the query does
    /// not plan now (its run will say why).
    pub(crate) async fn record_column_lineage(
        &self,
        t: &TableRef,
        spec: &ModelSpec,
    ) -> Option<QueryLineage> {
        let lineage = match column_lineage::of_query(self.engine(), &spec.query).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(model = %t, "no column lineage: {e}");
                return None;
            }
        };
        let catalog = self.engine().catalog();
        let value = serde_json::to_value(&lineage).ok()?;
        match catalog.model(t).await {
            // Only onto the record of the query just planned (an apply may have changed it).
            Ok(Some(mut m))
                if m.spec["query"] == spec.query
                    && m.spec.get(MODEL_COLUMN_LINEAGE) != Some(&value) =>
            {
                m.spec[MODEL_COLUMN_LINEAGE] = value;
                if let Err(e) = catalog.put_model(&m).await {
                    tracing::warn!(model = %t, "could not record the model's column lineage: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(model = %t, "could not record the model's column lineage: {e}")
            }
        }
        Some(lineage)
    }

    /// The lineage within `depth` steps of table `t` in `direction` ([`Session::lineage`]),
    /// with the column edges along those table edges — only columns the principal sees.
    pub async fn lineage_with_columns(
        &self,
        t: &TableRef,
        direction: Direction,
        depth: usize,
    ) -> Result<(Vec<LineageEdge>, Vec<ColumnLineageEdge>)> {
        let edges = self.lineage(t, direction, depth).await?;
        let pairs: HashSet<(&str, &str)> = edges
            .iter()
            .map(|e| (e.upstream.as_str(), e.downstream.as_str()))
            .collect();
        let columns = basin_sql::lineage::column_edges(self.engine())
            .await?
            .into_iter()
            .filter(|c| pairs.contains(&(c.upstream.as_str(), c.downstream.as_str())))
            .collect();
        Ok((edges, columns))
    }
}
