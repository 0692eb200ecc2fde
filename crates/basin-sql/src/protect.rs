//! Encryption at rest of a table's PII columns: after a column is tagged `pii`, and after the
//! hub's key is rotated, the table is rewritten with every PII value encrypted under the
//! current key — in one commit.

use basin_catalog::access::is_pii;
use basin_core::TableRef;
use basin_lake::{LakeTable, WriteMode};
use datafusion::prelude::SessionContext;

use crate::engine::Engine;
use crate::{Result, SqlError};

impl Engine {
    /// Rewrites the table so that its PII columns hold tokens of the hub's current key (clear
    /// values are encrypted, tokens of older key versions re-encrypted). Returns the new
    /// version, or `None` when the table has no PII column.
    pub async fn encrypt_table(&self, t: &TableRef) -> Result<Option<i64>> {
        let entry = self.catalog().require_table(t).await?;
        let pii: Vec<String> = entry
            .columns
            .iter()
            .filter(|c| is_pii(&c.tags))
            .map(|c| c.name.clone())
            .collect();
        if pii.is_empty() {
            return Ok(None);
        }
        if let Some(c) = entry
            .columns
            .iter()
            .find(|c| is_pii(&c.tags) && c.data_type != "VARCHAR")
        {
            return Err(SqlError::Invalid(format!(
                "column '{}' of '{t}' is {}: only text (VARCHAR) columns can be tagged pii",
                c.name, c.data_type
            )));
        }
        let key = self.hub_key(t.hub.as_str())?;
        let lake = LakeTable::open(&entry.location).await?;
        let rows = SessionContext::new()
            .read_table(lake.provider().await?)?
            .execute_stream()
            .await?;
        let outcome = lake
            .write(basin_lake::crypto::encrypt_stream(rows, key, pii))
            .with_mode(WriteMode::Overwrite(None))
            .with_operation("encrypt pii")
            .execute()
            .await?;
        Ok(Some(outcome.version))
    }
}
