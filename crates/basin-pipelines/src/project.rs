//! A project folder: `basin.toml` (the project's name, its default hub, its datasets) and one
//! `models/<dataset>/<table>.sql` per model — a header of `-- key: value` comment lines, then
//! one SELECT. See docs/models.md.

use std::collections::BTreeMap;
use std::path::Path;

use basin_core::{Layer, Name};
use serde::{Deserialize, Serialize};

use basin_sql::export::{ExportFormat, ExportTarget};

use crate::checks::{Check, parse_check};
use crate::{PipelineError, Result};

/// The project file at the root of a project folder.
pub const PROJECT_FILE: &str = "basin.toml";

/// A project folder, read and checked.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    /// The hub it applies to when none is named.
    pub hub: Option<String>,
    pub datasets: Vec<DatasetSpec>,
    pub models: Vec<ModelSpec>,
    /// The grants it declares, as written (`SELECT ON DATASET semantic TO analyst`).
    pub grants: Vec<String>,
}

/// A dataset as the project declares it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    #[serde(skip)]
    pub name: String,
    pub layer: Layer,
    pub domain: Option<String>,
    pub owner: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub update_frequency: Option<String>,
    pub support_contact: Option<String>,
}

/// How a model's rows reach its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Materialized {
    /// Rebuilt in full at each run, replaced in one commit.
    Table,
    /// Each run recomputes only the rows of the unique keys that upstream changes touched
    /// (see [`crate::incremental`]); a query that cannot be maintained so is rebuilt in full.
    Incremental,
    /// Each run's rows added.
    Append,
    /// A governed view: planned at query time, nothing stored.
    View,
    /// Each run's rows written as files under the export folder (see `basin_sql::export`),
    /// no table.
    Export,
    /// Each run's rows only checked (quality checks on a table, e.g. after each of its
    /// commits with `trigger: on_change`), nothing written.
    Audit,
}

impl Materialized {
    pub fn as_str(self) -> &'static str {
        match self {
            Materialized::Table => "table",
            Materialized::Incremental => "incremental",
            Materialized::Append => "append",
            Materialized::View => "view",
            Materialized::Export => "export",
            Materialized::Audit => "audit",
        }
    }
}

/// When a model runs besides `apply` and `basin model run`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Only by hand (and when applied).
    #[default]
    Manual,
    /// Once after a burst of commits to a table it reads (in `basin serve`).
    OnChange,
    /// At the times of a cron expression, UTC (in `basin serve`).
    Cron(String),
}

/// A model as its file declares it. Stored in the catalog as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// `dataset.table` of its target (the hub is the one it is applied to).
    pub dataset: String,
    pub table: String,
    pub materialized: Materialized,
    /// The columns that identify a row of an incremental model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique_key: Vec<String>,
    /// Where an export model writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportTarget>,
    #[serde(default)]
    pub trigger: Trigger,
    pub description: String,
    /// The SELECT as written …
    pub sql: String,
    pub checks: Vec<Check>,
    /// The file it comes from, relative to the project folder.
    pub path: String,
    /// … and as it runs: its `dataset.table` names qualified by the hub it is applied to.
    #[serde(default)]
    pub query: String,
    /// The tables it reads (`hub.dataset.table`), which order the models.
    #[serde(default)]
    pub upstream: Vec<String>,
}

impl ModelSpec {
    /// The tables it reads.
    pub fn reads(&self) -> Vec<basin_core::TableRef> {
        self.upstream
            .iter()
            .filter_map(|u| basin_core::TableRef::parse(u).ok())
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    project: ProjectSection,
    #[serde(default)]
    datasets: BTreeMap<String, DatasetSpec>,
    #[serde(default)]
    grants: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSection {
    name: String,
    hub: Option<String>,
}

fn malformed(file: &str, line: Option<usize>, message: impl Into<String>) -> PipelineError {
    PipelineError::Project {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

impl Project {
    /// Reads the project folder `dir`.
    pub fn read(dir: &Path) -> Result<Project> {
        let mut files = BTreeMap::new();
        let root = dir.join(PROJECT_FILE);
        let text = std::fs::read_to_string(&root).map_err(|e| {
            malformed(
                &root.display().to_string(),
                None,
                format!("cannot read it ({e}); a project folder holds a {PROJECT_FILE}"),
            )
        })?;
        files.insert(PROJECT_FILE.to_string(), text);
        for d in std::fs::read_dir(dir.join("models"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = format!("models/{}", d.file_name().to_string_lossy());
            if !d.path().is_dir() {
                files.insert(name, String::new());
                continue;
            }
            for f in std::fs::read_dir(d.path())
                .map_err(|e| malformed(&name, None, e.to_string()))?
                .flatten()
            {
                let file = format!("{name}/{}", f.file_name().to_string_lossy());
                let text = std::fs::read_to_string(f.path())
                    .map_err(|e| malformed(&file, None, e.to_string()))?;
                files.insert(file, text);
            }
        }
        Project::from_files(&files)
    }

    /// A project from its files' texts by path relative to the project folder (`basin.toml`,
    /// `models/<dataset>/<table>.sql`): what a folder holds, or what a client sends over REST.
    pub fn from_files(files: &BTreeMap<String, String>) -> Result<Project> {
        let shown = PROJECT_FILE;
        let text = files.get(PROJECT_FILE).ok_or_else(|| {
            malformed(
                shown,
                None,
                format!("missing: a project holds a {PROJECT_FILE}"),
            )
        })?;
        let parsed: ProjectFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].lines().count().max(1));
            malformed(shown, line, e.message().to_string())
        })?;
        Name::parse("project", &parsed.project.name)
            .map_err(|e| malformed(shown, None, e.to_string()))?;
        if let Some(hub) = &parsed.project.hub {
            Name::parse("hub", hub).map_err(|e| malformed(shown, None, e.to_string()))?;
        }
        let mut datasets = Vec::new();
        for (name, mut spec) in parsed.datasets {
            Name::parse("dataset", &name).map_err(|e| malformed(shown, None, e.to_string()))?;
            spec.name = name;
            datasets.push(spec);
        }
        for g in &parsed.grants {
            basin_sql::expand_grant(g, basin_core::DEFAULT_HUB).map_err(|e| {
                malformed(
                    shown,
                    None,
                    format!(
                        "grant '{g}': {e}; write e.g. \"SELECT ON DATASET semantic TO analyst\""
                    ),
                )
            })?;
        }
        let mut models = Vec::new();
        for (path, text) in files.iter().filter(|(p, _)| *p != PROJECT_FILE) {
            let parts: Vec<&str> = path.split('/').collect();
            let ["models", dataset, file] = parts.as_slice() else {
                return Err(malformed(
                    path,
                    None,
                    "a project holds basin.toml and models/<dataset>/<table>.sql files only",
                ));
            };
            let Some(table) = file.strip_suffix(".sql") else {
                return Err(malformed(
                    path,
                    None,
                    "only .sql files belong under models/<dataset>/ (one model each)",
                ));
            };
            models.push(parse_model(path, dataset, table, text)?);
        }
        Ok(Project {
            name: parsed.project.name,
            hub: parsed.project.hub,
            datasets,
            models,
            grants: parsed.grants,
        })
    }
}

/// A model file: leading `-- key: value` lines (the header), then its SELECT.
pub(crate) fn parse_model(file: &str, dataset: &str, table: &str, text: &str) -> Result<ModelSpec> {
    Name::parse("dataset", dataset).map_err(|e| malformed(file, None, e.to_string()))?;
    Name::parse("table", table).map_err(|e| malformed(file, None, e.to_string()))?;
    let mut spec = ModelSpec {
        dataset: dataset.to_string(),
        table: table.to_string(),
        materialized: Materialized::Table,
        unique_key: Vec::new(),
        export: None,
        trigger: Trigger::Manual,
        description: String::new(),
        sql: String::new(),
        checks: Vec::new(),
        path: file.to_string(),
        query: String::new(),
        upstream: Vec::new(),
    };
    let mut body = Vec::new();
    let mut in_header = true;
    let (mut export_to, mut format, mut partition_by) = (None, ExportFormat::Parquet, Vec::new());
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if in_header && trimmed.is_empty() {
            continue;
        }
        let header = trimmed.strip_prefix("--").map(str::trim);
        match header {
            Some(h) if in_header => {
                if h.is_empty() {
                    continue;
                }
                let (key, value) = h.split_once(':').ok_or_else(|| {
                    malformed(
                        file,
                        Some(i + 1),
                        format!("'{h}' is not 'key: value' (e.g. 'materialized: table')"),
                    )
                })?;
                let (key, value) = (key.trim(), value.trim());
                let mut words = key.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some("materialized"), None, _) => {
                        spec.materialized = match value {
                            "table" => Materialized::Table,
                            "incremental" => Materialized::Incremental,
                            "append" => Materialized::Append,
                            "view" => Materialized::View,
                            "export" => Materialized::Export,
                            "audit" => Materialized::Audit,
                            other => {
                                return Err(malformed(
                                    file,
                                    Some(i + 1),
                                    format!(
                                        "materialized '{other}' is not known: use table, incremental, append, view, export or audit"
                                    ),
                                ));
                            }
                        }
                    }
                    (Some("description"), None, _) => spec.description = value.to_string(),
                    (Some("export_to"), None, _) => export_to = Some((value.to_string(), i + 1)),
                    (Some("format"), None, _) => {
                        format = ExportFormat::parse(value)
                            .map_err(|e| malformed(file, Some(i + 1), e.to_string()))?;
                    }
                    (Some("partition_by"), None, _) => {
                        partition_by = value
                            .split(',')
                            .map(|c| c.trim().to_string())
                            .filter(|c| !c.is_empty())
                            .collect();
                    }
                    (Some("unique_key"), None, _) => {
                        spec.unique_key = value
                            .split(',')
                            .map(|c| c.trim().to_string())
                            .filter(|c| !c.is_empty())
                            .collect();
                        if spec.unique_key.is_empty() {
                            return Err(malformed(
                                file,
                                Some(i + 1),
                                "unique_key names no column: write e.g. 'unique_key: day, product_id'",
                            ));
                        }
                    }
                    (Some("trigger"), None, _) => {
                        spec.trigger = match value.split_once(' ') {
                            _ if value == "manual" => Trigger::Manual,
                            _ if value == "on_change" => Trigger::OnChange,
                            Some(("cron", expr)) => {
                                expr.trim().parse::<croner::Cron>().map_err(|e| {
                                    malformed(file, Some(i + 1), format!("'{expr}' is not a cron expression ({e}): write e.g. 'cron 0 2 * * *'"))
                                })?;
                                Trigger::Cron(expr.trim().to_string())
                            }
                            _ => {
                                return Err(malformed(
                                    file,
                                    Some(i + 1),
                                    format!(
                                        "trigger '{value}' is not known: use manual, on_change or cron <expression>"
                                    ),
                                ));
                            }
                        }
                    }
                    (Some(severity @ ("check" | "warn")), Some(kind), column) => {
                        let check = parse_check(severity, kind, column, value)
                            .map_err(|m| malformed(file, Some(i + 1), m))?;
                        spec.checks.push(check);
                    }
                    _ => {
                        return Err(malformed(
                            file,
                            Some(i + 1),
                            format!(
                                "'{key}' is not a header key: use materialized, unique_key, export_to, format, partition_by, trigger, description, check <kind> or warn <kind>"
                            ),
                        ));
                    }
                }
            }
            _ => {
                in_header = false;
                body.push(line);
            }
        }
    }
    spec.sql = body
        .join("\n")
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string();
    match (spec.materialized, export_to) {
        (Materialized::Export, Some((path, _))) => {
            spec.export = Some(ExportTarget {
                path: path.trim_matches(|c| c == '\'' || c == '"').to_string(),
                format,
                partition_by,
            });
        }
        (Materialized::Export, None) => {
            return Err(malformed(
                file,
                None,
                "materialized: export needs a folder to write to: add e.g. '-- export_to: products' (inside the export folder)",
            ));
        }
        (other, Some((_, line))) => {
            return Err(malformed(
                file,
                Some(line),
                format!(
                    "export_to only applies to materialized: export (this model is {})",
                    other.as_str()
                ),
            ));
        }
        (_, None) => {}
    }
    if spec.materialized == Materialized::Audit && spec.checks.is_empty() {
        return Err(malformed(
            file,
            None,
            "materialized: audit checks its rows and writes nothing: add a check, e.g. '-- check unique: id'",
        ));
    }
    match (spec.materialized, spec.unique_key.is_empty()) {
        (Materialized::Incremental, true) => {
            return Err(malformed(
                file,
                None,
                "materialized: incremental needs the columns that identify a row: add e.g. '-- unique_key: day, product_id'",
            ));
        }
        (Materialized::Incremental, false) | (_, true) => {}
        (other, false) => {
            return Err(malformed(
                file,
                None,
                format!(
                    "unique_key only applies to materialized: incremental (this model is {})",
                    other.as_str()
                ),
            ));
        }
    }
    if spec.sql.is_empty() {
        return Err(malformed(
            file,
            None,
            "the model has no SELECT after its header",
        ));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CheckKind;

    #[test]
    fn a_model_file_is_a_header_and_a_select() {
        let text = "-- materialized: append\n-- description: Orders, cleaned\n-- check not_null: id, customer_id\n-- warn accepted_values status: open, shipped\n\nSELECT id FROM source.orders;\n";
        let m = parse_model("models/prepared/orders.sql", "prepared", "orders", text).unwrap();
        assert_eq!(m.materialized, Materialized::Append);
        assert_eq!(m.description, "Orders, cleaned");
        assert_eq!(m.sql, "SELECT id FROM source.orders");
        assert_eq!(m.checks.len(), 2);
        assert!(matches!(&m.checks[0].kind, CheckKind::NotNull { columns } if columns.len() == 2));
    }

    #[test]
    fn a_bad_header_names_the_file_and_line() {
        let e = parse_model(
            "models/p/t.sql",
            "p",
            "t",
            "-- materialized: table\n-- materialised: view\nSELECT 1",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "models/p/t.sql:2: 'materialised' is not a header key: use materialized, unique_key, export_to, format, partition_by, trigger, description, check <kind> or warn <kind>"
        );
        let e =
            parse_model("models/p/t.sql", "p", "t", "-- check between: x\nSELECT 1").unwrap_err();
        assert!(e.to_string().starts_with("models/p/t.sql:1: "), "{e}");
        let e = parse_model("models/p/t.sql", "p", "t", "-- materialized: table\n").unwrap_err();
        assert!(e.to_string().contains("no SELECT"), "{e}");
    }
}
