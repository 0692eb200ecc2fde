//! The decision function: a pure function of (principal, object, access state).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use basin_core::TableRef;
use serde::Serialize;

use super::model::*;
use crate::{Dataset, Table};

/// Everything decisions depend on besides the objects themselves, loaded at one catalog
/// version and cached until the next change. Grants are indexed by grantee and policies by
/// table, so a decision looks only at what concerns the principal and the table: its cost does
/// not grow with the number of tables or of other roles' grants.
#[derive(Debug, Clone, Default)]
pub struct AccessSnapshot {
    version: i64,
    grants: HashMap<String, Vec<Grant>>,
    row_filters: HashMap<TableRef, Vec<RowFilter>>,
    masks: HashMap<TableRef, Vec<ColumnMask>>,
    /// member → roles.
    memberships: BTreeMap<String, BTreeSet<String>>,
    /// user → attributes.
    attributes: BTreeMap<String, BTreeMap<String, String>>,
}

/// What a principal may do with one table and how it sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TablePolicy {
    /// Privileges held on the table (SELECT when at least one column may be read).
    pub privileges: BTreeSet<Privilege>,
    /// The columns the principal may see, in table order.
    pub columns: Vec<ColumnPolicy>,
    /// Rows outside this SQL expression are invisible (`None`: all rows).
    pub row_filter: Option<String>,
    /// Whether protected columns are shown in clear.
    pub unmask: bool,
    /// Whether the principal sees every column of the table.
    pub all_columns: bool,
}

/// How one visible column is shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnPolicy {
    pub name: String,
    /// The mask applied for this principal, if any.
    pub mask: Option<Mask>,
    /// Whether the column is personal data, stored encrypted.
    pub pii: bool,
    /// Whether the principal may see this column's values in clear (UNMASK on the table, or on
    /// a tag the column, its table or its dataset carries).
    pub clear: bool,
}

impl TablePolicy {
    /// Whether the privilege is held.
    pub fn allows(&self, privilege: Privilege) -> bool {
        self.privileges.contains(&privilege)
    }

    /// Whether the principal sees every row and every column of the table in clear, as writes
    /// that may touch rows it cannot see (MERGE, overwriting or upserting uploads) require.
    pub fn sees_everything(&self) -> bool {
        self.all_columns
            && self.row_filter.is_none()
            && self
                .columns
                .iter()
                .all(|c| c.mask.is_none() && (!c.pii || c.clear))
    }

    /// Whether the principal may write values into a column: a PII column only when it may
    /// read it in clear, or a principal could test guessed values against tokens (deterministic
    /// encryption) by writing them and comparing.
    pub fn may_write_column(&self, column: &str) -> bool {
        self.columns
            .iter()
            .any(|c| c.name == column && (!c.pii || c.clear))
    }

    /// The policy of the trusted operator (the CLI on a data dir) and of administrators.
    pub fn unrestricted(table: &Table) -> TablePolicy {
        TablePolicy {
            privileges: Privilege::ALL.into_iter().collect(),
            columns: table
                .columns
                .iter()
                .map(|c| ColumnPolicy {
                    name: c.name.clone(),
                    mask: None,
                    pii: table.is_pii(c),
                    clear: true,
                })
                .collect(),
            row_filter: None,
            unmask: true,
            all_columns: true,
        }
    }
}

/// Whether tags mark a column as personal data (`pii` or `<key>=pii`).
pub fn is_pii(tags: &[String]) -> bool {
    tags.iter()
        .any(|t| t == "pii" || t.split_once('=').is_some_and(|(_, v)| v == "pii"))
}

/// The value of tag `key` in a tag list (`""` for a bare tag), if present.
fn tag_in<'a>(tags: &'a [String], key: &str) -> Option<&'a str> {
    tags.iter().find_map(|t| match t.split_once('=') {
        Some((k, v)) if k == key => Some(v),
        None if t == key => Some(""),
        _ => None,
    })
}

impl AccessSnapshot {
    /// A snapshot of the access state at catalog version `version`; `memberships` maps each
    /// member to its roles, `attributes` each user to its attributes.
    pub fn new(
        version: i64,
        grants: Vec<Grant>,
        row_filters: Vec<RowFilter>,
        masks: Vec<ColumnMask>,
        memberships: BTreeMap<String, BTreeSet<String>>,
        attributes: BTreeMap<String, BTreeMap<String, String>>,
    ) -> Self {
        let mut snapshot = AccessSnapshot {
            version,
            memberships,
            attributes,
            ..Default::default()
        };
        for g in grants {
            snapshot
                .grants
                .entry(g.grantee.clone())
                .or_default()
                .push(g);
        }
        for f in row_filters {
            snapshot
                .row_filters
                .entry(f.table.clone())
                .or_default()
                .push(f);
        }
        for m in masks {
            snapshot.masks.entry(m.table.clone()).or_default().push(m);
        }
        snapshot
    }

    /// The catalog's access version this snapshot was loaded at.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The principal called `name`, acting in its own roles plus `extra_roles` (from an
    /// identity provider).
    pub fn principal(&self, name: &str, extra_roles: &[String]) -> Principal {
        let mut roles: BTreeSet<String> = self.memberships.get(name).cloned().unwrap_or_default();
        roles.extend(extra_roles.iter().cloned());
        roles.insert(name.to_string());
        roles.insert(PUBLIC_ROLE.to_string());
        Principal {
            name: name.to_string(),
            roles,
            attributes: self.attributes.get(name).cloned().unwrap_or_default(),
        }
    }

    /// The grants a principal holds through any of its roles.
    pub fn grants_of<'a>(&'a self, p: &'a Principal) -> impl Iterator<Item = &'a Grant> + 'a {
        p.roles.iter().filter_map(|r| self.grants.get(r)).flatten()
    }

    /// The decision for one table (with its columns) in a dataset: `None` when the principal
    /// holds no privilege on it, so that it must not even learn that it exists.
    pub fn table_policy(
        &self,
        p: &Principal,
        dataset: &Dataset,
        table: &Table,
    ) -> Option<TablePolicy> {
        if p.is_admin() {
            return Some(TablePolicy::unrestricted(table));
        }
        let t = table.table_ref();
        let table_tag = |key: &str| tag_in(&table.tags, key).or_else(|| tag_in(&dataset.tags, key));
        let mut privileges = BTreeSet::new();
        let mut select_all = false;
        let mut select_columns: BTreeSet<&str> = BTreeSet::new();
        let mut tag_select = false;
        // USAGE and CREATE on a hub or dataset say nothing about the tables in it.
        for g in self
            .grants_of(p)
            .filter(|g| !matches!(g.privilege, Privilege::Usage | Privilege::Create))
        {
            match (&g.object, &g.column) {
                (Securable::Tag { .. }, _) => {
                    // SELECT and UNMASK on a tag are decided per column (a column's own tag
                    // overrides its table's and dataset's); other privileges per table.
                    if g.privilege == Privilege::Select {
                        tag_select = true;
                    } else if g.privilege != Privilege::Unmask && g.object.matches_tags(table_tag) {
                        privileges.insert(g.privilege);
                    }
                }
                (o, None) if o.contains_table(&t) => {
                    if g.privilege == Privilege::Select {
                        select_all = true;
                    }
                    privileges.insert(g.privilege);
                }
                (o, Some(c)) if o.contains_table(&t) && g.privilege == Privilege::Select => {
                    select_columns.insert(c);
                }
                _ => {}
            }
        }
        let unmask = privileges.contains(&Privilege::Unmask);
        let mut columns = Vec::new();
        for c in &table.columns {
            let column_tag = |key: &str| tag_in(&c.tags, key).or_else(|| table_tag(key));
            let readable = select_all
                || select_columns.contains(c.name.as_str())
                || (tag_select
                    && self.grants_of(p).any(|g| {
                        g.privilege == Privilege::Select && g.object.matches_tags(column_tag)
                    }));
            if readable {
                let clear = unmask
                    || self.grants_of(p).any(|g| {
                        g.privilege == Privilege::Unmask
                            && matches!(g.object, Securable::Tag { .. })
                            && g.object.matches_tags(column_tag)
                    });
                let mask = if clear {
                    None
                } else {
                    self.masks
                        .get(&t)
                        .into_iter()
                        .flatten()
                        .filter(|m| m.column == c.name && p.roles.contains(&m.grantee))
                        .min_by(|a, b| a.grantee.cmp(&b.grantee))
                        .map(|m| m.mask.clone())
                };
                columns.push(ColumnPolicy {
                    name: c.name.clone(),
                    mask,
                    pii: table.is_pii(c),
                    clear,
                });
            }
        }
        if !columns.is_empty() {
            privileges.insert(Privilege::Select);
        }
        if privileges.is_empty() {
            return None;
        }
        let filters: Vec<&str> = self
            .row_filters
            .get(&t)
            .into_iter()
            .flatten()
            .filter(|f| p.roles.contains(&f.grantee))
            .map(|f| f.expression.as_str())
            .collect();
        let row_filter = match filters.as_slice() {
            [] => None,
            [one] => Some(one.to_string()),
            many => Some(
                many.iter()
                    .map(|f| format!("({f})"))
                    .collect::<Vec<_>>()
                    .join(" OR "),
            ),
        };
        Some(TablePolicy {
            privileges,
            all_columns: columns.len() == table.columns.len(),
            columns,
            row_filter,
            unmask,
        })
    }

    /// Whether the principal holds `privilege` on a dataset (directly, through its hub, or
    /// through a tag the dataset carries).
    pub fn allows_on_dataset(
        &self,
        p: &Principal,
        privilege: Privilege,
        dataset: &Dataset,
    ) -> bool {
        p.is_admin()
            || self.grants_of(p).any(|g| {
                g.privilege == privilege
                    && g.column.is_none()
                    && match &g.object {
                        Securable::Hub { hub } => *hub == dataset.hub,
                        Securable::Dataset { hub, dataset: d } => {
                            *hub == dataset.hub && *d == dataset.name
                        }
                        tag @ Securable::Tag { .. } => {
                            tag.matches_tags(|k| tag_in(&dataset.tags, k))
                        }
                        Securable::Table { .. } => false,
                    }
            })
    }

    /// Whether a dataset is visible without looking at its tables: some grant names it, its hub,
    /// or a table in it, or a tag grant matches its tags.
    pub fn dataset_visible(&self, p: &Principal, dataset: &Dataset) -> bool {
        p.is_admin()
            || self.grants_of(p).any(|g| match &g.object {
                Securable::Tag { .. } => g.object.matches_tags(|k| tag_in(&dataset.tags, k)),
                o => o.touches_dataset(&dataset.hub, &dataset.name),
            })
    }

    /// Whether a table may be visible in a dataset that is not visible by itself: only a tag
    /// grant can do that (a grant on a hub, dataset or table makes its dataset visible), so
    /// without one a roll-up need not look at any table.
    pub fn sees_tables_by_tag(&self, p: &Principal) -> bool {
        !p.is_admin()
            && self.grants_of(p).any(|g| {
                matches!(g.object, Securable::Tag { .. })
                    && !matches!(g.privilege, Privilege::Usage | Privilege::Create)
            })
    }

    /// The hubs and datasets a principal sees, from those in scope and the tables it sees
    /// (`(hub, dataset)` of each): a dataset when it is visible by itself or holds a visible
    /// table; a hub when it is visible by itself or holds a visible dataset.
    pub fn roll_up(
        &self,
        p: &Principal,
        hubs: Vec<crate::Hub>,
        datasets: Vec<Dataset>,
        visible_tables: &[(String, String)],
    ) -> (Vec<crate::Hub>, Vec<Dataset>) {
        let holding: BTreeSet<(&str, &str)> = visible_tables
            .iter()
            .map(|(h, d)| (h.as_str(), d.as_str()))
            .collect();
        let datasets: Vec<Dataset> = datasets
            .into_iter()
            .filter(|d| {
                self.dataset_visible(p, d) || holding.contains(&(d.hub.as_str(), d.name.as_str()))
            })
            .collect();
        let hubs = hubs
            .into_iter()
            .filter(|h| self.hub_visible(p, &h.name) || datasets.iter().any(|d| d.hub == h.name))
            .collect();
        (hubs, datasets)
    }

    /// Whether a hub is visible without looking at its datasets.
    pub fn hub_visible(&self, p: &Principal, hub: &str) -> bool {
        p.is_admin() || self.grants_of(p).any(|g| g.object.hub() == Some(hub))
    }

    /// Whether the principal administers or holds MANAGE on some object (and so has grants,
    /// policies and tags to look after).
    pub fn manages_anything(&self, p: &Principal) -> bool {
        p.is_admin() || self.grants_of(p).any(|g| g.privilege == Privilege::Manage)
    }

    /// Whether the principal may grant on, and change policies of, an object: administrators,
    /// and holders of MANAGE on it or above it. Tag grants are for administrators only.
    pub fn may_manage(&self, p: &Principal, object: &Securable) -> bool {
        if p.is_admin() {
            return true;
        }
        self.grants_of(p).any(|g| {
            g.privilege == Privilege::Manage
                && g.column.is_none()
                && match (&g.object, object) {
                    (Securable::Tag { .. }, _) | (_, Securable::Tag { .. }) => false,
                    (Securable::Hub { hub }, o) => o.hub() == Some(hub),
                    (
                        Securable::Dataset { hub, dataset },
                        Securable::Dataset { hub: h, dataset: d },
                    )
                    | (
                        Securable::Dataset { hub, dataset },
                        Securable::Table {
                            hub: h, dataset: d, ..
                        },
                    ) => hub == h && dataset == d,
                    (g, o @ Securable::Table { .. }) => g == o,
                    _ => false,
                }
        })
    }
}

/// Actions decided by [`AccessSnapshot::may`] (reading and writing tables are decided by
/// [`AccessSnapshot::table_policy`]).
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Users, roles, tag keys, hub keys, every principal's tokens.
    Administer,
    /// Read the audit log.
    ReadAudit,
    /// Create datasets in a hub.
    CreateDataset { hub: &'a str },
    /// Create tables in a dataset.
    CreateTable(&'a Dataset),
    /// Grant on, and set policies of, an object.
    Manage(&'a Securable),
    /// Grant or revoke a privilege on an object.
    Grant(Privilege, &'a Securable),
    /// Set the tags of an object or of one of its columns; `pii` when the tags before or after
    /// mark personal data.
    Tag { object: &'a Securable, pii: bool },
    /// Set or drop a column mask; `pii` when the column is personal data.
    Mask { table: &'a Securable, pii: bool },
    /// Revoke a service token owned by `owner`.
    Token { owner: &'a str },
    /// Delete a hub (administrators only: it is a storage and isolation boundary) or a dataset
    /// (MANAGE on it or on its hub).
    Delete(&'a Securable),
}

impl AccessSnapshot {
    /// The one answer to "may principal P do action A": every action that is not a read or
    /// write of rows is decided here.
    ///
    /// Revealing personal data is for administrators alone: granting UNMASK, tagging a column
    /// `pii` or untagging it, and masking a PII column (a mask sees the clear value). An owner
    /// cannot grant itself what would show it values it may not read.
    pub fn may(&self, p: &Principal, action: Action<'_>) -> bool {
        if p.is_admin() {
            return true;
        }
        match action {
            Action::Administer | Action::ReadAudit => false,
            Action::CreateDataset { hub } => self.grants_of(p).any(|g| {
                g.privilege == Privilege::Create
                    && g.column.is_none()
                    && matches!(&g.object, Securable::Hub { hub: h } if h == hub)
            }),
            Action::CreateTable(dataset) => self.allows_on_dataset(p, Privilege::Create, dataset),
            Action::Manage(object) => self.may_manage(p, object),
            Action::Grant(privilege, object) => {
                privilege != Privilege::Unmask && self.may_manage(p, object)
            }
            Action::Tag { object, pii } => !pii && self.may_manage(p, object),
            Action::Mask { table, pii } => !pii && self.may_manage(p, table),
            Action::Token { owner } => owner == p.name,
            Action::Delete(object) => {
                !matches!(object, Securable::Hub { .. }) && self.may_manage(p, object)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::{Column, Contract};
    use basin_core::Layer;

    fn grant(grantee: &str, privilege: Privilege, object: &str) -> Grant {
        Grant {
            grantee: grantee.into(),
            privilege,
            object: Securable::parse(object).unwrap(),
            column: None,
            granted_by: "test".into(),
            granted_at: String::new(),
        }
    }

    fn snapshot(grants: Vec<Grant>) -> AccessSnapshot {
        let mut memberships = BTreeMap::new();
        memberships.insert("root".to_string(), BTreeSet::from([ADMIN_ROLE.to_string()]));
        AccessSnapshot::new(1, grants, vec![], vec![], memberships, BTreeMap::new())
    }

    fn dataset(name: &str, tags: &[&str]) -> Dataset {
        Dataset {
            hub: "main".into(),
            name: name.into(),
            layer: Layer::Source,
            domain: None,
            owner: None,
            description: String::new(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            contract: Contract::default(),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn table(columns: &[(&str, &[&str])]) -> Table {
        Table {
            hub: "main".into(),
            dataset: "crm".into(),
            name: "people".into(),
            location: String::new(),
            description: String::new(),
            primary_key: vec![],
            partition_columns: vec![],
            tags: vec![],
            dataset_tags: vec![],
            columns: columns
                .iter()
                .map(|(name, tags)| Column {
                    name: name.to_string(),
                    data_type: "VARCHAR".into(),
                    nullable: true,
                    description: String::new(),
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                })
                .collect(),
            created_at: String::new(),
            updated_at: String::new(),
            kind: "table".into(),
            definition: String::new(),
        }
    }

    #[test]
    fn revealing_personal_data_is_for_administrators() {
        let owned = Securable::parse("table main.crm.people").unwrap();
        let s = snapshot(vec![grant(
            "owner",
            Privilege::Manage,
            "table main.crm.people",
        )]);
        let (owner, root) = (s.principal("owner", &[]), s.principal("root", &[]));
        for (action, owner_may) in [
            (Action::Manage(&owned), true),
            (Action::Grant(Privilege::Select, &owned), true),
            (Action::Grant(Privilege::Unmask, &owned), false),
            (
                Action::Tag {
                    object: &owned,
                    pii: false,
                },
                true,
            ),
            (
                Action::Tag {
                    object: &owned,
                    pii: true,
                },
                false,
            ),
            (
                Action::Mask {
                    table: &owned,
                    pii: false,
                },
                true,
            ),
            (
                Action::Mask {
                    table: &owned,
                    pii: true,
                },
                false,
            ),
            (Action::Administer, false),
            (Action::ReadAudit, false),
        ] {
            assert_eq!(s.may(&owner, action), owner_may, "{action:?}");
            assert!(s.may(&root, action), "administrators may {action:?}");
        }
    }

    #[test]
    fn deleting_a_hub_is_for_administrators_a_dataset_for_its_managers() {
        let s = snapshot(vec![
            grant("hub_manager", Privilege::Manage, "hub main"),
            grant("ds_manager", Privilege::Manage, "dataset main.crm"),
            grant("creator", Privilege::Create, "hub main"),
            grant("reader", Privilege::Select, "dataset main.crm"),
        ]);
        let (hub, crm, erp) = (
            Securable::parse("hub main").unwrap(),
            Securable::parse("dataset main.crm").unwrap(),
            Securable::parse("dataset main.erp").unwrap(),
        );
        for (who, hub_ok, crm_ok, erp_ok) in [
            ("hub_manager", false, true, true),
            ("ds_manager", false, true, false),
            ("creator", false, false, false),
            ("reader", false, false, false),
            ("root", true, true, true),
        ] {
            let p = s.principal(who, &[]);
            assert_eq!(
                s.may(&p, Action::Delete(&hub)),
                hub_ok,
                "{who} deletes the hub"
            );
            assert_eq!(s.may(&p, Action::Delete(&crm)), crm_ok, "{who} deletes crm");
            assert_eq!(s.may(&p, Action::Delete(&erp)), erp_ok, "{who} deletes erp");
        }
    }

    #[test]
    fn create_and_tokens() {
        let s = snapshot(vec![
            grant("maker", Privilege::Create, "dataset main.crm"),
            grant("builder", Privilege::Create, "hub main"),
        ]);
        let (maker, builder) = (s.principal("maker", &[]), s.principal("builder", &[]));
        let crm = dataset("crm", &[]);
        assert!(s.may(&maker, Action::CreateTable(&crm)));
        assert!(!s.may(&maker, Action::CreateDataset { hub: "main" }));
        assert!(s.may(&builder, Action::CreateDataset { hub: "main" }));
        assert!(!s.may(&builder, Action::CreateDataset { hub: "de" }));
        assert!(s.may(&maker, Action::Token { owner: "maker" }));
        assert!(!s.may(&maker, Action::Token { owner: "builder" }));
    }

    #[test]
    fn create_does_not_show_the_tables_of_a_dataset() {
        let s = snapshot(vec![grant("maker", Privilege::Create, "dataset main.crm")]);
        let maker = s.principal("maker", &[]);
        let people = table(&[("name", &[])]);
        assert_eq!(s.table_policy(&maker, &dataset("crm", &[]), &people), None);
    }

    #[test]
    fn unmask_on_a_tag_follows_column_tags_and_writing_pii_needs_it() {
        let mut pci = grant("pay", Privilege::Unmask, "tag classification=pci");
        pci.object = Securable::Tag {
            key: "classification".into(),
            values: vec!["pci".into()],
        };
        let s = snapshot(vec![
            grant("pay", Privilege::Select, "table main.crm.people"),
            grant("pay", Privilege::Modify, "table main.crm.people"),
            pci,
        ]);
        let pay = s.principal("pay", &[]);
        let people = table(&[
            ("email", &["pii"]),
            ("card", &["pii", "classification=pci"]),
            ("city", &[]),
        ]);
        let policy = s.table_policy(&pay, &dataset("crm", &[]), &people).unwrap();
        let clear: Vec<(&str, bool)> = policy
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.clear))
            .collect();
        assert_eq!(clear, [("email", false), ("card", true), ("city", false)]);
        assert!(!policy.may_write_column("email"));
        assert!(policy.may_write_column("card"));
        assert!(policy.may_write_column("city"));
        assert!(!policy.may_write_column("missing"));
        assert!(!policy.sees_everything(), "email is shown as tokens");
    }

    #[test]
    fn a_columns_own_tag_overrides_its_datasets_for_unmask() {
        let mut pci = grant("pay", Privilege::Unmask, "tag classification=pci");
        pci.object = Securable::Tag {
            key: "classification".into(),
            values: vec!["pci".into()],
        };
        let s = snapshot(vec![
            grant("pay", Privilege::Select, "table main.crm.people"),
            pci,
        ]);
        let pay = s.principal("pay", &[]);
        let people = table(&[
            ("email", &["pii", "classification=pii"]),
            ("card", &["pii"]),
        ]);
        let policy = s
            .table_policy(&pay, &dataset("crm", &["classification=pci"]), &people)
            .unwrap();
        let clear: Vec<(&str, bool)> = policy
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.clear))
            .collect();
        assert_eq!(clear, [("email", false), ("card", true)]);
        assert!(!policy.unmask, "no UNMASK on the table as a whole");
    }
}
