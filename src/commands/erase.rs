//! `login-etl erase`: a data subject's erasure request — their rows and quarantine entries, in one
//! transaction with its audit row (counts only, never the user id).

use super::Globals;
use crate::cli::{DbArgs, KeyArgs, PolicyFileArgs};
use anyhow::{bail, Context};
use clap::Args;

use super::{load_keys, os_user};
use crate::sink::{Accountable, EraseSubject, PgOperator};

/// `erase` options.
#[derive(Debug, Clone, Args)]
pub struct EraseArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// The masking keys: the audit row records a keyed fingerprint of the user id, never the id.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Optional: the policy rows were written under. Without it, the policies `run` recorded
    /// say whether `user_id` holds pseudonyms (the subject is found by them either way).
    #[command(flatten)]
    pub policy: PolicyFileArgs,
    /// The data subject: every `user_logins` row and quarantine entry of this user id goes.
    #[arg(long)]
    pub user_id: String,
    /// Why (the request's reference); stored in the audit row with the counts, never the user id.
    #[arg(long)]
    pub reason: String,
    /// Who is accountable, if not the OS user running the command.
    #[arg(long)]
    pub actor: Option<String>,
    /// Count what would go, change nothing, record nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub(super) async fn execute(args: EraseArgs, _: Globals) -> anyhow::Result<()> {
    crate::cli::audit_text("--reason", Some(&args.reason))?;
    crate::cli::audit_text("--actor", args.actor.as_deref())?;
    if args.reason.trim().is_empty() {
        bail!("--reason must name the request (e.g. its ticket); it is stored in the audit trail");
    }
    if args.user_id.trim().is_empty() {
        bail!("--user-id is empty");
    }
    let policy = optional_policy(&args.policy)?;
    let keys = load_keys(&args.keys, None).await?;
    let fingerprints = crate::mask::user_fingerprints(&keys, &args.user_id);
    let forms = crate::mask::user_id_forms(&keys, &args.user_id);
    let records = crate::mask::ErasureFingerprints::new(&keys).of(&args.user_id);
    let generations = crate::mask::Generations::new(&keys)?;
    let mut database = PgOperator::new(&args.db.settings())?;
    database.require_current_schema().await?;
    database.check_key_ring(&keys.key_fingerprints()).await?;
    let given = policy.as_ref().map(crate::policy::in_force::treatments);
    let pseudonyms = |periods: &[String]| {
        // A period's ring is 64 bytes of HKDF output per key: it derives from any ring.
        crate::policy::user_id_pseudonyms(&keys, &args.user_id, periods)
            .expect("a period ring derives from any ring that parsed")
    };
    let subject = EraseSubject {
        id: &args.user_id,
        pseudonyms: &pseudonyms,
        given_policy: given
            .as_ref()
            .and_then(|g| g.get("user_id"))
            .map(String::as_str),
        fingerprints: &fingerprints,
        forms: &forms,
        records: &records,
        generations: &|mask| generations.of(mask),
    };

    let who = Accountable {
        os_user: os_user(),
        actor: args.actor.clone().unwrap_or_else(os_user),
        reason: args.reason.clone(),
    };
    let erased = database
        .erase_user(&subject, &who, args.dry_run)
        .await
        .with_context(|| format!("cannot erase in {}; nothing was changed", database.target()))?;
    match erased.audit_id {
        None => println!(
            "dry run: would erase {} rows from user_logins and {} quarantine entries, neutralise {} reveal audit rows and take the user's logins out of {} entries shared with other users; nothing changed",
            erased.rows, erased.quarantined, erased.reveals, erased.stripped
        ),
        Some(id) => println!(
            "erased {} rows from user_logins and {} quarantine entries, neutralised {} reveal audit rows; \
             took the user's logins out of {} entries shared with other users; \
             audited in privacy_operations (id {id}); recorded so that logins of this user sent before now, still queued or redriven later, are never written",
            erased.rows, erased.quarantined, erased.reveals, erased.stripped
        ),
    }
    Ok(())
}

/// The policy file given with `--policy`, if one was.
pub(super) fn optional_policy(
    args: &PolicyFileArgs,
) -> anyhow::Result<Option<crate::policy::Policy>> {
    match &args.policy_file {
        Some(_) => Ok(Some(super::policy::load_policy(args)?)),
        None => Ok(None),
    }
}

/// Whether a policy stores `user_id` as a pseudonym, and whether per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pseudonyms {
    None,
    AllTime,
    ByPeriod,
}

/// Whether `policy` or a policy `run` recorded stores `user_id` as a pseudonym.
pub(super) async fn pseudonymised(
    database: &mut PgOperator,
    policy: Option<&crate::policy::Policy>,
) -> anyhow::Result<Pseudonyms> {
    let policies = (database.recorded_policies().await)
        .context("cannot read the recorded privacy policies")?;
    let given = policy.map(crate::policy::in_force::treatments);
    let stores: Vec<&str> = (policies.iter())
        .filter_map(|p| p.columns.get("user_id").map(String::as_str))
        .chain(
            given
                .iter()
                .filter_map(|c| c.get("user_id").map(String::as_str)),
        )
        .filter(|c| c.starts_with("hmac"))
        .collect();
    Ok(
        match (stores.is_empty(), stores.iter().any(|c| c.contains('/'))) {
            (true, _) => Pseudonyms::None,
            (false, false) => Pseudonyms::AllTime,
            (false, true) => Pseudonyms::ByPeriod,
        },
    )
}

/// What a subject may be stored as besides the id: their `user_id` pseudonyms, if a policy
/// stores one (under every key of the ring, and in every period the table holds when scoped).
pub(super) async fn pseudonyms_of(
    database: &mut PgOperator,
    keys: &crate::mask::KeyRing,
    user_id: &str,
    policy: Option<&crate::policy::Policy>,
) -> anyhow::Result<Vec<String>> {
    let periods = match pseudonymised(database, policy).await? {
        Pseudonyms::None => return Ok(Vec::new()),
        Pseudonyms::AllTime => Vec::new(),
        Pseudonyms::ByPeriod => {
            (database.stored_periods().await).context("cannot read user_logins' periods")?
        }
    };
    Ok(crate::policy::user_id_pseudonyms(keys, user_id, &periods)?)
}
