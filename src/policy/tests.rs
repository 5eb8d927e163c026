//! Policy files: the examples, typos anywhere (generated), choices that don't go together, and
//! any text at all without a panic.

use proptest::prelude::*;

use super::problem::nearest;
use super::{Grain, Policy, Scope, Store, FIELDS};

const SEED: &str = include_str!("../../examples/policies/seed.toml");
const MONTHLY: &str = include_str!("../../examples/policies/monthly-links.toml");
const MINIMAL: &str = include_str!("../../examples/policies/minimal.toml");

fn problems(text: &str) -> Vec<String> {
    match Policy::parse(text) {
        Ok(policy) => panic!("accepted: {policy:?}"),
        Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn the_examples_say_what_their_names_promise() {
    assert_eq!(Policy::parse(SEED).unwrap(), Policy::seed());
    let monthly = Policy::parse(MONTHLY).unwrap();
    assert_eq!(
        monthly.store("ip"),
        Some(Store::AesSiv {
            scope: Scope::Month
        })
    );
    assert_eq!(
        monthly.store("device_id"),
        Some(Store::Hmac {
            scope: Scope::Month
        })
    );
    assert!(monthly.is_time_scoped() && !Policy::seed().is_time_scoped());
    let minimal = Policy::parse(MINIMAL).unwrap();
    let expected = [
        ("user_id", Store::Hmac { scope: Scope::All }),
        (
            "ip",
            Store::Network {
                v4: 24,
                v6: 48,
                scope: Scope::All,
            },
        ),
        ("device_id", Store::Hmac { scope: Scope::All }),
        ("app_version", Store::Generalise { parts: 2 }),
        ("sent_at", Store::Truncate(Grain::Day)),
    ];
    for (field, store) in expected {
        assert_eq!(minimal.store(field), Some(store), "{field}");
    }
    let columns: Vec<&str> = minimal.describe().iter().map(|l| l.column).collect();
    assert_eq!(columns[1], "masked_ip_network");
}

/// The fingerprint is of the choices, not of the text: comments, spacing and the order of the
/// tables don't change it; any change of a choice does.
#[test]
fn the_fingerprint_follows_the_choices_only() {
    let mut tables: Vec<&str> = SEED.split("\n\n").collect();
    tables[1..].reverse();
    let reordered = tables.join("\n\n# a comment\n\n");
    let seed = Policy::parse(SEED).unwrap().fingerprint();
    assert_eq!(Policy::parse(&reordered).unwrap().fingerprint(), seed);
    let scoped = SEED.replace(
        "store = \"hmac\"          # keyed pseudonym, for all time",
        "store = \"hmac\"\nscope = \"day\"",
    );
    assert_ne!(Policy::parse(&scoped).unwrap().fingerprint(), seed);
    let fingerprints: std::collections::HashSet<String> = [SEED, MONTHLY, MINIMAL]
        .iter()
        .map(|t| Policy::parse(t).unwrap().fingerprint())
        .collect();
    assert_eq!(fingerprints.len(), 3);
}

/// Every word of the example files (field, key, choice, period) with one letter dropped, doubled
/// or two swapped: refused at that word's line, with a suggestion no farther from the typo than
/// the word meant.
#[test]
fn a_typo_anywhere_is_refused_at_its_line_with_the_fix() {
    for text in [SEED, MONTHLY, MINIMAL] {
        for (n, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap();
            let words: Vec<&str> = code
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .filter(|w| w.len() > 1 && !w.bytes().all(|b| b.is_ascii_digit()))
                .collect();
            for word in words {
                for typo in typos(word) {
                    let at = line.find(word).unwrap();
                    let broken_line =
                        format!("{}{}{}", &line[..at], typo, &line[at + word.len()..]);
                    let lines: Vec<&str> = text.lines().collect();
                    let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                    edited[n] = broken_line;
                    let edited = edited.join("\n");
                    let found = problems(&edited);
                    let here = format!("line {}: ", n + 1);
                    let suggestion = found.iter().filter(|p| p.starts_with(&here)).find_map(|p| {
                        p.split("did you mean `")
                            .nth(1)
                            .and_then(|s| s.split('`').next())
                            .map(String::from)
                    });
                    let Some(suggested) = suggestion else {
                        panic!("`{word}` → `{typo}` on line {}: no suggestion at that line in {found:?}", n + 1);
                    };
                    let distance = |a: &str, b: &str| strsim::damerau_levenshtein(a, b);
                    assert!(
                        distance(&typo, &suggested) <= distance(&typo, word),
                        "`{word}` → `{typo}`: suggested `{suggested}`"
                    );
                }
            }
        }
    }
}

/// One letter dropped, doubled, or two neighbours swapped (each different from the word).
fn typos(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = Vec::new();
    for i in 0..chars.len() {
        let mut dropped = chars.clone();
        dropped.remove(i);
        out.push(dropped.iter().collect::<String>());
        let mut doubled = chars.clone();
        doubled.insert(i, chars[i]);
        out.push(doubled.iter().collect());
        if i + 1 < chars.len() && chars[i] != chars[i + 1] {
            let mut swapped = chars.clone();
            swapped.swap(i, i + 1);
            out.push(swapped.iter().collect());
        }
    }
    out.retain(|t| t != word && !t.is_empty());
    out.dedup();
    out
}

#[test]
fn choices_that_do_not_go_together_are_explained() {
    let with = |field: &str, table: &str| {
        SEED.replace(
            &format!(
                "[{field}]\nstore = \"{}\"",
                Policy::seed().store(field).map(store_word).unwrap()
            ),
            &format!("[{field}]\n{table}"),
        )
    };
    let cases = [
        (
            with("locale", "store = \"keep\"\nscope = \"month\""),
            "`scope` does nothing with store = \"keep\"",
        ),
        (
            with("ip", "store = \"hmac\"\nprefix_v4 = 16"),
            "applies only to store = \"network\"",
        ),
        (with("ip", "store = \"sha256\""), "unkeyed"),
        (
            with("device_id", "store = \"network\""),
            "`network` is not a way to store `device_id`",
        ),
        (
            with("sent_at", "store = \"truncate\""),
            "needs `to = \"hour\"` or `\"day\"`",
        ),
        (
            with("sent_at", "store = \"truncate\"\nto = \"month\""),
            "cannot be truncated to `month`",
        ),
        (
            with("ip", "store = \"network\"\nprefix_v4 = 33"),
            "from 1 to 32",
        ),
        (
            with("ip", "store = \"hmac\"\nscope = 3"),
            "must be a string",
        ),
        (
            with("ip", "store = \"hmac\"\nscope = \"month\"").replace(
                "[device_id]\nstore = \"hmac\"",
                "[device_id]\nstore = \"hmac\"\nscope = \"week\"",
            ),
            "a row has one period",
        ),
        (
            SEED.replace("version = 1", "version = 2"),
            "`version` must be 1",
        ),
        (SEED.replace("version = 1", ""), "`version = 1` is missing"),
        (
            SEED.replace("[locale]\nstore = \"keep\"\n", ""),
            "no entry for `locale`",
        ),
        (
            SEED.replace("[locale]\nstore = \"keep\"\n", "")
                .replace("version = 1", "version = 1\nlocale = 3"),
            "`locale` must be a table",
        ),
        (
            format!("{SEED}\n[ip]\nstore = \"drop\"\n"),
            "not valid TOML",
        ),
    ];
    for (text, expected) in cases {
        let found = problems(&text);
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{expected:?} not in {found:?}"
        );
    }
    let sha = with("ip", "store = \"sha256\"\nunkeyed_ok = true");
    assert_eq!(
        Policy::parse(&sha).unwrap().store("ip"),
        Some(Store::Sha256)
    );
}

fn store_word(store: Store) -> &'static str {
    match store {
        Store::Keep => "keep",
        _ => "hmac",
    }
}

#[test]
fn nearest_suggests_only_close_words() {
    assert_eq!(
        nearest("devise_id", &FIELDS),
        " (did you mean `device_id`?)"
    );
    assert_eq!(
        nearest("AES_SIV", &["hmac", "aes-siv"]),
        " (did you mean `aes-siv`?)"
    );
    assert_eq!(nearest("colour", &FIELDS), "");
}

proptest! {
    /// Any text, and any bytes spliced into a valid file: a policy or problems, never a panic,
    /// and every problem's line is inside the file.
    #[test]
    fn any_text_is_checked_without_a_panic(
        text in ".{0,300}",
        at in 0usize..400,
        splice in "[\\[\\]=\"#a-z_0-9 \\n.{}-]{0,12}",
    ) {
        let _ = Policy::parse(&text);
        let at = SEED.char_indices().map(|(i, _)| i).nth(at % SEED.len()).unwrap_or(0);
        let spliced = format!("{}{}{}", &SEED[..at], splice, &SEED[at..]);
        if let Err(e) = Policy::parse(&spliced) {
            let lines = spliced.lines().count().max(1);
            for p in e.problems {
                prop_assert!(p.line.map_or(true, |l| l >= 1 && l <= lines + 1), "{p}");
            }
        }
    }
}
