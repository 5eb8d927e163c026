//! `login-etl migrate`: create or upgrade the schema (optionally partitioning `user_logins` by
//! month) and exit.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::connect_sink;
use crate::cli::MigrateArgs;

pub(super) async fn migrate(args: MigrateArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut sink = connect_sink(&args.db, Duration::from_secs(30), &shutdown).await?;
    if args.partition_by_month {
        let done = sink.partition_by_month().await?;
        if done.converted {
            println!(
                "user_logins is now partitioned by month: {} rows copied, {} monthly partitions (and user_logins_default)",
                done.rows_copied, done.partitions
            );
        } else {
            println!(
                "user_logins was partitioned already ({} monthly partitions)",
                done.partitions
            );
        }
    }
    let ahead = sink.ensure_partitions_from(args.partitions_from).await?;
    if ahead > 0 {
        println!("partitions exist for this month and the next {ahead}");
    }
    println!("schema is up to date in {}", sink.target());
    Ok(())
}
