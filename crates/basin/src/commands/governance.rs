//! `basin user`, `basin role`, `basin token`, `basin grant list`: administration as the CLI's
//! user, decided and audited by its session like any other surface's.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::{Context, bail};
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
        UserCommand::Disable { name } => Ok(session.disable_user(&name).await?),
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
