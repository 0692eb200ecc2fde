//! `EXCEPT ALL` and `INTERSECT ALL` with their SQL meaning.
//!
//! DataFusion plans both as a semi or anti join on every column (apache/datafusion#12955,
//! #12956), which keeps or drops *every* copy of a row that the other side holds once: `{1, 1,
//! 2} EXCEPT ALL {1}` gives `{2}`, not `{1, 2}`. delta-rs computes an `UPDATE`'s change feed as
//! such a difference between the rewritten files' rows before and after, so an update of one
//! of two equal rows lost its images, and incremental models that read the feed missed keys.
//!
//! The rule numbers the copies of each row on both sides (`row_number()` over all columns) and
//! joins on the number too: the k-th copy of a row is dropped (`EXCEPT ALL`) or kept
//! (`INTERSECT ALL`) when the other side holds at least k copies — `max(m - n, 0)` and
//! `min(m, n)` copies, as the standard says.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, NullEquality, Result};
use datafusion::config::ConfigOptions;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{ExprFunctionExt, JoinType, LogicalPlan, LogicalPlanBuilder};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::Expr;

/// The column that numbers the copies of a row while the rule's join runs.
const COPY: &str = "__basin_copy";

/// The analyzer rule; add it, before type coercion, to every session that plans SQL or
/// delta-rs operations ([`with_multiset_rule`]).
#[derive(Debug, Default)]
pub struct MultisetSetOperations;

impl AnalyzerRule for MultisetSetOperations {
    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        Ok(rewrite(plan)?.data)
    }

    fn name(&self) -> &str {
        "basin_multiset_set_operations"
    }
}

/// `plan` with its set operations rewritten. The plain forms (`EXCEPT`, `INTERSECT`) are
/// rewritten too and stay right: their left side is made distinct first, so each row is one
/// copy.
fn rewrite(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    plan.map_subqueries(rewrite)?
        .transform_data(|p| p.map_children(rewrite))?
        .transform_data(|p| match set_operation(&p) {
            Some(keys) => counted(p, keys).map(Transformed::yes),
            None => Ok(Transformed::no(p)),
        })
}

/// The column pairs of a join that DataFusion made of an `EXCEPT ALL` or `INTERSECT ALL`: a
/// semi or anti join on every column, nulls equal, nothing else (a join the query wrote has
/// its condition as a filter here, and nulls never equal). The rule runs before type coercion,
/// so the keys are still plain columns.
fn set_operation(plan: &LogicalPlan) -> Option<Vec<(Column, Column)>> {
    let LogicalPlan::Join(j) = plan else {
        return None;
    };
    let set_like = matches!(j.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        && j.null_equality == NullEquality::NullEqualsNull
        && j.filter.is_none()
        && !j.null_aware
        && j.on.len() == j.left.schema().fields().len()
        && j.on.len() == j.right.schema().fields().len()
        && !j.left.schema().has_column_with_unqualified_name(COPY)
        && !j.right.schema().has_column_with_unqualified_name(COPY);
    if !set_like {
        return None;
    }
    j.on.iter()
        .map(|(l, r)| match (l, r) {
            (Expr::Column(l), Expr::Column(r)) => Some((l.clone(), r.clone())),
            _ => None,
        })
        .collect()
}

/// The join with each side's copies numbered and joined on that number too.
fn counted(plan: LogicalPlan, keys: Vec<(Column, Column)>) -> Result<LogicalPlan> {
    let LogicalPlan::Join(j) = plan else {
        unreachable!("set_operation only matches joins")
    };
    let numbered = |side: Arc<LogicalPlan>| -> Result<LogicalPlan> {
        let columns = side
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let copy = row_number().partition_by(columns).build()?.alias(COPY);
        LogicalPlanBuilder::new_from_arc(side)
            .window(vec![copy])?
            .build()
    };
    let output: Vec<Expr> = j
        .left
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let (mut left_keys, mut right_keys): (Vec<Column>, Vec<Column>) = keys.into_iter().unzip();
    left_keys.push(Column::from_name(COPY));
    right_keys.push(Column::from_name(COPY));
    LogicalPlanBuilder::from(numbered(j.left)?)
        .join_detailed(
            numbered(j.right)?,
            j.join_type,
            (left_keys, right_keys),
            None,
            NullEquality::NullEqualsNull,
        )?
        .project(output)?
        .build()
}

/// `rules` with [`MultisetSetOperations`] first, so that it sees the keys before type coercion
/// wraps them in casts.
pub fn with_multiset_rule(
    rules: &[Arc<dyn AnalyzerRule + Send + Sync>],
) -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut all: Vec<Arc<dyn AnalyzerRule + Send + Sync>> = vec![Arc::new(MultisetSetOperations)];
    all.extend(rules.iter().cloned());
    all
}
