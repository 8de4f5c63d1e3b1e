//! NVML failing: a device lost while a job holds it, no driver, a call that
//! fails. The node runs on through each, and says so once.

use super::{GpuNode, LIMIT, devices, gpu, jobs, until};
use crate::common::{procs::spawn_node_logged, run_gsp, stderr};

const G0: &str = "GPU-10101010-4444-4444-8444-000000000000";
const G1: &str = "GPU-11111111-4444-4444-8444-000000000001";

fn two() -> Vec<String> {
    vec![
        gpu(0, G0, 24, 0, "NVIDIA L4"),
        gpu(1, G1, 24, 0, "NVIDIA L4"),
    ]
}

#[test]
fn a_device_lost_mid_job_leaves_the_record_and_the_job_is_told() {
    let node = GpuNode::start("l4", &two(), &[]);
    let addr = node.addr.clone();
    until("2 devices published", || devices(&addr, "l4").len() == 2);
    let o = run_gsp(
        &[
            "run", "--addr", &addr, "--gpu", "1", "--detach", "--", "sleep", "60",
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let job = jobs(&addr)[0].clone();
    let id = job["job_id"].as_str().unwrap().to_owned();
    assert_eq!(job["reserved"]["gpu_uuids"][0], G0, "{job}");

    let mut lost = two();
    lost.push("lost 0".into());
    node.set_devices(&lost);
    until("the lost device gone from the record", || {
        let d = devices(&addr, "l4");
        d.len() == 1 && d[0]["uuid"] == G1
    });
    until("the job's record says so", || {
        jobs(&addr)[0]["reserved"]["gpus_lost"] == serde_json::json!([G0])
    });
    let logs = run_gsp(&["logs", "--addr", &addr, &id], LIMIT);
    assert!(
        stderr(&logs).contains(&format!(
            "gsp: GPU {G0} (index 0) stopped answering on node l4"
        )),
        "{}",
        stderr(&logs)
    );
    let table = run_gsp(&["jobs", "--addr", &addr], LIMIT);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains(" 0! "),
        "the GPUS column marks it: {}",
        String::from_utf8_lossy(&table.stdout)
    );
    // The job runs on (its own process decides what a lost device means to
    // it); the device answers again and is still the job's.
    assert_eq!(jobs(&addr)[0]["status"], "running");
    node.set_devices(&two());
    until("the device back, still held", || {
        let d = devices(&addr, "l4");
        d.len() == 2 && d[0]["held"] == true
    });
    let c = run_gsp(&["cancel", "--addr", &addr, &id], LIMIT);
    assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));
    until("the hold released", || {
        devices(&addr, "l4")[0]["free"] == true
    });
    let log = node.log();
    assert_eq!(
        log.matches("GPU does not answer").count(),
        1,
        "logged once, however many readings missed it:\n{log}"
    );
    assert_eq!(
        log.matches("a GPU the job holds stopped answering").count(),
        1,
        "{log}"
    );
}

#[test]
fn without_a_driver_the_node_has_no_gpus_and_says_so_once() {
    let node = GpuNode::start("nodriver", &["init-fails".to_owned()], &[]);
    let addr = node.addr.clone();
    // Readings go on (every 0.3 s); the node publishes CPU and memory.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let me = &super::peers(&addr, &[])[0];
    assert_eq!(me["gpus"], serde_json::json!([]), "{me}");
    assert_eq!(me["gpu"]["total"], 0, "{me}");
    assert!(me["cpu"]["total"].as_i64().unwrap() > 0, "{me}");
    let q = run_gsp(&["query", "--addr", &addr, "--gpu", "1"], LIMIT);
    assert_eq!(q.status.code(), Some(1), "{}", stderr(&q));
    let log = node.log();
    assert_eq!(
        log.matches("NVML could not be loaded").count(),
        1,
        "one line:\n{log}"
    );
    assert!(log.contains("driver is not loaded"), "{log}");
    drop(node);

    // A library that is not there at all: the same.
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, log) = spawn_node_logged(
        dir.path(),
        &[
            "--nvml-library",
            "/nonexistent/libnvidia-ml.so.1",
            "--resource-interval",
            "0.3",
        ],
        &[],
    );
    let _node = crate::common::procs::Killed(child);
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(super::peers(&addr, &[])[0]["gpus"], serde_json::json!([]));
    let log = log.lock().unwrap().clone();
    assert_eq!(log.matches("NVML could not be loaded").count(), 1, "{log}");
    assert!(log.contains("/nonexistent/libnvidia-ml.so.1"), "{log}");
}

#[test]
fn a_failing_call_leaves_out_what_it_cannot_read_and_the_node_runs_on() {
    // No process list: the devices are still offered, judged by their memory.
    let mut d = two();
    d.push("fail nvmlDeviceGetComputeRunningProcesses_v3".into());
    let node = GpuNode::start("flaky", &d, &[]);
    let addr = node.addr.clone();
    until("2 devices published", || devices(&addr, "flaky").len() == 2);
    assert!(devices(&addr, "flaky").iter().all(|g| g["free"] == true));
    // Memory unreadable: the device cannot be judged, and is left out until
    // it can.
    d.push("fail nvmlDeviceGetMemoryInfo_v2".into());
    node.set_devices(&d);
    until("devices left out", || devices(&addr, "flaky").is_empty());
    let o = run_gsp(
        &[
            "run", "--addr", &addr, "--node", "flaky", "--gpu", "1", "--", "true",
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    d.pop();
    node.set_devices(&d);
    until("devices back", || devices(&addr, "flaky").len() == 2);
    let o = run_gsp(
        &[
            "run", "--addr", &addr, "--node", "flaky", "--gpu", "1", "--", "true",
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let log = node.log();
    assert_eq!(
        log.matches("GPU does not answer").count(),
        2,
        "once per device:\n{log}"
    );
}
