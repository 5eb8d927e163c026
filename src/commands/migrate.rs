//! `login-etl migrate`: create or upgrade the schema (optionally partitioning `user_logins` by
//! month) and exit.

use super::Globals;
use crate::cli::DbArgs;
use crate::sink::PgOperator;
use clap::Args;
use std::time::Duration;

use super::connect_database;

/// `migrate` options.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// Turn `user_logins` into monthly range partitions by `create_date` (one transaction that
    /// copies an existing table; writers wait meanwhile). Once partitioned, `migrate` and `run`
    /// keep the coming months' partitions created. Off by default; see docs/partitioning.md.
    #[arg(long)]
    pub partition_by_month: bool,
    /// With a partitioned table: also create the monthly partitions from this date's month on
    /// (YYYY-MM-DD), before backfilling older data (rows with no partition land in DEFAULT).
    #[arg(long, value_name = "DATE")]
    pub partitions_from: Option<chrono::NaiveDate>,
}

pub(super) async fn execute(args: MigrateArgs, globals: Globals) -> anyhow::Result<()> {
    let shutdown = globals.shutdown;
    let mut database =
        PgOperator::from(connect_database(&args.db, Duration::from_secs(30), &shutdown).await?);
    if args.partition_by_month {
        let done = database.partition_by_month().await?;
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
    let ahead = database
        .ensure_partitions_from(args.partitions_from)
        .await?;
    if ahead > 0 {
        println!("partitions exist for this month and the next {ahead}");
    }
    println!("schema is up to date in {}", database.target());
    Ok(())
}
