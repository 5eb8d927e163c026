//! Read-only views of what landed: counts for `status` and tests, the duplicates report.

use super::super::SinkError;
use super::PgOperator;

/// Table sizes, for `status` and for checking that the books balance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Rows in `user_logins`.
    pub rows: i64,
    /// Entries in `quarantined_messages`, by reason code, sorted.
    pub quarantined_by_code: Vec<(String, i64)>,
    /// Ids in the `processed_messages` ledger.
    pub processed: i64,
}

impl TableCounts {
    /// All quarantined entries.
    pub fn quarantined(&self) -> i64 {
        self.quarantined_by_code.iter().map(|(_, n)| n).sum()
    }
}

/// A masked device id seen for more than one user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SharedDevice {
    /// The mask.
    pub masked_device_id: String,
    /// Distinct users.
    pub users: i64,
    /// Rows.
    pub logins: i64,
    /// The period all its rows belong to, when they are of one (`run --policy` with a scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

/// A masked address seen for more than one user or device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SharedIp {
    /// The mask.
    pub masked_ip: String,
    /// Distinct users.
    pub users: i64,
    /// Distinct devices.
    pub devices: i64,
    /// Rows.
    pub logins: i64,
    /// The period all its rows belong to, when they are of one (`run --policy` with a scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

/// A network pseudonym seen for more than one user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SharedNetwork {
    /// The hmac network mask, or for ipcrypt-pfx `<key>:pfx:` and the encrypted /24 or /48.
    pub network: String,
    /// Distinct users.
    pub users: i64,
    /// Rows.
    pub logins: i64,
    /// The period all its rows belong to, when they are of one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

/// hmac network masks group as they are; ipcrypt-pfx ones by the /24 (IPv4) or /48 (IPv6) of the
/// encrypted address, which is the pseudonym of the real /24 or /48.
const NETWORK_KEY: &str = "CASE WHEN masked_ip_network LIKE '%:pfx:%' THEN \
     split_part(masked_ip_network, ':pfx:', 1) || ':pfx:' || network(set_masklen( \
     split_part(masked_ip_network, ':pfx:', 2)::inet, \
     CASE WHEN family(split_part(masked_ip_network, ':pfx:', 2)::inet) = 4 THEN 24 ELSE 48 END))::text \
     ELSE masked_ip_network END";
const SHARED_NETWORKS: &str = "SELECT {key}, count(DISTINCT user_id), count(*), \
     CASE WHEN count(DISTINCT period) = 1 THEN min(period) END FROM user_logins \
     WHERE masked_ip_network IS NOT NULL GROUP BY 1 HAVING count(DISTINCT user_id) > 1 \
     ORDER BY 2 DESC, 3 DESC, 1 LIMIT $1";

const COUNT_TOTALS: &str =
    "SELECT (SELECT count(*) FROM user_logins), (SELECT count(*) FROM processed_messages)";
const COUNT_QUARANTINE: &str =
    "SELECT reason_code, count(*) FROM quarantined_messages GROUP BY 1 ORDER BY 1";
const SHARED_DEVICES: &str = "SELECT masked_device_id, count(DISTINCT user_id), count(*), \
     CASE WHEN count(DISTINCT period) = 1 THEN min(period) END \
     FROM user_logins WHERE masked_device_id IS NOT NULL GROUP BY masked_device_id \
     HAVING count(DISTINCT user_id) > 1 ORDER BY 2 DESC, 3 DESC, 1 LIMIT $1";
const SHARED_IPS: &str = "SELECT masked_ip, count(DISTINCT user_id), \
     count(DISTINCT masked_device_id), count(*), \
     CASE WHEN count(DISTINCT period) = 1 THEN min(period) END FROM user_logins WHERE masked_ip IS NOT NULL \
     GROUP BY masked_ip HAVING count(DISTINCT user_id) > 1 OR count(DISTINCT masked_device_id) > 1 \
     ORDER BY 2 DESC, 3 DESC, 4 DESC, 1 LIMIT $1";

impl PgOperator {
    /// Count what has landed (exact counts: meant for checks and small tables, not dashboards).
    pub async fn counts(&mut self) -> Result<TableCounts, SinkError> {
        let totals = self.db.query_one(COUNT_TOTALS, &[]).await?;
        let quarantined_by_code = self
            .db
            .query(COUNT_QUARANTINE, &[])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        Ok(TableCounts {
            rows: totals.get(0),
            quarantined_by_code,
            processed: totals.get(1),
        })
    }

    /// Masked device ids used by more than one user, most users first.
    pub async fn shared_devices(&mut self, limit: u32) -> Result<Vec<SharedDevice>, SinkError> {
        let rows = self.db.query(SHARED_DEVICES, &[&i64::from(limit)]).await?;
        Ok(rows
            .iter()
            .map(|r| SharedDevice {
                masked_device_id: r.get(0),
                users: r.get(1),
                logins: r.get(2),
                period: r.get(3),
            })
            .collect())
    }

    /// Masked addresses shared by several users or devices, most users first.
    pub async fn shared_ips(&mut self, limit: u32) -> Result<Vec<SharedIp>, SinkError> {
        let rows = self.db.query(SHARED_IPS, &[&i64::from(limit)]).await?;
        Ok(rows
            .iter()
            .map(|r| SharedIp {
                masked_ip: r.get(0),
                users: r.get(1),
                devices: r.get(2),
                logins: r.get(3),
                period: r.get(4),
            })
            .collect())
    }

    /// Network pseudonyms shared by several users (empty unless `--ip-network-mask` was on).
    pub async fn shared_networks(&mut self, limit: u32) -> Result<Vec<SharedNetwork>, SinkError> {
        let sql = SHARED_NETWORKS.replace("{key}", NETWORK_KEY);
        let rows = self.db.query(&sql, &[&i64::from(limit)]).await?;
        Ok(rows
            .iter()
            .map(|r| SharedNetwork {
                network: r.get(0),
                users: r.get(1),
                logins: r.get(2),
                period: r.get(3),
            })
            .collect())
    }
}
