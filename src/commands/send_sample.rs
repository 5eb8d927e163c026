//! `login-etl send-sample`: the bundled sample, or N synthetic messages, onto the queue.

use anyhow::{bail, Context};

use crate::cli::SendSampleArgs;
use crate::sample::{self, SampleSpec, SAMPLE_JSONL};
use crate::source::{SqsSettings, SqsSource};

pub(super) async fn send_sample(args: SendSampleArgs) -> anyhow::Result<()> {
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
