//! `login-etl migrate`: create or upgrade the schema and exit.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::connect_sink;
use crate::cli::DbArgs;

pub(super) async fn migrate(args: DbArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let sink = connect_sink(&args.database_url, Duration::from_secs(30), &shutdown).await?;
    println!("schema is up to date in {}", sink.target());
    Ok(())
}
