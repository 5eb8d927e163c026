//! `login-etl run`: consume until shutdown (or, with --drain, until the queue is empty).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{connect_sink, connect_source, load_keys};
use crate::cli::RunArgs;
use crate::mask::{Masker, StrategyName};
use crate::pipeline::{self, PipelineSettings};
use crate::source::SqsSettings;

pub(super) async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let masker = match args.mask_strategy {
        StrategyName::Sha256 => {
            tracing::warn!(
                "--mask-strategy sha256 is unkeyed: every IPv4 mask can be reversed by hashing all \
                 2^32 addresses. Use it only to stay compatible with an existing table."
            );
            Masker::new(StrategyName::Sha256, None)?
        }
        keyed => {
            let keys = load_keys(&args.keys, args.sqs.sqs_endpoint.0.as_ref()).await?;
            Masker::new(keyed, Some(&keys))?
        }
    };
    tracing::info!(strategy = masker.strategy(), "masking");

    let budget = Duration::from_secs(args.write_retry_seconds);
    let sink = connect_sink(&args.db.database_url, budget, &shutdown).await?;
    let source = connect_source(&SqsSettings::from(&args.sqs), budget, &shutdown).await?;
    tracing::info!(
        queue_url = source.queue_url(),
        drain = args.drain,
        "consuming"
    );
    let settings = PipelineSettings::from(&args);
    let summary = pipeline::run(source, sink, masker, settings, shutdown).await?;
    tracing::info!(%summary, "stopped");
    if args.drain {
        println!("{summary}");
    }
    Ok(())
}
