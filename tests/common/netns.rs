//! The fault suite's harness: skipping where namespaces cannot be made, a
//! cluster from `scripts/netns-cluster.sh` torn down on drop, views polled
//! with `gsp peers`, and membership events read back from the node logs.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Mutex, MutexGuard, OnceLock, PoisonError},
    thread::sleep,
    time::{Duration, Instant},
};

pub(crate) const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/netns-cluster.sh");
pub(crate) const GSP: &str = env!("CARGO_BIN_EXE_gsp");
pub(crate) const SUBNET: &str = "10.78.0";
/// The watchdog's TTL: the cluster goes away after this even if the test
/// process is killed.
pub(crate) const TTL_SECS: &str = "900";
pub(crate) const HOSTS: usize = 8;
/// Gossip round, seconds; every scenario runs with `--gossip-interval 0.2`.
pub(crate) const ROUND: f64 = 0.2;

/// How long the loss test drops packets.
pub(crate) const LOSS_SECS: u64 = 60;
/// Suspicions per node per minute allowed under 20% loss (the old build: ~120).
pub(crate) const MAX_SUSPECT_PER_MIN: f64 = 24.0;
/// Limit from the heal to every node seeing all 8 alive: 25 rounds. The
/// target is 10 rounds; measured (release, polling every 0.25 s included):
/// 2 rounds after a 10 s cut and after a 60 s cut. The margin is for debug
/// builds on a loaded CI machine, not for slow healing.
pub(crate) const CONV_LIMIT: Duration = Duration::from_secs(5);

/// One cluster at a time on this machine.
pub(crate) static LOCK: Mutex<()> = Mutex::new(());

// ------------------------------------------------------------------ skipping

pub(crate) fn required() -> bool {
    std::env::var("GSP_NETNS_REQUIRED").is_ok_and(|v| v == "1")
}

/// Takes the suite's lock, or returns `None` after printing why the suite is
/// skipped (a panic instead under `GSP_NETNS_REQUIRED=1`).
pub(crate) fn begin(test: &str) -> Option<MutexGuard<'static, ()>> {
    let guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(reason) = skip_reason() {
        assert!(
            !required(),
            "netns fault suite cannot run ({test}) and GSP_NETNS_REQUIRED=1: {reason}"
        );
        eprintln!("netns fault suite SKIPPED: {reason} ({test})");
        return None;
    }
    eprintln!("netns fault suite: running {test}");
    Some(guard)
}

/// Why the suite cannot run here, checked once per process.
pub(crate) fn skip_reason() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON.get_or_init(probe).clone()
}

pub(crate) fn probe() -> Option<String> {
    if std::env::var("GSP_NETNS").is_ok_and(|v| v == "0") {
        return Some("disabled by GSP_NETNS=0".to_owned());
    }
    if !cfg!(target_os = "linux") {
        return Some("network namespaces need Linux".to_owned());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Some(format!(
            "not root (effective uid {euid}); network namespaces need root"
        ));
    }
    for (tool, args) in [
        ("ip", &["-V"][..]),
        ("iptables", &["--version"][..]),
        ("tc", &["-V"][..]),
    ] {
        match Command::new(tool).args(args).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Some(format!(
                    "`{tool} {}` failed: {}",
                    args.join(" "),
                    text(&o.stderr)
                ));
            }
            Err(e) => return Some(format!("{tool} is missing ({e})")),
        }
    }
    // A probe namespace: can we create one, and do iptables (with the
    // statistic match that `loss` uses) and tc work inside it?
    let ns = format!("{}-probe", prefix());
    let _ = Command::new("ip").args(["netns", "delete", &ns]).output();
    let add = Command::new("ip").args(["netns", "add", &ns]).output();
    match add {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Some(format!("`ip netns add {ns}` failed: {}", text(&o.stderr))),
        Err(e) => return Some(format!("cannot run ip ({e})")),
    }
    let in_ns = |args: &[&str]| -> Result<(), String> {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{}` in a namespace failed: {}",
                args.join(" "),
                text(&o.stderr)
            ))
        }
    };
    let checks = in_ns(&["iptables", "-w", "-N", "GSP_PROBE"])
        .and_then(|()| {
            in_ns(&[
                "iptables",
                "-w",
                "-A",
                "GSP_PROBE",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                "0.2",
                "-j",
                "DROP",
            ])
        })
        .and_then(|()| in_ns(&["tc", "qdisc", "show"]));
    let _ = Command::new("ip").args(["netns", "delete", &ns]).output();
    checks.err()
}

pub(crate) fn prefix() -> String {
    // Namespace names only: the script's interfaces are v<i>, eth0 and br0.
    format!("gspt{}", std::process::id())
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_owned()
}

// ------------------------------------------------------------------ cluster

/// A cluster brought up by the script; dropping it runs `down --purge`.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    logs: Vec<PathBuf>,
    hosts: usize,
}

/// Byte offset of each host's log: a phase boundary.
pub(crate) type Marks = Vec<u64>;

/// One `membership changed` line.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) observer: usize,
    pub(crate) subject: String,
    pub(crate) kind: String,
}

impl Cluster {
    /// `up 8 -- --gossip-interval 0.2`, then waits until every node sees all
    /// 8 alive.
    pub(crate) fn up() -> Self {
        Self::up_n(HOSTS)
    }

    /// [`Self::up`] with `hosts` hosts.
    pub(crate) fn up_n(hosts: usize) -> Self {
        let mut c = Self {
            dir: tempfile::tempdir().unwrap(),
            logs: Vec::new(),
            hosts,
        };
        c.script(&["down", "--purge"]);
        c.script(&[
            "up",
            &hosts.to_string(),
            "--",
            "--gossip-interval",
            &ROUND.to_string(),
        ]);
        c.logs = (0..hosts)
            .map(|i| PathBuf::from(c.script(&["log", &i.to_string()]).trim()))
            .collect();
        let t = Instant::now();
        let converged = c.wait_converged(Duration::from_secs(30));
        assert!(
            converged.is_some(),
            "a fresh cluster did not converge within 30 s"
        );
        eprintln!(
            "netns figure: fresh cluster converged {:.2} s after up returned",
            t.elapsed().as_secs_f64()
        );
        c
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(SCRIPT);
        cmd.args(args)
            .env("GSP_BIN", GSP)
            .env("GSP_NETNS_PREFIX", prefix())
            .env("GSP_NETNS_DIR", self.dir.path().join("cluster"))
            .env("GSP_NETNS_SUBNET", SUBNET)
            .env("GSP_NETNS_TTL", TTL_SECS)
            // the nodes' default log filter: membership changes at INFO and WARN
            .env_remove("GSP_LOG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the script to success and returns its stdout.
    pub(crate) fn script(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "netns-cluster.sh {args:?} failed ({}): {}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    pub(crate) fn ip(i: usize) -> String {
        format!("{SUBNET}.{}", 10 + i)
    }

    /// Each host's view (member name → state), `None` for a host that did not
    /// answer; all hosts asked at once.
    pub(crate) fn views(&self, hosts: &[usize]) -> Vec<Option<BTreeMap<String, String>>> {
        let children: Vec<_> = hosts
            .iter()
            .map(|i| {
                self.command(&["peers", &i.to_string(), "--json", "--timeout", "1"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().unwrap();
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
                let mut view = BTreeMap::new();
                for n in v["nodes"].as_array()? {
                    let name = n["node_name"].as_str()?.to_owned();
                    let state = n["state"].as_str()?.to_owned();
                    // a name listed twice counts as alive if any entry is
                    let e = view.entry(name).or_insert_with(|| state.clone());
                    if state == "alive" {
                        *e = state;
                    }
                }
                Some(view)
            })
            .collect()
    }

    pub(crate) fn all_hosts() -> Vec<usize> {
        (0..HOSTS).collect()
    }

    /// Whether every host sees every host alive.
    pub(crate) fn converged(&self) -> bool {
        let all: Vec<usize> = (0..self.hosts).collect();
        self.views(&all).iter().all(|v| {
            v.as_ref().is_some_and(|v| {
                (0..self.hosts).all(|h| v.get(&format!("h{h}")).is_some_and(|s| s == "alive"))
            })
        })
    }

    /// Polls (about every 0.25 s) until converged; the time it took.
    pub(crate) fn wait_converged(&self, limit: Duration) -> Option<Duration> {
        let t = Instant::now();
        loop {
            if self.converged() {
                return Some(t.elapsed());
            }
            if t.elapsed() > limit {
                return None;
            }
            sleep(Duration::from_millis(250));
        }
    }

    pub(crate) fn marks(&self) -> Marks {
        self.logs
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .collect()
    }

    /// The membership events each host logged between two marks (lines that
    /// start at or after `from` and before `to`; `to` `None`: the end).
    pub(crate) fn events(&self, from: &Marks, to: Option<&Marks>) -> Vec<Event> {
        let mut out = Vec::new();
        for (i, path) in self.logs.iter().enumerate() {
            let bytes = std::fs::read(path).unwrap_or_default();
            let end = to.map_or(u64::MAX, |t| t[i]);
            let mut start = 0_u64;
            for line in bytes.split_inclusive(|b| *b == b'\n') {
                let here = start;
                start += line.len() as u64;
                if here < from[i] || here >= end || !line.ends_with(b"\n") {
                    continue;
                }
                if let Some((subject, kind)) = parse_event(&String::from_utf8_lossy(line)) {
                    out.push(Event {
                        observer: i,
                        subject,
                        kind,
                    });
                }
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        match self.command(&["down", "--purge"]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("netns-cluster.sh down --purge failed: {}", text(&o.stderr)),
            Err(e) => eprintln!("netns-cluster.sh down --purge: {e}"),
        }
    }
}

/// `(subject, event)` of a `membership changed ... name=hX ... event="kind"` line.
pub(crate) fn parse_event(line: &str) -> Option<(String, String)> {
    if !line.contains("membership changed") {
        return None;
    }
    let mut words = line.split_whitespace();
    let subject = words.clone().find_map(|w| w.strip_prefix("name="))?;
    let kind = words
        .find_map(|w| w.strip_prefix("event="))?
        .trim_matches('"');
    Some((subject.to_owned(), kind.to_owned()))
}

pub(crate) fn count(events: &[Event], kind: &str, pred: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| e.kind == kind && pred(e)).count()
}

/// `hO→hS xN` pairs, for messages.
pub(crate) fn pairs<'a>(events: impl IntoIterator<Item = &'a Event>) -> String {
    let mut m: BTreeMap<(usize, &str), usize> = BTreeMap::new();
    for e in events {
        *m.entry((e.observer, e.subject.as_str())).or_default() += 1;
    }
    let mut s = String::new();
    for ((o, subj), n) in m {
        let _ = write!(s, "h{o}→{subj} x{n}, ");
    }
    s.trim_end_matches(", ").to_owned()
}

/// Per-host rates to one decimal, for messages.
pub(crate) fn rounded(xs: &[f64]) -> String {
    let parts: Vec<String> = xs.iter().map(|x| format!("{x:.1}")).collect();
    format!("[{}]", parts.join(", "))
}

/// h0-h4: the hosts the partition tests never cut off.
pub(crate) fn never_cut(name: &str) -> bool {
    name.strip_prefix('h')
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i < 5)
}
