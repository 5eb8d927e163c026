//! `login-etl purge-queue --yes`: empty the queue (development).

use anyhow::bail;

use super::open_queue;
use crate::cli::PurgeArgs;
use crate::source::SqsSettings;

pub(super) async fn purge_queue(args: PurgeArgs) -> anyhow::Result<()> {
    if !args.yes {
        bail!("purge-queue deletes every message in the queue; pass --yes to confirm");
    }
    let source = open_queue(&SqsSettings::from(&args.sqs)).await?;
    source.purge().await?;
    println!("purged {}", source.queue_url());
    Ok(())
}
