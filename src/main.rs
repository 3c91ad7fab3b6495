//! The `latch` binary: parse arguments, start logging, build the runtime, run the command, turn
//! the outcome into an exit code. Nothing else lives here.

use std::process::ExitCode;

use latch::cli::{self, Cli, Command};
use tracing_subscriber::EnvFilter;

/// Wipes freed memory once the launcher switches it on (`latch::launcher::alloc`).
#[global_allocator]
static ALLOCATOR: latch::launcher::alloc::Wiping = latch::launcher::alloc::Wiping;

fn main() -> ExitCode {
    cli::mark_main();
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(cli::messages::clap_error(&e)),
    };
    init_tracing(cli.global.verbose, cli.global.quiet);
    let json = cli.global.json;
    // The launcher and the sidecar block signals and take the key out of the environment
    // before any thread starts, so they run before a runtime is built.
    let cli = match cli.command {
        Command::Run(args) => return exit(cli::launch(args, &cli.global), json),
        Command::Broker(args) => return exit(cli::sidecar(args, &cli.global), json),
        command => Cli {
            global: cli.global,
            command,
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return report(&cli::Error::Runtime(e), json),
    };
    let outcome = runtime.block_on(cli::run(cli));
    // A read of stdin may still block in tokio's blocking pool (e.g. after the reader of our
    // stdout went away): do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    exit(outcome, json)
}

/// The exit code of a command's outcome, its error reported.
fn exit(outcome: Result<u8, cli::Error>, json: bool) -> ExitCode {
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => report(&e, json),
    }
}

/// Logs go to stderr. `LATCH_LOG` (an `EnvFilter` directive) wins over `-v`/`-q`. Up to `-v`
/// they are latch's own lines (`latch: warning: …`, DESIGN §11); tracing's format (times,
/// targets) only at `-vv` and beyond. Colour only when stderr is a terminal and `NO_COLOR` is
/// unset.
fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("LATCH_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let colour = cli::messages::colour();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    if verbose >= 2 {
        builder.init();
    } else {
        builder.event_format(cli::messages::Lines { colour }).init();
    }
}

/// One line saying what failed, a second saying what to do when there is something to do;
/// under `--json` also `{"error": {"code", "message"}}` on stdout. A closed stdout ends quietly.
fn report(error: &cli::Error, json: bool) -> ExitCode {
    if matches!(error, cli::Error::StdoutClosed) {
        return ExitCode::from(error.exit_code());
    }
    let mut line = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        line = format!("{line}: {cause}");
        source = cause.source();
    }
    cli::messages::error(&line);
    if let Some(remedy) = error.remedy() {
        cli::messages::hint(remedy);
    }
    if json {
        let object = serde_json::json!({"error": {"code": error.code(), "message": line}});
        println!("{object}");
    }
    ExitCode::from(error.exit_code())
}
