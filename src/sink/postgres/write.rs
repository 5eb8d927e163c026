//! The batch write. One batch is one transaction, in three steps: claim the message ids in the
//! `processed_messages` ledger (`ON CONFLICT DO NOTHING RETURNING` tells which are new), stream
//! the new rows with binary `COPY`, insert the new quarantine entries. A message of several
//! logins has one outcome per login and one ledger entry. Either all of it commits
//! or none of it does, and the caller deletes from SQS only after the commit. A message the
//! ledger holds as `quarantined` (redelivered, or a redriven dead letter) is tried again for its
//! open quarantine entries only ([`redrive`](super::redrive)).

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashSet};

use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use super::begin;
use super::erased;
use super::period_keys;
use super::redrive::{self, Claim};
use super::s3_progress;
use super::unknown_fields::{MAX_RECORDED_FIELDS, RECORD_FIELDS};
use super::{PgSink, SinkError};
use crate::mask::ErasureFingerprints;
use crate::message::{Outcome, OutcomeKind, QuarantineRecord};

const CLAIM_IDS: &str = "INSERT INTO processed_messages (message_id, outcome) \
                         SELECT * FROM unnest($1::text[], $2::text[]) \
                         ON CONFLICT (message_id) DO NOTHING RETURNING message_id";
const COPY_ROWS: &str = "COPY user_logins (user_id, device_type, masked_ip, masked_device_id, \
                         locale, app_version, create_date, masked_ip_network, sent_at, \
                         extra_fields, period) FROM STDIN (FORMAT binary)";
const COPY_TYPES: [Type; 11] = [
    Type::VARCHAR,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::DATE,
    Type::VARCHAR,
    Type::TIMESTAMPTZ,
    Type::JSONB,
    Type::VARCHAR,
];
const CLEAR_ATTEMPTS: &str = "DELETE FROM poison_attempts WHERE message_id = ANY($1)";
/// `user_ids` travel as one JSON array per entry (`unnest` would flatten a `text[][]`).
const INSERT_QUARANTINE: &str = "INSERT INTO quarantined_messages (message_id, reason_code, reason, \
                                 received_at, sent_at, receive_count, body_bytes, body_masked, \
                                 user_id, key_id, element, scrub_version, user_ids) \
                                 SELECT m, c, r, ra, sa, rc, bb, b, u, k, e, 1, \
                                 ARRAY(SELECT jsonb_array_elements_text(us)) \
                                 FROM unnest($1::text[], $2::text[], $3::text[], \
                                 $4::timestamptz[], $5::timestamptz[], $6::int4[], $7::int4[], $8::text[], \
                                 $9::text[], $10::text[], $11::int4[], $12::jsonb[]) \
                                 AS t(m, c, r, ra, sa, rc, bb, b, u, k, e, us) \
                                 ON CONFLICT (message_id, element) DO NOTHING RETURNING reason_code";

/// What a committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Rows copied into `user_logins`.
    pub rows: u64,
    /// Entries added to `quarantined_messages`.
    pub quarantined: u64,
    /// The same entries by reason code.
    pub quarantined_by_code: BTreeMap<String, u64>,
    /// Messages already in the ledger (redeliveries), skipped.
    pub duplicates: u64,
    /// Open quarantine entries whose login failed again (attempts counted, reason updated).
    pub retried: u64,
    /// Open quarantine entries whose login landed now.
    pub resolved: u64,
    /// Logins left out because their subject was erased after they were sent
    /// ([`erased`](super::erased)).
    pub erased: u64,
}

impl std::ops::AddAssign for WriteReport {
    fn add_assign(&mut self, other: Self) {
        self.rows += other.rows;
        self.quarantined += other.quarantined;
        self.duplicates += other.duplicates;
        self.retried += other.retried;
        self.resolved += other.resolved;
        self.erased += other.erased;
        for (code, n) in other.quarantined_by_code {
            *self.quarantined_by_code.entry(code).or_default() += n;
        }
    }
}

impl PgSink {
    /// Write one batch in one transaction; see the module docs.
    pub async fn write_batch<O>(&mut self, outcomes: &[O]) -> Result<WriteReport, SinkError>
    where
        O: Borrow<Outcome> + Sync,
    {
        self.write_outcomes(outcomes, false).await
    }

    /// [`write_batch`](Self::write_batch), also clearing the recorded solo attempts of these
    /// messages in the same transaction when `clear_attempts` (messages processed alone).
    pub(crate) async fn write_outcomes<O>(
        &mut self,
        outcomes: &[O],
        clear_attempts: bool,
    ) -> Result<WriteReport, SinkError>
    where
        O: Borrow<Outcome> + Sync,
    {
        if outcomes.is_empty() {
            return Ok(WriteReport::default());
        }
        self.record_pending_key().await?;
        let end = End::Commit { clear_attempts };
        let new_fields = self.recorded_fields.new_names(outcomes);
        let client = self.db.client().await?;
        let result = write(client, outcomes, &new_fields, end, self.erasures.as_ref()).await;
        match result {
            Ok(Written::Report(report)) => {
                self.recorded_fields.sent(new_fields);
                Ok(report)
            }
            Ok(Written::StalePeriodKeys(periods)) => Err(SinkError::StalePeriodKeys { periods }),
            Err(e) => Err(self.db.on_error(e)),
        }
    }

    /// Write outcomes as [`write_batch`](Self::write_batch) would, then roll back: `Ok` if
    /// PostgreSQL takes them, `Err(SinkError::Rejected)` if it refuses one.
    pub(crate) async fn probe_outcomes<O>(&mut self, outcomes: &[O]) -> Result<(), SinkError>
    where
        O: Borrow<Outcome> + Sync,
    {
        let client = self.db.client().await?;
        let result = write(client, outcomes, &[], End::Rollback, self.erasures.as_ref()).await;
        match result {
            Ok(Written::Report(_)) => Ok(()),
            Ok(Written::StalePeriodKeys(periods)) => Err(SinkError::StalePeriodKeys { periods }),
            Err(e) => Err(self.db.on_error(e)),
        }
    }
}

/// How a write's transaction ends.
#[derive(Clone, Copy)]
enum End {
    /// Commit; `clear_attempts`: also clear the messages' recorded solo attempts.
    Commit { clear_attempts: bool },
    /// Roll back (a probe).
    Rollback,
}

/// What a write did: committed (or probed), or nothing, because a period key it sealed with is
/// shredded now.
enum Written {
    Report(WriteReport),
    StalePeriodKeys(Vec<String>),
}

async fn write<O: Borrow<Outcome> + Sync>(
    client: &mut tokio_postgres::Client,
    outcomes: &[O],
    new_fields: &[String],
    end: End,
    erasures: Option<&ErasureFingerprints>,
) -> Result<Written, tokio_postgres::Error> {
    let tx = begin(client).await?;
    tx.batch_execute(erased::LOCK).await?;
    // A probe (rolled back) asks only whether the table takes the rows; the write that follows
    // checks their keys.
    let stale = match end {
        End::Commit { .. } => period_keys::stale(&tx, outcomes).await?,
        End::Rollback => Vec::new(),
    };
    if !stale.is_empty() {
        tx.rollback().await?;
        return Ok(Written::StalePeriodKeys(stale));
    }
    if erasures.is_none() {
        // A keyless consumer (sha256) cannot tell an erased subject's logins: once anyone is
        // erased it stops (at start it refuses; this is an erase made while it runs).
        tx.batch_execute(erased::NONE_ERASED).await?;
    }
    if !new_fields.is_empty() {
        let cap = MAX_RECORDED_FIELDS as i64;
        tx.execute(RECORD_FIELDS, &[&new_fields, &cap]).await?;
    }
    if let End::Commit {
        clear_attempts: true,
    } = end
    {
        let ids: Vec<&str> = outcomes
            .iter()
            .map(|o| o.borrow().message_id.as_str())
            .collect();
        tx.execute(CLEAR_ATTEMPTS, &[&ids]).await?;
    }
    let (candidates, deliveries) = claim_ids(&tx, outcomes).await?;
    s3_progress::record(&tx, &candidates, outcomes.iter().map(Borrow::borrow)).await?;
    let entries = redrive::read_entries(&tx, &redrive::entries_to_read(&candidates)).await?;
    let plan = redrive::plan(&candidates, &entries);
    let mut report = WriteReport {
        duplicates: deliveries.saturating_sub(plan.acted.len() as u64),
        retried: plan.retried.len() as u64,
        resolved: plan.resolved.len() as u64,
        ..WriteReport::default()
    };
    let kept = match erasures {
        Some(check) => erased::keep(&tx, check, &plan.rows, &plan.new_entries).await?,
        None => erased::Kept::all(&plan.rows, &plan.new_entries),
    };
    report.erased = kept.left_out;
    report.rows = copy_rows(&tx, &kept.rows).await?;
    let entries: Vec<(&Outcome, &QuarantineRecord)> =
        kept.entries.iter().map(|(o, q)| (*o, q.as_ref())).collect();
    report.quarantined_by_code = insert_quarantine(&tx, &entries).await?;
    report.quarantined = report.quarantined_by_code.values().sum();
    redrive::settle(&tx, &plan).await?;
    match end {
        End::Commit { .. } => tx.commit().await?,
        End::Rollback => {
            // Deferred constraints are checked at COMMIT: a probe checks them now.
            tx.batch_execute("SET CONSTRAINTS ALL IMMEDIATE").await?;
            tx.rollback().await?
        }
    }
    Ok(Written::Report(report))
}

/// Record each message id once in the ledger (`row` if any of its logins became a row); the
/// outcomes of the messages that were new or held as `quarantined` (reclaimed), each login once
/// (a message delivered twice in one batch counts once), and how many deliveries there were.
async fn claim_ids<'a, O: Borrow<Outcome>>(
    tx: &Transaction<'_>,
    outcomes: &'a [O],
) -> Result<(Vec<(&'a Outcome, Claim)>, u64), tokio_postgres::Error> {
    let outcomes: Vec<&Outcome> = outcomes.iter().map(Borrow::borrow).collect();
    let ledger = redrive::ledger_claims(&outcomes);
    let ids: Vec<&str> = ledger.keys().copied().collect();
    let kinds: Vec<&str> = ledger.values().copied().collect();
    let new_ids: HashSet<String> = tx
        .query(CLAIM_IDS, &[&ids, &kinds])
        .await?
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    let known: Vec<&str> = (ids.iter().copied())
        .filter(|id| !new_ids.contains(*id))
        .collect();
    let reclaimed = redrive::reclaim(tx, &known).await?;
    Ok(redrive::candidates(&outcomes, &new_ids, &reclaimed))
}

/// Stream the rows with binary COPY; how many were written.
async fn copy_rows(tx: &Transaction<'_>, fresh: &[&Outcome]) -> Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in(COPY_ROWS).await?;
    let writer = BinaryCopyInWriter::new(sink, &COPY_TYPES);
    pin_mut!(writer);
    let mut rows = 0;
    for outcome in fresh {
        if let OutcomeKind::Row {
            login,
            create_date,
            sent_at,
            extra_fields,
            ..
        } = &outcome.kind
        {
            let stored_sent_at = login.stored_sent_at.unwrap_or(*sent_at);
            let row: [&(dyn ToSql + Sync); 11] = [
                &login.user_id,
                &login.device_type,
                &login.masked_ip,
                &login.masked_device_id,
                &login.locale,
                &login.app_version,
                create_date,
                &login.masked_ip_network,
                &stored_sent_at,
                extra_fields,
                &login.period,
            ];
            writer.as_mut().write(&row).await?;
            rows += 1;
        }
    }
    writer.finish().await?;
    Ok(rows)
}

/// Insert quarantine entries, one statement of arrays; how many were inserted, by reason code.
async fn insert_quarantine(
    tx: &Transaction<'_>,
    entries: &[(&Outcome, &QuarantineRecord)],
) -> Result<BTreeMap<String, u64>, tokio_postgres::Error> {
    let mut by_code = BTreeMap::new();
    if entries.is_empty() {
        return Ok(by_code);
    }
    let column = |f: fn(&QuarantineRecord) -> &str| -> Vec<&str> {
        entries.iter().map(|(_, q)| f(q)).collect()
    };
    // The entry a login stands for (-1: the whole message): a redriven dead letter of one login,
    // `<id>#<i>`, is element `i` of `<id>`, where its retries and the original look for it.
    let keys: Vec<(&str, i32)> = (entries.iter())
        .map(|(o, _)| o.message_id.entry(o.element))
        .collect();
    let ids: Vec<&str> = keys.iter().map(|(id, _)| *id).collect();
    let elements: Vec<i32> = keys.iter().map(|(_, element)| *element).collect();
    let codes = column(|q| q.rejection.code.as_str());
    let reasons = column(|q| q.rejection.message.as_str());
    let received: Vec<_> = entries.iter().map(|(_, q)| q.received_at).collect();
    let sent: Vec<_> = entries.iter().map(|(_, q)| q.sent_at).collect();
    let counts: Vec<i32> = entries
        .iter()
        .map(|(_, q)| i32::try_from(q.receive_count).unwrap_or(i32::MAX))
        .collect();
    let sizes: Vec<i32> = entries
        .iter()
        .map(|(_, q)| i32::try_from(q.body_bytes).unwrap_or(i32::MAX))
        .collect();
    let bodies = column(|q| q.body_masked.as_str());
    let users: Vec<Option<&str>> = entries.iter().map(|(_, q)| q.user_id.as_deref()).collect();
    let keys: Vec<Option<&str>> = entries.iter().map(|(_, q)| q.key_id.as_deref()).collect();
    let user_ids: Vec<serde_json::Value> = entries
        .iter()
        .map(|(_, q)| serde_json::Value::from(q.user_ids.clone()))
        .collect();
    let inserted = tx
        .query(
            INSERT_QUARANTINE,
            &[
                &ids, &codes, &reasons, &received, &sent, &counts, &sizes, &bodies, &users, &keys,
                &elements, &user_ids,
            ],
        )
        .await?;
    for row in inserted {
        *by_code.entry(row.get::<_, String>(0)).or_default() += 1;
    }
    Ok(by_code)
}
