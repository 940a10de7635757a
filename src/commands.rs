//! The `keys` commands: the operator's side of the key layer.

use std::path::Path;
use std::sync::Arc;

use crate::app::{KeyCore, StartError, open_keys};
use crate::cli::KeysCommand;
use crate::clock::Environment;
use crate::config::{Config, KeyProviderKind};
use crate::keys::pkcs11::{Pkcs11Config, Pkcs11Provider, load_pin};
use crate::keys::setup::software_settings;
use crate::keys::software::{KdfParams, SoftwareProvider, Unseal};
use crate::store::{self, Store};
use crate::tokens::records::TokenRecords;

pub async fn keys(config_path: &Path, command: KeysCommand) -> Result<(), String> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    crate::telemetry::init(config.logging.format, &config.logging.level);
    let env = Environment::system();
    let store = store::connect(&config).await.map_err(|e| e.to_string())?;
    if config.database.migrate_on_start {
        store.migrate().await.map_err(|e| e.to_string())?;
    }
    let result = run(&config, &env, store.clone(), command).await;
    store.close().await;
    result
}

async fn run(
    config: &Config,
    env: &Environment,
    store: Arc<dyn Store>,
    command: KeysCommand,
) -> Result<(), String> {
    let text = |e: StartError| e.to_string();
    let key_error = |e: crate::keys::KeyError| format!("keys: {e}");
    if let KeysCommand::Init { shares, threshold } = &command {
        create_provider_keys(config, env, *shares, *threshold).await?;
    }
    let KeyCore { audit, keys, .. } = open_keys(
        config,
        env,
        store.clone(),
        None,
        &format!("{}.cli", config.node_id()),
        1,
    )
    .await
    .map_err(text)?;
    let outcome = match command {
        KeysCommand::Init { .. } => keys.record_initial_kek().await.map(|kcv| {
            println!("keys initialized; KEK v1 check value {}", kcv.to_hex());
            println!("record this value: start-up refuses a KEK that does not match it");
        }),
        KeysCommand::Status => match keys.verify_keks().await {
            Ok(()) => keys.status().await.map(|status| {
                println!("provider   {}", status.provider);
                for kek in &status.keks {
                    println!(
                        "KEK v{:<4} {:?}  check value {}  created {}  data keys {}  FF1 keys {}",
                        kek.version.0,
                        kek.state,
                        kek.check_value.to_hex(),
                        kek.created_at.format("%Y-%m-%d"),
                        kek.data_keys,
                        kek.ff1_keys
                    );
                }
                for dk in &status.data_keys {
                    println!(
                        "data key {:<4} {:?}  under KEK v{}  created {}  uses {}",
                        dk.id.0,
                        dk.state,
                        dk.kek.0,
                        dk.created_at.format("%Y-%m-%d"),
                        dk.use_count
                    );
                }
                println!("FF1 keys   {} tenants", status.ff1_keys);
            }),
            Err(e) => Err(e),
        },
        KeysCommand::RotateKek => match keys.verify_keks().await {
            Ok(()) => keys.rotate_kek().await.map(|r| {
                println!(
                    "active KEK v{}; {} data keys and {} FF1 keys rewrapped; destroyed: {:?}",
                    r.active.0,
                    r.rewrapped,
                    r.ff1_rewrapped,
                    r.destroyed.iter().map(|k| k.0).collect::<Vec<_>>()
                );
            }),
            Err(e) => Err(e),
        },
        KeysCommand::RotateDek => match keys.verify_keks().await {
            Ok(()) => keys
                .rotate_data_key()
                .await
                .map(|id| println!("new active data key {}", id.0)),
            Err(e) => Err(e),
        },
        KeysCommand::Reencrypt { batch } => match keys.verify_keks().await {
            Ok(()) => {
                let bar = indicatif::ProgressBar::new(0);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} records ({per_sec}, {eta} left)",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                let mut progress = |done: u64, total: u64| {
                    bar.set_length(total);
                    bar.set_position(done);
                };
                let report = keys
                    .reencrypt(&TokenRecords(store), batch, &mut progress)
                    .await;
                bar.finish_and_clear();
                report.map(|r| {
                    println!(
                        "{} records moved, {} changed meanwhile (left for the next run), {} data keys retired",
                        r.moved, r.skipped, r.retired_keys
                    );
                })
            }
            Err(e) => Err(e),
        },
    };
    audit.stop().await;
    outcome.map_err(key_error)
}

/// `keys init`, provider side: the HSM objects, or the sealed software KEK.
async fn create_provider_keys(
    config: &Config,
    env: &Environment,
    shares: Option<u8>,
    threshold: Option<u8>,
) -> Result<(), String> {
    let key_error = |e: crate::keys::KeyError| format!("keys: {e}");
    match config.keys.provider {
        KeyProviderKind::Pkcs11 => {
            let settings = config.keys.pkcs11.as_ref().ok_or("keys.pkcs11: missing")?;
            let pin = load_pin(settings.pin_file.as_deref()).map_err(key_error)?;
            let hsm = Pkcs11Provider::connect(Pkcs11Config::new(
                &settings.module,
                &settings.token_label,
                pin,
            ))
            .await
            .map_err(key_error)?;
            hsm.init_token_objects().await.map_err(key_error)?;
        }
        KeyProviderKind::Software => {
            let path = software_settings(&config.keys).map_err(key_error)?;
            if let (Some(n), Some(m)) = (shares, threshold) {
                let (_, shares) = SoftwareProvider::init_with_shares(
                    config.mode,
                    &path,
                    m,
                    n,
                    env.random.clone(),
                )
                .map_err(key_error)?;
                println!("{m} of these {n} shares unseal the KEK; give each to one custodian:");
                for share in shares {
                    println!("  {}", share.expose_secret());
                }
            } else {
                let Unseal::Passphrase(passphrase) =
                    crate::keys::setup::unseal_from_env().map_err(key_error)?
                else {
                    return Err(
                        "keys init: set VOLTVAULT_KEK_PASSPHRASE, or pass --shares and --threshold"
                            .into(),
                    );
                };
                SoftwareProvider::init_with_passphrase(
                    config.mode,
                    &path,
                    &passphrase,
                    KdfParams::default(),
                    env.random.clone(),
                )
                .map_err(key_error)?;
            }
        }
    }
    Ok(())
}
