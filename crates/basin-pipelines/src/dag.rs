//! The order models run in: a model after the models whose tables it reads.

use std::collections::BTreeMap;

use basin_core::TableRef;

use crate::{PipelineError, Result};

/// The models (each its target and the tables it reads) in an order where every model comes
/// after the models that build the tables it reads (ties by target name), or the cycle spelled
/// out (`a → b → a`).
pub fn order(models: &[(TableRef, Vec<TableRef>)]) -> Result<Vec<TableRef>> {
    let index: BTreeMap<String, usize> = models
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (t.to_string(), i))
        .collect();
    // The models each model reads.
    let upstream: Vec<Vec<usize>> = models
        .iter()
        .map(|(_, reads)| {
            let mut up: Vec<usize> = reads
                .iter()
                .filter_map(|r| index.get(&r.to_string()).copied())
                .collect();
            up.sort();
            up.dedup();
            up
        })
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    let mut marks = vec![Mark::New; models.len()];
    let mut ordered = Vec::new();
    let mut path: Vec<usize> = Vec::new();
    fn visit(
        i: usize,
        upstream: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        ordered: &mut Vec<usize>,
        names: &dyn Fn(usize) -> String,
    ) -> Result<()> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|&p| names(p)).collect();
                cycle.push(names(i));
                return Err(PipelineError::Cycle(cycle.join(" → ")));
            }
            Mark::New => {}
        }
        marks[i] = Mark::Visiting;
        path.push(i);
        for &u in &upstream[i] {
            visit(u, upstream, marks, path, ordered, names)?;
        }
        path.pop();
        marks[i] = Mark::Done;
        ordered.push(i);
        Ok(())
    }
    let names = |i: usize| models[i].0.to_string();
    let by_name: Vec<usize> = index.values().copied().collect();
    for i in by_name {
        visit(i, &upstream, &mut marks, &mut path, &mut ordered, &names)?;
    }
    Ok(ordered.into_iter().map(|i| models[i].0.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TableRef {
        TableRef::parse(name).unwrap()
    }

    #[test]
    fn upstream_models_come_first_and_a_cycle_is_spelled_out() {
        let models = vec![
            (
                t("dev.semantic.sales"),
                vec![t("dev.prepared.orders"), t("dev.prepared.customers")],
            ),
            (t("dev.prepared.orders"), vec![t("dev.source.orders")]),
            (t("dev.prepared.customers"), vec![t("dev.source.customers")]),
        ];
        let ordered: Vec<String> = order(&models)
            .unwrap()
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(
            ordered,
            vec![
                "dev.prepared.customers",
                "dev.prepared.orders",
                "dev.semantic.sales"
            ]
        );
        let cycle = vec![
            (t("dev.a.x"), vec![t("dev.b.y")]),
            (t("dev.b.y"), vec![t("dev.c.z")]),
            (t("dev.c.z"), vec![t("dev.a.x")]),
        ];
        let e = order(&cycle).unwrap_err().to_string();
        assert!(e.contains("dev.a.x → dev.b.y → dev.c.z → dev.a.x"), "{e}");
    }
}
