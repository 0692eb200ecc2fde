use std::fmt;

use crate::CoreError;

/// The hub that one- and two-part names refer to.
pub const DEFAULT_HUB: &str = "main";

/// Dataset names that Basin keeps for itself (virtual schemas in SQL).
const RESERVED_DATASETS: &[&str] = &["system", "information_schema"];

/// Whether a dataset name is reserved for Basin's virtual schemas.
pub fn is_reserved_dataset(name: &str) -> bool {
    RESERVED_DATASETS.contains(&name)
}

/// A validated identifier: `[a-z][a-z0-9_]{0,62}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Validates `input` as the name of a `kind` of object (used in the error message).
    pub fn parse(kind: &'static str, input: &str) -> Result<Self, CoreError> {
        let invalid = |reason: String| CoreError::InvalidName {
            kind,
            input: input.to_string(),
            reason,
        };
        let first = input
            .chars()
            .next()
            .ok_or_else(|| invalid("it is empty".into()))?;
        if !first.is_ascii_lowercase() {
            return Err(invalid(format!(
                "it starts with '{first}', not a letter a-z"
            )));
        }
        if let Some(bad) = input
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            return Err(invalid(format!("it contains '{bad}'")));
        }
        if input.len() > 63 {
            return Err(invalid(format!("it is {} characters long", input.len())));
        }
        Ok(Name(input.to_string()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A dataset: `hub.dataset`, or `dataset` in the default hub.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasetRef {
    pub hub: Name,
    pub dataset: Name,
}

impl DatasetRef {
    /// Builds a reference from already separated parts.
    pub fn new(hub: &str, dataset: &str) -> Result<Self, CoreError> {
        Ok(DatasetRef {
            hub: Name::parse("hub", hub)?,
            dataset: Name::parse("dataset", dataset)?,
        })
    }

    /// Parses `hub.dataset` or `dataset`.
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        let parts: Vec<&str> = input.split('.').collect();
        match parts.as_slice() {
            [d] => Self::new(DEFAULT_HUB, d),
            [h, d] => Self::new(h, d),
            _ => Err(CoreError::InvalidReference {
                kind: "dataset",
                input: input.to_string(),
                expected: "'dataset' or 'hub.dataset'",
            }),
        }
    }

    /// The table `name` inside this dataset.
    pub fn table(&self, name: &str) -> Result<TableRef, CoreError> {
        Ok(TableRef {
            hub: self.hub.clone(),
            dataset: self.dataset.clone(),
            table: Name::parse("table", name)?,
        })
    }
}

impl fmt::Display for DatasetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.hub, self.dataset)
    }
}

/// A table: `hub.dataset.table`, or `dataset.table` in the default hub.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableRef {
    pub hub: Name,
    pub dataset: Name,
    pub table: Name,
}

impl TableRef {
    /// Builds a reference from already separated parts.
    pub fn new(hub: &str, dataset: &str, table: &str) -> Result<Self, CoreError> {
        DatasetRef::new(hub, dataset)?.table(table)
    }

    /// Parses `hub.dataset.table` or `dataset.table`.
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        let parts: Vec<&str> = input.split('.').collect();
        match parts.as_slice() {
            [d, t] => Self::new(DEFAULT_HUB, d, t),
            [h, d, t] => Self::new(h, d, t),
            _ => Err(CoreError::InvalidReference {
                kind: "table",
                input: input.to_string(),
                expected: "'dataset.table' or 'hub.dataset.table'",
            }),
        }
    }

    /// The dataset this table belongs to.
    pub fn dataset_ref(&self) -> DatasetRef {
        DatasetRef {
            hub: self.hub.clone(),
            dataset: self.dataset.clone(),
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.hub, self.dataset, self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for n in ["a", "sales", "orders_2024", &"a".repeat(63)] {
            assert_eq!(Name::parse("table", n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn invalid_names_say_why() {
        let cases = [
            ("", "empty"),
            ("Sales", "starts with 'S'"),
            ("1abc", "starts with '1'"),
            ("_x", "starts with '_'"),
            ("or-ders", "contains '-'"),
            ("x;drop", "contains ';'"),
        ];
        for (input, why) in cases {
            let msg = Name::parse("table", input).unwrap_err().to_string();
            assert!(msg.contains(why), "{input}: {msg}");
            assert!(msg.contains("[a-z][a-z0-9_]{0,62}"), "{msg}");
        }
        let long = "a".repeat(64);
        assert!(
            Name::parse("hub", &long)
                .unwrap_err()
                .to_string()
                .contains("64 characters")
        );
    }

    #[test]
    fn table_refs_default_to_main() {
        let t = TableRef::parse("sales.orders").unwrap();
        assert_eq!(t.to_string(), "main.sales.orders");
        let t = TableRef::parse("us.sales.orders").unwrap();
        assert_eq!(t.hub.as_str(), "us");
        assert!(
            TableRef::parse("orders")
                .unwrap_err()
                .to_string()
                .contains("dataset.table")
        );
        assert!(TableRef::parse("a.b.c.d").is_err());
        assert_eq!(
            DatasetRef::parse("sales").unwrap().to_string(),
            "main.sales"
        );
    }
}
