//! Erasure reaches every user a stored entry names. Generated messages of several users' logins
//! are quarantined every way the pipeline can — through `run`: arrays over the cap (plain,
//! SNS-wrapped, gzip'd, NDJSON) and an invalid element inside an array; through the library:
//! poison (`too_many_receives`) and database refusals of whole arrays, and entries from before
//! migration 12 — then each user is erased in turn. After each erasure no table holds that
//! user's id (in any stored form) or masks, and every other user's rows and logins are as they
//! were.

use chrono::Utc;
use login_etl::mask::{user_id_forms, Field, KeyRing};
use login_etl::transform;
use login_etl::validate::{RejectCode, Rejection};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::*;

/// The most logins `run` takes in one message here: longer arrays are quarantined whole.
const CAP: usize = 4;

struct User {
    id: String,
    numeric: bool,
    ip: String,
    device: String,
}

impl User {
    /// User `i`; `kind` picks an id the scrubber keeps, one shaped like an address, one too long
    /// to keep (both stored as fingerprints), or a number.
    fn new(i: usize, kind: usize, tag: &str) -> Self {
        let id = match kind {
            0 => format!("erase-{tag}-{i}q"),
            1 => format!("192.0.2.{i}"),
            2 => format!("erase{}{tag}{i}", "w".repeat(130)),
            _ => format!("{}", 8100 + i),
        };
        Self {
            numeric: kind == 3,
            id,
            ip: format!("203.0.113.{}", 50 + i),
            device: format!("dev-{tag}-{i}-z"),
        }
    }

    fn login(&self, valid: bool) -> Value {
        let id = match self.numeric {
            true => json!(self.id.parse::<u32>().unwrap()),
            false => json!(self.id),
        };
        let mut login = json!({"user_id": id, "ip": self.ip, "device_id": self.device});
        if valid {
            login["device_type"] = "android".into();
        }
        login
    }

    fn forms(&self) -> Vec<String> {
        user_id_forms(&KeyRing::parse(TEST_KEY_HEX).unwrap(), &self.id)
    }

    /// Text no table may hold once the user is erased: every stored form of the id, the masks.
    fn traces(&self) -> Vec<String> {
        let masker = masker();
        let mut traces = self.forms();
        if self.numeric {
            traces.retain(|form| *form != self.id);
            traces.push(format!("\"user_id\":{}", self.id));
        }
        traces.push(masker.mask_ip(&self.ip.parse().unwrap()));
        traces.push(masker.mask(Field::DeviceId, &self.device));
        traces
    }
}

/// A message of these logins: a JSON array, SNS-wrapped, gzip'd, or NDJSON.
fn message(logins: &[Value], shape: usize) -> String {
    let array = Value::Array(logins.to_vec()).to_string();
    match shape {
        0 => array,
        1 => json!({"Type": "Notification", "MessageId": "n", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": array}).to_string(),
        2 => gzip_base64(&array),
        _ => logins.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"),
    }
}

/// Logins of random users, one of them invalid if `invalid`.
fn logins(rng: &mut StdRng, users: &[User], count: usize, invalid: bool) -> Vec<Value> {
    let bad = rng.gen_range(0..count);
    (0..count)
        .map(|i| users.choose(rng).unwrap().login(!(invalid && i == bad)))
        .collect()
}

/// The objects of `value`, at any depth, whose own `user_id` is one of `forms`, as text.
fn owned(value: &Value, forms: &[String], out: &mut Vec<String>) {
    let id = match value.get("user_id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    if id.is_some_and(|id| forms.contains(&id)) {
        out.push(value.to_string());
    }
    match value {
        Value::Array(items) => items.iter().for_each(|v| owned(v, forms, out)),
        Value::Object(map) => map.values().for_each(|v| owned(v, forms, out)),
        _ => {}
    }
}

/// What the database holds of a user: rows, logins in quarantine bodies, entries naming them.
async fn holdings(db: &TestDb, user: &User) -> (Vec<String>, Vec<String>, i64) {
    let client = db.client().await;
    let forms = user.forms();
    let rows = client
        .query(
            "SELECT t::text FROM user_logins t WHERE user_id = $1 ORDER BY 1",
            &[&user.id],
        )
        .await
        .unwrap();
    let mut logins = Vec::new();
    for row in client
        .query("SELECT body_masked FROM quarantined_messages", &[])
        .await
        .unwrap()
    {
        let body: Value = serde_json::from_str(row.get(0)).unwrap();
        owned(&body, &forms, &mut logins);
    }
    logins.sort();
    let entries: i64 = client
        .query_one(
            "SELECT count(*) FROM quarantined_messages WHERE user_ids && $1 OR user_id = ANY($1)",
            &[&forms],
        )
        .await
        .unwrap()
        .get(0);
    (rows.iter().map(|r| r.get(0)).collect(), logins, entries)
}

#[tokio::test(flavor = "multi_thread")]
async fn erasing_each_user_in_turn_leaves_nothing_of_them_and_everything_of_the_others() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let tag: String = (0..6).map(|_| rng.gen_range('a'..='z')).collect();
    let users: Vec<User> = (0..6).map(|i| User::new(i, i % 4, &tag)).collect();

    // Through `run`: one valid login of each user; arrays over the cap in every shape; arrays
    // within it holding an invalid element (its siblings become rows).
    let mut bodies: Vec<String> = users.iter().map(|u| u.login(true).to_string()).collect();
    for shape in 0..8 {
        let count = rng.gen_range(CAP + 1..=CAP + 3);
        bodies.push(message(&logins(&mut rng, &users, count, false), shape % 4));
    }
    for _ in 0..3 {
        let count = rng.gen_range(2..=CAP);
        bodies.push(message(&logins(&mut rng, &users, count, true), 0));
    }
    queue.send(&bodies).await;
    run_drain(&queue, &db, &["--max-logins-per-message", &CAP.to_string()]);
    assert_eq!(queue.remaining().await, 0);

    // Through the library: poison and refusals of whole arrays, as the committer makes them.
    let mut sink = db.sink();
    for i in 0..4 {
        let count = rng.gen_range(2..=CAP);
        let body = message(&logins(&mut rng, &users, count, false), i % 2);
        let code = [RejectCode::TooManyReceives, RejectCode::RejectedByDatabase][i % 2];
        let rejection = Rejection::new(code, "generated");
        let envelope = envelope(&format!("lib-{i}"), &body, 0);
        let outcome = transform::quarantine(&envelope, &masker(), rejection, Utc::now());
        sink.write_batch(&[outcome]).await.unwrap();
    }
    // Entries from before migration 12 get `user_ids` from their bodies.
    let client = db.client().await;
    let ids_of = |id: &'static str| {
        let client = &client;
        async move {
            let row = client
                .query_one(
                    "SELECT user_ids FROM quarantined_messages WHERE message_id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            let mut ids: Vec<String> = row.get::<_, Option<Vec<String>>>(0).unwrap_or_default();
            ids.sort();
            ids
        }
    };
    let written = ids_of("lib-0").await;
    client
        .batch_execute(
            "UPDATE quarantined_messages SET user_ids = NULL WHERE message_id = 'lib-0';
             DELETE FROM login_etl_schema_migrations WHERE version = 12;",
        )
        .await
        .unwrap();
    run_ok(binary(&queue, &db).arg("migrate"));
    assert_eq!(ids_of("lib-0").await, written, "seed {seed}");
    assert!(!written.is_empty(), "seed {seed}");

    let shared: i64 = db
        .scalar("SELECT count(*) FROM quarantined_messages WHERE cardinality(user_ids) > 1")
        .await;
    assert!(
        shared >= 5,
        "entries of several users: {shared} (seed {seed})"
    );
    let before = db.dump_all_tables().await;
    let mut held = Vec::new();
    for user in &users {
        let holding = holdings(&db, user).await;
        let device_mask = user.traces().pop().unwrap();
        assert!(
            (!holding.0.is_empty() || holding.2 > 0) && before.contains(&device_mask),
            "user {} is stored before erasure (seed {seed})",
            user.id
        );
        held.push(holding);
    }

    for (k, user) in users.iter().enumerate() {
        run_ok(binary(&queue, &db).args(["erase", "--user-id", &user.id, "--reason", "dsr"]));
        let dump = db.dump_all_tables().await;
        for trace in user.traces() {
            assert!(
                !dump.contains(&trace),
                "user {k}: {trace} still stored (seed {seed})"
            );
        }
        let (rows, logins, entries) = holdings(&db, user).await;
        assert!(
            rows.is_empty() && logins.is_empty() && entries == 0,
            "user {k} (seed {seed})"
        );
        for (other, before) in users.iter().zip(&held).skip(k + 1) {
            assert_eq!(
                &holdings(&db, other).await,
                before,
                "erasing user {k} changed another's data (seed {seed})"
            );
        }
    }
    let named: i64 = db
        .scalar("SELECT count(*) FROM quarantined_messages WHERE user_ids <> '{}' OR user_id IS NOT NULL")
        .await;
    assert_eq!(named, 0, "no entry names anyone (seed {seed})");
}
