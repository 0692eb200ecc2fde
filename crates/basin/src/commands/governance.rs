//! `basin user`, `basin role`, `basin token`, `basin grant list`: administration as the CLI's
//! user, decided and audited by its session like any other surface's.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::{Context, bail};
use basin_catalog::access::Action;
use basin_service::{NewUser, Session};

use super::done;
use crate::cli::{Global, RoleCommand, TokenCommand, UserCommand};
use crate::output::print_records;

fn attributes(list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    list.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
            None => bail!("attribute '{a}' must be written KEY=VALUE"),
        })
        .collect()
}

/// A new user's password: from BASIN_PASSWORD, asked for on a terminal, or read from stdin.
fn read_password() -> anyhow::Result<String> {
    Ok(match std::env::var("BASIN_PASSWORD") {
        Ok(p) => p,
        Err(_) if std::io::stdin().is_terminal() => {
            rustyline::DefaultEditor::new()?.readline("password: ")?
        }
        Err(_) => std::io::read_to_string(std::io::stdin())
            .context("cannot read the password from stdin")?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
    })
}

/// A password change: the current password (when `with_current`) and the new one, each from
/// its variable (BASIN_CURRENT_PASSWORD, BASIN_PASSWORD), asked for on a terminal, or read
/// from stdin, one line each, the current one first.
fn read_password_change(with_current: bool) -> anyhow::Result<(Option<String>, String)> {
    let mut piped: Option<std::vec::IntoIter<String>> = None;
    let mut read = |variable: &str, prompt: &str| -> anyhow::Result<String> {
        if let Ok(p) = std::env::var(variable) {
            return Ok(p);
        }
        if std::io::stdin().is_terminal() {
            return Ok(rustyline::DefaultEditor::new()?.readline(prompt)?);
        }
        if piped.is_none() {
            let text = std::io::read_to_string(std::io::stdin())
                .context("cannot read the password from stdin")?;
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            piped = Some(lines.into_iter());
        }
        piped.as_mut().and_then(Iterator::next).with_context(|| {
            format!(
                "no {} on stdin (or in {variable})",
                prompt.trim_end_matches(": ")
            )
        })
    };
    let current = if with_current {
        Some(read("BASIN_CURRENT_PASSWORD", "current password: ")?)
    } else {
        None
    };
    let new = read("BASIN_PASSWORD", "new password: ")?;
    Ok((current, new))
}

pub async fn user(g: &Global, session: &Session, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            name,
            attributes: attrs,
            roles,
            no_password,
        } => {
            let password = if no_password {
                None
            } else {
                Some(read_password()?)
            };
            let user = session
                .create_user(NewUser {
                    name: name.clone(),
                    password,
                    attributes: attributes(&attrs)?,
                    roles,
                })
                .await?;
            done(g, &format!("Created user '{name}'."), user)
        }
        UserCommand::List => print_records(
            g.output,
            &[
                "name",
                "roles",
                "attributes",
                "disabled",
                "has_password",
                "created_at",
            ],
            &session.users().await?,
        ),
        UserCommand::SetAttributes {
            name,
            attributes: attrs,
        } => {
            let user = session
                .set_user_attributes(&name, &attributes(&attrs)?)
                .await?;
            done(g, &format!("Set the attributes of user '{name}'."), user)
        }
        UserCommand::Disable { name } => {
            let user = session.disable_user(&name).await?;
            done(g, &format!("Disabled user '{name}'."), user)
        }
        UserCommand::Enable { name } => {
            let user = session.enable_user(&name).await?;
            done(g, &format!("Enabled user '{name}'."), user)
        }
        UserCommand::Password { name } => {
            let admin = session.may(Action::Administer).await?;
            let (current, new) = read_password_change(!admin)?;
            session.set_password(&name, current, new).await?;
            eprintln!("Set the password of user '{name}'; its login sessions have ended.");
            Ok(())
        }
    }
}

pub async fn role(g: &Global, session: &Session, cmd: RoleCommand) -> anyhow::Result<()> {
    match cmd {
        RoleCommand::Create { name, description } => {
            let created = session.create_role(&name, &description).await?;
            done(g, &format!("Created role '{name}'."), created)
        }
        RoleCommand::List => print_records(
            g.output,
            &["name", "description", "members", "created_at"],
            &session.roles().await?,
        ),
        RoleCommand::AddMember { role, user } => {
            let changed = session.add_member(&role, &user).await?;
            done(g, &format!("Added '{user}' to role '{role}'."), changed)
        }
        RoleCommand::RemoveMember { role, user } => {
            let changed = session.remove_member(&role, &user).await?;
            done(g, &format!("Removed '{user}' from role '{role}'."), changed)
        }
    }
}

pub async fn token(g: &Global, session: &Session, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            name,
            user,
            ttl_days,
        } => {
            let (secret, token) = session.create_token(&name, Some(&user), ttl_days).await?;
            eprintln!(
                "Token '{}' (id {}) for '{user}', valid until {}. It is shown only now:",
                token.name, token.id, token.expires_at
            );
            if g.output == crate::cli::OutputFormat::Json {
                let created = serde_json::json!({"token": secret, "id": token.id, "name": token.name, "owner": token.owner, "expires_at": token.expires_at});
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                println!("{secret}");
            }
            Ok(())
        }
        TokenCommand::List => print_records(
            g.output,
            &[
                "id",
                "name",
                "owner",
                "kind",
                "created_at",
                "expires_at",
                "revoked_at",
            ],
            &session.tokens().await?,
        ),
        TokenCommand::Revoke { id } => {
            let revoked = session.revoke_token(&id).await?;
            done(g, &format!("Revoked token '{id}'."), revoked)
        }
    }
}

/// Every grant the session may see, the object named as in GRANT statements (as over REST).
pub async fn list_grants(g: &Global, session: &Session) -> anyhow::Result<()> {
    let grants: Vec<serde_json::Value> = session
        .grants()
        .await?
        .into_iter()
        .map(|grant| {
            serde_json::json!({
                "grantee": grant.grantee,
                "privilege": grant.privilege.to_string(),
                "object": grant.object.to_string(),
                "column": grant.column,
                "granted_by": grant.granted_by,
                "granted_at": grant.granted_at,
            })
        })
        .collect();
    print_records(
        g.output,
        &[
            "grantee",
            "privilege",
            "object",
            "column",
            "granted_by",
            "granted_at",
        ],
        &grants,
    )
}
