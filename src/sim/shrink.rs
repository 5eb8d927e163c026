//! Shrinking a failing scenario: drop fault kinds (crashes included), then messages (halves, then
//! one at a time), keeping each change that still fails. The result is written as a short spec
//! (`m=0.4.7;off=crash.delete_error`) that `--shrunk` applies to the seed's scenario again.

use super::runner::{self, Scenario};

/// A subset of a seed's scenario.
#[derive(Debug, Clone, Default)]
pub(super) struct Subset {
    /// Indices of the messages kept (`None`: all).
    pub(super) messages: Option<Vec<usize>>,
    /// Fault kinds turned off.
    pub(super) off: Vec<String>,
}

impl Subset {
    pub(super) fn parse(text: &str) -> Self {
        let mut subset = Subset::default();
        for part in text.split(';') {
            match part.split_once('=') {
                Some(("m", list)) => {
                    subset.messages = Some(list.split('.').filter_map(|i| i.parse().ok()).collect())
                }
                Some(("off", list)) => {
                    subset.off = list
                        .split('.')
                        .filter(|k| !k.is_empty())
                        .map(String::from)
                        .collect()
                }
                _ => {}
            }
        }
        subset
    }

    pub(super) fn spec(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = &self.messages {
            parts.push(format!(
                "m={}",
                m.iter().map(usize::to_string).collect::<Vec<_>>().join(".")
            ));
        }
        parts.push(format!("off={}", self.off.join(".")));
        parts.join(";")
    }

    /// The seed's scenario cut down to this subset.
    pub(super) fn apply(&self, mut scenario: Scenario) -> Scenario {
        if let Some(keep) = &self.messages {
            let all = std::mem::take(&mut scenario.messages);
            scenario.messages = keep.iter().filter_map(|&i| all.get(i).cloned()).collect();
            let delays = std::mem::take(&mut scenario.delays);
            scenario.delays = keep
                .iter()
                .filter_map(|&i| delays.get(i).copied())
                .collect();
        }
        for kind in &self.off {
            scenario.faults.without(kind);
        }
        scenario
    }
}

/// Shrink the failing `seed`; the smallest subset that still fails and its violations.
pub(super) fn shrink(seed: u64, budget: usize) -> (Subset, Vec<String>) {
    let full = Scenario::of(seed);
    let mut best = Subset {
        messages: Some((0..full.messages.len()).collect()),
        off: vec![],
    };
    let mut found = runner::run(&full).violations;
    let mut runs = 0;
    let mut try_subset = |candidate: Subset, best: &mut Subset, found: &mut Vec<String>| {
        runs += 1;
        if runs > budget {
            return false;
        }
        let report = runner::run(&candidate.apply(Scenario::of(seed)));
        if report.violations.is_empty() {
            return false;
        }
        *best = candidate;
        *found = report.violations;
        true
    };
    for kind in full.faults.kinds() {
        let mut candidate = best.clone();
        candidate.off.push(kind.to_string());
        try_subset(candidate, &mut best, &mut found);
    }
    let mut chunk = best.messages.as_ref().map_or(1, Vec::len) / 2;
    while chunk >= 1 {
        let mut start = 0;
        while start < best.messages.as_ref().map_or(0, Vec::len) {
            let mut candidate = best.clone();
            let kept = candidate.messages.as_mut().expect("set");
            let end = (start + chunk).min(kept.len());
            kept.drain(start..end);
            if kept.is_empty() || !try_subset(candidate, &mut best, &mut found) {
                start += chunk;
            }
        }
        chunk /= 2;
    }
    (best, found)
}
