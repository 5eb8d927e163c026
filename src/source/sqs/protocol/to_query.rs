//! A JSON-protocol SQS request body, rewritten as the query protocol's form parameters.
//!
//! The two protocols carry the same model: JSON nests (`"Entries": [{"Id": "1"}]`), the query
//! protocol flattens with 1-based member numbers (`DeleteMessageBatchRequestEntry.1.Id=1`). Only
//! the naming of lists and maps differs, and those few names are listed here.

use serde_json::{Map, Value};

/// Form parameters (`Action`, `Version` and the flattened input) for `action` with JSON `input`.
pub(super) fn form_params(action: &str, input: &Value) -> Vec<(String, String)> {
    let mut params = vec![
        ("Action".to_string(), action.to_string()),
        ("Version".to_string(), "2012-11-05".to_string()),
    ];
    if let Value::Object(fields) = input {
        flatten_struct("", fields, action, &mut params);
    }
    params
}

/// The form-encoded body for `params`.
pub(super) fn encode(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn flatten_struct(
    prefix: &str,
    fields: &Map<String, Value>,
    action: &str,
    out: &mut Vec<(String, String)>,
) {
    for (key, value) in fields {
        flatten(prefix, key, value, action, out);
    }
}

fn flatten(prefix: &str, key: &str, value: &Value, action: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::Object(map) => match map_member_name(key) {
            Some(member) => {
                for (i, (name, value)) in map.iter().enumerate() {
                    let entry = format!("{prefix}{member}.{}", i + 1);
                    out.push((format!("{entry}.Name"), name.clone()));
                    match value {
                        Value::Object(fields) => {
                            flatten_struct(&format!("{entry}.Value."), fields, action, out)
                        }
                        scalar => flatten(&format!("{entry}."), "Value", scalar, action, out),
                    }
                }
            }
            None => flatten_struct(&format!("{prefix}{key}."), map, action, out),
        },
        Value::Array(items) => {
            let member = list_member_name(key, action);
            for (i, item) in items.iter().enumerate() {
                let entry = format!("{prefix}{member}.{}", i + 1);
                match item {
                    Value::Object(fields) => {
                        flatten_struct(&format!("{entry}."), fields, action, out)
                    }
                    scalar => out.push((entry, scalar_text(scalar))),
                }
            }
        }
        scalar => out.push((format!("{prefix}{key}"), scalar_text(scalar))),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Maps (`"Attributes": {"VisibilityTimeout": "30"}`) flatten to `Attribute.1.Name` / `.Value`.
fn map_member_name(key: &str) -> Option<&'static str> {
    match key {
        "Attributes" => Some("Attribute"),
        "MessageAttributes" => Some("MessageAttribute"),
        "MessageSystemAttributes" => Some("MessageSystemAttribute"),
        "tags" => Some("Tag"),
        _ => None,
    }
}

/// The member name of a list in the query protocol.
fn list_member_name(key: &str, action: &str) -> String {
    match key {
        // SendMessageBatch → SendMessageBatchRequestEntry.1.Id
        "Entries" => format!("{action}RequestEntry"),
        // The newer name of ReceiveMessage's system attributes; servers that speak only the query
        // protocol predate it and read `AttributeName.N`, which AWS still accepts.
        "MessageSystemAttributeNames" | "AttributeNames" => "AttributeName".to_string(),
        "MessageAttributeNames" => "MessageAttributeName".to_string(),
        other => other.strip_suffix('s').unwrap_or(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(action: &str, input: Value) -> Vec<(String, String)> {
        form_params(action, &input)[2..].to_vec()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn receive_message_flattens_lists_and_numbers() {
        let got = params(
            "ReceiveMessage",
            json!({"QueueUrl": "http://q", "MaxNumberOfMessages": 10, "WaitTimeSeconds": 20,
                   "MessageSystemAttributeNames": ["SentTimestamp", "ApproximateReceiveCount"]}),
        );
        assert!(got.contains(&pair("MaxNumberOfMessages", "10")));
        assert!(got.contains(&pair("AttributeName.1", "SentTimestamp")));
        assert!(got.contains(&pair("AttributeName.2", "ApproximateReceiveCount")));
    }

    #[test]
    fn batch_entries_and_message_attributes_are_numbered_from_one() {
        let got = params(
            "SendMessageBatch",
            json!({"QueueUrl": "http://q", "Entries": [
                {"Id": "0", "MessageBody": "a&b=c",
                 "MessageAttributes": {"reason": {"DataType": "String", "StringValue": "bad"}}}]}),
        );
        assert!(got.contains(&pair("SendMessageBatchRequestEntry.1.Id", "0")));
        assert!(got.contains(&pair("SendMessageBatchRequestEntry.1.MessageBody", "a&b=c")));
        assert!(got.contains(&pair(
            "SendMessageBatchRequestEntry.1.MessageAttribute.1.Name",
            "reason"
        )));
        assert!(got.contains(&pair(
            "SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue",
            "bad"
        )));
        let body = encode(&form_params(
            "SendMessageBatch",
            &json!({"Entries": [{"MessageBody": "a&b=c"}]}),
        ));
        assert!(body.contains("MessageBody=a%26b%3Dc"), "{body}");
    }

    #[test]
    fn queue_attributes_flatten_to_name_value_pairs() {
        let got = params(
            "CreateQueue",
            json!({"QueueName": "q", "Attributes": {"VisibilityTimeout": "5"}}),
        );
        let mut got = got;
        got.sort();
        assert_eq!(
            got,
            vec![
                pair("Attribute.1.Name", "VisibilityTimeout"),
                pair("Attribute.1.Value", "5"),
                pair("QueueName", "q"),
            ]
        );
    }
}
