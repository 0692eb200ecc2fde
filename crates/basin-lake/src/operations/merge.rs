use std::sync::Arc;

use datafusion::common::Column;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{DataFrame, Expr, cast};
use deltalake::operations::merge::{DeleteBuilder, InsertBuilder, UpdateBuilder};

use crate::error::Context;
use crate::evolution;
use crate::{LakeTable, Result};

/// One `WHEN …` clause of a merge. Expressions are SQL over the target and source aliases.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeClause {
    /// `WHEN MATCHED [AND p] THEN UPDATE SET …`; an empty `set` updates every source column.
    MatchedUpdate {
        predicate: Option<String>,
        set: Vec<(String, String)>,
    },
    /// `WHEN MATCHED [AND p] THEN DELETE`.
    MatchedDelete { predicate: Option<String> },
    /// `WHEN NOT MATCHED [AND p] THEN INSERT …`; empty `values` inserts every source column.
    NotMatchedInsert {
        predicate: Option<String>,
        values: Vec<(String, String)>,
    },
    /// `WHEN NOT MATCHED BY SOURCE [AND p] THEN UPDATE SET …`.
    NotMatchedBySourceUpdate {
        predicate: Option<String>,
        set: Vec<(String, String)>,
    },
    /// `WHEN NOT MATCHED BY SOURCE [AND p] THEN DELETE`.
    NotMatchedBySourceDelete { predicate: Option<String> },
}

impl MergeClause {
    /// Whether the clause writes every source column by name (an upsert, `INSERT *`): only
    /// such a merge brings the source's new columns and wider types into the table.
    fn writes_every_source_column(&self) -> bool {
        match self {
            MergeClause::MatchedUpdate { set, .. } => set.is_empty(),
            MergeClause::NotMatchedInsert { values, .. } => values.is_empty(),
            _ => false,
        }
    }
}

/// Row counts of a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeOutcome {
    pub version: i64,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

/// Merges a source into a table in one commit (upserts are merges on the key).
pub struct MergeTable {
    table: LakeTable,
    source: DataFrame,
    predicate: String,
    clauses: Vec<MergeClause>,
    target_alias: String,
    source_alias: String,
    load_id: Option<String>,
    operation: String,
}

impl MergeTable {
    pub(crate) fn new(table: LakeTable, source: DataFrame, predicate: String) -> Self {
        MergeTable {
            table,
            source,
            predicate,
            clauses: Vec::new(),
            target_alias: "target".into(),
            source_alias: "source".into(),
            load_id: None,
            operation: "merge".into(),
        }
    }

    /// An upsert of `source` into `table` on the key columns: new keys are inserted, existing
    /// keys updated with every column of the source.
    pub fn upsert(table: &LakeTable, source: DataFrame, key: &[String]) -> Result<Self> {
        if key.is_empty() {
            return Err(crate::LakeError::InvalidInput(
                "an upsert needs a primary key; give the table one (--key) first".into(),
            ));
        }
        let schema = table.schema()?;
        for k in key {
            for (what, fields) in [
                ("the table", schema.fields()),
                ("the new data", source.schema().inner().fields()),
            ] {
                if !fields.iter().any(|f| f.name() == k) {
                    return Err(crate::LakeError::UnknownColumn {
                        column: k.clone(),
                        context: format!("{what} (it is part of the primary key)"),
                        suggestion: basin_core::closest(
                            k,
                            fields.iter().map(|f| f.name().as_str()),
                        )
                        .map(str::to_string),
                    });
                }
            }
        }
        let predicate = key
            .iter()
            .map(|k| format!("target.\"{k}\" = source.\"{k}\""))
            .collect::<Vec<_>>()
            .join(" AND ");
        Ok(MergeTable::new(table.clone(), source, predicate)
            .with_clause(MergeClause::MatchedUpdate {
                predicate: None,
                set: vec![],
            })
            .with_clause(MergeClause::NotMatchedInsert {
                predicate: None,
                values: vec![],
            })
            .with_operation("upsert"))
    }

    /// Adds a clause; clauses of one kind are tried in the order given.
    pub fn with_clause(mut self, clause: MergeClause) -> Self {
        self.clauses.push(clause);
        self
    }

    /// Names the target and source in the predicate and clauses (default `target`, `source`).
    pub fn with_aliases(mut self, target: impl Into<String>, source: impl Into<String>) -> Self {
        self.target_alias = target.into();
        self.source_alias = source.into();
        self
    }

    /// Makes the merge idempotent with a load id (see [`crate::WriteTable::with_load_id`]).
    pub fn with_load_id(mut self, load_id: Option<String>) -> Self {
        self.load_id = load_id;
        self
    }

    /// Names the operation in the commit metadata.
    pub fn with_operation(mut self, operation: impl Into<String>) -> Self {
        self.operation = operation.into();
        self
    }

    /// Runs the merge.
    pub async fn execute(self) -> Result<MergeOutcome> {
        let mut table = self.table;
        if let Some(id) = &self.load_id {
            if table.has_load(id).await? {
                return Ok(MergeOutcome {
                    version: table.version(),
                    ..Default::default()
                });
            }
        }
        let location = table.location().to_string();
        // A merge with explicit assignments writes only the target's columns: the source's
        // other columns (`s.id` feeding `order_id`) are not the table's business.
        let evolves = self
            .clauses
            .iter()
            .any(MergeClause::writes_every_source_column);
        let plan = match evolves {
            true => evolution::plan(table.schema()?.as_ref(), self.source.schema().inner())?,
            false => evolution::unchanged(table.schema()?.as_ref()),
        };
        if !plan.widened.is_empty() {
            // Widen the table's columns first (one commit that rewrites the rows with the new
            // types and changes nothing else), then merge into the widened table.
            let widened: Vec<_> = plan
                .target
                .fields()
                .iter()
                .filter(|f| plan.widened.iter().any(|(name, _, _)| name == f.name()))
                .cloned()
                .collect();
            let schema = Arc::new(arrow::datatypes::Schema::new(widened));
            let empty = Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            ));
            table
                .write(empty)
                .with_operation("widen columns")
                .execute()
                .await?;
            table = LakeTable::open(&location).await?;
        }
        // Source columns take the table's (possibly widened) types; new columns keep theirs.
        let source = if evolves {
            conform_source(self.source, &plan.target)?
        } else {
            self.source
        };
        let source_columns: Vec<String> = source
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let (t, s) = (self.target_alias.clone(), self.source_alias.clone());
        // No assignments given: every source column, by name.
        let or_every_source_column = |pairs: Vec<(String, String)>| {
            if !pairs.is_empty() {
                return pairs;
            }
            let every = source_columns
                .iter()
                .map(|c| (format!("\"{c}\""), format!("{s}.\"{c}\"")));
            every.collect::<Vec<_>>()
        };

        let ctx = super::session_for(&table);
        let mut builder = table
            .delta
            .clone()
            .merge(source, self.predicate.as_str())
            .with_target_alias(&t)
            .with_source_alias(&s)
            .with_merge_schema(!plan.added.is_empty())
            .with_session_state(Arc::new(ctx.state()))
            .with_commit_properties(super::commit_properties(
                &self.operation,
                self.load_id.as_deref(),
            ));
        let action = || format!("merging into table at {location}");
        for clause in self.clauses {
            builder = match clause {
                MergeClause::MatchedUpdate { predicate, set } => {
                    let set = or_every_source_column(set);
                    builder.when_matched_update(|u| {
                        assignments(
                            u,
                            predicate,
                            set,
                            UpdateBuilder::predicate,
                            UpdateBuilder::update,
                        )
                    })
                }
                MergeClause::MatchedDelete { predicate } => {
                    builder.when_matched_delete(|d| match predicate {
                        Some(p) => d.predicate(p),
                        None => d,
                    })
                }
                MergeClause::NotMatchedInsert { predicate, values } => {
                    let values = or_every_source_column(values);
                    builder.when_not_matched_insert(|i| {
                        assignments(
                            i,
                            predicate,
                            values,
                            InsertBuilder::predicate,
                            InsertBuilder::set,
                        )
                    })
                }
                MergeClause::NotMatchedBySourceUpdate { predicate, set } => builder
                    .when_not_matched_by_source_update(|u| {
                        assignments(
                            u,
                            predicate,
                            set,
                            UpdateBuilder::predicate,
                            UpdateBuilder::update,
                        )
                    }),
                MergeClause::NotMatchedBySourceDelete { predicate } => builder
                    .when_not_matched_by_source_delete(|d: DeleteBuilder| match predicate {
                        Some(p) => d.predicate(p),
                        None => d,
                    }),
            }
            .ctx(action)?;
        }
        let (delta, metrics) = builder.await.ctx(action)?;
        Ok(MergeOutcome {
            version: crate::table::version_of(&delta),
            inserted: metrics.num_target_rows_inserted as u64,
            updated: metrics.num_target_rows_updated as u64,
            deleted: metrics.num_target_rows_deleted as u64,
        })
    }
}

fn assignments<B>(
    builder: B,
    predicate: Option<String>,
    pairs: Vec<(String, String)>,
    with_predicate: fn(B, String) -> B,
    assign: fn(B, String, String) -> B,
) -> B {
    let builder = match predicate {
        Some(p) => with_predicate(builder, p),
        None => builder,
    };
    pairs
        .into_iter()
        .fold(builder, |b, (column, value)| assign(b, column, value))
}

fn conform_source(source: DataFrame, target: &arrow::datatypes::SchemaRef) -> Result<DataFrame> {
    let exprs: Vec<Expr> = source
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let column = Expr::Column(Column::from_name(f.name()));
            match target.field_with_name(f.name()) {
                Ok(t) if t.data_type() != f.data_type() => {
                    cast(column, t.data_type().clone()).alias(f.name())
                }
                _ => column,
            }
        })
        .collect();
    source
        .select(exprs)
        .ctx(|| "preparing the merge source".into())
}
