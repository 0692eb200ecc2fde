//! Administration pages (`/admin/…`): users, roles and memberships, grants, row filters and
//! masks, tags, service tokens. Each page lists what the viewer may see and holds the forms
//! to change it; every change is a `Session` admin function (so it is decided by the catalog and
//! audited there), every form carries the CSRF token, and an error is shown above the forms.
//!
//! Administrators see every section; holders of a MANAGE grant see grants, policies and tags
//! (the service refuses what they may not manage); everyone sees their own service tokens.

use axum::extract::{Form, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use basin_catalog::access::{ColumnMask, Privilege, RowFilter, Securable};
use basin_service::{NewUser, TagAssignment};
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::{PortalError, PortalResult, Viewer, csrf_field, page, verify_csrf};

/// The sections, in the order the index lists them: (path, title, who sees it).
const SECTIONS: &[(&str, &str, Audience)] = &[
    ("users", "Users", Audience::Admins),
    ("roles", "Roles and members", Audience::Admins),
    ("grants", "Grants", Audience::Managers),
    ("policies", "Row filters and masks", Audience::Managers),
    ("tags", "Tags", Audience::Managers),
    ("tokens", "Service tokens", Audience::Everyone),
];

#[derive(Clone, Copy, PartialEq)]
enum Audience {
    Admins,
    Managers,
    Everyone,
}

fn may_see(viewer: &Viewer, who: Audience) -> bool {
    match who {
        Audience::Admins => viewer.is_admin,
        Audience::Managers => viewer.sees_admin,
        Audience::Everyone => true,
    }
}

/// The section `name`, if the viewer may see it (else "not found", like a missing page).
fn section_of(viewer: &Viewer, name: &str) -> PortalResult<(&'static str, &'static str)> {
    SECTIONS
        .iter()
        .find(|(path, _, who)| *path == name && may_see(viewer, *who))
        .map(|(path, title, _)| (*path, *title))
        .ok_or_else(|| PortalError::not_found(format!("no admin page '{name}'")))
}

/// `GET /admin`: the sections the viewer may use.
pub(crate) async fn index(viewer: Viewer) -> PortalResult<Markup> {
    Ok(page(
        "Admin",
        &viewer,
        html! {
            h1 { "Admin" }
            ul.sections {
                @for (path, title, who) in SECTIONS {
                    @if may_see(&viewer, *who) {
                        li { a href=(format!("/admin/{path}")) { (title) } }
                    }
                }
            }
        },
    ))
}

/// What happened to the last form: shown above the forms.
enum Notice {
    Done(String),
    Failed(StatusCode, String),
    /// A new token's secret, shown once.
    Secret(String, String),
}

/// `GET /admin/{section}`.
pub(crate) async fn show(viewer: Viewer, Path(section): Path<String>) -> PortalResult<Response> {
    let (path, title) = section_of(&viewer, &section)?;
    render(&viewer, path, title, None).await
}

/// A form of an admin page: `action` says which; the other fields are the action's.
#[derive(Deserialize)]
pub(crate) struct AdminForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(flatten)]
    fields: BTreeMap<String, String>,
}

impl AdminForm {
    /// A field, trimmed; "" when absent.
    fn get(&self, name: &str) -> String {
        self.fields
            .get(name)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    }

    /// A field that must be given.
    fn need(&self, name: &str, what: &str) -> PortalResult<String> {
        let v = self.get(name);
        if v.is_empty() {
            Err(PortalError::bad_request(format!("give {what}")))
        } else {
            Ok(v)
        }
    }

    /// A comma-separated list field.
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// `POST /admin/{section}`: does the form's action, then shows the page with what happened.
pub(crate) async fn act(
    viewer: Viewer,
    Path(section): Path<String>,
    Form(f): Form<AdminForm>,
) -> PortalResult<Response> {
    verify_csrf(&viewer, &f.csrf)?;
    let (path, title) = section_of(&viewer, &section)?;
    let notice = match Box::pin(perform(&viewer, path, &f)).await {
        Ok(n) => n,
        Err(e) => Notice::Failed(e.status, e.message),
    };
    render(&viewer, path, title, Some(notice)).await
}

async fn perform(viewer: &Viewer, section: &str, f: &AdminForm) -> PortalResult<Notice> {
    let s = &viewer.session;
    let me = viewer.name.as_str();
    let done = |m: String| Ok(Notice::Done(m));
    match (section, f.action.as_str()) {
        ("users", "create") => {
            let name = f.need("name", "the user's name")?;
            let password = Some(f.get("password")).filter(|p| !p.is_empty());
            s.create_user(NewUser {
                name: name.clone(),
                password,
                attributes: Default::default(),
                roles: f.list("roles"),
            })
            .await?;
            done(format!("User '{name}' created."))
        }
        ("users", "disable") => {
            let name = f.need("user", "the user")?;
            s.disable_user(&name).await?;
            done(format!("User '{name}' disabled."))
        }
        ("users", "enable") => {
            let name = f.need("user", "the user")?;
            s.enable_user(&name).await?;
            done(format!("User '{name}' enabled."))
        }
        ("users", "password") => {
            let name = f.need("user", "the user")?;
            let password = f.need("password", "the new password")?;
            s.set_password(&name, None, password).await?;
            done(format!("Password of '{name}' set."))
        }
        ("roles", "create") => {
            let name = f.need("name", "the role's name")?;
            s.create_role(&name, &f.get("description")).await?;
            done(format!("Role '{name}' created."))
        }
        ("roles", "add_member") => {
            let (role, user) = (f.need("role", "the role")?, f.need("user", "the user")?);
            s.add_member(&role, &user).await?;
            done(format!("'{user}' is now a member of '{role}'."))
        }
        ("roles", "remove_member") => {
            let (role, user) = (f.need("role", "the role")?, f.need("user", "the user")?);
            s.remove_member(&role, &user).await?;
            done(format!("'{user}' is no longer a member of '{role}'."))
        }
        ("grants", action @ ("grant" | "revoke")) => {
            let privilege: Privilege = f.need("privilege", "a privilege")?.parse().map_err(
                |e: basin_catalog::CatalogError| PortalError::bad_request(e.to_string()),
            )?;
            let object = Securable::parse(&f.need("object", "an object")?)
                .map_err(|e| PortalError::bad_request(e.to_string()))?;
            let grantee = f.need("grantee", "a grantee (user or role)")?;
            let grants =
                basin_service::grants_of(privilege, object, &f.list("columns"), &grantee, me);
            let revoke = action == "revoke";
            s.change_grants(&grants, revoke).await?;
            done(if revoke {
                format!(
                    "Revoked {privilege} on {} from '{grantee}'.",
                    grants[0].object
                )
            } else {
                format!(
                    "Granted {privilege} on {} to '{grantee}'.",
                    grants[0].object
                )
            })
        }
        ("policies", action @ ("set_filter" | "drop_filter")) => {
            let table = table(&f.need("table", "the table")?)?;
            let grantee = f.need("grantee", "a grantee (user or role)")?;
            if action == "drop_filter" {
                s.drop_row_filter(&table, &grantee).await?;
                return done(format!("Row filter of {table} for '{grantee}' dropped."));
            }
            let expression = f.need("expression", "the filter's expression")?;
            s.set_row_filter(&RowFilter {
                table: table.clone(),
                grantee: grantee.clone(),
                expression,
            })
            .await?;
            done(format!("Row filter of {table} for '{grantee}' set."))
        }
        ("policies", action @ ("set_mask" | "drop_mask")) => {
            let table = table(&f.need("table", "the table")?)?;
            let column = f.need("column", "the column")?;
            let grantee = f.need("grantee", "a grantee (user or role)")?;
            if action == "drop_mask" {
                s.drop_mask(&table, &column, &grantee).await?;
                return done(format!("Mask of {table}.{column} for '{grantee}' dropped."));
            }
            let mask = f
                .need("mask", "the mask: null, hash, keep_last(N) or expr:<SQL>")?
                .parse()
                .map_err(|e: basin_catalog::CatalogError| {
                    PortalError::bad_request(e.to_string())
                })?;
            s.set_mask(&ColumnMask {
                table: table.clone(),
                column: column.clone(),
                grantee: grantee.clone(),
                mask,
            })
            .await?;
            done(format!("Mask of {table}.{column} for '{grantee}' set."))
        }
        ("tags", "define") => {
            let key = f.need("key", "the tag key")?;
            s.define_tag(&key, &f.list("allowed_values")).await?;
            done(format!("Tag key '{key}' defined."))
        }
        ("tags", "set") => {
            let object = f.need("object", "an object")?;
            let column = Some(f.get("column")).filter(|c| !c.is_empty());
            s.set_tags(&TagAssignment {
                object: object.clone(),
                column,
                tags: f.list("tags"),
            })
            .await?;
            done(format!("Tags of {object} set."))
        }
        ("tokens", "create") => {
            let name = f.need("name", "the token's name")?;
            let days = match f.get("ttl_days").as_str() {
                "" => 90,
                d => d.parse().map_err(|_| {
                    PortalError::bad_request(format!("lifetime '{d}' is not a number of days"))
                })?,
            };
            let owner = Some(f.get("owner")).filter(|o| !o.is_empty());
            let (secret, token) = s.create_token(&name, owner.as_deref(), days).await?;
            Ok(Notice::Secret(token.name, secret))
        }
        ("tokens", "revoke") => {
            let id = f.need("id", "the token")?;
            let token = s.revoke_token(&id).await?;
            done(format!("Token '{}' revoked.", token.name))
        }
        (_, other) => Err(PortalError::bad_request(format!(
            "unknown action '{other}' on this page"
        ))),
    }
}

fn table(name: &str) -> PortalResult<basin_core::TableRef> {
    basin_core::TableRef::parse(name).map_err(|e| PortalError::bad_request(e.to_string()))
}

/// A section's page, with what happened to the last form.
async fn render(
    viewer: &Viewer,
    section: &str,
    title: &str,
    notice: Option<Notice>,
) -> PortalResult<Response> {
    let body = match section {
        "users" => users(viewer).await?,
        "roles" => roles(viewer).await?,
        "grants" => grants(viewer).await?,
        "policies" => policies(viewer).await?,
        "tags" => tags(viewer).await?,
        _ => tokens(viewer).await?,
    };
    let status = match &notice {
        Some(Notice::Failed(status, _)) => *status,
        _ => StatusCode::OK,
    };
    let markup = page(
        title,
        viewer,
        html! {
            p.crumbs { a href="/admin" { "Admin" } " / " (title) }
            h1 { (title) }
            @match &notice {
                Some(Notice::Done(m)) => p.notice role="status" { (m) },
                Some(Notice::Failed(_, m)) => p.error role="alert" { (m) },
                Some(Notice::Secret(name, secret)) => div.notice role="status" {
                    p { "Token '" (name) "' created. Copy its secret now: it is not shown again." }
                    pre { code #token-secret { (secret) } }
                },
                None => {},
            }
            (body)
        },
    );
    Ok((status, markup).into_response())
}

/// A small form posting `action` to the section, with the CSRF token.
fn form(viewer: &Viewer, section: &str, action: &str, label: &str, fields: Markup) -> Markup {
    html! {
        form.admin method="post" action=(format!("/admin/{section}")) {
            (csrf_field(viewer))
            input type="hidden" name="action" value=(action);
            (fields)
            button type="submit" { (label) }
        }
    }
}

/// A labelled text field.
fn field(name: &str, label: &str, kind: &str, hint: &str) -> Markup {
    let id = format!("f-{name}");
    html! {
        label for=(id) { (label) }
        input id=(id) name=(name) type=(kind) placeholder=(hint);
    }
}

async fn users(viewer: &Viewer) -> PortalResult<Markup> {
    let users = viewer.session.users().await?;
    Ok(html! {
        h2 { "Create a user" }
        (form(viewer, "users", "create", "Create user", html! {
            (field("name", "Name", "text", "alice"))
            (field("password", "Password (empty: tokens only)", "password", ""))
            (field("roles", "Roles (comma-separated)", "text", "analyst"))
        }))
        h2 { "Users" }
        table.users {
            thead { tr { th { "Name" } th { "Roles" } th { "Attributes" } th { "State" } th { "Actions" } } }
            tbody {
                @for u in &users {
                    tr {
                        td { (u.name) }
                        td { (u.roles.join(", ")) }
                        td { @for (k, v) in &u.attributes { (k) "=" (v) " " } }
                        td { @if u.disabled { "disabled" } @else { "active" } }
                        td {
                            (form(viewer, "users", if u.disabled { "enable" } else { "disable" },
                                if u.disabled { "Enable" } else { "Disable" },
                                html! { input type="hidden" name="user" value=(u.name); }))
                            (form(viewer, "users", "password", "Set password", html! {
                                input type="hidden" name="user" value=(u.name);
                                label.sr-only for=(format!("pw-{}", u.name)) { "New password for " (u.name) }
                                input id=(format!("pw-{}", u.name)) name="password" type="password" placeholder="new password";
                            }))
                        }
                    }
                }
            }
        }
    })
}

async fn roles(viewer: &Viewer) -> PortalResult<Markup> {
    let roles = viewer.session.roles().await?;
    Ok(html! {
        h2 { "Create a role" }
        (form(viewer, "roles", "create", "Create role", html! {
            (field("name", "Name", "text", "analyst"))
            (field("description", "Description", "text", ""))
        }))
        h2 { "Add a member" }
        (form(viewer, "roles", "add_member", "Add member", html! {
            (field("role", "Role", "text", "analyst"))
            (field("user", "User", "text", "alice"))
        }))
        h2 { "Roles" }
        table.roles {
            thead { tr { th { "Role" } th { "Description" } th { "Members" } } }
            tbody {
                @for r in &roles {
                    tr {
                        td { (r.name) }
                        td { (r.description) }
                        td {
                            @for m in &r.members {
                                (form(viewer, "roles", "remove_member", &format!("Remove {m}"), html! {
                                    input type="hidden" name="role" value=(r.name);
                                    input type="hidden" name="user" value=(m);
                                }))
                            }
                        }
                    }
                }
            }
        }
    })
}

async fn grants(viewer: &Viewer) -> PortalResult<Markup> {
    let grants = viewer.session.grants().await?;
    Ok(html! {
        h2 { "Grant" }
        p.muted { "Objects: " code { "hub NAME" } ", " code { "dataset HUB.NAME" } ", "
            code { "table HUB.DATASET.NAME" } " or " code { "tag KEY=VALUE" } "." }
        (form(viewer, "grants", "grant", "Grant", html! {
            label for="f-privilege" { "Privilege" }
            select #f-privilege name="privilege" {
                @for p in ["SELECT", "MODIFY", "CREATE", "USAGE", "MANAGE", "UNMASK"] {
                    option value=(p) { (p) }
                }
            }
            (field("object", "On", "text", "table main.sales.orders"))
            (field("columns", "Columns (SELECT only; comma-separated, empty: all)", "text", ""))
            (field("grantee", "To (user or role)", "text", "analyst"))
        }))
        h2 { @if viewer.is_admin { "All grants" } @else { "Grants of your roles" } }
        table.grants {
            thead { tr { th { "Grantee" } th { "Privilege" } th { "Object" } th { "Column" } th { "By" } th {} } }
            tbody {
                @for g in &grants {
                    tr {
                        td { (g.grantee) }
                        td { (g.privilege) }
                        td { (g.object) }
                        td { (g.column.clone().unwrap_or_default()) }
                        td { (g.granted_by) }
                        td {
                            (form(viewer, "grants", "revoke", "Revoke", html! {
                                input type="hidden" name="privilege" value=(g.privilege);
                                input type="hidden" name="object" value=(g.object);
                                input type="hidden" name="columns" value=(g.column.clone().unwrap_or_default());
                                input type="hidden" name="grantee" value=(g.grantee);
                            }))
                        }
                    }
                }
            }
        }
    })
}

async fn policies(viewer: &Viewer) -> PortalResult<Markup> {
    let filters = viewer.session.row_filters().await?;
    let masks = viewer.session.masks().await?;
    Ok(html! {
        h2 { @if viewer.is_admin { "All row filters" } @else { "Row filters on tables you manage" } }
        @if filters.is_empty() { p.muted { "None." } } @else {
            table.filters {
                thead { tr { th { "Table" } th { "For" } th { "Expression" } th {} } }
                tbody {
                    @for f in &filters {
                        tr {
                            td { (f.table) } td { (f.grantee) } td { code { (f.expression) } }
                            td { (form(viewer, "policies", "drop_filter", "Drop", html! {
                                input type="hidden" name="table" value=(f.table);
                                input type="hidden" name="grantee" value=(f.grantee);
                            })) }
                        }
                    }
                }
            }
        }
        h2 { @if viewer.is_admin { "All column masks" } @else { "Column masks on tables you manage" } }
        @if masks.is_empty() { p.muted { "None." } } @else {
            table.masks {
                thead { tr { th { "Table" } th { "Column" } th { "For" } th { "Mask" } th {} } }
                tbody {
                    @for m in &masks {
                        tr {
                            td { (m.table) } td { (m.column) } td { (m.grantee) } td { code { (m.mask) } }
                            td { (form(viewer, "policies", "drop_mask", "Drop", html! {
                                input type="hidden" name="table" value=(m.table);
                                input type="hidden" name="column" value=(m.column);
                                input type="hidden" name="grantee" value=(m.grantee);
                            })) }
                        }
                    }
                }
            }
        }
        h2 { "Row filter" }
        p.muted { "Rows outside the expression are invisible to the grantee's members; "
            code { "user_attribute('region')" } " and " code { "current_user()" } " refer to the reader." }
        (form(viewer, "policies", "set_filter", "Set row filter", html! {
            (field("table", "Table", "text", "sales.orders"))
            (field("grantee", "For (user or role)", "text", "analyst"))
            (field("expression", "Expression", "text", "region = user_attribute('region')"))
        }))
        (form(viewer, "policies", "drop_filter", "Drop row filter", html! {
            (field("table", "Table", "text", "sales.orders"))
            (field("grantee", "For (user or role)", "text", "analyst"))
        }))
        h2 { "Column mask" }
        (form(viewer, "policies", "set_mask", "Set mask", html! {
            (field("table", "Table", "text", "sales.customers"))
            (field("column", "Column", "text", "phone"))
            (field("grantee", "For (user or role)", "text", "analyst"))
            (field("mask", "Mask", "text", "null, hash, keep_last(4) or expr:<SQL>"))
        }))
        (form(viewer, "policies", "drop_mask", "Drop mask", html! {
            (field("table", "Table", "text", "sales.customers"))
            (field("column", "Column", "text", "phone"))
            (field("grantee", "For (user or role)", "text", "analyst"))
        }))
        p.muted { "A table's page shows which of its columns are masked and whether rows are filtered." }
    })
}

async fn tags(viewer: &Viewer) -> PortalResult<Markup> {
    let keys = viewer.session.tag_keys().await?;
    Ok(html! {
        h2 { "Tag keys" }
        @if keys.is_empty() { p.muted { "None defined." } } @else {
            table.tag-keys {
                thead { tr { th { "Key" } th { "Allowed values" } } }
                tbody {
                    @for k in &keys {
                        tr {
                            td { (k.name) }
                            td { @if k.allowed_values.is_empty() { span.muted { "any" } } @else { (k.allowed_values.join(", ")) } }
                        }
                    }
                }
            }
        }
        @if viewer.is_admin {
            h2 { "Define a tag key" }
            (form(viewer, "tags", "define", "Define tag key", html! {
                (field("key", "Key", "text", "classification"))
                (field("allowed_values", "Allowed values (comma-separated, empty: any)", "text", "public, internal, pii"))
            }))
        }
        h2 { "Tag an object or column" }
        p.muted { "Objects: " code { "dataset HUB.NAME" } " or " code { "table HUB.DATASET.NAME" }
            "; a column tagged " code { "pii" } " is encrypted at once. The tags replace the ones it had." }
        (form(viewer, "tags", "set", "Set tags", html! {
            (field("object", "Object", "text", "table main.sales.customers"))
            (field("column", "Column (empty: the object itself)", "text", "email"))
            (field("tags", "Tags (comma-separated)", "text", "classification=pii"))
        }))
    })
}

async fn tokens(viewer: &Viewer) -> PortalResult<Markup> {
    let tokens = viewer.session.tokens().await?;
    Ok(html! {
        h2 { "Create a service token" }
        (form(viewer, "tokens", "create", "Create token", html! {
            (field("name", "Name", "text", "nightly-load"))
            (field("ttl_days", "Lifetime in days", "number", "90"))
            @if viewer.is_admin { (field("owner", "Owner (empty: you)", "text", "")) }
        }))
        h2 { @if viewer.is_admin { "All service tokens" } @else { "Your service tokens" } }
        table.tokens {
            thead { tr { th { "Name" } th { "Owner" } th { "Created" } th { "Expires" } th { "State" } th {} } }
            tbody {
                @for t in &tokens {
                    tr {
                        td { (t.name) }
                        td { (t.owner) }
                        td { (t.created_at) }
                        td { (t.expires_at) }
                        td { @match &t.revoked_at { Some(at) => { "revoked " (at) }, None => "active" } }
                        td {
                            @if t.revoked_at.is_none() {
                                (form(viewer, "tokens", "revoke", "Revoke", html! {
                                    input type="hidden" name="id" value=(t.id);
                                }))
                            }
                        }
                    }
                }
            }
        }
    })
}
