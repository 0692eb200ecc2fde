//! Policies on tables: row filters and column masks, per grantee.

use basin_core::TableRef;

use crate::access::model::*;
use crate::error::DbContext;
use crate::{Catalog, CatalogError, Result};

impl Catalog {
    /// Sets (replaces) the row filter of `grantee` on a table.
    pub async fn set_row_filter(&self, filter: &RowFilter) -> Result<()> {
        self.require_grantee(&filter.grantee).await?;
        self.require_table(&filter.table).await?;
        if filter.expression.trim().is_empty() {
            return Err(CatalogError::BadValue(
                "a row filter needs a SQL boolean expression".into(),
            ));
        }
        let f = filter.clone();
        self.change("setting a row filter", move |tx| {
            Box::pin(async move {
                let object = Securable::table(&f.table).to_string();
                sqlx::query("DELETE FROM row_filters WHERE object = $1 AND grantee = $2")
                    .bind(&object)
                    .bind(&f.grantee)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "setting a row filter".into())?;
                sqlx::query(
                    "INSERT INTO row_filters (object, grantee, expression) VALUES ($1, $2, $3)",
                )
                .bind(&object)
                .bind(&f.grantee)
                .bind(&f.expression)
                .execute(&mut **tx)
                .await
                .ctx(|| "setting a row filter".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Removes the row filter of `grantee` on a table.
    pub async fn drop_row_filter(&self, table: &TableRef, grantee: &str) -> Result<()> {
        let (o, g) = (Securable::table(table).to_string(), grantee.to_string());
        self.change("dropping a row filter", move |tx| {
            Box::pin(async move {
                sqlx::query("DELETE FROM row_filters WHERE object = $1 AND grantee = $2")
                    .bind(o)
                    .bind(g)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "dropping a row filter".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Every row filter.
    pub async fn row_filters(&self) -> Result<Vec<RowFilter>> {
        let rows = sqlx::query_as::<_, (String, String, String)>(
            "SELECT object, grantee, expression FROM row_filters ORDER BY object, grantee",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing row filters".into())?;
        rows.into_iter()
            .map(|(object, grantee, expression)| {
                Ok(RowFilter {
                    table: table_of(&object)?,
                    grantee,
                    expression,
                })
            })
            .collect()
    }

    /// Sets (replaces) the mask of a column for `grantee`.
    pub async fn set_column_mask(&self, mask: &ColumnMask) -> Result<()> {
        self.require_grantee(&mask.grantee).await?;
        let object = Securable::table(&mask.table);
        self.require_column(&object, &mask.column).await?;
        let m = mask.clone();
        self.change("setting a column mask", move |tx| {
            Box::pin(async move {
                let object = object.to_string();
                sqlx::query("DELETE FROM column_masks WHERE object = $1 AND column_name = $2 AND grantee = $3")
                    .bind(&object)
                    .bind(&m.column)
                    .bind(&m.grantee)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "setting a column mask".into())?;
                sqlx::query("INSERT INTO column_masks (object, column_name, grantee, mask) VALUES ($1, $2, $3, $4)")
                    .bind(&object)
                    .bind(&m.column)
                    .bind(&m.grantee)
                    .bind(m.mask.to_string())
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "setting a column mask".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Removes the mask of a column for `grantee`.
    pub async fn drop_column_mask(
        &self,
        table: &TableRef,
        column: &str,
        grantee: &str,
    ) -> Result<()> {
        let (o, c, g) = (
            Securable::table(table).to_string(),
            column.to_string(),
            grantee.to_string(),
        );
        self.change("dropping a column mask", move |tx| {
            Box::pin(async move {
                sqlx::query("DELETE FROM column_masks WHERE object = $1 AND column_name = $2 AND grantee = $3")
                    .bind(o)
                    .bind(c)
                    .bind(g)
                    .execute(&mut **tx)
                    .await
                    .ctx(|| "dropping a column mask".into())?;
                Ok(())
            })
        })
        .await
    }

    /// Every column mask.
    pub async fn column_masks(&self) -> Result<Vec<ColumnMask>> {
        let rows = sqlx::query_as::<_, (String, String, String, String)>(
            "SELECT object, column_name, grantee, mask FROM column_masks ORDER BY object, column_name, grantee",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(|| "listing column masks".into())?;
        rows.into_iter()
            .map(|(object, column, grantee, mask)| {
                Ok(ColumnMask {
                    table: table_of(&object)?,
                    column,
                    grantee,
                    mask: mask.parse()?,
                })
            })
            .collect()
    }
}

fn table_of(object: &str) -> Result<TableRef> {
    match Securable::parse(object)? {
        Securable::Table {
            hub,
            dataset,
            table,
        } => Ok(TableRef::new(&hub, &dataset, &table)?),
        other => Err(CatalogError::BadValue(format!(
            "corrupt policy object '{other}' in catalog"
        ))),
    }
}
