//! A query-protocol XML reply, rewritten as the JSON reply the SDK expects.
//!
//! The XML elements carry the same names as the JSON members; only lists and maps are spelled
//! differently (`<Message>…</Message><Message>…` is `"Messages": […]`, `<Attribute><Name>…`
//! is `"Attributes": {…}`). Text is decoded exactly: entities, numeric references and CDATA, no
//! whitespace trimmed, so a message body round-trips byte for byte.

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{Map, Value};

/// An XML element: its local name, its own text, its child elements.
#[derive(Debug, Default)]
pub(super) struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

/// Why a reply could not be read. Never carries the reply's text: it may hold message bodies.
#[derive(Debug, thiserror::Error)]
#[error("the query-protocol reply is not well-formed XML (at byte {position})")]
pub(super) struct MalformedXml {
    position: u64,
}

impl Element {
    /// Parse a whole document; the root element is returned.
    pub(super) fn parse(xml: &str) -> Result<Element, MalformedXml> {
        let mut reader = Reader::from_str(xml);
        let malformed = |reader: &Reader<&[u8]>| MalformedXml {
            position: reader.buffer_position(),
        };
        // The path from the root to the element being read.
        let mut open: Vec<Element> = vec![Element::default()];
        loop {
            let event = reader.read_event().map_err(|_| malformed(&reader))?;
            match event {
                Event::Start(start) => open.push(Element {
                    name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                    ..Element::default()
                }),
                Event::Empty(start) => {
                    let element = Element {
                        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                        ..Element::default()
                    };
                    open.last_mut()
                        .ok_or_else(|| malformed(&reader))?
                        .children
                        .push(element);
                }
                Event::End(_) => {
                    let done = open.pop().ok_or_else(|| malformed(&reader))?;
                    open.last_mut()
                        .ok_or_else(|| malformed(&reader))?
                        .children
                        .push(done);
                }
                Event::Text(t) => {
                    let decoded = t.decode().map_err(|_| malformed(&reader))?;
                    text_of(&mut open)
                        .ok_or_else(|| malformed(&reader))?
                        .push_str(&decoded);
                }
                Event::CData(c) => {
                    let decoded = c.decode().map_err(|_| malformed(&reader))?;
                    text_of(&mut open)
                        .ok_or_else(|| malformed(&reader))?
                        .push_str(&decoded);
                }
                Event::GeneralRef(r) => {
                    let ch = match r.resolve_char_ref().map_err(|_| malformed(&reader))? {
                        Some(ch) => ch,
                        None => match &*r {
                            b"lt" => '<',
                            b"gt" => '>',
                            b"amp" => '&',
                            b"quot" => '"',
                            b"apos" => '\'',
                            _ => return Err(malformed(&reader)),
                        },
                    };
                    text_of(&mut open)
                        .ok_or_else(|| malformed(&reader))?
                        .push(ch);
                }
                Event::Eof => break,
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            }
        }
        let mut document = open
            .pop()
            .filter(|_| open.is_empty())
            .ok_or_else(|| malformed(&reader))?;
        document.children.pop().ok_or_else(|| malformed(&reader))
    }

    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn descendant(&self, name: &str) -> Option<&Element> {
        self.children.iter().find_map(|c| {
            if c.name == name {
                Some(c)
            } else {
                c.descendant(name)
            }
        })
    }

    fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// The text of the element being read.
fn text_of(open: &mut [Element]) -> Option<&mut String> {
    open.last_mut().map(|e| &mut e.text)
}

/// The JSON output of `action` from its XML reply (`<{action}Response><{action}Result>…`).
/// Actions without output (PurgeQueue, DeleteMessage) give `{}`.
pub(super) fn output_json(action: &str, root: &Element) -> Value {
    match root.child(&format!("{action}Result")) {
        Some(result) => Value::Object(members(result)),
        None => Value::Object(Map::new()),
    }
}

/// The JSON members of a structure element.
fn members(element: &Element) -> Map<String, Value> {
    let mut out = Map::new();
    for child in &element.children {
        let name = child.name.as_str();
        match name {
            "Attribute" | "MessageAttribute" | "MessageSystemAttribute" => {
                let key = child.child_text("Name").unwrap_or_default().to_string();
                let value = match child.child("Value") {
                    Some(value) if !value.children.is_empty() => Value::Object(members(value)),
                    Some(value) => Value::String(value.text.clone()),
                    None => Value::String(String::new()),
                };
                map_entry(&mut out, &format!("{name}s")).insert(key, value);
            }
            "Message" => list_entry(&mut out, "Messages").push(Value::Object(members(child))),
            "BatchResultErrorEntry" => {
                list_entry(&mut out, "Failed").push(Value::Object(members(child)))
            }
            _ if name.ends_with("ResultEntry") => {
                list_entry(&mut out, "Successful").push(Value::Object(members(child)))
            }
            "QueueUrl" if element.name == "ListQueuesResult" => {
                list_entry(&mut out, "QueueUrls").push(Value::String(child.text.clone()))
            }
            "SenderFault" => {
                out.insert(name.to_string(), Value::Bool(child.text.trim() == "true"));
            }
            _ if child.children.is_empty() => {
                out.insert(name.to_string(), Value::String(child.text.clone()));
            }
            _ => {
                out.insert(name.to_string(), Value::Object(members(child)));
            }
        }
    }
    out
}

fn map_entry<'a>(out: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    match out
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(map) => map,
        _ => unreachable!("only this function inserts under a map key"),
    }
}

fn list_entry<'a>(out: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    match out
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        Value::Array(list) => list,
        _ => unreachable!("only this function inserts under a list key"),
    }
}

/// A query-protocol error (`<ErrorResponse><Error><Type/><Code/><Message/>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct QueryError {
    /// e.g. `AWS.SimpleQueueService.NonExistentQueue`.
    pub(super) code: String,
    /// `Sender` or `Receiver`.
    pub(super) kind: String,
    pub(super) message: String,
}

impl QueryError {
    pub(super) fn of(root: &Element) -> Option<QueryError> {
        let error = root.descendant("Error")?;
        Some(QueryError {
            code: error.child_text("Code")?.trim().to_string(),
            kind: error
                .child_text("Type")
                .unwrap_or("Sender")
                .trim()
                .to_string(),
            message: error.child_text("Message").unwrap_or_default().to_string(),
        })
    }
}

/// The request id of a reply, for the `x-amzn-requestid` header.
pub(super) fn request_id(root: &Element) -> Option<&str> {
    root.descendant("RequestId").map(|e| e.text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn receive_message_reply_becomes_json_with_exact_bodies() {
        let xml = r#"<?xml version='1.0' encoding='utf-8'?>
<ReceiveMessageResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><ReceiveMessageResult>
<Message><MessageId>m1</MessageId><ReceiptHandle>r1</ReceiptHandle><MD5OfBody>x</MD5OfBody>
<Body>{&quot;a&quot;:&quot;&lt;b&gt; &amp; &#233;&#x1F600;&quot;} ]]&gt;</Body>
<Attribute><Name>SentTimestamp</Name><Value>1700000000000</Value></Attribute>
<Attribute><Name>ApproximateReceiveCount</Name><Value>2</Value></Attribute></Message>
<Message><MessageId>m2</MessageId><ReceiptHandle>r2</ReceiptHandle><Body><![CDATA[<x>]]></Body></Message>
</ReceiveMessageResult><ResponseMetadata><RequestId>req</RequestId></ResponseMetadata></ReceiveMessageResponse>"#;
        let root = Element::parse(xml).unwrap();
        let out = output_json("ReceiveMessage", &root);
        assert_eq!(
            out["Messages"][0]["Body"],
            json!("{\"a\":\"<b> & é😀\"} ]]>")
        );
        assert_eq!(
            out["Messages"][0]["Attributes"]["ApproximateReceiveCount"],
            json!("2")
        );
        assert_eq!(out["Messages"][1]["Body"], json!("<x>"));
        assert_eq!(request_id(&root), Some("req"));
    }

    #[test]
    fn batch_reply_splits_successes_and_failures() {
        let xml = "<DeleteMessageBatchResponse><DeleteMessageBatchResult>\
            <DeleteMessageBatchResultEntry><Id>0</Id></DeleteMessageBatchResultEntry>\
            <BatchResultErrorEntry><Id>1</Id><Code>ReceiptHandleIsInvalid</Code>\
            <Message>bad</Message><SenderFault>true</SenderFault></BatchResultErrorEntry>\
            </DeleteMessageBatchResult></DeleteMessageBatchResponse>";
        let out = output_json("DeleteMessageBatch", &Element::parse(xml).unwrap());
        assert_eq!(out["Successful"], json!([{"Id": "0"}]));
        assert_eq!(out["Failed"][0]["SenderFault"], json!(true));
    }

    #[test]
    fn errors_and_empty_results_are_read() {
        let xml = "<ErrorResponse><Error><Type>Sender</Type>\
            <Code>AWS.SimpleQueueService.NonExistentQueue</Code>\
            <Message>The specified queue does not exist.</Message><Detail/></Error>\
            <RequestId>r</RequestId></ErrorResponse>";
        let error = QueryError::of(&Element::parse(xml).unwrap()).unwrap();
        assert_eq!(error.code, "AWS.SimpleQueueService.NonExistentQueue");
        assert_eq!(error.kind, "Sender");
        let purge = Element::parse("<PurgeQueueResponse><ResponseMetadata/></PurgeQueueResponse>");
        assert_eq!(output_json("PurgeQueue", &purge.unwrap()), json!({}));
    }

    #[test]
    fn malformed_xml_is_an_error_that_quotes_nothing() {
        let err = Element::parse("<A><Body>10.1.2.3</B></A>").unwrap_err();
        assert!(!err.to_string().contains("10.1.2.3"));
        assert!(Element::parse("not xml").is_err());
    }
}
