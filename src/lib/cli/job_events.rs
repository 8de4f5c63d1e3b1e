//! Showing a job's events as `gsp run` and `gsp logs` print them: output to
//! stdout and stderr as the job wrote it (each line prefixed with the node's
//! name when several nodes run), step changes of pipelines on stderr; or,
//! with `--json`, one JSON object per line: `started`, `step`, `log` (one per
//! output line, with its step and stream), `gap`, `finished`.

use std::{
    collections::HashMap,
    fmt::Write as _,
    io::Write as _,
    sync::{Arc, Mutex, PoisonError},
};

use serde::Serialize;

use crate::transport::pb::jobs::v1 as pb;

/// Schema of `gsp run --json` and `gsp logs --json` lines.
pub const SCHEMA: &str = "gsp.run.v1";

/// A job as `--json` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct JobJson {
    pub job_id: String,
    pub node_id: String,
    pub node_name: String,
    pub name: String,
    pub status: &'static str,
    pub exit_code: i32,
    #[serde(with = "crate::runtime::view::int_string")]
    pub created_unix_ns: i64,
    #[serde(with = "crate::runtime::view::int_string")]
    pub ended_unix_ns: i64,
    pub actor: String,
    pub cancelled_by: String,
    pub log_dropped_bytes: u64,
    /// What the job holds while it runs.
    pub reserved: ReservedJson,
    pub steps: Vec<StepJson>,
}

/// Resources a job holds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReservedJson {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub gpus: i64,
    /// The devices it was given (its `CUDA_VISIBLE_DEVICES`).
    pub gpu_uuids: Vec<String>,
    /// Their GPUs' indices (its `GSP_GPUS`).
    pub gpu_indices: Vec<u32>,
    /// Those of them that stopped answering while it ran.
    pub gpus_lost: Vec<String>,
}

/// A step as `--json` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StepJson {
    pub name: String,
    pub status: &'static str,
    pub exit_code: Option<i32>,
    #[serde(with = "crate::runtime::view::int_string")]
    pub started_unix_ns: i64,
    #[serde(with = "crate::runtime::view::int_string")]
    pub ended_unix_ns: i64,
    pub error: String,
}

/// The lowercase name of a wire status.
pub(crate) fn status_name(s: i32) -> &'static str {
    crate::runtime::jobs::service::status_from_pb(s)
        .map_or("unknown", crate::core::jobs::Status::as_str)
}

pub(crate) fn step_json(s: &pb::StepState) -> StepJson {
    StepJson {
        name: s.name.clone(),
        status: status_name(s.status),
        exit_code: s.exit_code,
        started_unix_ns: s.started_unix_ns,
        ended_unix_ns: s.ended_unix_ns,
        error: s.error.clone(),
    }
}

pub(crate) fn job_json(j: &pb::Job) -> JobJson {
    JobJson {
        job_id: j.id.clone(),
        node_id: j.node_id.clone(),
        node_name: j.node_name.clone(),
        name: j.name.clone(),
        status: status_name(j.status),
        exit_code: j.exit_code,
        created_unix_ns: j.created_unix_ns,
        ended_unix_ns: j.ended_unix_ns,
        actor: j.actor.clone(),
        cancelled_by: j.cancelled_by.clone(),
        log_dropped_bytes: j.log_dropped_bytes,
        reserved: ReservedJson {
            cpu_millis: j.reserved_cpu_millis,
            memory_bytes: j.reserved_memory_bytes,
            gpus: j.reserved_gpus,
            gpu_uuids: j.gpus.iter().map(|d| d.uuid.clone()).collect(),
            gpu_indices: j.gpus.iter().map(|d| d.index).collect(),
            gpus_lost: j
                .gpus
                .iter()
                .filter(|d| d.lost)
                .map(|d| d.uuid.clone())
                .collect(),
        },
        steps: j.steps.iter().map(step_json).collect(),
    }
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Line<'a> {
    Started {
        schema: &'static str,
        job: &'a JobJson,
    },
    Step {
        schema: &'static str,
        job_id: &'a str,
        node_name: &'a str,
        step: u32,
        #[serde(flatten)]
        state: StepJson,
    },
    Log {
        schema: &'static str,
        job_id: &'a str,
        node_name: &'a str,
        step: u32,
        stream: &'static str,
        line: String,
    },
    Gap {
        schema: &'static str,
        job_id: &'a str,
        node_name: &'a str,
        bytes: u64,
    },
    Finished {
        schema: &'static str,
        job: &'a JobJson,
    },
    /// `--fold`: nodes whose output and exit were identical.
    Group {
        schema: &'static str,
        node_set: &'a str,
        nodes: &'a [String],
        exit_code: i32,
        output: &'a str,
        bytes_not_shown: u64,
    },
}

/// Unfinished output lines per (job, step, stream).
type Partial = HashMap<(String, u32, i32), Vec<u8>>;

/// Output kept per job for `--fold`, at most; the rest is counted and said.
pub(crate) const MAX_FOLD_BYTES_PER_JOB: usize = 1 << 20;
/// Output kept for `--fold` over every job, at most.
pub(crate) const MAX_FOLD_BYTES: usize = 256 << 20;

/// Each job's whole output (stdout and stderr as they came), for `--fold`.
#[derive(Debug, Default)]
struct Folded {
    /// By job id: the output kept and the bytes left out.
    jobs: HashMap<String, (Vec<u8>, u64)>,
    bytes: usize,
}

/// Prints events of one or more jobs; shared by their streams.
#[derive(Debug, Clone)]
pub(crate) struct Printer {
    json: bool,
    /// Prefix output lines with the node's name (several nodes).
    prefix: bool,
    /// Unfinished lines per (job, step, stream).
    partial: Arc<Mutex<Partial>>,
    /// `--fold`: output kept to print grouped once every job ended.
    fold: Option<Arc<Mutex<Folded>>>,
}

impl Printer {
    pub(crate) fn new(json: bool, prefix: bool) -> Self {
        Self {
            json,
            prefix,
            partial: Arc::default(),
            fold: None,
        }
    }

    /// A printer that keeps each job's output to print it grouped at the end
    /// ([`Self::print_folded`]) instead of line by line (`--json` lines still
    /// go out as they come).
    pub(crate) fn folding(json: bool) -> Self {
        Self {
            fold: Some(Arc::default()),
            ..Self::new(json, true)
        }
    }

    /// Prints the jobs' outputs grouped, as `clush -b` does: the nodes whose
    /// output and exit code are identical under one folded node set. With
    /// `--json`, one `group` line per group.
    /// `finished`: each job that ended, as (job id, node name, exit code).
    pub(crate) fn print_folded(&self, finished: &[(&str, &str, i32)]) {
        let Some(fold) = &self.fold else { return };
        let mut fold = fold.lock().unwrap_or_else(PoisonError::into_inner);
        // (output, bytes left out, exit code) -> node names. A job lost
        // mid-way is named on stderr by the caller, not grouped.
        let mut groups: std::collections::BTreeMap<(Vec<u8>, u64, i32), Vec<String>> =
            std::collections::BTreeMap::new();
        for &(id, node, code) in finished {
            let (out, left) = fold.jobs.remove(id).unwrap_or_default();
            groups
                .entry((out, left, code))
                .or_default()
                .push(node.to_owned());
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        // The largest group first, as dshbak -c.
        groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.1.cmp(&b.1)));
        for ((out, left, code), nodes) in groups {
            let set = super::nodeset::fold(&nodes);
            if self.json {
                Self::json_line(&Line::Group {
                    schema: SCHEMA,
                    node_set: &set,
                    nodes: &nodes,
                    exit_code: code,
                    output: &String::from_utf8_lossy(&out),
                    bytes_not_shown: left,
                });
                continue;
            }
            let title = format!("{set} ({}): exit {code}", nodes.len());
            let rule = "-".repeat(title.chars().count().clamp(15, 80));
            let mut text = format!("{rule}\n{title}\n{rule}\n");
            text.push_str(&String::from_utf8_lossy(&out));
            if !out.is_empty() && !out.ends_with(b"\n") {
                text.push('\n');
            }
            if left > 0 {
                let _ = writeln!(
                    text,
                    "[{left} more bytes of output not shown: `gsp logs` has them]"
                );
            }
            let _ = super::output::stdout(&text);
        }
    }

    fn json_line(line: &Line<'_>) {
        if let Ok(s) = serde_json::to_string(line) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        }
    }

    /// Shows one event of job `job` (id, node name).
    pub(crate) fn event(&self, job: &(String, String), steps: usize, ev: &pb::job_event::Kind) {
        use pb::job_event::Kind;
        let (id, node) = (job.0.as_str(), job.1.as_str());
        match ev {
            Kind::Started(j) => {
                if self.json {
                    Self::json_line(&Line::Started {
                        schema: SCHEMA,
                        job: &job_json(j),
                    });
                }
            }
            Kind::Step(c) => {
                let Some(state) = &c.state else { return };
                if self.json {
                    Self::json_line(&Line::Step {
                        schema: SCHEMA,
                        job_id: id,
                        node_name: node,
                        step: c.step,
                        state: step_json(state),
                    });
                } else if steps > 1 || (!state.error.is_empty() && state.exit_code.is_none()) {
                    self.flush_step(job, c.step);
                    let status = status_name(state.status);
                    let mut msg = format!(
                        "gsp: {node}: step {} ({}/{steps}) {status}",
                        state.name,
                        c.step + 1
                    );
                    if !state.error.is_empty() && status != "running" {
                        let _ = write!(msg, ": {}", state.error);
                    }
                    super::output::note(&msg);
                }
            }
            Kind::Log(chunk) if self.fold.is_some() => {
                self.keep(id, &chunk.data);
                if self.json {
                    self.output(job, chunk);
                }
            }
            Kind::Log(chunk) => self.output(job, chunk),
            Kind::Gap(g) => {
                if self.json {
                    Self::json_line(&Line::Gap {
                        schema: SCHEMA,
                        job_id: id,
                        node_name: node,
                        bytes: g.bytes,
                    });
                } else {
                    super::output::note(&format!(
                        "gsp: {node}: [{} bytes of output were dropped by the node before they could be sent]",
                        g.bytes
                    ));
                }
            }
            Kind::Finished(j) => {
                for s in 0..u32::try_from(j.steps.len()).unwrap_or(0) {
                    self.flush_step(job, s);
                }
                if self.json {
                    Self::json_line(&Line::Finished {
                        schema: SCHEMA,
                        job: &job_json(j),
                    });
                }
            }
        }
    }

    /// Keeps `data` of job `id` for `--fold`, within the bounds.
    fn keep(&self, id: &str, data: &[u8]) {
        let Some(fold) = &self.fold else { return };
        let mut fold = fold.lock().unwrap_or_else(PoisonError::into_inner);
        let room = MAX_FOLD_BYTES.saturating_sub(fold.bytes);
        let (out, left) = fold.jobs.entry(id.to_owned()).or_default();
        let take = data
            .len()
            .min(MAX_FOLD_BYTES_PER_JOB.saturating_sub(out.len()))
            .min(room);
        out.extend_from_slice(&data[..take]);
        *left += (data.len() - take) as u64;
        fold.bytes += take;
    }

    fn output(&self, job: &(String, String), chunk: &pb::LogChunk) {
        let stderr = chunk.stream == pb::Stream::Stderr as i32;
        if !self.json && !self.prefix {
            // One node, text: the bytes as the job wrote them.
            let _ = if stderr {
                let mut e = std::io::stderr().lock();
                e.write_all(&chunk.data).and_then(|()| e.flush())
            } else {
                let mut o = std::io::stdout().lock();
                o.write_all(&chunk.data).and_then(|()| o.flush())
            };
            return;
        }
        let lines = {
            let mut partial = self.partial.lock().unwrap_or_else(PoisonError::into_inner);
            let buf = partial
                .entry((job.0.clone(), chunk.step, chunk.stream))
                .or_default();
            buf.extend_from_slice(&chunk.data);
            let mut lines = Vec::new();
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let rest = buf.split_off(nl + 1);
                let mut line = std::mem::replace(buf, rest);
                line.pop();
                lines.push(line);
            }
            lines
        };
        for line in lines {
            self.line(job, chunk.step, stderr, &line);
        }
    }

    fn line(&self, job: &(String, String), step: u32, stderr: bool, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        if self.json {
            Self::json_line(&Line::Log {
                schema: SCHEMA,
                job_id: &job.0,
                node_name: &job.1,
                step,
                stream: if stderr { "stderr" } else { "stdout" },
                line: text.into_owned(),
            });
        } else if stderr {
            super::output::note(&format!("{}: {text}", job.1));
        } else {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{}: {text}", job.1);
        }
    }

    /// Prints what is left of step `step`'s unfinished lines.
    fn flush_step(&self, job: &(String, String), step: u32) {
        let left: Vec<_> = {
            let mut partial = self.partial.lock().unwrap_or_else(PoisonError::into_inner);
            [pb::Stream::Stdout as i32, pb::Stream::Stderr as i32]
                .into_iter()
                .filter_map(|s| {
                    partial
                        .remove(&(job.0.clone(), step, s))
                        .filter(|b| !b.is_empty())
                        .map(|b| (s, b))
                })
                .collect()
        };
        for (s, b) in left {
            self.line(job, step, s == pb::Stream::Stderr as i32, &b);
        }
    }
}
