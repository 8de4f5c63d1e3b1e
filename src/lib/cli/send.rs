//! `gsp send`: broadcasts a payload to every live member of the node's domain and
//! reports, per member, that it was delivered.

use std::{
    fmt::Write as _,
    io::{IsTerminal as _, Read as _},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context as _;
use serde::Serialize;
use tokio_stream::StreamExt as _;

use super::{
    GlobalArgs, client,
    exit::{ExitStatus, Unreachable, UsageError},
    output, parse,
};
use crate::{core::units::HumanBytes, transport::pb::admin::v1 as pb};

/// Schema of `gsp send --json`.
pub const SCHEMA: &str = "gsp.send.v1";
/// Default time to wait for receipts.
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time the client waits beyond the node's own deadline.
const SLACK: Duration = Duration::from_secs(5);

/// What to wait for before exiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Every expected member (or the timeout).
    All,
    /// Nothing: exit once the node accepted the message.
    None,
    /// This many members.
    Count(usize),
}

fn parse_wait(s: &str) -> Result<Wait, String> {
    match s {
        "all" => Ok(Wait::All),
        "none" => Ok(Wait::None),
        n => n
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .map(Wait::Count)
            .ok_or_else(|| {
                format!("expected all, none or a member count of at least 1, got '{s}'")
            }),
    }
}

/// Arguments of `gsp send`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp send -m 'deploy v42' --topic deploy     # every live member; exit 1 if not all delivered in time
  gsp send --file build.tar --json | jq '{acked, expected, convergence_ms}'
  echo hi | gsp send -f - --wait none         # do not wait for receipts")]
#[command(group(clap::ArgGroup::new("source").required(true).args(["message", "file", "input"])))]
pub(crate) struct SendArgs {
    /// The payload, as text.
    #[arg(long, short, value_name = "TEXT")]
    message: Option<String>,
    /// Read the payload from a file (`-`: stdin).
    #[arg(long, short, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Same as --file: a path, or `-` for stdin.
    #[arg(value_name = "FILE")]
    input: Option<PathBuf>,
    /// Topic, for `gsp watch --messages --topic` and on-message commands.
    #[arg(long, default_value = "")]
    topic: String,
    /// Hop limit [default: the node's, 16].
    #[arg(long, value_name = "N")]
    ttl: Option<u32>,
    /// Exit when all expected members delivered, at once (`none`), or after N.
    #[arg(long, default_value = "all", value_name = "all|none|N", value_parser = parse_wait)]
    wait: Wait,
    /// Refuse payloads larger than this before sending anything; the node has
    /// its own cap (`gsp node --max-payload`).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse::size)]
    max_payload: u64,
}

#[derive(Serialize)]
struct AckJson {
    node_id: String,
    node_name: String,
    latency_ms: f64,
}

/// A member named in a report, by id and name.
#[derive(Serialize)]
struct MemberJson {
    node_id: String,
    node_name: String,
}

#[derive(Serialize)]
struct SendJson {
    schema: &'static str,
    message_id: String,
    topic: String,
    payload_bytes: u64,
    expected: usize,
    acked: usize,
    converged: bool,
    convergence_ms: Option<f64>,
    acks: Vec<AckJson>,
    /// Ids of the members that never confirmed.
    missing: Vec<String>,
    /// Ids of the members that died or left meanwhile.
    departed: Vec<String>,
    /// Ids of up members not sent to: they are disabled and refuse payloads.
    disabled: Vec<String>,
    /// `missing`, `departed` and `disabled` with each member's name.
    missing_members: Vec<MemberJson>,
    departed_members: Vec<MemberJson>,
    disabled_members: Vec<MemberJson>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Reads the payload, refusing more than `max` bytes.
fn payload(args: &SendArgs) -> anyhow::Result<Vec<u8>> {
    let too_large = |len: u64| {
        UsageError(format!(
            "payload of {} ({len} bytes) exceeds --max-payload of {}; raise --max-payload \
             (and the node's) to send it",
            HumanBytes(len),
            HumanBytes(args.max_payload)
        ))
    };
    if let Some(text) = &args.message {
        let len = text.len() as u64;
        if len > args.max_payload {
            return Err(too_large(len).into());
        }
        return Ok(text.clone().into_bytes());
    }
    let path = args
        .file
        .as_ref()
        .or(args.input.as_ref())
        .ok_or_else(|| UsageError("nothing to send".to_owned()))?;
    let limit = args.max_payload.saturating_add(1);
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        if std::io::stdin().is_terminal() {
            return Err(UsageError(
                "reading the payload from stdin, which is a terminal; pipe something in".to_owned(),
            )
            .into());
        }
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut buf)
            .context("cannot read the payload from stdin")?;
    } else {
        let f = std::fs::File::open(path)
            .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
        if let Ok(meta) = f.metadata()
            && meta.is_file()
            && meta.len() > args.max_payload
        {
            return Err(too_large(meta.len()).into());
        }
        f.take(limit)
            .read_to_end(&mut buf)
            .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
    }
    if buf.len() as u64 > args.max_payload {
        return Err(too_large(buf.len() as u64).into());
    }
    Ok(buf)
}

pub(crate) async fn run(args: SendArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let body = payload(&args)?;
    let payload_bytes = body.len() as u64;
    let timeout = global.timeout.unwrap_or(DEFAULT_SEND_TIMEOUT);
    let request = pb::SendRequest {
        payload: body.into(),
        topic: args.topic.clone(),
        ttl: args.ttl,
        timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
    };
    let mut admin = client::admin(&global).await?.max_encoding_message_size(
        usize::try_from(payload_bytes).unwrap_or(usize::MAX) + (1 << 20),
    );
    let deadline = tokio::time::Instant::now() + timeout + SLACK;
    let mut stream = tokio::time::timeout_at(deadline, admin.send(request))
        .await
        .map_err(|_| {
            client::call_failed(&global.addr, tonic::Status::deadline_exceeded("no answer"))
        })?
        .map_err(|s| {
            if s.code() == tonic::Code::OutOfRange {
                // tonic's decode limit: the payload is over the node's cap.
                return UsageError(format!(
                    "payload of {} is larger than the node at {} accepts ({}); raise its \
                     --max-payload",
                    HumanBytes(payload_bytes),
                    global.addr,
                    s.message()
                ))
                .into();
            }
            // The node answered and refused (disabled, stopping, too many
            // broadcasts in flight): it cannot take this one (exit 3). A
            // transport failure carries its cause as the status's source.
            let answered = std::error::Error::source(&s).is_none();
            if s.code() == tonic::Code::ResourceExhausted
                || s.code() == tonic::Code::Unavailable && answered
            {
                return Unreachable(format!(
                    "the node at {} refused the broadcast: {}",
                    global.addr,
                    s.message()
                ))
                .into();
            }
            client::call_failed(&global.addr, s)
        })?
        .into_inner();
    let mut report = SendJson {
        schema: SCHEMA,
        message_id: String::new(),
        topic: args.topic.clone(),
        payload_bytes,
        expected: 0,
        acked: 0,
        converged: false,
        convergence_ms: None,
        acks: Vec::new(),
        missing: Vec::new(),
        departed: Vec::new(),
        disabled: Vec::new(),
        missing_members: Vec::new(),
        departed_members: Vec::new(),
        disabled_members: Vec::new(),
    };
    let mut expected: Vec<String> = Vec::new();
    let bar = progress_bar(global.json);
    let mut finished = false;
    let mut wait = args.wait;
    loop {
        let item = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(item)) => item.map_err(|s| client::call_failed(&global.addr, s))?,
            Ok(None) | Err(_) => break,
        };
        match item.kind {
            Some(pb::send_progress::Kind::Started(s)) => {
                report.message_id = crate::core::ids::MessageId::from_slice(&s.message_id)
                    .map(|id| id.to_string())
                    .unwrap_or_default();
                report.expected = s.expected.len();
                report.disabled = s.disabled;
                expected = s.expected;
                if let Some(b) = &bar {
                    b.set_length(report.expected as u64);
                }
                if let Wait::Count(n) = wait
                    && n > report.expected
                {
                    // More acks than there are live members can never come:
                    // wait for every one of them instead, and say so.
                    output::note(&format!(
                        "note: --wait {n} is more than the {} live members; waiting for all of them",
                        report.expected
                    ));
                    wait = Wait::All;
                }
                if wait == Wait::None {
                    break;
                }
            }
            Some(pb::send_progress::Kind::Ack(a)) => {
                report.acks.push(AckJson {
                    node_id: a.node_id,
                    node_name: String::new(),
                    latency_ms: ms(a.latency_us),
                });
                report.acked = report.acks.len();
                if let Some(b) = &bar {
                    b.set_position(report.acked as u64);
                }
                if let Wait::Count(n) = wait
                    && report.acked >= n
                {
                    break;
                }
            }
            Some(pb::send_progress::Kind::Done(d)) => {
                report.converged = d.converged;
                if d.converged {
                    report.convergence_ms = Some(ms(d.elapsed_us));
                }
                report.missing = d.missing;
                report.departed = d.departed;
                finished = true;
                break;
            }
            None => {}
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if !finished {
        report.missing = expected
            .iter()
            .filter(|e| !report.acks.iter().any(|a| &a.node_id == *e))
            .cloned()
            .collect();
    }
    name_members(&mut report, &global).await;
    let status = match wait {
        Wait::None => ExitStatus::Success,
        Wait::All if report.converged => ExitStatus::Success,
        Wait::Count(n) if report.acked >= n => ExitStatus::Success,
        _ => ExitStatus::Negative,
    };
    if global.json {
        output::json(&report)?;
    } else {
        output::stdout(&human(&report, wait, finished, timeout))?;
    }
    Ok(status)
}

/// Fills in the names of the members the report names, from the node's
/// member list. Without it (the node stopped answering) the ids stand in for
/// the names.
async fn name_members(report: &mut SendJson, global: &GlobalArgs) {
    let members = crate::cli::run::place::members(global)
        .await
        .unwrap_or_default();
    let mut by_id = std::collections::HashMap::new();
    let mut named = std::collections::HashMap::<&str, usize>::new();
    for m in &members {
        *named.entry(m.record.name.as_str()).or_default() += 1;
    }
    for m in &members {
        // A name two members share is shown with the id.
        let name = if named.get(m.record.name.as_str()).copied().unwrap_or(0) > 1 {
            format!("{} ({})", m.record.name, m.record.id)
        } else {
            m.record.name.clone()
        };
        by_id.insert(m.record.id.to_string(), name);
    }
    let name = |id: &String| by_id.get(id).cloned().unwrap_or_else(|| id.clone());
    for a in &mut report.acks {
        a.node_name = name(&a.node_id);
    }
    let with_names = |ids: &[String]| {
        ids.iter()
            .map(|id| MemberJson {
                node_id: id.clone(),
                node_name: name(id),
            })
            .collect()
    };
    report.missing_members = with_names(&report.missing);
    report.departed_members = with_names(&report.departed);
    report.disabled_members = with_names(&report.disabled);
}

/// Names of `members`, comma-separated.
fn names(members: &[MemberJson]) -> String {
    members
        .iter()
        .map(|m| m.node_name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn progress_bar(json: bool) -> Option<indicatif::ProgressBar> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} acked {pos}/{len} {wide_bar}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    Some(bar)
}

fn human(r: &SendJson, wait: Wait, finished: bool, timeout: Duration) -> String {
    let size = HumanBytes(r.payload_bytes);
    let mut s = match (wait, finished) {
        (Wait::None, _) => format!(
            "message {} ({size}) accepted; {} live members expected\n",
            r.message_id, r.expected
        ),
        (_, true) if r.converged => format!(
            "acked by {}/{} live members in {:.0} ms (message {}, {size})\n",
            r.acked,
            r.expected,
            r.convergence_ms.unwrap_or_default(),
            r.message_id
        ),
        (Wait::Count(n), false) if r.acked >= n => format!(
            "acked by {}/{} live members (waited for {n}; message {}, {size})\n",
            r.acked, r.expected, r.message_id
        ),
        _ => format!(
            "NOT converged: acked by {}/{} live members within {:?} (message {}, {size})\n",
            r.acked, r.expected, timeout, r.message_id
        ),
    };
    if !r.missing.is_empty() && !(wait == Wait::None) {
        let _ = writeln!(s, "missing: {}", names(&r.missing_members));
    }
    if !r.disabled.is_empty() {
        let _ = writeln!(
            s,
            "not sent to {} (they refuse broadcasts): {}",
            output::count(r.disabled.len() as u64, "disabled member"),
            names(&r.disabled_members)
        );
    }
    if !r.departed.is_empty() {
        let _ = writeln!(
            s,
            "departed during the send: {}",
            names(&r.departed_members)
        );
    }
    s
}
