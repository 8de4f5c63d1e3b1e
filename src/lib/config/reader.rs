//! Typed reads of YAML values for the config file, collecting every problem
//! with its key instead of stopping at the first.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::core::units;

/// One problem in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `resource.discovery.fanout`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Reads typed values, collecting problems.
#[derive(Default)]
pub(super) struct Reader {
    pub(super) problems: Vec<Problem>,
}

impl Reader {
    pub(super) fn problem(&mut self, key: &str, message: String) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message,
        });
    }

    pub(super) fn unknown(&mut self, path: &str, key: &str, known: &[&str]) {
        let suggestion = known
            .iter()
            .map(|k| (edit_distance(key, k), *k))
            .filter(|(d, _)| *d <= 3)
            .min()
            .map(|(_, k)| format!(" (did you mean '{k}'?)"))
            .unwrap_or_default();
        self.problem(path, format!("unknown key{suggestion}"));
    }

    pub(super) fn map<'a>(&mut self, v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            Value::Null => None,
            other => {
                self.problem(key, format!("expected a mapping, got {other}"));
                None
            }
        }
    }

    pub(super) fn string(&mut self, v: Option<&Value>, key: &str) -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Null => None,
            other => {
                self.problem(key, format!("expected a string, got {other}"));
                None
            }
        }
    }

    pub(super) fn strings(&mut self, v: Option<&Value>, key: &str) -> Vec<String> {
        match v {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .filter_map(|(i, x)| self.string(Some(x), &format!("{key}[{i}]")))
                .collect(),
            Some(other) => {
                self.problem(key, format!("expected a list, got {other}"));
                Vec::new()
            }
        }
    }

    pub(super) fn bool(&mut self, v: Option<&Value>, key: &str) -> Option<bool> {
        match v? {
            Value::Bool(b) => Some(*b),
            other => {
                self.problem(key, format!("expected true or false, got {other}"));
                None
            }
        }
    }

    pub(super) fn count(&mut self, v: Option<&Value>, key: &str) -> Option<usize> {
        let v = v?;
        let n = v.as_u64().and_then(|n| usize::try_from(n).ok());
        if n.is_none() {
            self.problem(key, format!("expected a whole number >= 0, got {v}"));
        }
        n
    }

    pub(super) fn seconds(&mut self, v: Option<&Value>, key: &str) -> Option<Duration> {
        let v = v?;
        let parsed = match v {
            Value::Number(n) => n
                .as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .and_then(|f| Duration::try_from_secs_f64(f).ok())
                .ok_or_else(|| format!("expected seconds >= 0, got {n}")),
            Value::String(s) => units::parse_duration(s).map_err(|e| e.to_string()),
            other => Err(format!("expected seconds, got {other}")),
        };
        match parsed {
            Ok(d) if d.is_zero() => {
                self.problem(key, "must be greater than zero".into());
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(key, e);
                None
            }
        }
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
