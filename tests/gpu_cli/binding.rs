//! A job is given specific devices: it sees only them, no two running jobs
//! share one, and a device is offered again once its job ends.

use std::{
    collections::BTreeSet,
    process::{Command, Stdio},
};

use super::{GpuNode, LIMIT, devices, gpu, jobs, output_lines, peers, until};
use crate::common::{gsp_bin, run_gsp, stderr};

const UUIDS: [&str; 4] = [
    "GPU-0a7c1e52-4d7b-4a5e-9d0e-3f1e2a6b7c01",
    "GPU-1b8d2f63-5e8c-4b6f-8e1f-4a2f3b7c8d02",
    "GPU-2c9e3a74-6f9d-4c7a-9f2a-5b3a4c8d9e03",
    "GPU-3daf4b85-7a0e-4d8b-8a3b-6c4b5d9eaf04",
];

fn four_a100s() -> Vec<String> {
    let mut d: Vec<String> = UUIDS
        .iter()
        .zip(0..)
        .map(|(u, i)| gpu(i, u, 40, 0, "NVIDIA A100-SXM4-40GB"))
        .collect();
    d.push("driver 550.54.15".into());
    d
}

fn held(addr: &str, name: &str) -> usize {
    devices(addr, name)
        .iter()
        .filter(|d| d["held"] == true)
        .count()
}

#[test]
fn four_jobs_get_four_different_devices_a_fifth_waits_and_gets_a_freed_one() {
    let node = GpuNode::start("g4", &four_a100s(), &["--exec-max-jobs", "8"]);
    let addr = node.addr.clone();
    until("4 devices published", || devices(&addr, "g4").len() == 4);
    let script = "echo $CUDA_VISIBLE_DEVICES $NVIDIA_VISIBLE_DEVICES $GSP_GPUS; sleep 4";
    let running: Vec<_> = (0..4)
        .map(|_| {
            Command::new(gsp_bin())
                .args([
                    "run", "--addr", &addr, "--gpu", "1", "--json", "--", "sh", "-c", script,
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    until("4 devices held", || held(&addr, "g4") == 4);
    // A fifth is refused while all four are held...
    let fifth = run_gsp(&["run", "--addr", &addr, "--gpu", "1", "--", "true"], LIMIT);
    assert_eq!(fifth.status.code(), Some(1), "{}", stderr(&fifth));
    assert!(
        stderr(&fifth).contains("no node matches"),
        "{}",
        stderr(&fifth)
    );
    // ... named on the node itself, by how many fit.
    let pinned = run_gsp(
        &[
            "run", "--addr", &addr, "--node", "g4", "--gpu", "1", "--", "true",
        ],
        LIMIT,
    );
    assert_eq!(pinned.status.code(), Some(3), "{}", stderr(&pinned));
    assert!(
        stderr(&pinned).contains("1 GPUs asked, 0 of this node's 4 GPUs fit (0 free)"),
        "{}",
        stderr(&pinned)
    );
    // ... and with --wait it gets the first device let go of.
    let waited = run_gsp(
        &[
            "run",
            "--addr",
            &addr,
            "--gpu",
            "1",
            "--wait",
            "30",
            "--json",
            "--",
            "sh",
            "-c",
            "echo $CUDA_VISIBLE_DEVICES",
        ],
        LIMIT,
    );
    assert_eq!(waited.status.code(), Some(0), "{}", stderr(&waited));
    let mut seen = BTreeSet::new();
    for child in running {
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let lines = output_lines(&o);
        let words: Vec<&str> = lines[0].split(' ').collect();
        let [cuda, nvidia, index] = words[..] else {
            panic!("{lines:?}")
        };
        assert_eq!(cuda, nvidia, "{lines:?}");
        let i = UUIDS
            .iter()
            .position(|u| *u == cuda)
            .unwrap_or_else(|| panic!("not a device of the node: {cuda}"));
        assert_eq!(index, i.to_string(), "GSP_GPUS is the device's index");
        assert!(seen.insert(cuda.to_owned()), "{cuda} given twice");
    }
    assert_eq!(seen.len(), 4);
    let reused = output_lines(&waited)[0].clone();
    assert!(seen.contains(&reused), "{reused}");
    // Each job's record names the device it printed.
    let recorded: BTreeSet<String> = jobs(&addr)
        .iter()
        .flat_map(|j| j["reserved"]["gpu_uuids"].as_array().unwrap().clone())
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recorded, seen);
    until("every hold released", || held(&addr, "g4") == 0);

    // A job that asked for no GPU sees none.
    let no_gpu = run_gsp(
        &[
            "run",
            "--addr",
            &addr,
            "--json",
            "--",
            "sh",
            "-c",
            "echo \"[$CUDA_VISIBLE_DEVICES] [$GSP_GPUS] $NVIDIA_VISIBLE_DEVICES\"",
        ],
        LIMIT,
    );
    assert_eq!(
        output_lines(&no_gpu),
        vec!["[] [] none"],
        "{}",
        stderr(&no_gpu)
    );
}

#[test]
fn a_foreign_process_makes_a_device_busy_and_a_jobs_own_process_does_not() {
    let mut d = four_a100s();
    d.truncate(2);
    d.push(format!("proc 1 999999 {}", 20u64 << 30));
    let node = GpuNode::start("g2", &d, &["--exec-expose-gpus"]);
    let addr = node.addr.clone();
    until("2 devices published", || devices(&addr, "g2").len() == 2);
    let listed = devices(&addr, "g2");
    assert_eq!(listed[1]["busy"], true, "{listed:?}");
    assert_eq!(listed[1]["foreign_processes"], 1, "{listed:?}");
    assert_eq!(listed[0]["free"], true, "{listed:?}");
    let two = run_gsp(
        &[
            "run", "--addr", &addr, "--node", "g2", "--gpu", "2", "--", "true",
        ],
        LIMIT,
    );
    assert_eq!(two.status.code(), Some(3), "{}", stderr(&two));
    assert!(
        stderr(&two).contains("2 GPUs asked, 1 of this node's 2 GPUs fit (1 free)"),
        "{}",
        stderr(&two)
    );

    // A job's process on its own device is the job's, not a stranger's.
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let o = run_gsp(
        &[
            "run",
            "--addr",
            &addr,
            "--gpu",
            "1",
            "--detach",
            "--",
            "sh",
            "-c",
            &format!("echo $$ > {}; exec sleep 60", pidfile.display()),
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    until("the job's pid", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|p| p.ends_with('\n'))
    });
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
    let job = jobs(&addr)[0].clone();
    assert_eq!(job["reserved"]["gpu_uuids"][0], UUIDS[0], "{job}");
    d.push(format!("proc 0 {pid} {}", 1u64 << 30));
    node.set_devices(&d);
    until("the job's process listed", || {
        devices(&addr, "g2")[0]["processes"] == 1
    });
    let listed = devices(&addr, "g2");
    assert_eq!(
        (
            &listed[0]["held"],
            &listed[0]["busy"],
            &listed[0]["foreign_processes"]
        ),
        (&true.into(), &false.into(), &0.into()),
        "{listed:?}"
    );
    let inventory = peers(&addr, &["--detailed"])[0]["inventory"].clone();
    let procs = inventory["gpu_processes"].as_array().unwrap();
    let mine = procs
        .iter()
        .find(|p| p["pid"].as_u64().map(|n| n.to_string()).as_deref() == Some(pid.as_str()))
        .unwrap_or_else(|| panic!("{procs:?}"));
    assert_eq!(mine["job_id"], job["job_id"], "{procs:?}");
    assert_eq!(mine["gpu_uuid"], UUIDS[0]);
    let stranger = procs.iter().find(|p| p["pid"] == 999_999).unwrap();
    assert_eq!(stranger["job_id"], "", "{procs:?}");

    // Its job over, a process of a gsp job that holds no device (a job
    // that was given no GPU, on a node with --exec-expose-gpus) keeps the
    // device busy: it is no job's to give.
    let job_id = job["job_id"].as_str().unwrap();
    let c = run_gsp(&["cancel", "--addr", &addr, job_id], LIMIT);
    assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));
    until("the hold released", || {
        devices(&addr, "g2")[0]["held"] == false
    });
    let mut other = crate::common::procs::Killed(
        Command::new("sleep")
            .arg("60")
            .env("GSP_JOB_ID", "0123456789ab")
            .spawn()
            .unwrap(),
    );
    d.pop();
    d.push(format!("proc 0 {} {}", other.0.id(), 1u64 << 30));
    node.set_devices(&d);
    let other_pid = other.0.id();
    until("the other job's process read", || {
        peers(&addr, &["--detailed"])[0]["inventory"]["gpu_processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == other_pid && p["job_id"] == "0123456789ab")
    });
    let listed = devices(&addr, "g2");
    assert_eq!(
        (&listed[0]["held"], &listed[0]["busy"]),
        (&false.into(), &true.into()),
        "{listed:?}"
    );
    let _ = other.0.kill();
    d.pop();
    node.set_devices(&d);
    until("the device free again", || {
        devices(&addr, "g2")[0]["free"] == true
    });
}
