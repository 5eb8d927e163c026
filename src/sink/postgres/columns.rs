//! Does `user_logins` hold what the writer writes? A table made or altered by hand
//! (`masked_ip varchar(64)` while masks are longer, `user_id uuid`, `app_version int`) would
//! refuse every valid login; each refusal looks like bad data (SQLSTATE 22/23), so without this
//! check every login would be quarantined. `run` stops at start and `check` reports, naming the
//! column and the fix.

use super::{PgSink, SinkError};

/// What the writer puts in a column.
#[derive(Debug, Clone, Copy)]
enum Holds {
    /// Text of up to this many characters (`varchar(n)` with n ≥ it, or `text`).
    Text(i32),
    /// Exactly this type (as `information_schema.columns.data_type` names it).
    Type(&'static str),
}

/// Every column the writer writes, with what it must hold: the schema `migrations/` creates.
const NEEDS: [(&str, Holds); 11] = [
    ("user_id", Holds::Text(128)),
    ("device_type", Holds::Text(32)),
    ("masked_ip", Holds::Text(256)),
    ("masked_device_id", Holds::Text(256)),
    ("locale", Holds::Text(32)),
    ("app_version", Holds::Text(32)),
    ("create_date", Holds::Type("date")),
    ("masked_ip_network", Holds::Text(256)),
    ("sent_at", Holds::Type("timestamp with time zone")),
    ("extra_fields", Holds::Type("jsonb")),
    ("period", Holds::Text(32)),
];

const COLUMNS: &str = "SELECT column_name::text, data_type::text, character_maximum_length::int4 \
                       FROM information_schema.columns \
                       WHERE table_schema = current_schema() AND table_name = 'user_logins'";

/// Columns that refuse a row without a value in them: `NOT NULL`, no default, not generated.
const MUST_BE_FILLED: &str = "SELECT column_name::text FROM information_schema.columns \
     WHERE table_schema = current_schema() AND table_name = 'user_logins' \
     AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO' \
     AND is_generated = 'NEVER' ORDER BY ordinal_position";

/// Columns the writer leaves NULL unless a flag fills them (`--ip-network-mask`,
/// `--keep-extra-fields`) or the login lacks the value (`locale`, `app_version`).
const MAY_BE_NULL: [&str; 5] = [
    "masked_ip_network",
    "extra_fields",
    "locale",
    "app_version",
    "period",
];

impl PgSink {
    /// Stop (`SinkError::Schema`) naming the first column of `user_logins` that cannot hold
    /// what the writer writes, with the statement that fixes it.
    /// `may_be_empty`: columns a policy leaves NULL (`run --policy`), beside those always
    /// allowed to be.
    pub async fn check_columns(&mut self, may_be_empty: &[&str]) -> Result<(), SinkError> {
        let rows = self.db.query(COLUMNS, &[]).await?;
        let found: Vec<(String, String, Option<i32>)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        if let Some(line) = mismatch(&found) {
            return Err(SinkError::Schema(line));
        }
        let rows = self.db.query(MUST_BE_FILLED, &[]).await?;
        let filled: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        match unfilled(&filled, may_be_empty) {
            Some(line) => Err(SinkError::Schema(line)),
            None => Ok(()),
        }
    }
}

/// The first `NOT NULL` column without a default that the writer may leave empty.
fn unfilled(must_be_filled: &[String], may_be_empty: &[&str]) -> Option<String> {
    let writes_always = |c: &str| {
        NEEDS.iter().any(|(n, _)| *n == c)
            && !MAY_BE_NULL.contains(&c)
            && !may_be_empty.contains(&c)
    };
    let column = must_be_filled.iter().find(|c| !writes_always(c))?;
    Some(format!(
        "user_logins.{column} is NOT NULL without a default, and login-etl leaves it empty \
         (always, or for some logins): ALTER TABLE user_logins ALTER COLUMN {column} DROP NOT NULL \
         (or SET DEFAULT a value)"
    ))
}

/// The first column that does not fit, as one line with its fix.
fn mismatch(found: &[(String, String, Option<i32>)]) -> Option<String> {
    for (column, holds) in NEEDS {
        let Some((_, data_type, length)) = found.iter().find(|(name, _, _)| name == column) else {
            return Some(format!(
                "user_logins has no column `{column}`: run `login-etl migrate` as the schema owner"
            ));
        };
        let (fits, wanted) = match holds {
            Holds::Text(need) => {
                let fits = data_type == "text"
                    || (data_type == "character varying" && length.map_or(true, |n| n >= need));
                (fits, format!("varchar({need})"))
            }
            Holds::Type(want) => (data_type == want, want.to_string()),
        };
        if !fits {
            let has = match length {
                Some(n) => format!("{data_type}({n})"),
                None => data_type.clone(),
            };
            let what = match holds {
                Holds::Text(need) => format!("text of up to {need} characters"),
                Holds::Type(want) => format!("{want} values"),
            };
            return Some(format!(
                "user_logins.{column} is {has} but login-etl writes {what} there: \
                 ALTER TABLE user_logins ALTER COLUMN {column} TYPE {wanted} USING {column}::{wanted}"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn schema() -> Vec<(String, String, Option<i32>)> {
        NEEDS
            .iter()
            .map(|(name, holds)| match holds {
                Holds::Text(n) => (name.to_string(), "character varying".into(), Some(*n)),
                Holds::Type(t) => (name.to_string(), t.to_string(), None),
            })
            .collect()
    }

    #[test]
    fn the_migrated_schema_and_wider_text_fit() {
        assert_eq!(mismatch(&schema()), None);
        let mut wider = schema();
        wider[0] = ("user_id".into(), "text".into(), None);
        wider[2] = ("masked_ip".into(), "character varying".into(), None);
        assert_eq!(mismatch(&wider), None);
    }

    #[test]
    fn a_not_null_column_the_writer_leaves_empty_is_named() {
        assert_eq!(
            unfilled(&["user_id".into(), "create_date".into()], &[]),
            None
        );
        for column in ["tenant", "masked_ip_network", "extra_fields", "locale"] {
            let line = unfilled(&["user_id".into(), column.into()], &[]).unwrap_or_default();
            assert!(
                line.contains(&format!("user_logins.{column} is NOT NULL")),
                "{line}"
            );
        }
    }

    proptest! {
        /// Any one column narrowed, retyped or missing is named, with its fix.
        #[test]
        fn any_column_that_cannot_hold_what_is_written_is_named(
            index in 0usize..NEEDS.len(),
            change in prop_oneof![
                (1i32..32).prop_map(|n| ("character varying".to_string(), Some(n))),
                Just(("uuid".to_string(), None)),
                Just(("integer".to_string(), None)),
                Just(("character".to_string(), Some(300))),
                Just(("timestamp without time zone".to_string(), None)),
            ],
            missing in any::<bool>(),
        ) {
            let mut found = schema();
            let column = found[index].0.clone();
            if missing {
                found.remove(index);
            } else {
                found[index].1 = change.0;
                found[index].2 = change.1;
            }
            let line = mismatch(&found);
            let line = line.unwrap_or_default();
            prop_assert!(line.contains(&column), "{}", line);
            prop_assert!(line.contains("ALTER TABLE") || line.contains("login-etl migrate"), "{}", line);
        }
    }
}
