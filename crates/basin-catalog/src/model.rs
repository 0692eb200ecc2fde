use basin_core::{DatasetRef, Layer, Name, TableRef};
use serde::Serialize;

/// An isolation unit (market, legal entity, tenant) with its own storage root.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hub {
    pub name: String,
    /// Object-store URL under which the hub's tables live (`file:///…`, `s3://bucket/prefix`).
    pub storage_root: String,
    pub description: String,
    pub created_at: String,
}

/// What is needed to create a hub.
#[derive(Debug, Clone)]
pub struct NewHub {
    pub name: Name,
    pub storage_root: String,
    pub description: String,
}

/// What consumers may expect of a dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Contract {
    /// Expected update frequency, e.g. `daily`, `hourly`, `PT15M`.
    pub update_frequency: Option<String>,
    /// Who to contact about the dataset (mail address, channel, team).
    pub support_contact: Option<String>,
}

/// A unit of ownership inside a hub.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dataset {
    pub hub: String,
    pub name: String,
    pub layer: Layer,
    pub domain: Option<String>,
    pub owner: Option<String>,
    pub description: String,
    pub tags: Vec<String>,
    pub contract: Contract,
    pub created_at: String,
    pub updated_at: String,
}

/// What is needed to create a dataset.
#[derive(Debug, Clone)]
pub struct NewDataset {
    pub dataset: DatasetRef,
    pub layer: Layer,
    pub domain: Option<String>,
    pub owner: Option<String>,
    pub description: String,
    pub tags: Vec<String>,
    pub contract: Contract,
}

/// A column as the catalog knows it: the type comes from the Delta table, the description and
/// tags from people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    /// The column's type in SQL words (`BIGINT`, `VARCHAR`, `TIMESTAMP`, …).
    pub data_type: String,
    pub nullable: bool,
    pub description: String,
    pub tags: Vec<String>,
}

impl From<(String, String, bool)> for Column {
    /// A column from its name, SQL type and nullability, without description or tags.
    fn from((name, data_type, nullable): (String, String, bool)) -> Self {
        Column {
            name,
            data_type,
            nullable,
            description: String::new(),
            tags: Vec::new(),
        }
    }
}

/// A Delta table registered in a dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub hub: String,
    pub dataset: String,
    pub name: String,
    /// Object-store URL of the Delta table's root.
    pub location: String,
    pub description: String,
    pub primary_key: Vec<String>,
    pub partition_columns: Vec<String>,
    /// Tags of the table (`key` or `key=value`), inherited by its columns.
    pub tags: Vec<String>,
    /// Tags of its dataset, inherited by the table and its columns.
    #[serde(skip)]
    pub dataset_tags: Vec<String>,
    pub columns: Vec<Column>,
    pub created_at: String,
    pub updated_at: String,
    /// `table` (a Delta table at `location`) or `view` (a query, `definition`, with no files).
    pub kind: String,
    /// The SQL text (a SELECT) of a view; empty for a table.
    pub definition: String,
}

impl Table {
    /// The tags `column` carries in effect: its own, then its table's and its dataset's for the
    /// keys it does not set itself (a key the table sets hides the dataset's).
    pub fn effective_tags(&self, column: &Column) -> Vec<String> {
        inherit(&column.tags, &inherit(&self.tags, &self.dataset_tags))
    }

    /// The tags a new column without tags of its own would carry.
    pub fn inherited_tags(&self) -> Vec<String> {
        inherit(&self.tags, &self.dataset_tags)
    }

    /// Whether `column` is personal data, stored encrypted: its effective tags say `pii` (or
    /// `<key>=pii`). A column tagged itself must be text; a `pii` it inherits from its table or
    /// dataset applies to its text (`VARCHAR`) columns, as tokens are text.
    pub fn is_pii(&self, column: &Column) -> bool {
        crate::access::is_pii(&column.tags)
            || (column.data_type == "VARCHAR"
                && crate::access::is_pii(&self.effective_tags(column)))
    }

    /// The names of its PII columns ([`Table::is_pii`]).
    pub fn pii_columns(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| self.is_pii(c))
            .map(|c| c.name.clone())
            .collect()
    }

    /// The table's three-part reference.
    pub fn table_ref(&self) -> TableRef {
        TableRef::new(&self.hub, &self.dataset, &self.name)
            .expect("names in the catalog were validated when they were stored")
    }

    /// Whether this entry is a view.
    pub fn is_view(&self) -> bool {
        self.kind == "view"
    }
}

/// `own` tags, then those of `outer` for the keys `own` does not set.
pub fn inherit(own: &[String], outer: &[String]) -> Vec<String> {
    let key = |t: &String| t.split_once('=').map_or(t.clone(), |(k, _)| k.to_string());
    let set: Vec<String> = own.iter().map(key).collect();
    own.iter()
        .chain(outer.iter().filter(|t| !set.contains(&key(t))))
        .cloned()
        .collect()
}

/// What is needed to register a table.
#[derive(Debug, Clone)]
pub struct NewTable {
    pub table: TableRef,
    pub location: String,
    pub description: String,
    pub primary_key: Vec<String>,
    pub partition_columns: Vec<String>,
    pub columns: Vec<Column>,
}

/// Changes to a dataset's descriptive fields; `None` leaves a field as it is, an empty text
/// clears an optional one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasetUpdate {
    pub layer: Option<Layer>,
    pub domain: Option<String>,
    pub owner: Option<String>,
    pub description: Option<String>,
    pub update_frequency: Option<String>,
    pub support_contact: Option<String>,
}

impl DatasetUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == DatasetUpdate::default()
    }
}
