//! Fault suite on a real multi-host network: 8 `gsp node`s, each in its own
//! network namespace (`scripts/netns-cluster.sh`), with SIGKILL, a partition
//! that heals, and packet loss. The assertions are the membership layer's
//! promises on a real network: a dead node is found dead within a few rounds,
//! a partition never gets a node on the healthy side declared dead and heals
//! into a quiet cluster, and 20% loss makes nodes suspect each other rarely and
//! never dead while a broadcast still reaches everyone.
//!
//! Needs root, `ip netns`, iptables (with the `statistic` match) and tc. Where
//! they are missing, each test prints `netns fault suite SKIPPED: <reason>` and
//! passes, unless `GSP_NETNS_REQUIRED=1` (as CI sets it), which turns the skip
//! into a failure. `GSP_NETNS=0` disables the suite (still a failure under
//! `GSP_NETNS_REQUIRED=1`).
//!
//! Run: `cargo test --release --test netns_faults -- --nocapture --test-threads 1`.
//! The tests take the machine's network namespaces in turns (a static lock),
//! each with its own cluster (prefix `gspt<pid>`, subnet 10.78.0.0/24, state in
//! a temporary directory) that a drop guard tears down, also when an assertion
//! fails; the script's watchdog removes it after 15 minutes whatever happens.
//! Measured figures are printed to stderr as `netns figure: ...` lines.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
#![allow(
    clippy::print_stderr,
    reason = "the suite reports its figures and skips on stderr"
)]

use std::{
    collections::BTreeMap,
    process::{Output, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

#[path = "common/netns.rs"]
mod netns;

use netns::{
    CONV_LIMIT, Cluster, Event, HOSTS, LOSS_SECS, MAX_SUSPECT_PER_MIN, ROUND, begin, count,
    never_cut, pairs, rounded, text,
};

// ------------------------------------------------------------------ tests

/// SIGKILL h5: every other node lists it dead within 8 rounds (1.6 s) plus
/// measuring slack, and nobody else is ever declared dead.
#[test]
fn kill_9_is_detected_by_all() {
    let Some(_lock) = begin("kill_9_is_detected_by_all") else {
        return;
    };
    let c = Cluster::up();
    let others: Vec<usize> = (0..HOSTS).filter(|&i| i != 5).collect();
    let t0 = Instant::now();
    c.script(&["kill", "5"]);
    let mut seen_dead: BTreeMap<usize, f64> = BTreeMap::new();
    let mut others_dead = Vec::new();
    while seen_dead.len() < others.len() && t0.elapsed() < Duration::from_secs(15) {
        for (i, v) in others.iter().zip(c.views(&others)) {
            let Some(v) = v else { continue };
            if v.get("h5").is_some_and(|s| s == "dead") {
                seen_dead
                    .entry(*i)
                    .or_insert_with(|| t0.elapsed().as_secs_f64());
            }
            for (name, state) in &v {
                if name != "h5" && state == "dead" {
                    others_dead.push(format!("h{i} lists {name} dead"));
                }
            }
        }
        sleep(Duration::from_millis(50));
    }
    let last = seen_dead.values().copied().fold(0.0, f64::max);
    eprintln!(
        "netns figure: kill -9 h5: all {} others list it dead after {last:.2} s (poll; {:.1} rounds); per host {seen_dead:?}",
        seen_dead.len(),
        last / ROUND
    );
    sleep(Duration::from_secs(1));
    let events = c.events(&vec![0; HOSTS], None);
    let false_dead: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "dead" && e.subject != "h5")
        .collect();
    eprintln!(
        "netns figure: kill -9 h5: dead events about other hosts since start: {}",
        false_dead.len()
    );
    assert_eq!(
        seen_dead.len(),
        others.len(),
        "only {seen_dead:?} listed h5 dead within 15 s"
    );
    assert!(
        last <= 4.0,
        "h5 was listed dead by all only after {last:.2} s (limit 4 s: 8 rounds of {ROUND} s plus slack)"
    );
    assert!(
        false_dead.is_empty() && others_dead.is_empty(),
        "hosts other than h5 were declared dead: {} {others_dead:?}",
        pairs(false_dead.iter().copied())
    );
}

/// Cut h5-h7 off for `cut`, heal, and check that the healthy side (h0-h4)
/// never declared one of its own dead, that the cluster converges within
/// `conv_limit` of the heal and then stays quiet for `observe`.
fn partition_heals(cut: Duration, conv_limit: Duration, observe: Duration) {
    let c = Cluster::up();
    let label = format!("cut h5-h7 for {} s", cut.as_secs());
    let m_cut = c.marks();
    c.script(&["cut", "5,6,7"]);
    sleep(cut);
    // the cut took: h0 no longer sees h5 alive
    let h0 = c.views(&[0]).pop().flatten();
    let h5_from_h0 = h0.as_ref().and_then(|v| v.get("h5").cloned());
    let m_heal = c.marks();
    c.script(&["heal", "5,6,7"]);
    let t_heal = Instant::now();
    let conv = c.wait_converged(conv_limit + Duration::from_secs(20));
    let m_conv = c.marks();
    let mut polls = 0;
    let mut not_converged = 0;
    if conv.is_some() {
        let t = Instant::now();
        while t.elapsed() < observe {
            sleep(Duration::from_secs(2));
            polls += 1;
            if !c.converged() {
                not_converged += 1;
            }
        }
    }
    let m_end = c.marks();

    let during = c.events(&m_cut, Some(&m_heal));
    let healing = c.events(&m_heal, Some(&m_conv));
    let after = c.events(&m_conv, Some(&m_end));
    let all = c.events(&m_cut, Some(&m_end));
    let false_dead: Vec<&Event> = all
        .iter()
        .filter(|e| e.kind == "dead" && never_cut(&e.subject) && e.observer < 5)
        .collect();
    eprintln!(
        "netns figure: {label}: at the end of the cut h0 saw h5 as {h5_from_h0:?}; \
         dead about h5-h7 by h0-h4 during the cut: {}",
        count(&during, "dead", |e| e.observer < 5
            && !never_cut(&e.subject))
    );
    match conv {
        Some(d) => eprintln!(
            "netns figure: {label}: all 8 see 8 alive {:.2} s after the heal ({:.0} rounds; limit {} s)",
            d.as_secs_f64(),
            d.as_secs_f64() / ROUND,
            conv_limit.as_secs()
        ),
        None => eprintln!(
            "netns figure: {label}: NOT converged {:.0} s after the heal",
            t_heal.elapsed().as_secs_f64()
        ),
    }
    for (phase, ev) in [
        ("cut", &during),
        ("heal→converged", &healing),
        ("after converged", &after),
    ] {
        eprintln!(
            "netns figure: {label}: {phase}: suspect {}, alive_again {}, dead {} (about h0-h4 by h0-h4: {})",
            count(ev, "suspect", |_| true),
            count(ev, "alive_again", |_| true),
            count(ev, "dead", |_| true),
            count(ev, "dead", |e| e.observer < 5 && never_cut(&e.subject)),
        );
    }
    eprintln!(
        "netns figure: {label}: dead about h0-h4 logged by h0-h4 from the cut on: {} [{}]",
        false_dead.len(),
        pairs(false_dead.iter().copied())
    );
    let after_suspects: Vec<&Event> = after.iter().filter(|e| e.kind == "suspect").collect();
    eprintln!(
        "netns figure: {label}: {:.0} s observed after convergence: {} suspect events [{}]; \
         {not_converged} of {polls} polls not converged",
        observe.as_secs_f64(),
        after_suspects.len(),
        pairs(after_suspects.iter().copied())
    );

    assert!(
        h5_from_h0.as_deref() != Some("alive"),
        "the cut did not take: h0 still saw h5 alive at the end of it"
    );
    let conv = conv.unwrap_or_else(|| panic!("{label}: not converged after the heal"));
    assert!(
        conv <= conv_limit,
        "{label}: converged {:.2} s after the heal, limit {} s",
        conv.as_secs_f64(),
        conv_limit.as_secs()
    );
    assert!(
        false_dead.is_empty(),
        "{label}: nodes that were never cut declared each other dead: {}",
        pairs(false_dead.iter().copied())
    );
    assert!(
        after_suspects.is_empty(),
        "{label}: {} suspect events in the {} s after convergence: {}",
        after_suspects.len(),
        observe.as_secs(),
        pairs(after_suspects.iter().copied())
    );
}

#[test]
fn partition_of_3_heals_without_false_deaths_10s() {
    let Some(_lock) = begin("partition_of_3_heals_without_false_deaths_10s") else {
        return;
    };
    partition_heals(Duration::from_secs(10), CONV_LIMIT, Duration::from_secs(30));
}

#[test]
fn partition_of_3_heals_without_false_deaths_60s() {
    let Some(_lock) = begin("partition_of_3_heals_without_false_deaths_60s") else {
        return;
    };
    partition_heals(Duration::from_secs(60), CONV_LIMIT, Duration::from_secs(60));
}

/// 20% of packets dropped on arrival at every host for 60 s: nobody is
/// declared dead, suspicions stay rare (at most 24 per node per minute), and a
/// broadcast sent during the loss reaches all 8.
#[test]
fn loss_20_percent_no_deaths_and_a_broadcast_converges() {
    let Some(_lock) = begin("loss_20_percent_no_deaths_and_a_broadcast_converges") else {
        return;
    };
    let c = Cluster::up();
    let m0 = c.marks();
    let t0 = Instant::now();
    c.script(&["loss", "20"]);
    let mut min_alive = HOSTS;
    let mut polls = 0;
    let mut send = None;
    while t0.elapsed() < Duration::from_secs(LOSS_SECS) {
        sleep(Duration::from_secs(5));
        if send.is_none() && t0.elapsed() >= Duration::from_secs(10) {
            let h0 = Cluster::ip(0);
            send = Some(
                c.command(&[
                    "exec",
                    "0",
                    "gsp",
                    "send",
                    "--addr",
                    &format!("{h0}:50005"),
                    "-m",
                    "hello",
                    "--timeout",
                    "30",
                    "--json",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
            );
        }
        for v in c.views(&Cluster::all_hosts()) {
            let alive = v.map_or(0, |v| v.values().filter(|s| *s == "alive").count());
            min_alive = min_alive.min(alive);
        }
        polls += 1;
    }
    let m1 = c.marks();
    let lossy = t0.elapsed().as_secs_f64();
    c.script(&["loss", "0"]);
    let conv = c.wait_converged(Duration::from_secs(15));
    let send: Output = send.expect("sent").wait_with_output().unwrap();

    let events = c.events(&m0, Some(&m1));
    let dead: Vec<&Event> = events.iter().filter(|e| e.kind == "dead").collect();
    let per_min: Vec<f64> = (0..HOSTS)
        .map(|i| count(&events, "suspect", |e| e.observer == i) as f64 * 60.0 / lossy)
        .collect();
    let worst = per_min.iter().copied().fold(0.0, f64::max);
    let mean = per_min.iter().sum::<f64>() / HOSTS as f64;
    eprintln!(
        "netns figure: loss 20% for {lossy:.1} s: suspect per node per minute max {worst:.1}, mean {mean:.1} \
         (limit {MAX_SUSPECT_PER_MIN}); per host {}",
        rounded(&per_min)
    );
    eprintln!(
        "netns figure: loss 20%: dead {}, alive_again {}; fewest alive in any view {min_alive} of 8 over {polls} polls; \
         converged {:?} after loss 0",
        dead.len(),
        count(&events, "alive_again", |_| true),
        conv.map(|d| format!("{:.2} s", d.as_secs_f64()))
    );
    let report: serde_json::Value = serde_json::from_slice(&send.stdout).unwrap_or_default();
    eprintln!(
        "netns figure: loss 20%: gsp send from h0: {}, expected {}, acked {}, converged {}, convergence_ms {}, missing {}",
        send.status,
        report["expected"],
        report["acked"],
        report["converged"],
        report["convergence_ms"],
        report["missing"]
    );

    assert!(
        dead.is_empty(),
        "20% loss got nodes declared dead: {}",
        pairs(dead.iter().copied())
    );
    assert!(
        worst <= MAX_SUSPECT_PER_MIN,
        "20% loss: up to {worst:.1} suspect events per node per minute (limit {MAX_SUSPECT_PER_MIN}): {}",
        rounded(&per_min)
    );
    assert!(
        report["converged"] == true && report["expected"] == HOSTS && report["acked"] == HOSTS,
        "the broadcast sent during 20% loss did not reach all 8 ({}): {}{}",
        send.status,
        text(&send.stdout),
        text(&send.stderr)
    );
    assert!(
        conv.is_some(),
        "not converged within 15 s after the loss stopped"
    );
}

/// Sums `metric` (a sample's full name, labels included) over `hosts`' side
/// ports, read with curl inside each host's namespace.
fn metric_sum(c: &Cluster, hosts: &[usize], metric: &str) -> u64 {
    hosts
        .iter()
        .map(|&i| {
            let url = format!("http://{}:50080/metrics", Cluster::ip(i));
            let out = c
                .command(&[
                    "exec",
                    &i.to_string(),
                    "curl",
                    "-s",
                    "--max-time",
                    "2",
                    &url,
                ])
                .output()
                .unwrap();
            // Counters are whole numbers, written as such.
            text(&out.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix(metric))
                .filter_map(|rest| rest.trim().parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// One `gsp send` of `file` from h0; its report.
fn send_file(c: &Cluster, file: &str) -> serde_json::Value {
    let out = c
        .command(&[
            "exec",
            "0",
            "gsp",
            "send",
            "--addr",
            &format!("{}:50005", Cluster::ip(0)),
            "--file",
            file,
            "--timeout",
            "60",
            "--json",
        ])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("gsp send: {e}: {}{}", text(&out.stdout), text(&out.stderr)))
}

/// The last receipt's latency in a `gsp send` report, milliseconds.
fn last_ack_ms(report: &serde_json::Value) -> f64 {
    report["acks"].as_array().map_or(0.0, |a| {
        a.iter()
            .filter_map(|x| x["latency_ms"].as_f64())
            .fold(0.0, f64::max)
    })
}

/// 16 MiB from h0 to 10 hosts shaped at 100 Mbit/s goes as a swarm (8 go
/// by direct push); h5 is killed half a second in. Every other host delivers it (the origin's
/// receipts), h5 is reported departed, and no assembly stalls into a whole
/// pull: the hosts below h5 fetch only the pieces it had not passed on. The
/// time against an undisturbed send is printed as a figure.
#[test]
fn a_relay_killed_mid_swarm_costs_only_the_pieces_it_held() {
    let Some(_lock) = begin("a_relay_killed_mid_swarm_costs_only_the_pieces_it_held") else {
        return;
    };
    let hosts = 10;
    let c = Cluster::up_n(hosts);
    let peers: serde_json::Value =
        serde_json::from_str(&c.script(&["peers", "0", "--json"])).unwrap();
    let h5 = peers["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node_name"] == "h5"))
        .and_then(|n| n["node_id"].as_str())
        .unwrap()
        .to_owned();
    c.script(&["shape", "100mbit"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload");
    let bytes: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&file, bytes).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let calm = send_file(&c, &file);
    assert_eq!(calm["converged"], true, "undisturbed send: {calm}");
    let live: Vec<usize> = (0..hosts).filter(|&i| i != 5).collect();
    let stalled0 = metric_sum(
        &c,
        &live,
        "gsp_broadcast_assemblies_total{outcome=\"stalled\"}",
    );
    let wanted0 = metric_sum(
        &c,
        &live,
        "gsp_broadcast_piece_wants_total{direction=\"sent\"}",
    );
    let killer = {
        let cmd = c.command(&["kill", "5"]);
        std::thread::spawn(move || {
            sleep(Duration::from_millis(500));
            let mut cmd = cmd;
            cmd.output().unwrap()
        })
    };
    let hit = send_file(&c, &file);
    killer.join().unwrap();
    let stalled = metric_sum(
        &c,
        &live,
        "gsp_broadcast_assemblies_total{outcome=\"stalled\"}",
    ) - stalled0;
    let wanted = metric_sum(
        &c,
        &live,
        "gsp_broadcast_piece_wants_total{direction=\"sent\"}",
    ) - wanted0;
    eprintln!(
        "netns figure: 16 MiB to 10 hosts at 100 Mbit/s: last receipt {:.0} ms undisturbed, {:.0} ms with h5 killed 0.5 s in ({:.2}x); pieces wanted {wanted0} undisturbed, {wanted} after the kill; assemblies stalled {stalled}",
        last_ack_ms(&calm),
        last_ack_ms(&hit),
        last_ack_ms(&hit) / last_ack_ms(&calm).max(1.0)
    );
    let departed: Vec<&str> = hit["departed"]
        .as_array()
        .map(|d| d.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(departed, [h5.as_str()], "h5 is reported departed: {hit}");
    assert_eq!(hit["acked"], hosts - 1, "every live host delivered: {hit}");
    assert!(
        hit["missing"].as_array().is_some_and(Vec::is_empty),
        "{hit}"
    );
    assert_eq!(stalled, 0, "an assembly stalled into a whole pull: {hit}");
}
