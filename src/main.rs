//! The `latch` binary: parse arguments, start logging, build the runtime, run the command, turn
//! the outcome into an exit code. Nothing else lives here.

use std::process::ExitCode;

use clap::Parser;
use latch::cli::{self, Cli, Command};
use tracing_subscriber::EnvFilter;

/// Wipes freed memory once the launcher switches it on (`latch::launcher::alloc`).
#[global_allocator]
static ALLOCATOR: latch::launcher::alloc::Wiping = latch::launcher::alloc::Wiping;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.global.verbose, cli.global.quiet);
    if let Command::Run(args) = cli.command {
        // The launcher blocks signals and takes its key out of the environment before any
        // thread starts, so it runs before a runtime is built.
        return match cli::launch(args, &cli.global) {
            Ok(code) => ExitCode::from(code),
            Err(e) => report(&e),
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return report(&cli::Error::Runtime(e)),
    };
    let outcome = runtime.block_on(cli::run(cli));
    // A read of stdin may still block in tokio's blocking pool (e.g. after the reader of our
    // stdout went away): do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => report(&e),
    }
}

/// Logs go to stderr. `LATCH_LOG` (an `EnvFilter` directive) wins over `-v`/`-q`.
fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("LATCH_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// One line saying what failed, a second saying what to do when there is something to do.
fn report(error: &cli::Error) -> ExitCode {
    let mut line = format!("latch: error: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        line = format!("{line}: {cause}");
        source = cause.source();
    }
    eprintln!("{line}");
    if let Some(remedy) = error.remedy() {
        eprintln!("latch: hint: {remedy}");
    }
    ExitCode::from(error.failure().code())
}
