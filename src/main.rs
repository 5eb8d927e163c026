//! `login-etl` binary: parse the command line, set up logging and signals, hand over to the
//! library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use login_etl::cli::LogFormat;
use login_etl::commands::Cli;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Dependencies that may log request contents (message bodies, query parameters) at debug/trace,
/// capped at `info` whatever LOGIN_ETL_LOG says, so raw PII can't reach the logs that way; a more
/// specific directive wins in `EnvFilter`, so these hold even under `LOGIN_ETL_LOG=trace`.
const QUIET_DEPENDENCIES: &[&str] = &["h2", "hyper", "hyper_util", "rustls", "tokio_postgres"];

/// The AWS SDK's own warnings print whole HTTP responses (headers and bodies) with `Debug`, e.g.
/// an IMDS refusal while looking for a region. Every failure that matters comes back to login-etl
/// as an error and is reported as one safe line (`aws::SdkFailure`), so these log only errors.
const AWS_SDK: &[&str] = &[
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sdk_kms",
    "aws_sdk_s3",
    "aws_sdk_sqs",
    "aws_sigv4",
    "aws_smithy_json",
    "aws_smithy_query",
    "aws_smithy_types",
    "aws_types",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
];

/// `LOGIN_ETL_LOG` (default `info`) with the dependency caps above.
fn log_filter() -> EnvFilter {
    let user = std::env::var("LOGIN_ETL_LOG").unwrap_or_else(|_| "info".into());
    let caps: Vec<String> = QUIET_DEPENDENCIES
        .iter()
        .map(|target| format!("{target}=info"))
        .chain(AWS_SDK.iter().map(|target| format!("{target}=error")))
        .collect();
    EnvFilter::try_new(format!("{user},{}", caps.join(",")))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{}", caps.join(","))))
}

/// First SIGINT/SIGTERM: cancel `shutdown` (stop receiving, finish the batch in flight). Second
/// one: exit now (nothing is lost: uncommitted messages come back after the visibility timeout).
async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for signals; SIGTERM will end the process at once");
        return;
    };
    for count in 1.. {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        if count == 1 {
            tracing::info!(
                "shutdown requested: finishing the batch in flight (signal again to abort)"
            );
            shutdown.cancel();
        } else {
            tracing::warn!("aborting; uncommitted messages will be redelivered by SQS");
            std::process::exit(130);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr so that stdout carries only results (summaries, printed samples).
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(log_filter());
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    // The command runs as a task on the runtime's workers, not on this thread under `block_on`:
    // there, each hand-over between it and the receivers' tasks was a wake-up across threads
    // (a futex call per message; 18 % of a drain's CPU against LocalStack, docs/benchmarks.md).
    let result = runtime.block_on(async {
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let globals = login_etl::commands::Globals {
            log_format: cli.log_format,
            shutdown,
        };
        match tokio::spawn(login_etl::commands::execute(cli.command, globals)).await {
            Ok(result) => result,
            Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
            Err(cancelled) => Err(anyhow::anyhow!("the command was cancelled: {cancelled}")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
