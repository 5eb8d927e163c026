//! Is this reply from an SQS at all? A web server answering HTTP 200 with HTML, a JSON API
//! answering `{}`, another AWS service's XML, a port that closes every connection: each must end
//! the run with one line naming the endpoint and what came back, not pass for an empty queue.

pub(crate) use crate::aws::NotSqs;

/// Actions whose JSON reply must carry these fields (the ones a start-up depends on: a missing
/// queue URL or attribute map would otherwise be read as empty).
const REQUIRED_FIELDS: &[(&str, &str)] = &[
    ("GetQueueUrl", "QueueUrl"),
    ("CreateQueue", "QueueUrl"),
    ("GetQueueAttributes", "Attributes"),
];

/// Actions a consumer makes before it knows the endpoint is an SQS: a connection closed without
/// a reply to one of these means "not an SQS" rather than "try again later".
pub(crate) const START_UP_ACTIONS: &[&str] = &["GetQueueUrl", "CreateQueue", "GetQueueAttributes"];

/// How a reply looked, for the error line: status, content type, size and the first bytes.
pub(crate) fn describe(status: u16, content_type: Option<&str>, body: &[u8]) -> String {
    let start: String = String::from_utf8_lossy(&body[..body.len().min(48)])
        .chars()
        .map(|c| match c {
            '0'..='9' => '#',
            c if c.is_control() || crate::safe_text::is_unsafe(c) => ' ',
            c => c,
        })
        .collect();
    format!(
        "HTTP {status}, {}, {} bytes starting `{}`",
        content_type.unwrap_or("no content type"),
        body.len(),
        start.trim()
    )
}

/// Check a JSON-protocol reply to `action`: a success must be a JSON object (with the fields
/// the action needs), an error must be an AWS error (a JSON body, or the query-error header).
/// Server errors (5xx) pass: a proxy in front of SQS may give those, and they are retried.
pub(crate) fn check_json(
    action: &str,
    status: u16,
    content_type: Option<&str>,
    query_error_header: bool,
    body: &[u8],
) -> Result<(), String> {
    if status >= 500 {
        return Ok(());
    }
    let json = content_type.is_some_and(|t| t.contains("json"));
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let object = parsed.as_ref().and_then(|v| v.as_object());
    let fine = match (status, object) {
        (200..=299, Some(object)) if json => REQUIRED_FIELDS
            .iter()
            .filter(|(a, _)| *a == action)
            .all(|(_, field)| object.contains_key(*field)),
        (200..=299, _) => false,
        (_, Some(object)) => object.contains_key("__type") || query_error_header,
        (_, None) => query_error_header,
    };
    if fine {
        Ok(())
    } else {
        Err(describe(status, content_type, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_that_are_not_sqs_are_told_apart() {
        let html = b"<!DOCTYPE html><html><body>10.0.0.1</body></html>";
        let err = check_json("GetQueueUrl", 200, Some("text/html"), false, html).unwrap_err();
        assert!(
            err.contains("HTTP 200, text/html") && !err.contains("10.0.0.1"),
            "{err}"
        );
        assert!(check_json("GetQueueUrl", 200, Some("application/json"), false, b"{}").is_err());
        assert!(check_json(
            "GetQueueAttributes",
            200,
            Some("application/x-amz-json-1.0"),
            false,
            b"{}"
        )
        .is_err());
        assert!(check_json(
            "ReceiveMessage",
            200,
            Some("application/x-amz-json-1.0"),
            false,
            b"{}"
        )
        .is_ok());
        let url = br#"{"QueueUrl":"http://h/000/q"}"#;
        assert!(check_json(
            "GetQueueUrl",
            200,
            Some("application/x-amz-json-1.0"),
            false,
            url
        )
        .is_ok());
        let error = br#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"x"}"#;
        assert!(check_json(
            "GetQueueUrl",
            400,
            Some("application/x-amz-json-1.0"),
            false,
            error
        )
        .is_ok());
        assert!(check_json("GetQueueUrl", 404, Some("text/html"), false, html).is_err());
        assert!(check_json("GetQueueUrl", 502, Some("text/html"), false, html).is_ok());
    }

    #[test]
    fn query_replies_are_known_by_their_root_element() {
        use crate::aws::xml_root;
        let root = |t| xml_root(t).unwrap_or_default();
        assert_eq!(
            root("<?xml version='1.0'?>\n<GetQueueUrlResponse xmlns='x'>"),
            "GetQueueUrlResponse"
        );
        assert_eq!(root("<ErrorResponse><Error>"), "ErrorResponse");
        assert_eq!(root("<!DOCTYPE html><html><head>"), "html");
        assert_eq!(
            root("<?xml version='1.0'?><ListAllMyBucketsResult>"),
            "ListAllMyBucketsResult"
        );
        assert_eq!(xml_root("{\"a\":1}"), None);
        assert_eq!(root("<!-- c --><Foo/>"), "Foo");
    }
}
