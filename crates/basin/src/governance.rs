//! `basin user`, `basin role`, `basin token`, `basin grant list`: governance on a data dir, as
//! the CLI's user (`--as`, default `admin`). Every change is decided for that user and written to
//! the audit log in its name, with source `cli`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, bail};
use basin_catalog::access::{Action, AuditEvent, TokenKind};
use basin_sql::Engine;

use crate::cli::{RoleCommand, TokenCommand, UserCommand};

/// Fails unless the CLI's user may administer users, roles and tokens.
async fn administer(engine: &Engine) -> anyhow::Result<()> {
    let snapshot = engine.catalog().access_snapshot().await?;
    match engine.principal() {
        Some(p) if !snapshot.may(p, Action::Administer) => bail!(
            "permission denied: '{}' is not an administrator; run as one with --as",
            p.name
        ),
        _ => Ok(()),
    }
}

async fn audit(engine: &Engine, action: &str, target: &str) -> anyhow::Result<()> {
    let actor = engine.actor();
    engine
        .catalog()
        .audit(&AuditEvent {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            principal: actor.name().to_string(),
            source: actor.origin,
            action: action.into(),
            target: target.into(),
            outcome: "ok".into(),
            detail: "{}".into(),
        })
        .await?;
    Ok(())
}

fn attributes(list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    list.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
            None => bail!("attribute '{a}' must be written KEY=VALUE"),
        })
        .collect()
}

fn print_json(value: serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

pub async fn user(engine: &Engine, cmd: UserCommand) -> anyhow::Result<()> {
    let catalog = engine.catalog();
    administer(engine).await?;
    match cmd {
        UserCommand::Create {
            name,
            attributes: attrs,
            roles,
            no_password,
        } => {
            let hash = if no_password {
                None
            } else {
                let password = match std::env::var("BASIN_PASSWORD") {
                    Ok(p) => p,
                    Err(_) if std::io::stdin().is_terminal() => {
                        rustyline::DefaultEditor::new()?.readline("password: ")?
                    }
                    Err(_) => std::io::read_to_string(std::io::stdin())
                        .context("cannot read the password from stdin")?
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                };
                Some(basin_server::auth::hash_password(&password).map_err(|e| anyhow::anyhow!(e))?)
            };
            for r in &roles {
                catalog.require_role(r).await?;
            }
            catalog
                .create_user(&name, hash.as_deref(), &attributes(&attrs)?)
                .await?;
            for r in &roles {
                catalog.add_role_member(r, &name).await?;
            }
            audit(engine, "user.create", &name).await?;
            eprintln!("Created user '{name}'.");
            Ok(())
        }
        UserCommand::List => print_json(serde_json::json!(catalog.users().await?)),
        UserCommand::SetAttributes {
            name,
            attributes: attrs,
        } => {
            catalog
                .set_user_attributes(&name, &attributes(&attrs)?)
                .await?;
            audit(engine, "user.attributes", &name).await
        }
        UserCommand::Disable { name } => {
            catalog.set_user_disabled(&name, true).await?;
            audit(engine, "user.disable", &name).await
        }
    }
}

pub async fn role(engine: &Engine, cmd: RoleCommand) -> anyhow::Result<()> {
    let catalog = engine.catalog();
    administer(engine).await?;
    match cmd {
        RoleCommand::Create { name, description } => {
            catalog.create_role(&name, &description).await?;
            audit(engine, "role.create", &name).await
        }
        RoleCommand::List => print_json(serde_json::json!(catalog.roles().await?)),
        RoleCommand::AddMember { role, user } => {
            catalog.add_role_member(&role, &user).await?;
            audit(engine, "role.member.add", &format!("{role} {user}")).await
        }
        RoleCommand::RemoveMember { role, user } => {
            catalog.remove_role_member(&role, &user).await?;
            audit(engine, "role.member.remove", &format!("{role} {user}")).await
        }
    }
}

pub async fn token(engine: &Engine, cmd: TokenCommand) -> anyhow::Result<()> {
    let catalog = engine.catalog();
    administer(engine).await?;
    match cmd {
        TokenCommand::Create {
            name,
            user,
            ttl_days,
        } => {
            if catalog.user(&user).await?.is_none() {
                bail!("user '{user}' not found; see `basin user list`");
            }
            if ttl_days == 0 || ttl_days > 3650 {
                bail!("--ttl-days must be between 1 and 3650");
            }
            let name = basin_core::Name::parse("token", &name)?.to_string();
            let (secret, token) = basin_server::auth::issue_token(
                catalog,
                &user,
                &name,
                TokenKind::Service,
                Duration::from_secs(ttl_days * 86_400),
            )
            .await
            .map_err(|e| anyhow::anyhow!(e.detail))?;
            audit(engine, "token.create", &token.id).await?;
            eprintln!(
                "Token '{name}' (id {}) for '{user}', valid until {}. It is shown only now:",
                token.id, token.expires_at
            );
            println!("{secret}");
            Ok(())
        }
        TokenCommand::List => print_json(serde_json::json!(catalog.service_tokens(None).await?)),
        TokenCommand::Revoke { id } => {
            catalog.revoke_token(&id).await?;
            audit(engine, "token.revoke", &id).await
        }
    }
}

pub async fn list_grants(engine: &Engine) -> anyhow::Result<()> {
    administer(engine).await?;
    print_json(serde_json::json!(engine.catalog().grants().await?))
}
