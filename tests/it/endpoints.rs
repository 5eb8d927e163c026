//! Endpoints that are not SQS fail loudly, with the default `--sqs-protocol auto`: a web server
//! answering HTTP 200 HTML, a JSON API answering `{}`, another service's XML, and a port that
//! closes every connection. Each ends in one line naming the endpoint, non-zero, in under 10 s,
//! and never quotes what came back beyond a digit-masked start.

use std::time::Instant;

use crate::helpers::*;

fn html(_: &str, _: u16) -> Reply {
    (
        200,
        "text/html",
        "<!DOCTYPE html><html><head><title>Welcome 10.1.2.3</title></head></html>".into(),
    )
}

fn empty_json(_: &str, _: u16) -> Reply {
    (200, "application/json", "{}".into())
}

fn other_service_xml(_: &str, _: u16) -> Reply {
    (
        200,
        "application/xml",
        "<?xml version=\"1.0\"?><ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Buckets><Bucket><Name>b-10.1.2.3</Name></Bucket></Buckets></ListAllMyBucketsResult>"
            .into(),
    )
}

/// A TCP server that accepts every connection and closes it at once.
async fn closes_at_once() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Run `args` against `endpoint`; it must fail with one error line naming it, well before the
/// default retry budget (a server that closes the connection is tried a few times first, as a
/// reset can be transient, so retry lines are allowed here; the bound is not).
fn fails_naming(queue: &TestQueue, db: &TestDb, endpoint: &str, args: &[&str]) -> String {
    let started = Instant::now();
    let out = run_binary(
        binary(queue, db)
            .env("LOGIN_ETL_SQS_ENDPOINT", endpoint)
            .env_remove("LOGIN_ETL_SQS_PROTOCOL")
            .args(args),
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{endpoint}: must fail: {stderr}");
    assert!(took < AT_ONCE, "{endpoint}: took {took:?}: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(endpoint), "{}", errors[0]);
    assert!(
        !stderr.contains("10.1.2.3"),
        "the reply was quoted: {stderr}"
    );
    eprintln!("{endpoint} ({took:?}): {}", errors[0]);
    errors[0].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_that_are_not_sqs_end_the_run_with_one_line() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    for reply in [
        html as fn(&str, u16) -> Reply,
        empty_json,
        other_service_xml,
    ] {
        let fake = FakeSqs::start(reply).await;
        let line = fails_naming(&queue, &db, &fake.endpoint(), &["run", "--drain"]);
        assert!(line.contains("does not answer like SQS"), "{line}");
        assert!(line.contains("HTTP 200"), "{line}");
    }
    let closing = closes_at_once().await;
    let line = fails_naming(&queue, &db, &closing, &["run", "--drain"]);
    assert!(
        line.contains("closed the connection without answering"),
        "{line}"
    );
    // The same with a queue URL given (no GetQueueUrl: the attributes call is checked), and for
    // `status`, which an operator runs first.
    let fake = FakeSqs::start(html).await;
    let url = format!("{}/000000000000/q", fake.endpoint());
    fails_naming(
        &queue,
        &db,
        &fake.endpoint(),
        &["run", "--drain", "--queue-url", &url],
    );
    fails_naming(&queue, &db, &fake.endpoint(), &["status"]);
}
