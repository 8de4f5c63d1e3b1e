//! What a job asks for: named steps of argv, env, timeout. Checked before
//! anything runs; every field is bounded.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

/// Steps in one job, at most.
pub const MAX_STEPS: usize = 64;
/// Bytes of argv, env and names in one job, at most.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;
/// Bytes of a job or step name, at most.
pub const MAX_NAME_BYTES: usize = 128;

/// One step: a process to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    /// Shown in statuses; default `step-N`.
    pub name: String,
    /// Executed directly, without a shell.
    pub argv: Vec<String>,
    /// Added to the node's environment.
    pub env: BTreeMap<String, String>,
    /// Killed (and failed) after this long.
    pub timeout: Option<Duration>,
    /// A failure neither stops the job nor fails it.
    pub continue_on_error: bool,
}

impl StepSpec {
    /// A step running `argv`, no options.
    pub fn new(name: impl Into<String>, argv: Vec<String>) -> Self {
        Self {
            name: name.into(),
            argv,
            env: BTreeMap::new(),
            timeout: None,
            continue_on_error: false,
        }
    }
}

/// A job: steps run in order on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Shown by `gsp jobs`.
    pub name: String,
    /// The steps.
    pub steps: Vec<StepSpec>,
    /// Working directory; `None`: the node's.
    pub workdir: Option<String>,
}

/// Why a spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// No steps.
    #[error("a job needs at least one step")]
    NoSteps,
    /// Too many steps.
    #[error("a job has at most {MAX_STEPS} steps, got {0}")]
    TooManySteps(usize),
    /// A step without a command.
    #[error("step {0} has no command (argv is empty)")]
    EmptyArgv(String),
    /// A NUL byte, which no argv or env can carry.
    #[error("step {0}: {1} contains a NUL byte")]
    Nul(String, &'static str),
    /// An env key that is not a variable name.
    #[error("step {0}: '{1}' is not an environment variable name")]
    BadEnvKey(String, String),
    /// A name too long.
    #[error("name '{0}...' is longer than {MAX_NAME_BYTES} bytes")]
    LongName(String),
    /// The whole spec too large.
    #[error("the job is {0} bytes of argv, env and names; at most {MAX_SPEC_BYTES}")]
    TooLarge(usize),
    /// Two steps with one name.
    #[error("two steps are named '{0}'")]
    DuplicateName(String),
}

impl JobSpec {
    /// A one-step job running `argv`.
    pub fn command(argv: Vec<String>) -> Self {
        let name = argv.first().cloned().unwrap_or_default();
        Self {
            name: name.clone(),
            steps: vec![StepSpec::new(name, argv)],
            workdir: None,
        }
    }

    /// Fills default names (job: the first step's argv[0]; step: `step-N`) and
    /// checks every bound.
    ///
    /// # Errors
    /// The first problem found.
    pub fn normalize(mut self) -> Result<Self, SpecError> {
        if self.steps.is_empty() {
            return Err(SpecError::NoSteps);
        }
        if self.steps.len() > MAX_STEPS {
            return Err(SpecError::TooManySteps(self.steps.len()));
        }
        let mut total = self.name.len() + self.workdir.as_ref().map_or(0, String::len);
        let mut names = std::collections::BTreeSet::new();
        for (i, step) in self.steps.iter_mut().enumerate() {
            if step.name.is_empty() {
                step.name = format!("step-{}", i + 1);
            }
            check_name(&step.name)?;
            if !names.insert(step.name.clone()) {
                return Err(SpecError::DuplicateName(step.name.clone()));
            }
            if step.argv.is_empty() || step.argv[0].is_empty() {
                return Err(SpecError::EmptyArgv(step.name.clone()));
            }
            if step.argv.iter().any(|a| a.contains('\0')) {
                return Err(SpecError::Nul(step.name.clone(), "argv"));
            }
            for (k, v) in &step.env {
                let valid = !k.is_empty()
                    && !k.starts_with(|c: char| c.is_ascii_digit())
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(SpecError::BadEnvKey(step.name.clone(), k.clone()));
                }
                if v.contains('\0') {
                    return Err(SpecError::Nul(step.name.clone(), "env"));
                }
                total += k.len() + v.len();
            }
            total += step.name.len() + step.argv.iter().map(String::len).sum::<usize>();
        }
        if self.name.is_empty() {
            self.name.clone_from(&self.steps[0].argv[0]);
        }
        check_name(&self.name)?;
        if self.workdir.as_ref().is_some_and(|w| w.contains('\0')) {
            return Err(SpecError::Nul(self.name.clone(), "workdir"));
        }
        if total > MAX_SPEC_BYTES {
            return Err(SpecError::TooLarge(total));
        }
        Ok(self)
    }
}

fn check_name(name: &str) -> Result<(), SpecError> {
    if name.len() > MAX_NAME_BYTES {
        let head: String = name.chars().take(32).collect();
        return Err(SpecError::LongName(head));
    }
    Ok(())
}
