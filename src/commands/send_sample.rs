//! `login-etl send-sample`: the bundled sample, or N synthetic messages, onto the queue.

use super::Globals;
use crate::cli::SqsArgs;
use anyhow::{bail, Context};
use clap::Args;

use crate::sample::{self, SampleSpec, SAMPLE_JSONL};
use crate::source::{SqsSettings, SqsSource};

/// `send-sample` options.
#[derive(Debug, Clone, Args)]
pub struct SendSampleArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sqs: SqsArgs,
    /// Generate this many synthetic messages instead of sending the bundled 100-message sample.
    #[arg(long)]
    pub count: Option<usize>,
    /// With --count: share of deliberately bad messages (0.0 to 1.0).
    #[arg(long, default_value_t = 0.01)]
    pub bad_share: f64,
    /// With --count: random seed; the same seed gives the same messages.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Create the queue first if it does not exist.
    #[arg(long)]
    pub create_queue: bool,
    /// Print the messages as JSON lines instead of sending them (no queue needed).
    #[arg(long)]
    pub print: bool,
}

pub(super) async fn execute(args: SendSampleArgs, _: Globals) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.bad_share) {
        bail!(
            "--bad-share must be between 0.0 and 1.0, got {}",
            args.bad_share
        );
    }
    let bodies: Vec<String> = match args.count {
        Some(count) => sample::generate(&SampleSpec {
            count,
            bad_share: args.bad_share,
            seed: args.seed,
        }),
        None => SAMPLE_JSONL.lines().map(str::to_string).collect(),
    };
    if args.print {
        for body in &bodies {
            println!("{body}");
        }
        return Ok(());
    }
    let settings = SqsSettings::from(&args.sqs);
    let source = if args.create_queue {
        SqsSource::create(&settings).await
    } else {
        SqsSource::connect(&settings).await
    }
    .context("cannot open the queue")?;
    let sent = source.send(&bodies).await.context("sending failed")?;
    println!("sent {} messages to {}", sent.len(), source.queue_url());
    Ok(())
}
