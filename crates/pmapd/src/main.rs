//! `pmapd`: parse the command line, load the configuration, start tracing, and hand over to
//! the server. Nothing else lives here.

mod import;
mod runbook;

use std::path::PathBuf;

use anyhow::Context;
use api::Config;
use api::config::LogFormat;
use clap::{Parser, Subcommand};
use store::{Role, TokenRecord};
use tracing_subscriber::EnvFilter;

/// mimalloc, built without transparent huge pages: with them, a webhook burst left tens of
/// megabytes of mostly empty 2 MiB pages resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "pmapd", version, about = "PMAP, the DevSecOps integration hub")]
struct Cli {
    /// A TOML configuration file; environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server and the background workers.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Send a scanner's result file to a running server and print its counts.
    Import(Box<import::ImportArgs>),
    /// Validate runbook files offline, or apply them to a server by name.
    Runbook {
        #[command(subcommand)]
        command: runbook::RunbookCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["admin", "operator", "viewer"])]
        role: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Import(args) = cli.command {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        return runtime.block_on(import::run(*args));
    }
    if let Command::Runbook { command } = cli.command {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        return runtime.block_on(runbook::run(command));
    }
    let config = Config::load(cli.config.as_deref())?;
    init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli.command, config))
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Import(args) => import::run(*args).await,
        Command::Runbook { command } => runbook::run(command).await,
        Command::Migrate => {
            let store = api::open_store(&config).await?;
            tracing::info!(backend = store.backend(), "migrations applied");
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create { name, role },
        } => {
            let store = api::open_store(&config).await?;
            let token = api::auth::generate_token();
            let role = Role::parse(&role).context("role")?;
            store
                .insert_token(&TokenRecord {
                    id: domain::ids::TokenId::new(),
                    name,
                    role,
                    token_hash: api::auth::hash_token(&token),
                    created_at: chrono::Utc::now(),
                })
                .await
                .context("storing the token")?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let running = api::start(&config).await?;
    let shutdown = running.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    running.wait().await
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
