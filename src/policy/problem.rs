//! What is wrong with a policy file, and the nearest valid word for a typo.

use std::fmt;

/// One thing wrong with a policy file, at a line where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the file, `None` for something missing.
    pub line: Option<usize>,
    /// What is wrong and how to fix it, one sentence.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A policy file that cannot be used: every problem found, in the file's order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", .problems[0], more(.problems.len()))]
pub struct PolicyError {
    /// At least one.
    pub problems: Vec<Problem>,
}

fn more(n: usize) -> String {
    match n {
        1 => String::new(),
        n => format!(" (and {} more: `login-etl policy check` lists them)", n - 1),
    }
}

/// `; did you mean `x`?` for the closest candidate within a few edits, else nothing.
pub(super) fn nearest(word: &str, candidates: &[&str]) -> String {
    let word = word.to_ascii_lowercase().replace('-', "_");
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&word, &c.replace('-', "_")), *c))
        .filter(|(distance, c)| *distance <= (c.len() / 3).max(1))
        .min()
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}
