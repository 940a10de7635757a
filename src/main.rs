//! The `voltvault` binary: harden the process, parse the command line, run.

use std::process::ExitCode;

use clap::Parser;
use voltvault::cli::{Cli, Command};
use voltvault::config::{Config, LogFormat};
use voltvault::{app, dev, hardening, store, telemetry};

fn main() -> ExitCode {
    if let Err(error) = hardening::harden_process() {
        eprintln!("voltvault: {error}");
        return ExitCode::FAILURE;
    }
    hardening::install_panic_hook();
    let cli = Cli::parse();
    if let Command::Dev { data_dir, .. } = &cli.command
        && let Err(message) = run_dev_with_softhsm_conf(data_dir)
    {
        eprintln!("voltvault: {message}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("voltvault: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("voltvault: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve { config } => {
            let config = Config::load(&config).map_err(|e| e.to_string())?;
            telemetry::init(config.logging.format, &config.logging.level);
            warn_if_root();
            app::serve_until_signal(config)
                .await
                .map_err(|e| e.to_string())
        }
        Command::Dev {
            data_dir,
            port,
            ops_port,
        } => {
            telemetry::init(LogFormat::Human, "info");
            warn_if_root();
            let keys = dev::DevKeys::choose(&data_dir);
            let (config, unseal) = dev::prepare(&data_dir, port, ops_port, &keys)
                .await
                .map_err(|e| e.to_string())?;
            let app = app::App::build_with(config, voltvault::clock::Environment::system(), unseal)
                .await
                .map_err(|e| e.to_string())?;
            let demo = dev::seed_demo(&app.auth(), app.store().as_ref(), &data_dir).await?;
            let running = app.start(None).await.map_err(|e| e.to_string())?;
            println!(
                "{}",
                dev::banner(&data_dir, running.api_addr, running.ops_addr, &keys)
            );
            match demo {
                Some(demo) => println!("{}", demo.text),
                None => println!(
                    "Demo principals exist already; their credentials were shown when they were made.\n"
                ),
            }
            app::run_until_signal(running).await;
            Ok(())
        }
        Command::Migrate { config } => {
            let config = Config::load(&config).map_err(|e| e.to_string())?;
            telemetry::init(config.logging.format, &config.logging.level);
            let store = store::connect(&config).await.map_err(|e| e.to_string())?;
            let applied = store.migrate().await.map_err(|e| e.to_string())?;
            store.close().await;
            println!("migrations applied: {applied}");
            Ok(())
        }
        Command::Keys { config, command } => {
            let config = config.ok_or("keys: --config FILE is required")?;
            voltvault::commands::keys(&config, command).await
        }
        Command::Admin { config, command } => {
            let config = Config::load(&config).map_err(|e| e.to_string())?;
            telemetry::init(config.logging.format, "warn");
            voltvault::admin_cli::run(&config, command).await
        }
        Command::Audit { command } => {
            telemetry::init(LogFormat::Human, "warn");
            match voltvault::audit_cmd::run(command).await? {
                true => Ok(()),
                false => Err("the audit trail failed verification".into()),
            }
        }
        Command::CheckConfig { config } => {
            let config = Config::load(&config).map_err(|e| e.to_string())?;
            println!(
                "configuration OK: mode {:?}, database {:?}, listen {}",
                config.mode,
                config.database_backend().map_err(|e| e.to_string())?,
                config.server.listen
            );
            Ok(())
        }
    }
}

/// SoftHSM reads `SOFTHSM2_CONF` once, when it loads, and setting an
/// environment variable in a running process is not safe; so `voltvault
/// dev` re-executes itself with the variable pointing at its own token
/// directory. Returns only when no re-execution is needed.
fn run_dev_with_softhsm_conf(data_dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("{}: {}", data_dir.display(), e.kind()))?;
    let data_dir = data_dir
        .canonicalize()
        .map_err(|e| format!("{}: {}", data_dir.display(), e.kind()))?;
    let dev::DevKeys::SoftHsm { conf } = dev::DevKeys::choose(&data_dir) else {
        return Ok(());
    };
    if std::env::var_os("SOFTHSM2_CONF").is_some_and(|v| std::path::Path::new(&v) == conf) {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot re-execute: {}", e.kind()))?;
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("SOFTHSM2_CONF", &conf)
        .exec();
    Err(format!(
        "cannot re-execute with SOFTHSM2_CONF: {}",
        error.kind()
    ))
}

fn warn_if_root() {
    if hardening::running_as_root() {
        tracing::warn!("running as root; run voltvault as an unprivileged service user");
    }
}
