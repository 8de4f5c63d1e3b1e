//! `gsp bench`: the simulated swarm, the flood bench and its report, baseline
//! comparison, and the membership bench.

use serde_json::Value;

use super::LIMIT;
use crate::common::{gsp_bin, run_gsp, stderr};

#[test]
fn bench_sim_reports_a_swarm_broadcast_delivered_once_everywhere() {
    let out = run_gsp(
        &[
            "bench",
            "sim",
            "--nodes",
            "300",
            "--payload",
            "2MiB",
            "--dead",
            "10",
            "--json",
            "--no-write",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["results"];
    assert_eq!(v["scenario"]["name"], "sim");
    assert_eq!(r["live"], 290);
    assert_eq!(r["delivered"], 290);
    assert_eq!(r["extra_deliveries"], 0);
    assert_eq!(r["origin_bytes"], 2 << 20, "the origin uploads one copy");
    assert!(r["pieces"].as_u64().unwrap() > 1);
    assert!(r["ratio_to_floor"].as_f64().unwrap() > 1.0);
    let out = run_gsp(&["bench", "sim", "--link", "fast"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--link"), "{}", stderr(&out));
}

#[test]
fn shaped_broadcast_bench_refuses_bad_rates_and_other_scenarios() {
    let out = run_gsp(&["bench", "broadcast", "--shaped", "fast"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--shaped takes a link rate"),
        "{}",
        stderr(&out)
    );
    let out = run_gsp(&["bench", "flood", "--shaped", "1gbit"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--shaped applies to the broadcast scenario only"),
        "{}",
        stderr(&out)
    );
    let out = run_gsp(
        &["bench", "broadcast", "--shaped", "1gbit", "--nodes", "1"],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("at least 2 --nodes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn small_bench_reports_every_key_with_all_messages_acked() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let out = run_gsp(
        &[
            "bench",
            "--nodes",
            "2",
            "--messages-per-peer",
            "3",
            "--payload",
            "64KiB",
            "--iterations",
            "1",
            "--json",
            "--out",
            out_dir,
        ],
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["schema"], "gsp.bench.v1");
    let s = &r["scenario"];
    assert_eq!(s["name"], "flood");
    assert_eq!(s["nodes"], 2);
    assert_eq!(s["messages_per_peer"], 3);
    assert_eq!(s["payload_bytes"], 65536);
    assert_eq!(s["iterations"], 1);
    assert_eq!(s["warmup"], 1);
    let res = &r["results"];
    assert_eq!(res["messages_sent"], 6);
    assert_eq!(res["messages_acked"], res["messages_sent"]);
    assert_eq!(res["errors"], 0);
    for k in ["min", "p50", "p90", "p99", "p999", "max", "mean"] {
        assert!(
            res["ack_latency_ns"][k].as_f64().unwrap() > 0.0,
            "ack_latency_ns.{k}"
        );
    }
    for k in ["min", "p50", "max"] {
        assert!(
            res["convergence_ns"][k].as_u64().unwrap() > 0,
            "convergence_ns.{k}"
        );
    }
    for k in [
        "throughput_bytes_per_sec",
        "messages_per_sec",
        "cpu_seconds",
    ] {
        assert!(res[k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert!(res["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(res["allocations_per_message"].as_f64().unwrap() > 0.0);
    // Per-message costs, each with its spread over the iterations.
    let per = &res["per_message"];
    for k in ["cpu_ns", "allocations", "allocated_bytes", "write_syscalls"] {
        let s = &per[k];
        let (min, median, max) = (
            s["min"].as_f64().unwrap(),
            s["median"].as_f64().unwrap(),
            s["max"].as_f64().unwrap(),
        );
        assert!(
            min > 0.0 && min <= median && median <= max,
            "per_message.{k}: {s}"
        );
    }
    assert!(
        per["context_switches"]["median"].as_f64().is_some(),
        "{per}"
    );
    assert!(
        res["iterations"][0]["per_message"]["cpu_ns"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(!res["histogram"].as_str().unwrap().is_empty());
    assert!(
        r["baseline"]["tcp_throughput_bytes_per_sec"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(r["baseline"]["tcp_convergence_ns"].as_u64().unwrap() > 0);
    assert!(r["efficiency"].as_f64().unwrap() > 0.0);
    for k in ["gsp_version", "git_sha", "timestamp"] {
        assert!(r[k].is_string(), "{k}");
    }
    assert!(r["host"]["cores"].as_u64().unwrap() >= 1);
    assert!(r["host"]["kernel"].is_string());
    assert!(r["host"]["cpu_model"].is_string());

    // The same report was written to --out.
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
    let written: Value =
        serde_json::from_slice(&std::fs::read(files[0].as_ref().unwrap().path()).unwrap()).unwrap();
    assert_eq!(written["results"]["histogram"], r["results"]["histogram"]);
}

#[test]
fn compare_gives_three_verdicts_from_the_iterations_spread() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    let args = [
        "bench",
        "--nodes",
        "2",
        "--messages-per-peer",
        "2",
        "--payload",
        "16KiB",
        "--iterations",
        "3",
        "--no-write",
    ];
    let out = run_gsp(&[&args[..], &["--json"]].concat(), LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["results"]["iterations"].as_array().unwrap().len(), 3);

    // Sets every judged figure of every iteration: convergence (and raw
    // TCP's, hence efficiency), ACK p99 and the per-message costs.
    let judged = |report: &mut Value, conv_ns: u64, tcp_ns: u64, per_msg: f64| {
        for it in report["results"]["iterations"].as_array_mut().unwrap() {
            it["convergence_ns"] = conv_ns.into();
            it["tcp_convergence_ns"] = tcp_ns.into();
            it["ack_p99_ns"] = conv_ns.into();
            for k in [
                "cpu_ns",
                "allocations",
                "allocated_bytes",
                "write_syscalls",
                "context_switches",
            ] {
                it["per_message"][k] = per_msg.into();
            }
        }
    };
    // A baseline so good that no run can match it.
    judged(&mut report, 1, 3_600_000_000_000, 0.001);
    std::fs::write(&base, serde_json::to_vec(&report).unwrap()).unwrap();
    let out = run_gsp(
        &[&args[..], &["--compare", base.to_str().unwrap()]].concat(),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("REGRESSED") && text.contains("verdict: REGRESSED (exit 1)"),
        "{text}"
    );

    // A baseline so bad that every run beats it: every judged figure is set,
    // so no figure left as measured can fail the gate by chance.
    judged(&mut report, 3_600_000_000_000, 1, 1e12);
    std::fs::write(&base, serde_json::to_vec(&report).unwrap()).unwrap();
    let html = dir.path().join("report.html");
    let out = run_gsp(
        &[
            &args[..],
            &[
                "--compare",
                base.to_str().unwrap(),
                "--html",
                html.to_str().unwrap(),
            ],
        ]
        .concat(),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verdict: ok"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("Verdict: <span class=\"ok\">ok</span>"),
        "{page}"
    );
    assert_eq!(
        page.matches("<svg").count(),
        3,
        "histogram, CDF, convergence"
    );
    // With --json the verdict is in the document, one per figure; stderr
    // stays empty.
    let out = run_gsp(
        &[&args[..], &["--compare", base.to_str().unwrap(), "--json"]].concat(),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["comparison"];
    assert_eq!(c["regressed"], false, "{v}");
    assert_eq!(c["verdict"], "ok", "{c}");
    let rows = c["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8, "{c}");
    for r in rows {
        assert_eq!(r["verdict"], "ok", "{r}");
        assert_eq!(r["baseline_samples"], 3, "{r}");
        assert!(r["ci_low"].as_f64().unwrap() <= r["ci_high"].as_f64().unwrap());
    }
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    // One iteration a side cannot be judged: inconclusive, exit 0, and the
    // note says what it takes.
    let one = [&args[..8], &["1", "--no-write"]].concat();
    let out = run_gsp(
        &[&one[..], &["--compare", base.to_str().unwrap()]].concat(),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("verdict: inconclusive") && text.contains("at least 3 iterations"),
        "{text}"
    );

    // Another workload cannot be compared: a usage error naming both.
    let out = run_gsp(
        &[
            "bench",
            "--nodes",
            "3",
            "--messages-per-peer",
            "2",
            "--payload",
            "16KiB",
            "--iterations",
            "1",
            "--no-write",
            "--compare",
            base.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("2 nodes") && stderr(&out).contains("3 nodes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_peer_vanishing_mid_flood_ends_the_bench_with_a_clear_error() {
    let out = run_gsp(
        &[
            "bench",
            "--nodes",
            "3",
            "--messages-per-peer",
            "40",
            "--payload",
            "256KiB",
            "--iterations",
            "2",
            "--warmup",
            "0",
            "--no-write",
            "--no-baseline",
            "--kill-node-after",
            "20",
            "--timeout",
            "20",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("error: bench did not complete"), "{err}");
    assert!(
        err.contains("closed") || err.contains("did not converge"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn membership_bench_reports_join_detection_traffic_and_false_positives() {
    let out = run_gsp(
        &[
            "bench",
            "membership",
            "--nodes",
            "5",
            "--kills",
            "2",
            "--stalls",
            "1",
            "--traffic-window",
            "1",
            "--json",
            "--no-write",
        ],
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["schema"], "gsp.bench.v1");
    assert_eq!(r["scenario"]["name"], "membership");
    assert_eq!(r["scenario"]["nodes"], 5);
    let res = &r["results"];
    assert_eq!(res["detection_samples"].as_array().unwrap().len(), 2);
    assert_eq!(res["detection_rounds"]["samples"], 2);
    assert!(res["join_rounds"].as_f64().unwrap() >= 0.0);
    assert!(res["traffic_bytes_per_sec_per_node"].as_f64().unwrap() > 0.0);
    assert!(res["false_positives"].is_u64());
    assert!(res["rounds_observed"].as_f64().unwrap() > 0.0);
    // Up to 100 nodes the bench runs 0.2 s rounds; what a node costs is reported.
    assert_eq!(res["gossip_interval_ms"].as_f64(), Some(200.0));
    assert!(res["cpu_ms_per_node_round"].as_f64().unwrap() > 0.0);
    assert!(res["rss_bytes_per_node"].as_u64().unwrap() > 0);

    let out = run_gsp(
        &["bench", "membership", "--nodes", "2", "--no-write"],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--nodes"), "{}", stderr(&out));
}

/// `--compare` takes every report kind, like with like: a simulation against
/// its own report passes (its figures are deterministic for a seed), a
/// doctored baseline that was faster fails with exit 1, and a report of
/// another kind or workload is refused (exit 2) naming the difference.
#[test]
fn compare_judges_simulation_reports_and_refuses_unlike_ones() {
    let dir = tempfile::tempdir().unwrap();
    let sim = |extra: &[&str]| {
        let mut args = vec!["bench", "sim", "--nodes", "200", "--payload", "1MiB"];
        args.extend_from_slice(extra);
        run_gsp(&args, LIMIT)
    };
    let out = sim(&["--out", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let base = report.to_str().unwrap();

    let out = sim(&["--no-write", "--json", "--compare", base]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["comparison"];
    assert_eq!(
        (c["kind"].as_str(), c["regressed"].as_bool()),
        (Some("sim"), Some(false)),
        "{c}"
    );
    let completion = c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["figure"] == "completion (ms)")
        .unwrap();
    assert!(
        completion["worse_by_pct"]
            .as_f64()
            .is_some_and(|p| p.abs() < 1e-9),
        "{completion}"
    );

    // A baseline that completed in half the time: this run regressed.
    let mut faster: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let ms = faster["results"]["completion_ms"].as_f64().unwrap();
    faster["results"]["completion_ms"] = serde_json::json!(ms / 2.0);
    let doctored = dir.path().join("faster.json");
    std::fs::write(&doctored, faster.to_string()).unwrap();
    let out = sim(&["--no-write", "--compare", doctored.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("REGRESSED") && text.contains("completion (ms)"),
        "{text}"
    );

    // Another workload, and another kind: refused, saying why.
    let out = run_gsp(
        &[
            "bench",
            "sim",
            "--nodes",
            "100",
            "--payload",
            "1MiB",
            "--no-write",
            "--compare",
            base,
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nodes: 200 -> 100"),
        "{}",
        stderr(&out)
    );
    let out = run_gsp(
        &[
            "bench",
            "membership-sim",
            "--nodes",
            "50",
            "--no-write",
            "--compare",
            base,
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is a sim report and this run is membership-sim"),
        "{}",
        stderr(&out)
    );
}

/// `--against`: both binaries run alternately as child processes and each
/// figure is judged on the pairs. Here the other binary is this one, so both
/// sides allocate alike; verdicts on so small a workload may come out any
/// way on a shared machine (a few write calls more or less are a large
/// share of 40 messages), and the exit status must agree with the verdict.
#[test]
fn against_runs_both_binaries_alternately_and_judges_the_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("ab.html");
    let out = run_gsp(
        &[
            "bench",
            "--nodes",
            "2",
            "--messages-per-peer",
            "10",
            "--payload",
            "16KiB",
            "--iterations",
            "3",
            "--against",
            gsp_bin(),
            "--html",
            html.to_str().unwrap(),
            "--json",
        ],
        LIMIT,
    );
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(v["schema"], "gsp.bench.against.v1", "{v}");
    assert_eq!(v["iterations"], 3);
    assert!(v["other"]["version"].as_str().unwrap().starts_with("gsp "));
    let c = &v["comparison"];
    assert_eq!(c["mode"], "against");
    assert_eq!(c["paired"], true);
    assert_eq!(c["thresholds"]["timing_pct"], 10.0);
    let rows = c["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8, "{c}");
    for r in rows {
        assert_eq!(r["current_samples"], 3, "{r}");
        assert_eq!(r["baseline_samples"], 3, "{r}");
        let (lo, hi) = (
            r["ci_low"].as_f64().unwrap(),
            r["ci_high"].as_f64().unwrap(),
        );
        assert!(lo <= hi, "{r}");
        assert!(
            ["ok", "regressed", "inconclusive"].contains(&r["verdict"].as_str().unwrap()),
            "{r}"
        );
        if r["metric"] == "allocations_per_message" {
            let ratio = r["worse_ratio"].as_f64().unwrap();
            assert!(
                (0.8..1.25).contains(&ratio),
                "the same code allocates alike: {r}"
            );
        }
    }
    assert_eq!(
        v["current_samples"]["allocations_per_message"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let regressed = c["verdict"] == "regressed";
    assert_eq!(c["regressed"], regressed);
    assert_eq!(
        out.status.code(),
        Some(i32::from(regressed)),
        "{}",
        stderr(&out)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg").count(), 3);
    assert_eq!(
        page.matches("<path d=").count(),
        6,
        "two sides in each chart"
    );
}

#[test]
fn against_refuses_what_is_not_a_gsp_binary_and_other_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-gsp");
    let out = run_gsp(&["bench", "--against", missing.to_str().unwrap()], LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot run"), "{}", stderr(&out));
    let out = run_gsp(&["bench", "--against", "/bin/echo"], LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a gsp binary"),
        "{}",
        stderr(&out)
    );
    let out = run_gsp(&["bench", "membership-sim", "--against", gsp_bin()], LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--against applies to the flood and broadcast scenarios"),
        "{}",
        stderr(&out)
    );
    let out = run_gsp(&["bench", "--max-p99-regression", "5"], LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("needs --compare"), "{}", stderr(&out));
}

/// A child that fails or never finishes ends an A/B run with exit 1 and a
/// message naming the binary, never a hang.
#[test]
fn against_stops_at_a_failing_or_hanging_binary() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let script = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'gsp 0.0.0 (git fake)'; exit 0; fi\n{body}\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let failing = script("failing-gsp", "echo 'bench blew up' >&2; exit 3");
    let hanging = script("hanging-gsp", "exec sleep 600");
    let small = [
        "--timeout",
        "1",
        "bench",
        "--nodes",
        "2",
        "--messages-per-peer",
        "1",
        "--payload",
        "1KiB",
        "--warmup",
        "0",
        "--iterations",
        "2",
    ];
    let out = run_gsp(
        &[&small[..], &["--against", failing.to_str().unwrap()]].concat(),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failing-gsp") && stderr(&out).contains("bench blew up"),
        "{}",
        stderr(&out)
    );
    // A binary whose report is of another workload (its defaults differ,
    // or it ignores a flag) is not compared.
    let out = run_gsp(&[&small[2..], &["--json", "--no-write"]].concat(), LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["scenario"]["nodes"] = 3.into();
    let canned = dir.path().join("report.json");
    std::fs::write(&canned, report.to_string()).unwrap();
    let other = script("other-workload-gsp", &format!("cat {}", canned.display()));
    let out = run_gsp(
        &[&small[..], &["--against", other.to_str().unwrap()]].concat(),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ran different workloads"),
        "{}",
        stderr(&out)
    );
    // The judged binary hangs: it is stopped after the iteration timeouts
    // (1 s each for the counted iteration and raw TCP) and 10 s of slack.
    let out = run_gsp(
        &[
            &small[..],
            &[
                "--binary",
                hanging.to_str().unwrap(),
                "--against",
                gsp_bin(),
            ],
        ]
        .concat(),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hanging-gsp") && stderr(&out).contains("did not finish in 12 s"),
        "{}",
        stderr(&out)
    );
}

/// `--against` on the broadcast bench: each child runs the whole bench, and
/// each figure `--compare` reads from a broadcast report is judged on the
/// pairs; a broadcast that timed out in this binary and not in the other
/// would regress.
#[test]
fn against_judges_the_broadcast_bench_on_its_figures() {
    let out = run_gsp(
        &[
            "bench",
            "broadcast",
            "--nodes",
            "3",
            "--messages",
            "5",
            "--payload",
            "16KiB",
            "--iterations",
            "3",
            "--against",
            gsp_bin(),
            "--json",
        ],
        LIMIT,
    );
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(v["schema"], "gsp.bench.against.v1", "{v}");
    assert_eq!(v["scenario"]["name"], "broadcast");
    assert_eq!(v["scenario"]["nodes"], 3);
    let c = &v["comparison"];
    let rows = c["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["metric"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"convergence p50 (ns)") && names.contains(&"timed out"),
        "{names:?}"
    );
    for r in rows {
        assert_eq!(r["current_samples"], 3, "{r}");
    }
    let timed_out = rows.iter().find(|r| r["metric"] == "timed out").unwrap();
    assert_eq!(
        timed_out["verdict"], "ok",
        "no broadcast timed out: {timed_out}"
    );
    assert_eq!(
        v["current_samples"]["timed out"],
        serde_json::json!([0.0, 0.0, 0.0])
    );
    let regressed = c["verdict"] == "regressed";
    assert_eq!(
        out.status.code(),
        Some(i32::from(regressed)),
        "{}",
        stderr(&out)
    );
}
