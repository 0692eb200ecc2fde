//! Tables and their columns (the Delta table itself is the caller's).

use std::collections::HashMap;

use basin_core::TableRef;
use sqlx::any::AnyRow;

use super::{Tx, from_json, get, normalize_tags, not_found, now, to_json, unique_violation};
use crate::access::{Grant, Privilege, Securable};
use crate::error::DbContext;
use crate::model::*;
use crate::{Catalog, CatalogError, Result};

// Column lists of the catalog tables, as literals so that queries stay static SQL.
macro_rules! table_select {
    () => {
        "SELECT hub, dataset, name, location, description, primary_key, partition_columns, tags, created_at, updated_at, kind, definition, COALESCE((SELECT d.tags FROM datasets d WHERE d.hub = tables.hub AND d.name = tables.dataset), '[]') AS dataset_tags FROM tables"
    };
}

macro_rules! column_select {
    () => {
        "SELECT hub, dataset, table_name, name, data_type, nullable, description, tags FROM table_columns"
    };
}

impl Catalog {
    /// Registers a table (whose Delta table the caller has created at `location`).
    pub async fn create_table(&self, new: NewTable) -> Result<Table> {
        self.create_owned_table(new, None).await
    }

    /// Registers a table and makes `owner` its owner (SELECT, MODIFY and MANAGE on it) in one
    /// transaction: after a failure (the catalog database gone half-way) neither is there.
    pub async fn create_owned_table(&self, new: NewTable, owner: Option<&str>) -> Result<Table> {
        self.require_dataset(&new.table.dataset_ref()).await?;
        if self.table(&new.table).await?.is_some() {
            return Err(CatalogError::AlreadyExists {
                kind: "table",
                name: new.table.to_string(),
            });
        }
        if let Some(owner) = owner {
            self.require_grantee(owner).await?;
        }
        let now = now();
        let t = &new.table;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO tables (hub, dataset, name, location, description, primary_key, partition_columns, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(t.hub.as_str())
        .bind(t.dataset.as_str())
        .bind(t.table.as_str())
        .bind(self.stored_location(&new.location))
        .bind(&new.description)
        .bind(to_json(&new.primary_key))
        .bind(to_json(&new.partition_columns))
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "table", &t.to_string()))?;
        insert_columns(&mut tx, t, &new.columns).await?;
        if let Some(owner) = owner {
            for privilege in [Privilege::Select, Privilege::Modify, Privilege::Manage] {
                let grant = Grant {
                    grantee: owner.to_string(),
                    privilege,
                    object: Securable::table(t),
                    column: None,
                    granted_by: owner.to_string(),
                    granted_at: String::new(),
                };
                crate::access::store::insert_grant(&mut tx, &grant).await?;
            }
            sqlx::query("UPDATE access_version SET version = version + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await
                .ctx(|| format!("granting the owner of '{t}'"))?;
        }
        super::metadata_changed(&mut *tx).await?;
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
        let mut tx = self.begin().await?;
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
        super::metadata_changed(&mut *tx).await?;
        tx.commit()
            .await
            .ctx(|| format!("updating the columns of '{table}'"))
    }

    /// Removes a table from the catalog with everything that names it: its columns and tags,
    /// and the grants, row filters and column masks on it (the caller deals with its files).
    pub async fn drop_table(&self, table: &TableRef) -> Result<()> {
        let object = crate::access::Securable::table(table).to_string();
        let mut tx = self.begin().await?;
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
        for sql in [
            "DELETE FROM grants WHERE object = $1",
            "DELETE FROM row_filters WHERE object = $1",
            "DELETE FROM column_masks WHERE object = $1",
        ] {
            sqlx::query(sql)
                .bind(&object)
                .execute(&mut *tx)
                .await
                .ctx(|| format!("dropping the policies of '{table}'"))?;
        }
        bump_access_version(&mut tx, table).await?;
        tx.commit().await.ctx(|| format!("dropping '{table}'"))
    }

    /// Registers a view (`definition`, a SELECT, with the `columns` it yields), or replaces the
    /// definition and columns of the view of that name.
    pub async fn create_view(
        &self,
        view: &TableRef,
        definition: &str,
        columns: &[Column],
        replace: bool,
    ) -> Result<Table> {
        self.require_dataset(&view.dataset_ref()).await?;
        let now = now();
        let mut tx = self.begin().await?;
        if replace {
            sqlx::query(
                "UPDATE tables SET definition = $1, updated_at = $2 WHERE hub = $3 AND dataset = $4 AND name = $5 AND kind = 'view'",
            )
            .bind(definition)
            .bind(&now)
            .bind(view.hub.as_str())
            .bind(view.dataset.as_str())
            .bind(view.table.as_str())
            .execute(&mut *tx)
            .await
            .ctx(|| format!("replacing view '{view}'"))?;
            sqlx::query(
                "DELETE FROM table_columns WHERE hub = $1 AND dataset = $2 AND table_name = $3",
            )
            .bind(view.hub.as_str())
            .bind(view.dataset.as_str())
            .bind(view.table.as_str())
            .execute(&mut *tx)
            .await
            .ctx(|| format!("replacing view '{view}'"))?;
        } else {
            sqlx::query(
                "INSERT INTO tables (hub, dataset, name, location, description, primary_key, partition_columns, created_at, updated_at, kind, definition)
                 VALUES ($1, $2, $3, '', '', '[]', '[]', $4, $5, 'view', $6)",
            )
            .bind(view.hub.as_str())
            .bind(view.dataset.as_str())
            .bind(view.table.as_str())
            .bind(&now)
            .bind(&now)
            .bind(definition)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_violation(e, "table", &view.to_string()))?;
        }
        insert_columns(&mut tx, view, columns).await?;
        bump_access_version(&mut tx, view).await?;
        tx.commit()
            .await
            .ctx(|| format!("registering view '{view}'"))?;
        self.require_table(view).await
    }

    /// Records a table's new layout after its Delta table was rewritten (`CREATE OR REPLACE
    /// TABLE`, `ALTER TABLE … RENAME COLUMN / DROP COLUMN`): its keys and partition columns, and
    /// `renamed` columns (old, new) renamed in its column list, column grants and masks;
    /// `rewrite` gives the new text of each row filter and mask expression on the table.
    pub async fn reshape_table(
        &self,
        table: &TableRef,
        primary_key: &[String],
        partition_columns: &[String],
        renamed: &[(String, String)],
        rewrite: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<()> {
        let object = crate::access::Securable::table(table).to_string();
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE tables SET primary_key = $1, partition_columns = $2, updated_at = $3 WHERE hub = $4 AND dataset = $5 AND name = $6",
        )
        .bind(to_json(primary_key))
        .bind(to_json(partition_columns))
        .bind(now())
        .bind(table.hub.as_str())
        .bind(table.dataset.as_str())
        .bind(table.table.as_str())
        .execute(&mut *tx)
        .await
        .ctx(|| format!("updating '{table}'"))?;
        for (old, new) in renamed {
            sqlx::query(
                "UPDATE table_columns SET name = $1 WHERE hub = $2 AND dataset = $3 AND table_name = $4 AND name = $5",
            )
            .bind(new)
            .bind(table.hub.as_str())
            .bind(table.dataset.as_str())
            .bind(table.table.as_str())
            .bind(old)
            .execute(&mut *tx)
            .await
            .ctx(|| format!("renaming column '{old}' of '{table}'"))?;
            for sql in [
                "UPDATE grants SET column_name = $1 WHERE object = $2 AND column_name = $3",
                "UPDATE column_masks SET column_name = $1 WHERE object = $2 AND column_name = $3",
            ] {
                sqlx::query(sql)
                    .bind(new)
                    .bind(&object)
                    .bind(old)
                    .execute(&mut *tx)
                    .await
                    .ctx(|| format!("renaming column '{old}' of '{table}'"))?;
            }
        }
        let filters: Vec<(String, String)> =
            sqlx::query_as("SELECT grantee, expression FROM row_filters WHERE object = $1")
                .bind(&object)
                .fetch_all(&mut *tx)
                .await
                .ctx(|| format!("reading the row filters of '{table}'"))?;
        for (grantee, expression) in filters {
            sqlx::query(
                "UPDATE row_filters SET expression = $1 WHERE object = $2 AND grantee = $3",
            )
            .bind(rewrite(&expression))
            .bind(&object)
            .bind(&grantee)
            .execute(&mut *tx)
            .await
            .ctx(|| format!("updating the row filters of '{table}'"))?;
        }
        let masks: Vec<(String, String, String)> =
            sqlx::query_as("SELECT column_name, grantee, mask FROM column_masks WHERE object = $1")
                .bind(&object)
                .fetch_all(&mut *tx)
                .await
                .ctx(|| format!("reading the masks of '{table}'"))?;
        for (column, grantee, mask) in masks {
            let Ok(crate::access::Mask::Expr(e)) = mask.parse() else {
                continue;
            };
            sqlx::query(
                "UPDATE column_masks SET mask = $1 WHERE object = $2 AND column_name = $3 AND grantee = $4",
            )
            .bind(crate::access::Mask::Expr(rewrite(&e)).to_string())
            .bind(&object)
            .bind(&column)
            .bind(&grantee)
            .execute(&mut *tx)
            .await
            .ctx(|| format!("updating the masks of '{table}'"))?;
        }
        bump_access_version(&mut tx, table).await?;
        tx.commit().await.ctx(|| format!("updating '{table}'"))
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
                let mut t = self.table_from_row(&r)?;
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
        let sql = format!(
            "{} {} ORDER BY hub, dataset, name",
            table_select!(),
            scope(hub, dataset)
        );
        let rows = bind_scope(sqlx::query(sqlx::AssertSqlSafe(sql)), hub, dataset)
            .fetch_all(&self.pool)
            .await
            .ctx(|| "listing tables".into())?;
        rows.iter().map(|r| self.table_from_row(r)).collect()
    }

    /// The tables of a hub and/or dataset (all when both are `None`), each with its columns:
    /// two queries, whatever the number of tables.
    pub async fn tables_with_columns(
        &self,
        hub: Option<&str>,
        dataset: Option<&str>,
    ) -> Result<Vec<Table>> {
        let mut tables = self.tables(hub, dataset).await?;
        let mut columns: HashMap<TableRef, Vec<Column>> = HashMap::new();
        for (t, c) in self.columns_in(hub, dataset).await? {
            columns.entry(t).or_default().push(c);
        }
        for t in &mut tables {
            t.columns = columns.remove(&t.table_ref()).unwrap_or_default();
        }
        Ok(tables)
    }

    /// The columns of the tables of a hub and/or dataset (all when both are `None`), keyed by
    /// table.
    pub async fn columns_in(
        &self,
        hub: Option<&str>,
        dataset: Option<&str>,
    ) -> Result<Vec<(TableRef, Column)>> {
        let sql = format!(
            "{} {} ORDER BY hub, dataset, table_name, position",
            column_select!(),
            scope(hub, dataset)
        );
        let rows = bind_scope(sqlx::query(sqlx::AssertSqlSafe(sql)), hub, dataset)
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

/// The filter of a hub and/or dataset scope (none when both are `None`), written so that the
/// primary key's index serves it: `($1 = '' OR hub = $1)` would scan every row.
fn scope(hub: Option<&str>, dataset: Option<&str>) -> &'static str {
    match (hub, dataset) {
        (None, None) => "",
        (Some(_), None) => "WHERE hub = $1",
        (None, Some(_)) => "WHERE dataset = $1",
        (Some(_), Some(_)) => "WHERE hub = $1 AND dataset = $2",
    }
}

/// Binds the values [`scope`]'s filter names.
fn bind_scope<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    hub: Option<&'q str>,
    dataset: Option<&'q str>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    hub.into_iter()
        .chain(dataset)
        .fold(query, |query, value| query.bind(value))
}

/// Cached decisions are stale once a table's grants, policies or columns change (and the
/// search index once its columns do).
async fn bump_access_version(tx: &mut Tx<'_>, table: &TableRef) -> Result<()> {
    sqlx::query("UPDATE access_version SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await
        .ctx(|| format!("updating '{table}'"))?;
    super::metadata_changed(&mut **tx).await
}

async fn insert_columns(tx: &mut Tx<'_>, table: &TableRef, columns: &[Column]) -> Result<()> {
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

impl Catalog {
    /// Every table, read in `tx` (a backup's snapshot).
    pub(crate) async fn tables_in(&self, tx: &mut super::Tx<'_>) -> Result<Vec<Table>> {
        let rows = sqlx::query(concat!(table_select!(), " ORDER BY hub, dataset, name"))
            .fetch_all(&mut **tx)
            .await
            .ctx(|| "listing tables".into())?;
        rows.iter().map(|r| self.table_from_row(r)).collect()
    }

    fn table_from_row(&self, r: &AnyRow) -> Result<Table> {
        Ok(Table {
            hub: get(r, "hub")?,
            dataset: get(r, "dataset")?,
            name: get(r, "name")?,
            location: self.resolved_location(&get::<String>(r, "location")?),
            description: get(r, "description")?,
            primary_key: from_json(&get::<String>(r, "primary_key")?)?,
            partition_columns: from_json(&get::<String>(r, "partition_columns")?)?,
            tags: from_json(&get::<String>(r, "tags")?)?,
            dataset_tags: from_json(&get::<String>(r, "dataset_tags")?)?,
            columns: Vec::new(),
            created_at: get(r, "created_at")?,
            updated_at: get(r, "updated_at")?,
            kind: get(r, "kind")?,
            definition: get(r, "definition")?,
        })
    }
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
