//! `voltvault admin ...`: the same administration as the API, run by an
//! operator on a voltvault host against the configured database. Actions are
//! audited with the actor `cli`.

use std::io::BufRead;
use std::sync::Arc;

use crate::audit::AuditSink;
use crate::auth::admin::TotpProvisioning;
use crate::auth::tokens::ApiKeyId;
use crate::auth::{Actor, AuthError, AuthService, Origin, Role};
use crate::cli::{AdminCommand, ChargerCaCommand, ClientCommand, TenantCommand, UserCommand};
use crate::clock::Environment;
use crate::config::Config;
use crate::ids::TenantId;
use crate::secret::SecretString;
use crate::tenants::TenantName;

fn explain(e: AuthError) -> String {
    match e {
        AuthError::Invalid(code, detail) => format!("{code}: {detail}"),
        AuthError::Conflict(code) => code.to_owned(),
        AuthError::NotFound => "not found".to_owned(),
        other => other.to_string(),
    }
}

fn role(raw: &str) -> Result<Role, String> {
    Role::parse(raw).ok_or_else(|| format!("unknown role `{raw}`"))
}

async fn tenant(store: &dyn crate::store::Store, name: &str) -> Result<TenantId, String> {
    let name = TenantName::parse(name).map_err(|e| e.to_string())?;
    store
        .tenant_by_name(&name)
        .await
        .map(|t| t.id)
        .map_err(|_| format!("no tenant named {}", name.as_str()))
}

/// One line from standard input, for passwords (never from arguments).
fn read_password() -> Result<SecretString, String> {
    eprintln!("password (one line on standard input):");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {}", e.kind()))?;
    let trimmed = line.trim_end_matches(['\r', '\n']).to_owned();
    zeroize::Zeroize::zeroize(&mut line);
    Ok(SecretString::new(trimmed))
}

fn show_totp(username: &str, totp: &TotpProvisioning) {
    println!("TOTP for {username} (shown once; scan it now):");
    println!("{}", totp.uri.as_str());
    if let Some(qr) = crate::auth::totp::terminal_qr(&totp.uri) {
        println!("{qr}");
    }
}

/// Runs one admin command; the error is a one-line message.
pub async fn run(config: &Config, command: AdminCommand) -> Result<(), String> {
    let store = crate::store::connect(config)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let env = Environment::system();
    // Administrative actions go to the same durable, sealed audit trail as the service's.
    let keys = crate::app::open_keys(
        config,
        &env,
        store.clone(),
        None,
        &format!("{}.cli", config.node_id()),
        1,
    )
    .await
    .map_err(|e| e.to_string())?;
    let audit: Arc<dyn AuditSink> = Arc::new(keys.audit.handle());
    let result = match keys.keys.verify_keks().await {
        Err(e) => Err(format!("keys: {e}")),
        Ok(()) => match crate::app::auth_service(config, store.clone(), env, audit).await {
            Ok(auth) => run_with(&auth, store.as_ref(), command).await,
            Err(e) => Err(e.to_string()),
        },
    };
    keys.audit.stop().await;
    store.close().await;
    result
}

async fn run_with(
    auth: &AuthService,
    store: &dyn crate::store::Store,
    command: AdminCommand,
) -> Result<(), String> {
    let by = Actor::cli();
    let origin = Origin::cli();
    match command {
        AdminCommand::Tenant { command } => match command {
            TenantCommand::Create { name } => {
                let t = auth
                    .create_tenant(&name, &by, &origin)
                    .await
                    .map_err(explain)?;
                println!("tenant {} {}", t.name.as_str(), t.id);
            }
            TenantCommand::List => {
                for t in store.tenants().await.map_err(|e| e.to_string())? {
                    println!(
                        "{}\t{}\t{}",
                        t.name.as_str(),
                        t.id,
                        t.created_at.to_rfc3339()
                    );
                }
            }
        },
        AdminCommand::Client { command } => match command {
            ClientCommand::Create {
                tenant: t,
                name,
                role: r,
                expires_in_days,
            } => {
                let t = tenant(store, &t).await?;
                let expires = expires_in_days.map(|d| {
                    use crate::clock::Clock;
                    crate::clock::SystemClock.now() + chrono::Duration::days(i64::from(d))
                });
                let (key, secret) = auth
                    .create_api_key(t, &name, role(&r)?, expires, &by, &origin)
                    .await
                    .map_err(explain)?;
                println!("client {} ({}, role {})", key.id, key.name, key.role);
                println!("API key (shown once): {}", secret.expose_secret());
            }
            ClientCommand::List { tenant: t } => {
                let t = tenant(store, &t).await?;
                for k in auth.api_keys(t).await.map_err(explain)? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        k.id,
                        k.name,
                        k.role,
                        if k.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        },
                        k.last_used_at
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
            ClientCommand::Revoke { tenant: t, id } => {
                let t = tenant(store, &t).await?;
                let id = ApiKeyId::parse(&id).ok_or("not an API key id")?;
                auth.revoke_api_key(t, &id, &by, &origin)
                    .await
                    .map_err(explain)?;
                println!("client {id} revoked");
            }
            ClientCommand::Rotate { tenant: t, id } => {
                let t = tenant(store, &t).await?;
                let id = ApiKeyId::parse(&id).ok_or("not an API key id")?;
                let secret = auth
                    .rotate_api_key(t, &id, &by, &origin)
                    .await
                    .map_err(explain)?;
                println!("API key (shown once): {}", secret.expose_secret());
            }
        },
        AdminCommand::ChargerCa { command } => match command {
            ChargerCaCommand::Register {
                tenant: t,
                name,
                cert,
            } => {
                let t = tenant(store, &t).await?;
                let pem = std::fs::read_to_string(&cert)
                    .map_err(|e| format!("{}: {}", cert.display(), e.kind()))?;
                let ca = auth
                    .register_charger_ca(t, &name, &pem, &by, &origin)
                    .await
                    .map_err(explain)?;
                println!(
                    "charger CA {} ({}) sha256 {}",
                    ca.id, ca.name, ca.sha256_hex
                );
            }
            ChargerCaCommand::List { tenant: t } => {
                let t = tenant(store, &t).await?;
                for ca in auth.charger_cas(t).await.map_err(explain)? {
                    println!("{}\t{}\t{}", ca.id, ca.name, ca.sha256_hex);
                }
            }
            ChargerCaCommand::ImportCrl { tenant: t, ca, crl } => {
                let t = tenant(store, &t).await?;
                let ca = ca.parse().map_err(|_| "not a charger CA id".to_owned())?;
                let bytes =
                    std::fs::read(&crl).map_err(|e| format!("{}: {}", crl.display(), e.kind()))?;
                auth.import_charger_crl(t, ca, &bytes, &by, &origin)
                    .await
                    .map_err(explain)?;
                println!("CRL imported for charger CA {ca}");
            }
            ChargerCaCommand::RevokeCert {
                tenant: t,
                ca,
                certificate,
            } => {
                let t = tenant(store, &t).await?;
                let ca = ca.parse().map_err(|_| "not a charger CA id".to_owned())?;
                let input = if std::path::Path::new(&certificate).is_file() {
                    std::fs::read_to_string(&certificate).map_err(|e| e.kind().to_string())?
                } else {
                    certificate
                };
                let serial = auth
                    .revoke_charger_certificate(t, ca, &input, &by, &origin)
                    .await
                    .map_err(explain)?;
                println!("certificate serial {serial} revoked");
            }
        },
        AdminCommand::User { command } => match command {
            UserCommand::Create {
                tenant: t,
                username,
                role: r,
            } => {
                let t = tenant(store, &t).await?;
                let r = role(&r)?;
                let password = read_password()?;
                let (user, totp) = auth
                    .create_user(t, &username, r, &password, &by, &origin)
                    .await
                    .map_err(explain)?;
                println!("user {} ({}, role {})", user.username, user.id, user.role);
                show_totp(&user.username, &totp);
            }
            UserCommand::List { tenant: t } => {
                let t = tenant(store, &t).await?;
                for u in auth.users(t).await.map_err(explain)? {
                    println!(
                        "{}\t{}\t{}\t{}",
                        u.username,
                        u.role,
                        if u.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        },
                        u.last_login_at
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
            UserCommand::Disable {
                tenant: t,
                username,
            } => {
                let t = tenant(store, &t).await?;
                let user = store
                    .user_by_username(&username)
                    .await
                    .map_err(|_| "no such user")?;
                auth.disable_user(t, user.id, &by, &origin)
                    .await
                    .map_err(explain)?;
                println!("user {username} disabled");
            }
            UserCommand::Reset {
                tenant: t,
                username,
            } => {
                let t = tenant(store, &t).await?;
                let user = store
                    .user_by_username(&username)
                    .await
                    .map_err(|_| "no such user")?;
                let password = read_password()?;
                let totp = auth
                    .reset_user(t, user.id, &password, &by, &origin)
                    .await
                    .map_err(explain)?;
                show_totp(&username, &totp);
            }
        },
        AdminCommand::Principals { tenant: t } => {
            let t = tenant(store, &t).await?;
            for p in auth.principals_report(t).await.map_err(explain)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    p.kind,
                    p.id,
                    p.role.unwrap_or_default(),
                    p.state,
                    p.last_used_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "never".into())
                );
            }
        }
    }
    Ok(())
}
