//! `gsp run --pipeline FILE`: a YAML file of steps run in order on one node.
//!
//! ```yaml
//! name: build                # optional; default: the first step's command
//! workdir: /srv/app          # optional
//! steps:
//!   - name: fetch
//!     run: [git, pull]       # argv, executed without a shell
//!   - name: test
//!     run: [cargo, test]
//!     env: {RUST_LOG: info}
//!     timeout: 10m
//!     continue_on_error: true
//!   - run: "make install"    # a string is split on whitespace (no quoting)
//! ```

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

use super::exit::UsageError;
use crate::core::{
    jobs::spec::{JobSpec, StepSpec},
    units,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    name: String,
    #[serde(default)]
    workdir: Option<String>,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(default)]
    name: String,
    run: Run,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    continue_on_error: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Run {
    Argv(Vec<String>),
    Line(String),
}

/// Reads and checks the pipeline at `path`.
///
/// # Errors
/// The file cannot be read, is not a pipeline, or breaks a bound (exit 2,
/// naming the file and the problem).
pub(crate) fn load(path: &Path) -> Result<JobSpec, UsageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read pipeline {}: {e}", path.display())))?;
    parse(&text).map_err(|e| UsageError(format!("pipeline {}: {e}", path.display())))
}

/// Parses a pipeline document.
///
/// # Errors
/// What is wrong with it.
pub(crate) fn parse(text: &str) -> Result<JobSpec, String> {
    let file: File = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let mut steps = Vec::with_capacity(file.steps.len());
    for (i, s) in file.steps.into_iter().enumerate() {
        let argv = match s.run {
            Run::Argv(v) => v,
            Run::Line(l) => l.split_whitespace().map(str::to_owned).collect(),
        };
        let timeout = match s.timeout {
            None => None,
            Some(t) => {
                Some(units::parse_duration(&t).map_err(|e| format!("steps[{i}].timeout: {e}"))?)
            }
        };
        steps.push(StepSpec {
            name: s.name,
            argv,
            env: s.env,
            timeout,
            continue_on_error: s.continue_on_error,
        });
    }
    JobSpec {
        name: file.name,
        steps,
        workdir: file.workdir,
    }
    .normalize()
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_pipeline_file_reads_as_steps() {
        let spec = parse(
            "name: build\nsteps:\n  - name: fetch\n    run: [git, pull]\n  - run: make install\n    timeout: 90s\n    continue_on_error: true\n    env: {A: b}\n",
        )
        .expect("a valid pipeline");
        assert_eq!(spec.name, "build");
        assert_eq!(spec.steps[0].argv, ["git", "pull"]);
        assert_eq!(spec.steps[1].name, "step-2");
        assert_eq!(spec.steps[1].argv, ["make", "install"]);
        assert_eq!(spec.steps[1].timeout, Some(Duration::from_secs(90)));
        assert!(spec.steps[1].continue_on_error);
        assert_eq!(spec.steps[1].env["A"], "b");
    }

    #[test]
    fn mistakes_in_a_pipeline_are_named() {
        let unknown = parse("steps:\n  - run: [true]\n    retries: 3\n").unwrap_err();
        assert!(unknown.contains("retries"), "{unknown}");
        let empty = parse("steps: []\n").unwrap_err();
        assert_eq!(empty, "a job needs at least one step");
        let bad_timeout = parse("steps:\n  - run: [sleep, '1']\n    timeout: soon\n").unwrap_err();
        assert!(bad_timeout.starts_with("steps[0].timeout"), "{bad_timeout}");
    }
}
