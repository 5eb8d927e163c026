//! `login-etl` binary: parse the command line, set up logging, hand over to the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use login_etl::cli::Cli;
use tracing_subscriber::EnvFilter;

/// Dependencies that may log request contents (message bodies, query parameters) at debug/trace.
/// They are capped at `info` whatever LOGIN_ETL_LOG says, so raw PII can't reach the logs that way;
/// a more specific directive wins in `EnvFilter`, so these hold even under `LOGIN_ETL_LOG=trace`.
const QUIET_DEPENDENCIES: &[&str] = &[
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
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
    "h2",
    "hyper",
    "hyper_util",
    "rustls",
    "tokio_postgres",
];

/// `LOGIN_ETL_LOG` (default `info`) with the dependency caps above.
fn log_filter() -> EnvFilter {
    let user = std::env::var("LOGIN_ETL_LOG").unwrap_or_else(|_| "info".into());
    let caps: Vec<String> = QUIET_DEPENDENCIES
        .iter()
        .map(|target| format!("{target}=info"))
        .collect();
    EnvFilter::try_new(format!("{user},{}", caps.join(",")))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{}", caps.join(","))))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr so that stdout carries only results (summaries, printed samples).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(log_filter())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(login_etl::app::execute(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
