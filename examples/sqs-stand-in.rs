//! An in-memory SQS stand-in for benchmarks only: the JSON protocol, enough of it for the real
//! `login-etl run --drain` (and `send-sample`) to run unchanged, with visibility timeouts and
//! receive counts, so a benchmark measures login-etl's own cost where LocalStack would be the
//! limit. Never used to claim correctness: every correctness test runs against LocalStack.
//!
//!     cargo run --release --example sqs-stand-in -- 127.0.0.1:4599
//!
//! Then point login-etl at `--sqs-endpoint http://127.0.0.1:4599 --sqs-protocol json`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{json, Value};

/// One message.
struct Stored {
    body: Arc<str>,
    message_id: String,
    sent_ms: u64,
    receive_count: u32,
    /// Bumped on every receive: only the newest receipt handle deletes or extends.
    generation: u64,
    /// While received: when it becomes visible again.
    invisible_until: Option<Instant>,
}

#[derive(Default)]
struct Queue {
    attributes: HashMap<String, String>,
    messages: HashMap<u64, Stored>,
    visible: VecDeque<u64>,
    /// (deadline, key, generation) of received messages.
    in_flight: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    next_key: u64,
}

impl Queue {
    fn visibility(&self) -> Duration {
        let secs = self
            .attributes
            .get("VisibilityTimeout")
            .and_then(|v| v.parse().ok());
        Duration::from_secs(secs.unwrap_or(30))
    }

    /// Messages whose visibility ran out become visible again.
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((deadline, key, generation))) = self.in_flight.peek().copied() {
            if deadline > now {
                break;
            }
            self.in_flight.pop();
            let Some(m) = self.messages.get_mut(&key) else {
                continue;
            };
            // A later deadline (an extended visibility) has its own entry.
            if m.generation == generation && m.invisible_until.is_some_and(|t| t <= now) {
                m.invisible_until = None;
                self.visible.push_back(key);
            }
        }
    }

    fn in_flight_count(&self) -> usize {
        self.messages.len() - self.visible.len()
    }
}

type Queues = Arc<Mutex<HashMap<String, Queue>>>;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4599".into());
    let queues: Queues = Arc::default();
    let app = axum::Router::new().route(
        "/",
        post(move |headers: HeaderMap, body: Bytes| {
            let queues = queues.clone();
            async move { handle(&queues, &headers, &body).await }
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("sqs-stand-in listening on http://{addr}");
    axum::serve(listener, app).await.expect("serve");
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn reply(value: Value) -> Response {
    (
        [("content-type", "application/x-amz-json-1.0")],
        value.to_string(),
    )
        .into_response()
}

fn error(code: &str, query_code: &str, message: &str) -> Response {
    let body = json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": message});
    let headers = [
        ("content-type", "application/x-amz-json-1.0".to_string()),
        ("x-amzn-query-error", format!("{query_code};Sender")),
    ];
    (StatusCode::BAD_REQUEST, headers, body.to_string()).into_response()
}

fn queue_name(input: &Value) -> String {
    let url = input["QueueUrl"].as_str().unwrap_or_default();
    url.rsplit('/').next().unwrap_or_default().to_string()
}

async fn handle(queues: &Queues, headers: &HeaderMap, body: &[u8]) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let operation = target.strip_prefix("AmazonSQS.").unwrap_or(target);
    let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if operation == "ReceiveMessage" {
        return receive(queues, &input).await;
    }
    let mut queues = queues.lock().unwrap_or_else(|e| e.into_inner());
    if operation == "CreateQueue" {
        let name = input["QueueName"].as_str().unwrap_or_default().to_string();
        let queue = queues.entry(name.clone()).or_default();
        if let Some(attributes) = input["Attributes"].as_object() {
            for (k, v) in attributes {
                queue
                    .attributes
                    .insert(k.clone(), v.as_str().unwrap_or_default().to_string());
            }
        }
        return reply(json!({"QueueUrl": format!("http://stand-in/000000000000/{name}")}));
    }
    if operation == "GetQueueUrl" {
        let name = input["QueueName"].as_str().unwrap_or_default();
        if !queues.contains_key(name) {
            return error(
                "QueueDoesNotExist",
                "AWS.SimpleQueueService.NonExistentQueue",
                "no such queue",
            );
        }
        return reply(json!({"QueueUrl": format!("http://stand-in/000000000000/{name}")}));
    }
    let name = queue_name(&input);
    if operation == "DeleteQueue" {
        queues.remove(&name);
        return reply(json!({}));
    }
    let Some(queue) = queues.get_mut(&name) else {
        return error(
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            "no such queue",
        );
    };
    queue.expire(Instant::now());
    match operation {
        "GetQueueAttributes" => {
            let mut attributes = json!({
                "ApproximateNumberOfMessages": queue.visible.len().to_string(),
                "ApproximateNumberOfMessagesNotVisible": queue.in_flight_count().to_string(),
                "ApproximateNumberOfMessagesDelayed": "0",
                "VisibilityTimeout": queue.visibility().as_secs().to_string(),
                "MessageRetentionPeriod": "345600",
                "QueueArn": format!("arn:aws:sqs:us-east-1:000000000000:{name}"),
            });
            for (k, v) in &queue.attributes {
                attributes[k] = Value::from(v.clone());
            }
            reply(json!({"Attributes": attributes}))
        }
        "SendMessage" => {
            let id = send(queue, input["MessageBody"].as_str().unwrap_or_default());
            reply(json!({"MessageId": id}))
        }
        "SendMessageBatch" => {
            let entries = input["Entries"].as_array().cloned().unwrap_or_default();
            let successful: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let id = send(queue, e["MessageBody"].as_str().unwrap_or_default());
                    json!({"Id": e["Id"], "MessageId": id, "MD5OfMessageBody": ""})
                })
                .collect();
            reply(json!({"Successful": successful, "Failed": []}))
        }
        "DeleteMessageBatch" | "ChangeMessageVisibilityBatch" => {
            let delete = operation == "DeleteMessageBatch";
            let entries = input["Entries"].as_array().cloned().unwrap_or_default();
            let now = Instant::now();
            for e in &entries {
                let Some((key, generation)) = parse_receipt(e["ReceiptHandle"].as_str()) else {
                    continue;
                };
                let current = queue
                    .messages
                    .get(&key)
                    .is_some_and(|m| m.generation == generation);
                if !current {
                    continue;
                }
                if delete {
                    queue.messages.remove(&key);
                } else if let Some(m) = queue.messages.get_mut(&key) {
                    let deadline =
                        now + Duration::from_secs(e["VisibilityTimeout"].as_u64().unwrap_or(30));
                    if m.invisible_until.is_some() {
                        m.invisible_until = Some(deadline);
                        queue.in_flight.push(Reverse((deadline, key, generation)));
                    }
                }
            }
            let successful: Vec<Value> = entries.iter().map(|e| json!({"Id": e["Id"]})).collect();
            reply(json!({"Successful": successful, "Failed": []}))
        }
        "PurgeQueue" => {
            queue.messages.clear();
            queue.visible.clear();
            queue.in_flight.clear();
            reply(json!({}))
        }
        "SetQueueAttributes" => {
            if let Some(attributes) = input["Attributes"].as_object() {
                for (k, v) in attributes {
                    queue
                        .attributes
                        .insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
            }
            reply(json!({}))
        }
        _ => error(
            "InvalidAction",
            "InvalidAction",
            "not supported by the stand-in",
        ),
    }
}

/// A number that differs between runs of the stand-in (start time and process id).
fn run_nonce() -> u32 {
    static NONCE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *NONCE.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u32;
        nanos ^ std::process::id().rotate_left(16)
    })
}

fn send(queue: &mut Queue, body: &str) -> String {
    let key = queue.next_key;
    queue.next_key += 1;
    // Unique across runs too: the ledger would skip a second run's ids as duplicates.
    let message_id = format!("{:08x}-0000-4000-8000-{key:012x}", run_nonce());
    queue.messages.insert(
        key,
        Stored {
            body: body.into(),
            message_id: message_id.clone(),
            sent_ms: now_ms(),
            receive_count: 0,
            generation: 0,
            invisible_until: None,
        },
    );
    queue.visible.push_back(key);
    message_id
}

fn parse_receipt(handle: Option<&str>) -> Option<(u64, u64)> {
    let (key, generation) = handle?.split_once('-')?;
    Some((key.parse().ok()?, generation.parse().ok()?))
}

/// ReceiveMessage, long-polling up to WaitTimeSeconds in 10 ms steps.
async fn receive(queues: &Queues, input: &Value) -> Response {
    let name = queue_name(input);
    let max = input["MaxNumberOfMessages"]
        .as_u64()
        .unwrap_or(1)
        .clamp(1, 10) as usize;
    let wait = Duration::from_secs(input["WaitTimeSeconds"].as_u64().unwrap_or(0).min(20));
    let until = Instant::now() + wait;
    loop {
        {
            let mut queues = queues.lock().unwrap_or_else(|e| e.into_inner());
            let Some(queue) = queues.get_mut(&name) else {
                return error(
                    "QueueDoesNotExist",
                    "AWS.SimpleQueueService.NonExistentQueue",
                    "no such queue",
                );
            };
            let now = Instant::now();
            queue.expire(now);
            let visibility = input["VisibilityTimeout"]
                .as_u64()
                .map_or(queue.visibility(), Duration::from_secs);
            let mut messages = Vec::new();
            while messages.len() < max {
                let Some(key) = queue.visible.pop_front() else {
                    break;
                };
                let Some(m) = queue.messages.get_mut(&key) else {
                    continue;
                };
                m.receive_count += 1;
                m.generation += 1;
                m.invisible_until = Some(now + visibility);
                queue
                    .in_flight
                    .push(Reverse((now + visibility, key, m.generation)));
                messages.push(json!({
                    "MessageId": m.message_id,
                    "ReceiptHandle": format!("{key}-{}", m.generation),
                    "MD5OfBody": "",
                    "Body": &*m.body,
                    "Attributes": {
                        "SentTimestamp": m.sent_ms.to_string(),
                        "ApproximateReceiveCount": m.receive_count.to_string(),
                    },
                }));
            }
            if !messages.is_empty() || Instant::now() >= until {
                return reply(json!({"Messages": messages}));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
