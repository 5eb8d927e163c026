//! Who did what to the masked data: every erase, retention round and re-keying run adds a row to
//! `privacy_operations` in the same transaction as the change (who, when, why, database role,
//! counts — never a value, never a user id).

/// Who asks, and why; stored in `privacy_operations`.
#[derive(Debug, Clone)]
pub struct Accountable {
    /// The operating-system user running the command.
    pub os_user: String,
    /// Who is accountable (defaults to the OS user).
    pub actor: String,
    /// Why (ticket, legal request, policy).
    pub reason: String,
}

/// Add the audit row of one operation inside `tx`; its id.
pub(crate) async fn audit(
    tx: &tokio_postgres::Transaction<'_>,
    operation: &str,
    who: &Accountable,
    rows: u64,
    quarantined: u64,
    detail: serde_json::Value,
) -> Result<i64, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "INSERT INTO privacy_operations (operation, os_user, actor, reason, rows, quarantined, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb) RETURNING id",
            &[
                &operation,
                &who.os_user,
                &who.actor,
                &who.reason,
                &(rows as i64),
                &(quarantined as i64),
                &detail.to_string(),
            ],
        )
        .await?;
    Ok(row.get(0))
}

impl super::PgOperator {
    /// Record an operation that changes nothing in the database (a redrive moves queue messages)
    /// in its own committed transaction, before it starts: the audit row's id.
    pub async fn audit_operation(
        &mut self,
        operation: &str,
        who: &Accountable,
        count: u64,
        detail: serde_json::Value,
    ) -> Result<i64, super::super::SinkError> {
        let target = self.db.target().to_owned();
        let pg = |e: tokio_postgres::Error| super::super::error::classify(e, &target);
        let result = async {
            let client = self.db.client().await?;
            let tx = super::super::begin(client).await.map_err(pg)?;
            let id = audit(&tx, operation, who, count, 0, detail)
                .await
                .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(id)
        }
        .await;
        result.inspect_err(|_| self.db.forget_connection())
    }
}
