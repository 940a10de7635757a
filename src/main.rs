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
            let config = dev::prepare(&data_dir, port, ops_port).map_err(|e| e.to_string())?;
            let app = app::App::build(config, voltvault::clock::Environment::system())
                .await
                .map_err(|e| e.to_string())?;
            let running = app.start(None).await.map_err(|e| e.to_string())?;
            println!(
                "{}",
                dev::banner(&data_dir, running.api_addr, running.ops_addr)
            );
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

fn warn_if_root() {
    if hardening::running_as_root() {
        tracing::warn!("running as root; run voltvault as an unprivileged service user");
    }
}
