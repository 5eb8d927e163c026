//! A fresh database per test, and reading what landed in it.

use tokio_postgres::NoTls;

use login_etl::sink::{DbSettings, PgOperator, PgSink, TableCounts};

use super::{admin_url, require_stack, unique};

async fn admin() -> tokio_postgres::Client {
    require_stack();
    let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls)
        .await
        .expect("PostgreSQL is reachable");
    tokio::spawn(conn);
    client
}

/// A database of its own, dropped at the end of the test.
pub(crate) struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub(crate) async fn new() -> Self {
        let name = unique("login_etl_test");
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = admin_url();
        let url = match base.rsplit_once('/') {
            Some((prefix, _)) => format!("{prefix}/{name}"),
            None => panic!("admin URL must end with /dbname"),
        };
        Self { name, url }
    }

    pub(crate) async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    /// The writer, as the pipeline holds it.
    pub(crate) fn sink(&self) -> PgSink {
        PgSink::new(&DbSettings::from_url(&self.url)).unwrap()
    }

    /// The operator's type: status, reports, partitions, pruning, retention, erasure.
    pub(crate) fn operator(&self) -> PgOperator {
        PgOperator::new(&DbSettings::from_url(&self.url)).unwrap()
    }

    pub(crate) async fn counts(&self) -> TableCounts {
        self.operator().counts().await.unwrap()
    }

    /// The one value of a query that returns one row of one column.
    pub(crate) async fn scalar<T>(&self, sql: &str) -> T
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Every table of the database as text, one line per row: for scanning for raw PII.
    pub(crate) async fn dump_all_tables(&self) -> String {
        let client = self.client().await;
        let tables: Vec<String> = client
            .query(
                "SELECT quote_ident(table_name) FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            tables.len() >= 3,
            "expected the schema to exist, got {tables:?}"
        );
        let mut dump = String::new();
        for table in tables {
            for row in client
                .query(&format!("SELECT t::text FROM {table} t"), &[])
                .await
                .unwrap()
            {
                dump.push_str(&row.get::<_, String>(0));
                dump.push('\n');
            }
        }
        dump
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin_url(), NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            })
        })
        .join();
    }
}

/// Make every COPY into `user_logins` sleep `seconds` once all its rows are in, before COMMIT
/// (an AFTER statement trigger): a window between COPY and COMMIT that tests can hit.
pub(crate) async fn slow_down_copy(db: &TestDb, seconds: u32) {
    db.client()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION slow_copy() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$;
             CREATE TRIGGER slow_copy AFTER INSERT ON user_logins
                 FOR EACH STATEMENT EXECUTE FUNCTION slow_copy();"
        ))
        .await
        .unwrap();
}

/// Migrate `db` and add a CHECK constraint our validation does not know (no `web` logins), so
/// that PostgreSQL is the one to refuse those rows.
pub(crate) async fn refuse_web_logins(db: &TestDb) {
    db.sink().migrate().await.unwrap();
    db.client()
        .await
        .batch_execute(
            "ALTER TABLE user_logins ADD CONSTRAINT no_web_logins CHECK (device_type <> 'web')",
        )
        .await
        .unwrap();
}

/// A login role of `db` with exactly the grants of docs/least-privilege.sql (the schema must be
/// migrated); its name and its database URL. Drop it with `DROP OWNED BY …; DROP ROLE …`.
pub(crate) async fn least_privilege_role(db: &TestDb, prefix: &str) -> (String, String) {
    let role = format!("{prefix}_{}", &db.name[db.name.len() - 8..]);
    let grants = include_str!("../../../docs/least-privilege.sql")
        .replace("login_etl_writer", &role)
        .replace("analytics", &db.name);
    let client = db.client().await;
    client.batch_execute(&grants).await.unwrap();
    client
        .batch_execute(&format!("ALTER ROLE {role} LOGIN"))
        .await
        .unwrap();
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    (role, url)
}

/// No message was quarantined as a poison message.
pub(crate) async fn assert_no_poison(db: &TestDb) {
    let counts = db.counts().await;
    assert!(
        counts
            .quarantined_by_code
            .iter()
            .all(|(code, _)| code != "too_many_receives"),
        "quarantined for their consumers' deaths: {:?}",
        counts.quarantined_by_code
    );
}

/// Hold every write to `user_logins` (a COPY waits on this lock) until the returned client
/// rolls back or is dropped: a commit that lasts exactly as long as the test needs.
pub(crate) async fn hold_writes(db: &TestDb) -> tokio_postgres::Client {
    let client = db.client().await;
    client
        .batch_execute("BEGIN; LOCK TABLE user_logins IN EXCLUSIVE MODE")
        .await
        .unwrap();
    client
}

/// Backends of `db` waiting for a lock (a write held by [`hold_writes`]).
pub(crate) async fn lock_waiters(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0)
}

/// Backends of `db` currently sleeping in pg_sleep (our injected slowness).
pub(crate) async fn sleeping_backends(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event = 'PgSleep'",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0)
}
