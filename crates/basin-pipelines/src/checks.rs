//! Quality checks on a model's staged result: each is a query over the table `staged` that
//! returns the failing rows (none: the check passes).

use serde::{Deserialize, Serialize};

/// Whether a failing check blocks the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The run fails and the target keeps its version.
    Error,
    /// The run commits and records the warning.
    Warn,
}

/// A check of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub kind: CheckKind,
    pub severity: Severity,
}

/// What a check asks of the rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "check")]
pub enum CheckKind {
    /// No NULL in these columns.
    NotNull { columns: Vec<String> },
    /// No two rows with the same values of these columns.
    Unique { columns: Vec<String> },
    /// Only these values (as text) in the column; NULL passes.
    AcceptedValues { column: String, values: Vec<String> },
    /// The number of rows lies within the bounds.
    RowCount { min: Option<u64>, max: Option<u64> },
    /// Every non-NULL value of `column` is a value of `to_column` in table `to` (a foreign key).
    Relationships {
        column: String,
        to: String,
        to_column: String,
    },
    /// The newest value of the timestamp column is at most this old.
    Freshness { column: String, max_age_secs: u64 },
    /// A query over `staged` whose rows are the failing ones.
    Sql { query: String },
}

/// A check's result in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// The check as written in the model's header.
    pub check: String,
    pub severity: Severity,
    pub passed: bool,
    /// Failing rows (for row_count and freshness: the offending figure), and a sample of them.
    pub failing: u64,
    pub sample: Vec<serde_json::Value>,
    /// Why the check itself could not run (a bad query), when it could not.
    pub error: Option<String>,
}

/// Rows of failing samples a run records.
pub const SAMPLE_ROWS: usize = 5;

fn column(name: &str) -> Result<String, String> {
    basin_core::Name::parse("column", name)
        .map(|n| format!("\"{n}\""))
        .map_err(|e| e.to_string())
}

fn columns(list: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = list
        .split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    if names.is_empty() {
        return Err("name the columns, comma-separated".into());
    }
    for n in &names {
        column(n)?;
    }
    Ok(names)
}

fn one_column(kind: &str, c: Option<&str>) -> Result<String, String> {
    let c = c.ok_or_else(|| format!("name the column: 'check {kind} COLUMN: …'"))?;
    column(c)?;
    Ok(c.to_string())
}

/// A header line `check|warn KIND [COLUMN]: VALUE`, or what is wrong with it.
pub(crate) fn parse_check(
    severity: &str,
    kind: &str,
    col: Option<&str>,
    value: &str,
) -> Result<Check, String> {
    let severity = if severity == "warn" {
        Severity::Warn
    } else {
        Severity::Error
    };
    let kind = match kind {
        "not_null" => CheckKind::NotNull {
            columns: columns(value)?,
        },
        "unique" => CheckKind::Unique {
            columns: columns(value)?,
        },
        "accepted_values" => CheckKind::AcceptedValues {
            column: one_column(kind, col)?,
            values: value.split(',').map(|v| v.trim().to_string()).collect(),
        },
        "row_count" => {
            let (min, max) = value.split_once("..").ok_or_else(|| {
                format!("row_count '{value}' is not a range: write MIN.., ..MAX or MIN..MAX")
            })?;
            let bound = |b: &str| -> Result<Option<u64>, String> {
                let b = b.trim();
                if b.is_empty() {
                    return Ok(None);
                }
                b.parse()
                    .map(Some)
                    .map_err(|_| format!("row_count bound '{b}' is not a whole number"))
            };
            CheckKind::RowCount {
                min: bound(min)?,
                max: bound(max)?,
            }
        }
        "relationships" => {
            let (to, to_column) = value
                .trim()
                .rsplit_once('.')
                .ok_or_else(|| format!("relationships '{value}' is not DATASET.TABLE.COLUMN"))?;
            column(to_column)?;
            if to.split('.').count() < 2 {
                return Err(format!(
                    "relationships '{value}' is not DATASET.TABLE.COLUMN"
                ));
            }
            CheckKind::Relationships {
                column: one_column(kind, col)?,
                to: to.to_string(),
                to_column: to_column.to_string(),
            }
        }
        "freshness" => CheckKind::Freshness {
            column: one_column(kind, col)?,
            max_age_secs: duration_secs(value)?,
        },
        "sql" => CheckKind::Sql {
            query: value.to_string(),
        },
        other => {
            return Err(format!(
                "check '{other}' is not known: use not_null, unique, accepted_values, row_count, relationships, freshness or sql"
            ));
        }
    };
    Ok(Check { kind, severity })
}

/// `90s`, `15m`, `24h`, `7d`.
fn duration_secs(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: write e.g. 90s, 15m, 24h or 7d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "'{text}' is not a duration: write e.g. 90s, 15m, 24h or 7d"
            ));
        }
    };
    Ok(n * unit)
}

fn quoted(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Check {
    /// The check as a header line would say it.
    pub fn describe(&self) -> String {
        let s = if self.severity == Severity::Warn {
            "warn"
        } else {
            "check"
        };
        match &self.kind {
            CheckKind::NotNull { columns } => format!("{s} not_null: {}", columns.join(", ")),
            CheckKind::Unique { columns } => format!("{s} unique: {}", columns.join(", ")),
            CheckKind::AcceptedValues { column, values } => {
                format!("{s} accepted_values {column}: {}", values.join(", "))
            }
            CheckKind::RowCount { min, max } => format!(
                "{s} row_count: {}..{}",
                min.map(|n| n.to_string()).unwrap_or_default(),
                max.map(|n| n.to_string()).unwrap_or_default()
            ),
            CheckKind::Relationships {
                column,
                to,
                to_column,
            } => format!("{s} relationships {column}: {to}.{to_column}"),
            CheckKind::Freshness {
                column,
                max_age_secs,
            } => format!("{s} freshness {column}: {max_age_secs}s"),
            CheckKind::Sql { query } => format!("{s} sql: {query}"),
        }
    }

    /// The query over `staged` (and, for relationships, `reference`) whose rows fail the check.
    pub(crate) fn failing_query(&self) -> String {
        let q = |c: &str| format!("\"{c}\"");
        match &self.kind {
            CheckKind::NotNull { columns } => format!(
                "SELECT * FROM staged WHERE {}",
                columns
                    .iter()
                    .map(|c| format!("{} IS NULL", q(c)))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ),
            CheckKind::Unique { columns } => {
                let list = columns.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
                format!(
                    "SELECT {list}, count(*) AS copies FROM staged GROUP BY {list} HAVING count(*) > 1"
                )
            }
            CheckKind::AcceptedValues { column, values } => format!(
                "SELECT * FROM staged WHERE {c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({})",
                quoted(values),
                c = q(column)
            ),
            CheckKind::RowCount { min, max } => format!(
                "SELECT count(*) AS row_count FROM staged HAVING count(*) < {} OR count(*) > {}",
                min.unwrap_or(0),
                max.map_or(i64::MAX, |m| m.min(i64::MAX as u64) as i64)
            ),
            CheckKind::Relationships {
                column, to_column, ..
            } => format!(
                "SELECT * FROM staged s WHERE s.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM reference r WHERE r.{t} = s.{c})",
                c = q(column),
                t = q(to_column)
            ),
            CheckKind::Freshness {
                column,
                max_age_secs,
            } => format!(
                "SELECT max({c}) AS newest FROM staged HAVING max({c}) IS NULL OR max({c}) < now() - INTERVAL '{max_age_secs} seconds'",
                c = q(column)
            ),
            CheckKind::Sql { query } => format!("SELECT * FROM ({query}) AS failing"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_become_checks_and_back() {
        for line in [
            ("check", "not_null", None, "id, name"),
            ("warn", "row_count", None, "1..100"),
            ("check", "accepted_values", Some("status"), "open, shipped"),
            (
                "check",
                "relationships",
                Some("customer_id"),
                "prepared.customers.id",
            ),
            ("check", "freshness", Some("at"), "24h"),
        ] {
            let c = parse_check(line.0, line.1, line.2, line.3).unwrap();
            assert!(c.describe().starts_with(line.0), "{}", c.describe());
        }
        assert!(parse_check("check", "row_count", None, "ten").is_err());
        assert!(parse_check("check", "freshness", Some("at"), "1 week").is_err());
        assert!(parse_check("check", "not_null", None, "Bad Name").is_err());
        assert!(parse_check("check", "relationships", Some("c"), "customers").is_err());
    }
}
