//! The words of the access model: privileges, securables, grants, policies, principals.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use basin_core::{DatasetRef, Name, TableRef};
use serde::Serialize;

use crate::{CatalogError, Result};

/// The role whose members may do everything, everywhere.
pub const ADMIN_ROLE: &str = "admin";
/// The role every principal belongs to.
pub const PUBLIC_ROLE: &str = "public";

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Privilege {
    /// See a hub or dataset (and list it).
    Usage,
    /// Read rows.
    Select,
    /// Insert, update, delete, ingest.
    Modify,
    /// Create tables in a dataset, datasets in a hub.
    Create,
    /// Grant, alter, drop.
    Manage,
    /// See protected (masked or encrypted) columns in clear.
    Unmask,
}

impl Privilege {
    pub const ALL: [Privilege; 6] = [
        Privilege::Usage,
        Privilege::Select,
        Privilege::Modify,
        Privilege::Create,
        Privilege::Manage,
        Privilege::Unmask,
    ];
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Privilege::Usage => "USAGE",
            Privilege::Select => "SELECT",
            Privilege::Modify => "MODIFY",
            Privilege::Create => "CREATE",
            Privilege::Manage => "MANAGE",
            Privilege::Unmask => "UNMASK",
        })
    }
}

impl FromStr for Privilege {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self> {
        Privilege::ALL
            .into_iter()
            .find(|p| p.to_string().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                CatalogError::BadValue(format!(
                    "unknown privilege '{s}': use one of USAGE, SELECT, MODIFY, CREATE, MANAGE, UNMASK"
                ))
            })
    }
}

/// What a grant is on: a hub, dataset or table (covering everything below it), or whatever
/// carries a tag with one of the given values (any value when `values` is empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Securable {
    Hub {
        hub: String,
    },
    Dataset {
        hub: String,
        dataset: String,
    },
    Table {
        hub: String,
        dataset: String,
        table: String,
    },
    Tag {
        key: String,
        values: Vec<String>,
    },
}

impl Securable {
    /// A table as a securable.
    pub fn table(t: &TableRef) -> Self {
        Securable::Table {
            hub: t.hub.to_string(),
            dataset: t.dataset.to_string(),
            table: t.table.to_string(),
        }
    }

    /// Parses `hub NAME`, `dataset [HUB.]NAME`, `table [HUB.]DATASET.NAME` or
    /// `tag KEY`, `tag KEY=VALUE[|VALUE…]`.
    pub fn parse(input: &str) -> Result<Self> {
        let (kind, rest) = input.trim().split_once(char::is_whitespace).ok_or_else(|| {
            CatalogError::BadValue(format!(
                "cannot read object '{input}': write 'hub NAME', 'dataset [HUB.]NAME', 'table [HUB.]DATASET.NAME' or 'tag KEY=VALUE'"
            ))
        })?;
        let rest = rest.trim();
        match kind.to_ascii_lowercase().as_str() {
            "hub" => Ok(Securable::Hub {
                hub: Name::parse("hub", rest)?.to_string(),
            }),
            "dataset" | "schema" => {
                let d = DatasetRef::parse(rest)?;
                Ok(Securable::Dataset {
                    hub: d.hub.to_string(),
                    dataset: d.dataset.to_string(),
                })
            }
            "table" => Ok(Securable::table(&TableRef::parse(rest)?)),
            "tag" => {
                let (key, values) = match rest.split_once('=') {
                    Some((k, v)) => (k.trim(), v.split('|').map(str::trim).collect()),
                    None => (rest, Vec::new()),
                };
                Ok(Securable::Tag {
                    key: Name::parse("tag", key)?.to_string(),
                    values: values
                        .into_iter()
                        .map(|v| check_tag_value(key, v))
                        .collect::<Result<_>>()?,
                })
            }
            other => Err(CatalogError::BadValue(format!(
                "unknown kind of object '{other}': use hub, dataset, table or tag"
            ))),
        }
    }

    /// The hub the object lives in (`None` for tags, which span hubs).
    pub fn hub(&self) -> Option<&str> {
        match self {
            Securable::Hub { hub }
            | Securable::Dataset { hub, .. }
            | Securable::Table { hub, .. } => Some(hub),
            Securable::Tag { .. } => None,
        }
    }

    /// Whether the object is `table` or contains it (ignoring tags).
    pub(crate) fn contains_table(&self, t: &TableRef) -> bool {
        match self {
            Securable::Hub { hub } => hub == t.hub.as_str(),
            Securable::Dataset { hub, dataset } => {
                hub == t.hub.as_str() && dataset == t.dataset.as_str()
            }
            Securable::Table {
                hub,
                dataset,
                table,
            } => {
                hub == t.hub.as_str() && dataset == t.dataset.as_str() && table == t.table.as_str()
            }
            Securable::Tag { .. } => false,
        }
    }

    /// Whether the object is the dataset, contains it, or lies inside it.
    pub(crate) fn touches_dataset(&self, hub: &str, dataset: &str) -> bool {
        match self {
            Securable::Hub { hub: h } => h == hub,
            Securable::Dataset { hub: h, dataset: d }
            | Securable::Table {
                hub: h, dataset: d, ..
            } => h == hub && d == dataset,
            Securable::Tag { .. } => false,
        }
    }

    /// Whether a tag expression matches the effective tags given.
    pub(crate) fn matches_tags<'a>(&self, tag_of: impl Fn(&str) -> Option<&'a str>) -> bool {
        match self {
            Securable::Tag { key, values } => match tag_of(key) {
                Some(v) => values.is_empty() || values.iter().any(|x| x == v),
                None => false,
            },
            _ => false,
        }
    }
}

impl fmt::Display for Securable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Securable::Hub { hub } => write!(f, "hub {hub}"),
            Securable::Dataset { hub, dataset } => write!(f, "dataset {hub}.{dataset}"),
            Securable::Table {
                hub,
                dataset,
                table,
            } => write!(f, "table {hub}.{dataset}.{table}"),
            Securable::Tag { key, values } if values.is_empty() => write!(f, "tag {key}"),
            Securable::Tag { key, values } => write!(f, "tag {key}={}", values.join("|")),
        }
    }
}

pub(crate) fn check_tag_value(key: &str, value: &str) -> Result<String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(value.to_string())
    } else {
        Err(CatalogError::BadValue(format!(
            "invalid value '{value}' for tag '{key}': use 1 to 63 of a-z, 0-9, '_' and '-'"
        )))
    }
}

/// One privilege held by a grantee (a role or a user) on an object, or on one column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub grantee: String,
    pub privilege: Privilege,
    pub object: Securable,
    /// For column-level grants on a table: the column.
    pub column: Option<String>,
    pub granted_by: String,
    pub granted_at: String,
}

/// How a column is shown to those it is masked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "arg", rename_all = "snake_case")]
pub enum Mask {
    /// NULL.
    Null,
    /// The hex SHA-256 of the value (equal values stay equal).
    Hash,
    /// `*` for every character except the last N.
    KeepLast(u32),
    /// A SQL expression over the table's columns (the column itself by its name).
    Expr(String),
}

impl FromStr for Mask {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        if lower == "null" {
            return Ok(Mask::Null);
        }
        if lower == "hash" {
            return Ok(Mask::Hash);
        }
        if let Some(n) = lower
            .strip_prefix("keep_last(")
            .and_then(|r| r.strip_suffix(')'))
            .or_else(|| lower.strip_prefix("keep_last:"))
        {
            return n.trim().parse().map(Mask::KeepLast).map_err(|_| {
                CatalogError::BadValue(format!(
                    "mask '{s}': keep_last needs a whole number, e.g. keep_last(4)"
                ))
            });
        }
        if let Some(e) = t.strip_prefix("expr:") {
            if e.trim().is_empty() {
                return Err(CatalogError::BadValue(
                    "mask 'expr:' needs a SQL expression after the colon".into(),
                ));
            }
            return Ok(Mask::Expr(e.trim().to_string()));
        }
        Err(CatalogError::BadValue(format!(
            "unknown mask '{s}': use null, hash, keep_last(N) or expr:<SQL expression>"
        )))
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mask::Null => f.write_str("null"),
            Mask::Hash => f.write_str("hash"),
            Mask::KeepLast(n) => write!(f, "keep_last({n})"),
            Mask::Expr(e) => write!(f, "expr:{e}"),
        }
    }
}

/// A row filter: the rows of `table` that members of `grantee` may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowFilter {
    #[serde(serialize_with = "as_text")]
    pub table: TableRef,
    pub grantee: String,
    /// A SQL boolean expression over the table's columns; may use `current_user()` and
    /// `user_attribute('name')`.
    pub expression: String,
}

/// A column mask for members of `grantee`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnMask {
    #[serde(serialize_with = "as_text")]
    pub table: TableRef,
    pub column: String,
    pub grantee: String,
    pub mask: Mask,
}

/// A tag key and the values it may take (any value when empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagKey {
    pub name: String,
    pub allowed_values: Vec<String>,
}

/// A local or federated user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    /// Attributes that row filters can use, e.g. `region = eu`.
    pub attributes: BTreeMap<String, String>,
    /// Roles the user is a member of.
    pub roles: Vec<String>,
    pub disabled: bool,
    pub has_password: bool,
    pub created_at: String,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub members: Vec<String>,
    pub created_at: String,
}

/// What kind of token it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Issued by a login; short-lived.
    Session,
    /// Made for a program; named, long-lived, revocable.
    Service,
}

impl TokenKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Service => "service",
        }
    }
}

/// A bearer token as stored: only the hash of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub kind: TokenKind,
    #[serde(skip)]
    pub secret_hash: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub at: String,
    pub principal: String,
    /// Where the request came from (address, or `cli`).
    pub source: String,
    /// What was attempted: `login`, `query`, `write`, `grant`, `user.create`, …
    pub action: String,
    /// The object or statement concerned.
    pub target: String,
    /// `ok`, `denied` or `error`.
    pub outcome: String,
    /// A JSON object with details (tables touched, rows, duration, …).
    pub detail: String,
}

/// Who is asking: a user or service token's owner, with the roles it acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    /// Every role the principal acts in, including its own name and `public`.
    pub roles: BTreeSet<String>,
    pub attributes: BTreeMap<String, String>,
}

impl Principal {
    /// Whether the principal is an administrator.
    pub fn is_admin(&self) -> bool {
        self.roles.contains(ADMIN_ROLE)
    }
}

fn as_text<S: serde::Serializer>(v: &TableRef, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// A portal sign-in as stored: only the hash of the id the browser's cookie holds is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub id_hash: String,
    pub user: String,
    /// Roles the identity provider granted at sign-in (empty for local users).
    pub roles: Vec<String>,
    /// The token every form of this session carries (CSRF protection).
    pub csrf_token: String,
    pub created_at: String,
    pub expires_at: String,
}
