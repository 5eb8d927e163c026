//! `login-etl purge-queue --yes`: empty the queue (development).

use super::Globals;
use crate::cli::SqsArgs;
use anyhow::bail;
use clap::Args;

use super::open_queue;
use crate::source::SqsSettings;

/// `purge-queue` options.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sqs: SqsArgs,
    /// Confirm: without it nothing is deleted.
    #[arg(long)]
    pub yes: bool,
}

pub(super) async fn execute(args: PurgeArgs, _: Globals) -> anyhow::Result<()> {
    if !args.yes {
        bail!("purge-queue deletes every message in the queue; pass --yes to confirm");
    }
    let source = open_queue(&SqsSettings::from(&args.sqs)).await?;
    source.purge().await?;
    println!("purged {}", source.queue_url());
    Ok(())
}
