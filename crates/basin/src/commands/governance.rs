//! `basin user`, `basin role`, `basin token`, `basin grant list`: administration as the CLI's
//! user, decided and audited by its session like any other surface's.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::{Context, bail};
use basin_service::{NewUser, Session};

use super::print_json;
use crate::cli::{RoleCommand, TokenCommand, UserCommand};

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

pub async fn user(session: &Session, cmd: UserCommand) -> anyhow::Result<()> {
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
            session
                .create_user(NewUser {
                    name: name.clone(),
                    password,
                    attributes: attributes(&attrs)?,
                    roles,
                })
                .await?;
            eprintln!("Created user '{name}'.");
            Ok(())
        }
        UserCommand::List => print_json(session.users().await?),
        UserCommand::SetAttributes {
            name,
            attributes: attrs,
        } => {
            session
                .set_user_attributes(&name, &attributes(&attrs)?)
                .await?;
            Ok(())
        }
        UserCommand::Disable { name } => Ok(session.disable_user(&name).await?),
    }
}

pub async fn role(session: &Session, cmd: RoleCommand) -> anyhow::Result<()> {
    match cmd {
        RoleCommand::Create { name, description } => {
            session.create_role(&name, &description).await?;
            Ok(())
        }
        RoleCommand::List => print_json(session.roles().await?),
        RoleCommand::AddMember { role, user } => {
            session.add_member(&role, &user).await?;
            Ok(())
        }
        RoleCommand::RemoveMember { role, user } => {
            session.remove_member(&role, &user).await?;
            Ok(())
        }
    }
}

pub async fn token(session: &Session, cmd: TokenCommand) -> anyhow::Result<()> {
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
            println!("{secret}");
            Ok(())
        }
        TokenCommand::List => print_json(session.tokens().await?),
        TokenCommand::Revoke { id } => {
            session.revoke_token(&id).await?;
            Ok(())
        }
    }
}

pub async fn list_grants(session: &Session) -> anyhow::Result<()> {
    print_json(session.grants().await?)
}
