//! Reading masked rows for `reveal`, audited: the audit row is written in the same transaction as
//! the read, so if it can't be written nothing is returned.

use tokio_postgres::Client;

use super::super::begin;
use super::super::SinkError;
use super::audit::Accountable;
use super::PgOperator;
use crate::mask::Field;

/// What `reveal` was asked to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevealRequest {
    /// One mask given on the command line.
    Value {
        /// The mask.
        mask: String,
        /// Which field it masks.
        field: Field,
    },
    /// Every row of one user.
    UserId(String),
    /// Every row with this IP mask.
    MaskedIp(String),
    /// Every row with this device mask.
    MaskedDeviceId(String),
}

impl RevealRequest {
    /// The masks named in the request itself (checked for one-way strategies before any read).
    pub fn given_masks(&self) -> Vec<&str> {
        match self {
            RevealRequest::Value { mask, .. }
            | RevealRequest::MaskedIp(mask)
            | RevealRequest::MaskedDeviceId(mask) => vec![mask.as_str()],
            RevealRequest::UserId(_) => Vec::new(),
        }
    }

    /// The selector as the audit row records it.
    fn describe(&self) -> String {
        match self {
            RevealRequest::Value { .. } => "given masks".into(),
            // The id itself is never stored: the audit row's `subject` holds its fingerprint.
            RevealRequest::UserId(_) => "user_id = <subject>".into(),
            RevealRequest::MaskedIp(v) => format!("masked_ip = {v:?}"),
            RevealRequest::MaskedDeviceId(v) => format!("masked_device_id = {v:?}"),
        }
    }
}

/// A masked row as `reveal` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedRow {
    /// User.
    pub user_id: String,
    /// Day of the login.
    pub create_date: Option<chrono::NaiveDate>,
    /// IP mask.
    pub masked_ip: Option<String>,
    /// Device mask.
    pub masked_device_id: Option<String>,
    /// The period of its time-scoped values (under a policy that scopes).
    pub period: Option<String>,
}

const COLUMNS: &str =
    "SELECT user_id, create_date, masked_ip, masked_device_id, period FROM user_logins";
const AUDIT: &str =
    "INSERT INTO mask_reveals (os_user, actor, reason, selector, masks, row_count, subject) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)";

impl PgOperator {
    /// The rows the request selects (none for a single value), at most `limit`, with the audit
    /// entry (every mask that will be shown; for a user, `subject`: the user id's keyed
    /// fingerprint) committed in the same transaction. A user's rows are found by the id and by
    /// `pseudonyms`, what a policy stores in its place.
    pub async fn reveal_rows(
        &mut self,
        request: &RevealRequest,
        limit: u32,
        audit: &Accountable,
        subject: Option<&str>,
        pseudonyms: &[String],
    ) -> Result<Vec<MaskedRow>, SinkError> {
        let result = reveal(
            self.db.client().await?,
            request,
            i64::from(limit),
            audit,
            subject,
            pseudonyms,
        )
        .await;
        result.map_err(|e| self.db.on_error(e))
    }
}

async fn reveal(
    client: &mut Client,
    request: &RevealRequest,
    limit: i64,
    audit: &Accountable,
    subject: Option<&str>,
    pseudonyms: &[String],
) -> Result<Vec<MaskedRow>, tokio_postgres::Error> {
    let tx = begin(client).await?;
    let select =
        |column: &str| format!("{COLUMNS} WHERE {column} = $1 ORDER BY create_date LIMIT $2");
    let rows = match request {
        RevealRequest::Value { .. } => Vec::new(),
        RevealRequest::UserId(v) => {
            let ids: Vec<&str> = std::iter::once(v.as_str())
                .chain(pseudonyms.iter().map(String::as_str))
                .collect();
            let query = format!("{COLUMNS} WHERE user_id = ANY($1) ORDER BY create_date LIMIT $2");
            tx.query(&query, &[&ids, &limit]).await?
        }
        RevealRequest::MaskedIp(v) => tx.query(&select("masked_ip"), &[v, &limit]).await?,
        RevealRequest::MaskedDeviceId(v) => {
            tx.query(&select("masked_device_id"), &[v, &limit]).await?
        }
    };
    let rows: Vec<MaskedRow> = rows
        .iter()
        .map(|r| MaskedRow {
            user_id: r.get(0),
            create_date: r.get(1),
            masked_ip: r.get(2),
            masked_device_id: r.get(3),
            period: r.get(4),
        })
        .collect();
    let mut masks: Vec<&str> = match request {
        RevealRequest::Value { mask, .. } => vec![mask.as_str()],
        _ => Vec::new(),
    };
    for row in &rows {
        masks.extend(row.masked_ip.as_deref());
        masks.extend(row.masked_device_id.as_deref());
    }
    masks.sort_unstable();
    masks.dedup();
    let row_count = rows.len() as i32;
    tx.execute(
        AUDIT,
        &[
            &audit.os_user,
            &audit.actor,
            &audit.reason,
            &request.describe(),
            &masks,
            &row_count,
            &subject,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(rows)
}
