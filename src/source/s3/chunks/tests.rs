use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::prelude::*;

use super::*;
use crate::logins::{split, Logins};

const LIMITS: Limits = Limits {
    max_logins: 3,
    max_bytes: 1 << 20,
    max_line: 200,
};

fn login(i: usize) -> String {
    format!(
        r#"{{"user_id":"u{i}","ip":"198.51.100.{}","device_id":"d,]{i}"}}"#,
        i % 250
    )
}

async fn pieces(content: Vec<u8>, limits: Limits) -> Vec<Piece> {
    let mut chunks = Chunks::open(io::Cursor::new(content), limits)
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(piece) = chunks.next().await.unwrap() {
        out.push(piece);
    }
    out
}

fn gzip_members(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(part).unwrap();
        out.extend(gz.finish().unwrap());
    }
    out
}

/// Every login the pieces hold, by line, as the login path splits each chunk's body.
fn logins_by_line(pieces: &[Piece]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for piece in pieces {
        if let Piece::Logins { first, count, body } = piece {
            let texts: Vec<String> = match split(body, 1000).unwrap() {
                Logins::One => vec![body.clone()],
                Logins::Many(many) => many.into_iter().map(str::to_string).collect(),
            };
            assert_eq!(texts.len(), *count as usize, "{body}");
            out.extend((*first..).zip(texts));
        }
    }
    out
}

#[tokio::test]
async fn ndjson_is_chunked_by_count_and_numbered_by_line() {
    let content = format!("{}\n\n{}\r\n{}\n{}", login(1), login(2), login(3), login(4));
    let got = pieces(content.into_bytes(), LIMITS).await;
    // The blank line ends the first chunk (line 1 alone); lines 3 to 5 make the second.
    assert_eq!(got.len(), 2);
    assert_eq!(
        logins_by_line(&got),
        vec![(1, login(1)), (3, login(2)), (4, login(3)), (5, login(4))]
    );
}

#[tokio::test]
async fn a_gzip_of_several_members_is_read_to_its_end() {
    let (a, b) = (
        format!("{}\n{}\n", login(1), login(2)),
        format!("{}\n", login(3)),
    );
    let got = pieces(gzip_members(&[a.as_bytes(), b.as_bytes()]), LIMITS).await;
    assert_eq!(
        logins_by_line(&got),
        vec![(1, login(1)), (2, login(2)), (3, login(3))]
    );
}

#[tokio::test]
async fn an_array_is_read_element_by_element_even_pretty_printed() {
    let content = format!(
        " [\n  {},\n  {{\n    \"user_id\": \"p\", \"tags\": [1, \"],\"]\n  }},\n  7\n] \n{}",
        login(1),
        login(2)
    );
    let got = pieces(content.into_bytes(), LIMITS).await;
    let lines = logins_by_line(&got);
    assert_eq!(lines.len(), 4, "{got:?}");
    assert_eq!(lines[0], (1, login(1)));
    assert!(lines[1].1.contains(r#""tags": [1, "],"]"#), "{lines:?}");
    assert_eq!(lines[2], (3, "7".to_string()));
    // After the array, the rest is lines, numbered on (the rest of the `]` line is one):
    // reported, never dropped.
    assert_eq!(lines[3], (5, login(2)));
}

#[tokio::test]
async fn a_line_that_cannot_share_a_chunk_is_alone_and_unreadable_ones_are_reported() {
    let long = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(500));
    let mut content = format!("{{\"cut\": \n{}\n{long}\n", login(1)).into_bytes();
    content.extend(b"{\"bad\":\"\xff\"}\n");
    content.extend(login(2).as_bytes());
    let got = pieces(content, LIMITS).await;
    assert_eq!(
        got[0],
        Piece::Logins {
            first: 1,
            count: 1,
            body: "{\"cut\":".into()
        }
    );
    assert!(matches!(
        &got[1],
        Piece::Logins {
            first: 2,
            count: 1,
            ..
        }
    ));
    assert_eq!(
        got[2],
        unreadable(3, Unreadable::TooLong(long.len() as u64))
    );
    assert_eq!(got[3], unreadable(4, Unreadable::NotUtf8));
    assert!(matches!(
        &got[4],
        Piece::Logins {
            first: 5,
            count: 1,
            ..
        }
    ));
    assert_eq!(got.len(), 5);
}

#[tokio::test]
async fn empty_objects_and_arrays_hold_nothing() {
    for content in ["", "\n\n", "[]", " [ ] \n", "[\n]"] {
        assert_eq!(pieces(content.into(), LIMITS).await, vec![], "{content:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the shape (NDJSON, Firehose's records back to back with or without line breaks,
    /// or an array; plain or gzip of any number of members) and the limits, every login comes
    /// out once, in order, with its own number, within the limits.
    #[test]
    fn every_login_comes_out_once_in_order(
        n in 0usize..40,
        shape in 0u8..3,
        separators in proptest::collection::vec(prop_oneof!["", " ", "\n", "\r\n", "\t "], 40),
        members in 0usize..4,
        max_logins in 1usize..6,
        max_bytes in 60usize..400,
    ) {
        let logins: Vec<String> = (0..n).map(login).collect();
        let text = match shape {
            0 => format!("[{}]", logins.join(",\n")),
            1 => logins.join("\n"),
            _ => (logins.iter().zip(&separators))
                .map(|(login, gap)| format!("{login}{gap}"))
                .collect(),
        };
        let content = match members {
            0 => text.into_bytes(),
            k => {
                let bytes = text.as_bytes();
                let size = bytes.len().div_ceil(k).max(1);
                let parts: Vec<&[u8]> = bytes.chunks(size).collect();
                gzip_members(&parts)
            }
        };
        let limits = Limits { max_logins, max_bytes, max_line: 200 };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let got = runtime.block_on(pieces(content, limits));
        let expected: Vec<(u64, String)> = (1..).zip(logins).collect();
        prop_assert_eq!(logins_by_line(&got), expected);
        for piece in &got {
            if let Piece::Logins { count, body, .. } = piece {
                prop_assert!(*count as usize <= max_logins);
                prop_assert!(*count == 1 || body.len() <= max_bytes);
            }
        }
    }
}
