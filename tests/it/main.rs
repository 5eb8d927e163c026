//! The integration tests: one binary, a module per area, against a real PostgreSQL and a real
//! LocalStack (`scripts/test.sh` starts them). Helpers live in `helpers/`, one file per concern.

mod helpers;

mod audit_roles;
mod cli;
mod commands;
mod config_faults;
mod credentials;
mod database_credentials;
mod dead_letters;
mod deploy;
mod endpoints;
mod erasure;
mod erasure_attacks;
mod erasure_holds;
mod erasure_redrive;
mod erasure_review;
mod fail_closed;
mod fail_closed_ops;
mod failover;
mod formats;
mod held;
mod hostile;
mod iam;
mod key_checks;
mod ledger;
mod logins_per_message;
mod network_pseudonyms;
mod observability;
mod operability;
mod partitions;
mod pipeline;
// Both its tests kill consumers through the test hooks.
#[cfg(feature = "test-hooks")]
mod poison;
mod policy_attacks;
mod policy_attacks2;
mod policy_choices;
mod policy_run;
mod policy_shred;
mod policy_shred_attacks;
mod policy_shred_attacks2;
mod policy_shred_attacks3;
mod poolers;
mod privacy;
mod privacy_ops;
mod privacy_report;
mod query_protocol;
mod recovery;
mod redrive;
mod redrive_command;
mod reliability;
mod s3_faults;
mod s3_progress;
mod s3_resume;
mod s3_source;
mod scale_out;
mod shutdown;
mod table_mismatch;
mod tls;
