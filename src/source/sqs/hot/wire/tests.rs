use proptest::prelude::*;

use super::*;

fn failure(status: u16, headers: ReplyHeaders<'_>, body: &str) -> SdkFailure {
    reply::<BatchOutput>(status, &headers, body.as_bytes())
        .err()
        .expect("a failure")
}

#[test]
fn error_codes_are_read_as_the_sdk_reads_them() {
    let json = r#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#;
    let query = ReplyHeaders {
        query_error: Some("AWS.SimpleQueueService.NonExistentQueue;Sender"),
        ..Default::default()
    };
    match failure(400, query, json) {
        SdkFailure::Service { code, status, .. } => {
            assert_eq!(
                (code.as_str(), status),
                ("AWS.SimpleQueueService.NonExistentQueue", 400)
            )
        }
        other => panic!("{other:?}"),
    }
    match failure(400, ReplyHeaders::default(), json) {
        SdkFailure::Service { code, message, .. } => {
            assert_eq!(code, "QueueDoesNotExist");
            assert_eq!(message, "The specified queue does not exist.");
        }
        other => panic!("{other:?}"),
    }
    let typed = ReplyHeaders {
        error_type: Some("ThrottlingException:http://internal.amazon.com/"),
        ..Default::default()
    };
    assert!(
        matches!(failure(400, typed, "{}"), SdkFailure::Service { code, .. } if code == "ThrottlingException")
    );
}

#[test]
fn replies_that_are_not_sqs_json_are_named_without_quoting_them() {
    assert!(matches!(
        failure(200, ReplyHeaders::default(), "<html>10.1.2.3</html>"),
        SdkFailure::Unreadable { status: 200 }
    ));
    assert!(matches!(
        failure(
            200,
            ReplyHeaders::default(),
            "<?xml version='1.0'?><DeleteMessageBatchResponse/>"
        ),
        SdkFailure::NotJson { .. }
    ));
    assert!(matches!(
        failure(503, ReplyHeaders::default(), "<html>busy</html>"),
        SdkFailure::Transport(_)
    ));
    assert!(matches!(
        failure(403, ReplyHeaders::default(), "<html>no</html>"),
        SdkFailure::Unreadable { status: 403 }
    ));
}

#[test]
fn outputs_are_read() {
    let ok = reply::<BatchOutput>(
        200,
        &ReplyHeaders::default(),
        br#"{"Successful":[{"Id":"0"}],"Failed":[{"Id":"1","Code":"ReceiptHandleIsInvalid","SenderFault":true}]}"#,
    )
    .unwrap();
    assert_eq!(ok.failed(), 1);
    let received = reply::<ReceiveOutput>(
        200,
        &ReplyHeaders::default(),
        br#"{"Messages":[{"MessageId":"m","ReceiptHandle":"r","Body":"{}","MD5OfBody":"x","Attributes":{"SentTimestamp":"1700000000000","ApproximateReceiveCount":"2","SenderId":"s"}}]}"#,
    )
    .unwrap();
    let message = &received.messages.unwrap()[0];
    let attributes = message.attributes.as_ref().unwrap();
    assert_eq!(attributes.approximate_receive_count.as_deref(), Some("2"));
    let empty = reply::<ReceiveOutput>(200, &ReplyHeaders::default(), b"{}").unwrap();
    assert!(empty.messages.is_none());
}

#[test]
fn entries_are_numbered_in_order_and_capped_at_ten() {
    let handles: Vec<String> = (0..12).map(|i| format!("r{i}")).collect();
    let entries = entries(handles.iter().map(String::as_str), Some(30));
    let json = serde_json::to_value(&entries).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 10);
    assert_eq!(
        json[3],
        serde_json::json!({"Id": "3", "ReceiptHandle": "r3", "VisibilityTimeout": 30})
    );
    let deletes = super::entries(["a"].into_iter(), None);
    assert_eq!(
        serde_json::to_value(&deletes).unwrap(),
        serde_json::json!([{"Id": "0", "ReceiptHandle": "a"}])
    );
}

proptest! {
    /// Whatever answers, with whatever status, the failure never quotes the reply: only an AWS
    /// error's own `message` field (escaped, capped) may appear, and reading never panics.
    #[test]
    fn a_failure_never_quotes_the_reply(
        status in 300u16..600,
        secret in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        shape in 0usize..4,
    ) {
        let body = match shape {
            0 => format!("<html><body>client {secret}</body></html>"),
            1 => format!(r#"{{"error":"{secret}"}}"#),
            2 => format!(r#"{{"__type":"Boom","detail":"{secret}"}}"#),
            _ => secret.clone(),
        };
        let text = failure(status, ReplyHeaders::default(), &body).to_string();
        prop_assert!(!text.contains(&secret), "{text}");
    }

    #[test]
    fn any_bytes_are_read_without_panicking(status in 0u16..1000, body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = reply::<ReceiveOutput>(status, &ReplyHeaders::default(), &body);
        let _ = reply::<BatchOutput>(status, &ReplyHeaders::default(), &body);
    }
}
