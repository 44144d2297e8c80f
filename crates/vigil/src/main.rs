//! `vigil`: one binary, one subcommand per role. This file only parses flags and dispatches;
//! every role lives in its own crate.

mod logging;
mod tsdb_cmd;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "A highly-available, Prometheus-compatible monitoring system"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Prometheus-compatible server: scrape targets, store samples, serve the HTTP API.
    Server(Box<server::ServerFlags>),
    /// Run an Alertmanager-compatible node: routing, grouping, inhibition, silences, API v2.
    Alertmanager(Box<alertmanager::AlertmanagerFlags>),
    /// Run an HA query front end: merge replicas of N Prometheus-compatible servers, no gaps.
    Query(Box<query::QueryFlags>),
    /// Start a local topology on embedded defaults with a demo workload, and print its URLs.
    Up(up::UpFlags),
    /// Serve synthetic demo targets (the workload of `vigil up` and the benchmarks).
    Demo(demo::DemoFlags),
    /// Send remote write load to a receiver as fast as it accepts it (the receiver benchmark).
    #[command(hide = true)]
    Loadgen(demo::loadgen::LoadgenFlags),
    /// Inspect a data directory: list blocks, analyze cardinality, dump samples.
    Tsdb {
        #[command(subcommand)]
        what: tsdb_cmd::TsdbCommand,
    },
    /// Run PromQL test scripts (Prometheus's `.test` format) and report per file.
    Promqltest {
        /// The `.test` files.
        files: Vec<std::path::PathBuf>,
    },
    /// Check configuration files.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
    /// Run unit tests.
    Test {
        #[command(subcommand)]
        what: TestCommand,
    },
}

#[derive(Subcommand)]
enum TestCommand {
    /// Run rule unit tests in promtool's format.
    Rules {
        /// Only run test groups whose name matches this regular expression.
        #[arg(long)]
        run: Option<String>,
        /// The test files.
        files: Vec<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Check a prometheus.yml the way `vigil server` would load it.
    Config {
        /// The files to check.
        files: Vec<std::path::PathBuf>,
    },
    /// Check rule files the way `vigil server` would load them.
    Rules {
        /// The files to check.
        files: Vec<std::path::PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(flags) => {
            tsdb::limit_malloc_arenas();
            logging::init(&flags.log_level, &flags.log_format);
            run_async(server_main(*flags))
        }
        Command::Alertmanager(flags) => {
            logging::init(&flags.log_level, &flags.log_format);
            run_async(alertmanager_main(*flags))
        }
        Command::Query(flags) => {
            logging::init(&flags.log_level, &flags.log_format);
            run_async(query_main(*flags))
        }
        Command::Up(flags) => {
            logging::init(&flags.log_level, "logfmt");
            run_async(up::run(flags))
        }
        Command::Loadgen(flags) => run_async(demo::loadgen::run(flags)),
        Command::Demo(flags) => {
            run_async(async move { demo::run(flags).await.map_err(Into::into) })
        }
        Command::Promqltest { files } => promqltest::main_cli(&files),
        Command::Tsdb { what } => match tsdb_cmd::run(what) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vigil tsdb: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Check {
            what: CheckCommand::Config { files },
        } => check_config(&files),
        Command::Check {
            what: CheckCommand::Rules { files },
        } => rules::rulefmt::check_cli(&files).into(),
        Command::Test {
            what: TestCommand::Rules { run, files },
        } => rules::unittest::main_cli(&files, run.as_deref()).into(),
    }
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigil: start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("vigil: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn server_main(flags: server::ServerFlags) -> anyhow::Result<()> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let app = server::App::new(flags, shutdown.clone()).await?;
    let reloader = app.clone();
    let signals = tokio::spawn(handle_signals(
        move || reloader.reload().map_err(|e| e.to_string()),
        shutdown.clone(),
    ));
    let res = app.run().await;
    signals.abort();
    res.map_err(Into::into)
}

async fn alertmanager_main(flags: alertmanager::AlertmanagerFlags) -> anyhow::Result<()> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let app = alertmanager::App::new(flags, shutdown.clone()).await?;
    let reloader = app.clone();
    let signals = tokio::spawn(handle_signals(
        move || reloader.reload().map_err(|e| e.to_string()),
        shutdown.clone(),
    ));
    let res = app.run().await;
    signals.abort();
    res.map_err(Into::into)
}

async fn query_main(flags: query::QueryFlags) -> anyhow::Result<()> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let app = query::App::new(flags, shutdown.clone()).await?;
    // Endpoint files are re-read on change; SIGHUP has nothing else to reload.
    let signals = tokio::spawn(handle_signals(|| Ok(()), shutdown.clone()));
    let res = app.run().await;
    signals.abort();
    res.map_err(Into::into)
}

/// SIGHUP reloads the configuration; SIGINT/SIGTERM stop the role gracefully.
async fn handle_signals(
    reload: impl Fn() -> Result<(), String>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                if let Err(e) = reload() {
                    tracing::error!("error reloading config: {e}");
                }
            }
            _ = term.recv() => { tracing::warn!("received SIGTERM, exiting gracefully..."); shutdown.cancel(); return; }
            _ = int.recv() => { tracing::warn!("received SIGINT, exiting gracefully..."); shutdown.cancel(); return; }
        }
    }
}

fn check_config(files: &[std::path::PathBuf]) -> std::process::ExitCode {
    let mut failed = false;
    for f in files {
        match server::config::Config::load_file(f) {
            Ok(c) => {
                println!(
                    "SUCCESS: {} is valid prometheus config file syntax ({} scrape configs)",
                    f.display(),
                    c.scrape_configs.len()
                );
                // compat: promtool also checks the rule files a config names.
                match rules::rulefmt::expand_globs(&c.rule_files) {
                    Ok(rule_files) => failed |= rules::rulefmt::check_cli(&rule_files) != 0,
                    Err(e) => {
                        println!("FAILED: {e}");
                        failed = true;
                    }
                }
            }
            Err(e) => {
                println!("FAILED: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}
