//! `login-etl policy check FILE`: read a privacy policy offline (no database, no keys, no queue)
//! and say, field by field, what it stores; or every problem with its line and the fix.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::Globals;
use crate::cli::PolicyFileArgs;
use crate::policy::{FieldLine, Policy};

/// `policy` options.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// What to do with a policy.
    #[command(subcommand)]
    pub action: PolicyAction,
}

/// What `policy` does.
#[derive(Debug, Clone, Subcommand)]
pub enum PolicyAction {
    /// Check a policy file offline and print what it stores of each field (column, links,
    /// who can read it back, ENISA's name for the technique) and its fingerprint. Exits 1 with
    /// every problem, each `FILE:LINE: what to write instead`.
    Check(CheckArgs),
}

/// `policy check` options.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The policy file (TOML; examples/policies/ has one per common need). `-` reads stdin.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: PolicyFormat,
}

/// Output formats of `policy check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyFormat {
    /// A paragraph per field, for people.
    Text,
    /// One JSON document.
    Json,
}

pub(super) async fn execute(args: PolicyArgs, _: Globals) -> anyhow::Result<()> {
    match args.action {
        PolicyAction::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let name = args.file.display().to_string();
    let text = match name.as_str() {
        "-" => std::io::read_to_string(std::io::stdin())
            .context("cannot read the policy from stdin")?,
        _ => std::fs::read_to_string(&args.file)
            .with_context(|| format!("cannot read the policy file {name}"))?,
    };
    let policy = match Policy::parse(&text) {
        Ok(policy) => policy,
        Err(e) => {
            for problem in &e.problems {
                match problem.line {
                    Some(line) => eprintln!("{name}:{line}: {}", problem.message),
                    None => eprintln!("{name}: {}", problem.message),
                }
            }
            anyhow::bail!(
                "policy {name} refused: {} problem{} (each above with its line and fix)",
                e.problems.len(),
                if e.problems.len() == 1 { "" } else { "s" }
            );
        }
    };
    let lines = policy.describe();
    match args.format {
        PolicyFormat::Json => {
            let report = serde_json::json!({
                "file": name,
                "fingerprint": policy.fingerprint(),
                "fields": lines,
            });
            println!("{report:#}");
        }
        PolicyFormat::Text => print_table(&name, &policy, &lines),
    }
    Ok(())
}

fn print_table(name: &str, policy: &Policy, lines: &[FieldLine]) {
    println!("policy {name}: valid, fingerprint {}", policy.fingerprint());
    for line in lines {
        println!();
        println!("{} → {}", line.field, line.column);
        println!("  stored:      {}", line.stored);
        println!("  links:       {}", line.links);
        println!("  readable by: {}", line.readable_by);
        println!("  technique:   {}", line.technique);
    }
}

/// The policy in force: the file `--policy` / LOGIN_ETL_POLICY names (refused with its first
/// problem and line), else today's behaviour ([`Policy::seed`]).
pub(super) fn load_policy(args: &PolicyFileArgs) -> anyhow::Result<Policy> {
    let Some(path) = &args.policy_file else {
        return Ok(Policy::seed());
    };
    let name = path.display();
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("cannot read the policy file {name} (--policy / LOGIN_ETL_POLICY)")
    })?;
    Policy::parse(&text).with_context(|| format!("policy {name} refused"))
}
