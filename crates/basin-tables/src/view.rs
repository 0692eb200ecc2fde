//! [`Tables::create_view`]: views, under the same names, grants and ownership rule as tables.

use basin_catalog::Column;
use basin_catalog::access::{Grant, Privilege, Securable};
use basin_core::TableRef;

use crate::{Actor, Committed, Result, Tables, TablesError, WriteNeeds};

impl Tables {
    /// Stores a view: `definition` (a SELECT the caller has planned as the actor, yielding
    /// `columns`). A new view needs CREATE on the dataset and makes the actor its owner (SELECT
    /// and MANAGE on it); replacing one needs MANAGE on it. Audited as `create`.
    pub async fn create_view(
        &self,
        actor: &Actor,
        view: &TableRef,
        definition: &str,
        columns: &[Column],
        replace: bool,
    ) -> Result<Committed> {
        let operation = if replace {
            "create or replace view"
        } else {
            "create view"
        };
        let result = self
            .create_view_unrecorded(actor, view, definition, columns, replace)
            .await;
        self.record(actor, "create", view, operation, &result).await;
        result
    }

    async fn create_view_unrecorded(
        &self,
        actor: &Actor,
        view: &TableRef,
        definition: &str,
        columns: &[Column],
        replace: bool,
    ) -> Result<Committed> {
        let existing = match replace {
            true => self.catalog.table(view).await?,
            false => None,
        };
        if let Some(entry) = &existing {
            let needs = WriteNeeds {
                operation: "create or replace view",
                privilege: Privilege::Manage,
                full_view: false,
                rows_unchecked: false,
                administer: false,
                columns: Vec::new(),
            };
            self.decide(actor, entry, &needs).await?;
            if !entry.is_view() {
                return Err(TablesError::Invalid(format!(
                    "'{view}' is a table; CREATE OR REPLACE VIEW replaces views only"
                )));
            }
        } else {
            self.check_create(actor, view).await?;
        }
        self.catalog
            .create_view(view, definition, columns, existing.is_some())
            .await?;
        if existing.is_none()
            && let Some(p) = &actor.principal
        {
            for privilege in [Privilege::Select, Privilege::Manage] {
                self.catalog
                    .grant(&Grant {
                        grantee: p.name.clone(),
                        privilege,
                        object: Securable::table(view),
                        column: None,
                        granted_by: p.name.clone(),
                        granted_at: String::new(),
                    })
                    .await?;
            }
        }
        Ok(Committed {
            version: -1,
            ..Default::default()
        })
    }
}
