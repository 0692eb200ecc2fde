use std::path::Path;
use std::str::FromStr;

use basin_core::{DatasetRef, Layer, Name, TableRef, closest, is_reserved_dataset};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::error::DbContext;
use crate::model::*;
use crate::{CatalogError, Result, migrate};

// Column lists of the catalog tables, as literals so that queries stay static SQL.
macro_rules! dataset_select {
    () => {
        "SELECT hub, name, layer, domain, owner, description, tags, update_frequency, support_contact, created_at, updated_at FROM datasets"
    };
}

macro_rules! table_select {
    () => {
        "SELECT hub, dataset, name, location, description, primary_key, partition_columns, tags, created_at, updated_at FROM tables"
    };
}

macro_rules! column_select {
    () => {
        "SELECT hub, dataset, table_name, name, data_type, nullable, description, tags FROM table_columns"
    };
}

/// Handle on the metadata store. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Catalog {
    pub(crate) pool: AnyPool,
    pub(crate) access: crate::access::AccessCache,
}

impl Catalog {
    /// Opens (and migrates) the catalog at `url`: `sqlite://path` or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        if !(sqlite || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(CatalogError::BadValue(format!(
                "unsupported catalog URL '{}': use sqlite://PATH or postgres://USER@HOST:PORT/DB",
                redact(url)
            )));
        }
        let mut options = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 16 })
            .acquire_timeout(std::time::Duration::from_secs(5));
        if sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .connect(url)
            .await
            .ctx(|| format!("connecting to {}", redact(url)))?;
        migrate::run(&pool).await?;
        Ok(Catalog {
            pool,
            access: Default::default(),
        })
    }

    /// Opens (creating if needed) the SQLite catalog file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    // ---- hubs -------------------------------------------------------------------------------

    /// Registers a hub.
    pub async fn create_hub(&self, hub: NewHub) -> Result<Hub> {
        if self.hub(hub.name.as_str()).await?.is_some() {
            return Err(CatalogError::AlreadyExists {
                kind: "hub",
                name: hub.name.to_string(),
            });
        }
        let created = Hub {
            name: hub.name.to_string(),
            storage_root: hub.storage_root,
            description: hub.description,
            created_at: now(),
        };
        sqlx::query("INSERT INTO hubs (name, storage_root, description, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&created.name)
            .bind(&created.storage_root)
            .bind(&created.description)
            .bind(&created.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, "hub", &created.name))?;
        Ok(created)
    }

    /// The hub called `name`, if any.
    pub async fn hub(&self, name: &str) -> Result<Option<Hub>> {
        let row = sqlx::query(
            "SELECT name, storage_root, description, created_at FROM hubs WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .ctx(|| format!("reading hub '{name}'"))?;
        row.map(|r| hub_from_row(&r)).transpose()
    }

    /// The hub called `name`, or a not-found error suggesting the closest name.
    pub async fn require_hub(&self, name: &str) -> Result<Hub> {
        match self.hub(name).await? {
            Some(h) => Ok(h),
            None => {
                let hubs = self.hubs().await?;
                Err(not_found("hub", name, hubs.iter().map(|h| h.name.as_str())))
            }
        }
    }

    /// All hubs, by name.
    pub async fn hubs(&self) -> Result<Vec<Hub>> {
        let rows = sqlx::query(
            "SELECT name, storage_root, description, created_at FROM hubs ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing hubs".into())?;
        rows.iter().map(hub_from_row).collect()
    }

    // ---- datasets ---------------------------------------------------------------------------

    /// Registers a dataset in an existing hub.
    pub async fn create_dataset(&self, new: NewDataset) -> Result<Dataset> {
        let hub = self.require_hub(new.dataset.hub.as_str()).await?;
        if is_reserved_dataset(new.dataset.dataset.as_str()) {
            return Err(CatalogError::BadValue(format!(
                "dataset name '{}' is reserved for Basin's virtual tables; choose another name",
                new.dataset.dataset
            )));
        }
        if self.dataset(&new.dataset).await?.is_some() {
            return Err(CatalogError::AlreadyExists {
                kind: "dataset",
                name: new.dataset.to_string(),
            });
        }
        let tags = normalize_tags(&new.tags)?;
        let now = now();
        let dataset = Dataset {
            hub: hub.name,
            name: new.dataset.dataset.to_string(),
            layer: new.layer,
            domain: new.domain,
            owner: new.owner,
            description: new.description,
            tags,
            contract: new.contract,
            created_at: now.clone(),
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO datasets (hub, name, layer, domain, owner, description, tags, update_frequency, support_contact, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&dataset.hub)
        .bind(&dataset.name)
        .bind(dataset.layer.as_str())
        .bind(&dataset.domain)
        .bind(&dataset.owner)
        .bind(&dataset.description)
        .bind(to_json(&dataset.tags))
        .bind(&dataset.contract.update_frequency)
        .bind(&dataset.contract.support_contact)
        .bind(&dataset.created_at)
        .bind(&dataset.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, "dataset", &new.dataset.to_string()))?;
        Ok(dataset)
    }

    /// The dataset, if it exists.
    pub async fn dataset(&self, dataset: &DatasetRef) -> Result<Option<Dataset>> {
        let row = sqlx::query(concat!(dataset_select!(), " WHERE hub = $1 AND name = $2"))
            .bind(dataset.hub.as_str())
            .bind(dataset.dataset.as_str())
            .fetch_optional(&self.pool)
            .await
            .ctx(|| format!("reading dataset '{dataset}'"))?;
        row.map(|r| dataset_from_row(&r)).transpose()
    }

    /// The dataset, or a not-found error suggesting the closest name.
    pub async fn require_dataset(&self, dataset: &DatasetRef) -> Result<Dataset> {
        match self.dataset(dataset).await? {
            Some(d) => Ok(d),
            None => {
                self.require_hub(dataset.hub.as_str()).await?;
                let all = self.datasets(Some(dataset.hub.as_str())).await?;
                let names: Vec<String> = all
                    .iter()
                    .map(|d| format!("{}.{}", d.hub, d.name))
                    .collect();
                Err(not_found(
                    "dataset",
                    &dataset.to_string(),
                    names.iter().map(String::as_str),
                ))
            }
        }
    }

    /// The datasets of one hub, or of all hubs.
    pub async fn datasets(&self, hub: Option<&str>) -> Result<Vec<Dataset>> {
        let rows = match hub {
            Some(hub) => {
                sqlx::query(concat!(
                    dataset_select!(),
                    " WHERE hub = $1 ORDER BY hub, name"
                ))
                .bind(hub)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(concat!(dataset_select!(), " ORDER BY hub, name"))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .ctx(|| "listing datasets".into())?;
        rows.iter().map(dataset_from_row).collect()
    }

    // ---- tables -----------------------------------------------------------------------------

    /// Registers a table (whose Delta table the caller has created at `location`).
    pub async fn create_table(&self, new: NewTable) -> Result<Table> {
        self.require_dataset(&new.table.dataset_ref()).await?;
        if self.table(&new.table).await?.is_some() {
            return Err(CatalogError::AlreadyExists {
                kind: "table",
                name: new.table.to_string(),
            });
        }
        let now = now();
        let t = &new.table;
        let mut tx = self
            .pool
            .begin()
            .await
            .ctx(|| "starting a catalog transaction".into())?;
        sqlx::query(
            "INSERT INTO tables (hub, dataset, name, location, description, primary_key, partition_columns, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(t.hub.as_str())
        .bind(t.dataset.as_str())
        .bind(t.table.as_str())
        .bind(&new.location)
        .bind(&new.description)
        .bind(to_json(&new.primary_key))
        .bind(to_json(&new.partition_columns))
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "table", &t.to_string()))?;
        insert_columns(&mut tx, t, &new.columns).await?;
        tx.commit()
            .await
            .ctx(|| format!("registering table '{t}'"))?;
        self.require_table(t).await
    }

    /// Replaces the table's column list with `columns` (after a schema change in the lake),
    /// keeping the descriptions and tags of columns that still exist.
    pub async fn sync_columns(&self, table: &TableRef, columns: &[Column]) -> Result<()> {
        let existing = self.require_table(table).await?.columns;
        let merged: Vec<Column> = columns
            .iter()
            .map(|c| match existing.iter().find(|e| e.name == c.name) {
                Some(e) if c.description.is_empty() && c.tags.is_empty() => Column {
                    description: e.description.clone(),
                    tags: e.tags.clone(),
                    ..c.clone()
                },
                _ => c.clone(),
            })
            .collect();
        if merged == existing {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .ctx(|| "starting a catalog transaction".into())?;
        sqlx::query(
            "DELETE FROM table_columns WHERE hub = $1 AND dataset = $2 AND table_name = $3",
        )
        .bind(table.hub.as_str())
        .bind(table.dataset.as_str())
        .bind(table.table.as_str())
        .execute(&mut *tx)
        .await
        .ctx(|| format!("updating the columns of '{table}'"))?;
        insert_columns(&mut tx, table, &merged).await?;
        sqlx::query(
            "UPDATE tables SET updated_at = $1 WHERE hub = $2 AND dataset = $3 AND name = $4",
        )
        .bind(now())
        .bind(table.hub.as_str())
        .bind(table.dataset.as_str())
        .bind(table.table.as_str())
        .execute(&mut *tx)
        .await
        .ctx(|| format!("updating '{table}'"))?;
        tx.commit()
            .await
            .ctx(|| format!("updating the columns of '{table}'"))
    }

    /// Removes a table from the catalog (the caller deals with its files).
    pub async fn drop_table(&self, table: &TableRef) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .ctx(|| "starting a catalog transaction".into())?;
        for sql in [
            "DELETE FROM table_columns WHERE hub = $1 AND dataset = $2 AND table_name = $3",
            "DELETE FROM tables WHERE hub = $1 AND dataset = $2 AND name = $3",
        ] {
            sqlx::query(sql)
                .bind(table.hub.as_str())
                .bind(table.dataset.as_str())
                .bind(table.table.as_str())
                .execute(&mut *tx)
                .await
                .ctx(|| format!("dropping '{table}'"))?;
        }
        tx.commit().await.ctx(|| format!("dropping '{table}'"))
    }

    /// The table, if it exists.
    pub async fn table(&self, table: &TableRef) -> Result<Option<Table>> {
        let row = sqlx::query(concat!(
            table_select!(),
            " WHERE hub = $1 AND dataset = $2 AND name = $3"
        ))
        .bind(table.hub.as_str())
        .bind(table.dataset.as_str())
        .bind(table.table.as_str())
        .fetch_optional(&self.pool)
        .await
        .ctx(|| format!("reading table '{table}'"))?;
        match row {
            Some(r) => {
                let mut t = table_from_row(&r)?;
                t.columns = self.columns(table).await?;
                Ok(Some(t))
            }
            None => Ok(None),
        }
    }

    /// The table, or a not-found error naming the closest table of the same dataset.
    pub async fn require_table(&self, table: &TableRef) -> Result<Table> {
        if let Some(t) = self.table(table).await? {
            return Ok(t);
        }
        let dataset = self.require_dataset(&table.dataset_ref()).await?;
        let siblings = self.tables(Some(&dataset.hub), Some(&dataset.name)).await?;
        let names: Vec<String> = siblings.iter().map(|t| t.table_ref().to_string()).collect();
        Err(not_found(
            "table",
            &table.to_string(),
            names.iter().map(String::as_str),
        ))
    }

    /// Tables of a hub and/or dataset (all when both are `None`), without their columns.
    pub async fn tables(&self, hub: Option<&str>, dataset: Option<&str>) -> Result<Vec<Table>> {
        let rows = sqlx::query(concat!(
            table_select!(),
            " WHERE ($1 = '' OR hub = $1) AND ($2 = '' OR dataset = $2) ORDER BY hub, dataset, name"
        ))
        .bind(hub.unwrap_or(""))
        .bind(dataset.unwrap_or(""))
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing tables".into())?;
        rows.iter().map(table_from_row).collect()
    }

    /// The columns of the tables of a hub and/or dataset (all when both are `None`), keyed by
    /// table.
    pub async fn columns_in(
        &self,
        hub: Option<&str>,
        dataset: Option<&str>,
    ) -> Result<Vec<(TableRef, Column)>> {
        let rows = sqlx::query(concat!(
            column_select!(),
            " WHERE ($1 = '' OR hub = $1) AND ($2 = '' OR dataset = $2) ORDER BY hub, dataset, table_name, position"
        ))
        .bind(hub.unwrap_or(""))
        .bind(dataset.unwrap_or(""))
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing columns".into())?;
        rows.iter()
            .map(|r| {
                let t = TableRef::new(
                    &get::<String>(r, "hub")?,
                    &get::<String>(r, "dataset")?,
                    &get::<String>(r, "table_name")?,
                )?;
                Ok((t, column_from_row(r)?))
            })
            .collect()
    }

    async fn columns(&self, table: &TableRef) -> Result<Vec<Column>> {
        let rows = sqlx::query(concat!(
            column_select!(),
            " WHERE hub = $1 AND dataset = $2 AND table_name = $3 ORDER BY position"
        ))
        .bind(table.hub.as_str())
        .bind(table.dataset.as_str())
        .bind(table.table.as_str())
        .fetch_all(&self.pool)
        .await
        .ctx(|| format!("reading the columns of '{table}'"))?;
        rows.iter().map(column_from_row).collect()
    }
}

async fn insert_columns(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &TableRef,
    columns: &[Column],
) -> Result<()> {
    for (position, c) in columns.iter().enumerate() {
        sqlx::query(
            "INSERT INTO table_columns (hub, dataset, table_name, position, name, data_type, nullable, description, tags)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(table.hub.as_str())
        .bind(table.dataset.as_str())
        .bind(table.table.as_str())
        .bind(position as i64)
        .bind(&c.name)
        .bind(&c.data_type)
        .bind(c.nullable as i64)
        .bind(&c.description)
        .bind(to_json(&normalize_tags(&c.tags)?))
        .execute(&mut **tx)
        .await
        .ctx(|| format!("storing column '{}' of '{table}'", c.name))?;
    }
    Ok(())
}

pub(crate) fn get<T>(row: &AnyRow, column: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column)
        .ctx(|| format!("decoding catalog column '{column}'"))
}

fn hub_from_row(r: &AnyRow) -> Result<Hub> {
    Ok(Hub {
        name: get(r, "name")?,
        storage_root: get(r, "storage_root")?,
        description: get(r, "description")?,
        created_at: get(r, "created_at")?,
    })
}

fn dataset_from_row(r: &AnyRow) -> Result<Dataset> {
    let layer: String = get(r, "layer")?;
    Ok(Dataset {
        hub: get(r, "hub")?,
        name: get(r, "name")?,
        layer: Layer::from_str(&layer)?,
        domain: get(r, "domain")?,
        owner: get(r, "owner")?,
        description: get(r, "description")?,
        tags: from_json(&get::<String>(r, "tags")?)?,
        contract: Contract {
            update_frequency: get(r, "update_frequency")?,
            support_contact: get(r, "support_contact")?,
        },
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
    })
}

fn table_from_row(r: &AnyRow) -> Result<Table> {
    Ok(Table {
        hub: get(r, "hub")?,
        dataset: get(r, "dataset")?,
        name: get(r, "name")?,
        location: get(r, "location")?,
        description: get(r, "description")?,
        primary_key: from_json(&get::<String>(r, "primary_key")?)?,
        partition_columns: from_json(&get::<String>(r, "partition_columns")?)?,
        tags: from_json(&get::<String>(r, "tags")?)?,
        columns: Vec::new(),
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
    })
}

fn column_from_row(r: &AnyRow) -> Result<Column> {
    Ok(Column {
        name: get(r, "name")?,
        data_type: get(r, "data_type")?,
        nullable: get::<i64>(r, "nullable")? != 0,
        description: get(r, "description")?,
        tags: from_json(&get::<String>(r, "tags")?)?,
    })
}

/// Tags are `key` or `key=value`, where the key follows the identifier rule.
pub(crate) fn normalize_tags(tags: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        let key = tag.split_once('=').map_or(tag.as_str(), |(k, _)| k);
        Name::parse("tag", key)?;
        if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    Ok(out)
}

pub(crate) fn to_json(v: &[String]) -> String {
    serde_json::to_string(v).expect("a list of strings always serializes")
}

pub(crate) fn from_json(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s)
        .map_err(|e| CatalogError::BadValue(format!("corrupt list in catalog: {e}")))
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn not_found<'a>(
    kind: &'static str,
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> CatalogError {
    CatalogError::NotFound {
        kind,
        name: name.to_string(),
        suggestion: closest(name, candidates).map(str::to_string),
    }
}

pub(crate) fn unique_violation(e: sqlx::Error, kind: &'static str, name: &str) -> CatalogError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => CatalogError::AlreadyExists {
            kind,
            name: name.to_string(),
        },
        _ => CatalogError::Database {
            action: format!("creating {kind} '{name}'"),
            source: e,
        },
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
