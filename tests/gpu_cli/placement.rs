//! Where GPU jobs land: `--gpu-memory` and `--gpu-model` per device, MIG
//! instances as devices, best fit first; and what another node shows of it.

use super::{GIB, GpuNode, LIMIT, devices, gpu, output_lines, peers, query, until};
use crate::common::{run_gsp, stderr};

const A0: &str = "GPU-a0a0a0a0-1111-4111-8111-000000000000";
const A1: &str = "GPU-a1a1a1a1-1111-4111-8111-000000000001";
const C0: &str = "GPU-c0c0c0c0-3333-4333-8333-000000000000";
const MIG0: &str = "MIG-c1c1c1c1-3333-4333-8333-000000000000";
const MIG1: &str = "MIG-c2c2c2c2-3333-4333-8333-000000000001";

#[test]
fn jobs_land_where_their_gpus_fit_and_other_nodes_see_every_device() {
    // a: 2x40 GiB, one 80% used by a process outside gsp.
    let a = GpuNode::start(
        "a",
        &[
            gpu(0, A0, 40, 0, "NVIDIA A100-SXM4-40GB"),
            gpu(1, A1, 40, 32, "NVIDIA A100-SXM4-40GB"),
            format!("proc 1 999999 {}", 32 * GIB),
        ],
        &[],
    );
    // b: 4x16 GiB.
    let b_devices: Vec<String> = (0..4)
        .map(|i| {
            gpu(
                i,
                &format!("GPU-b{i}b{i}b{i}b{i}-2222-4222-8222-00000000000{i}"),
                16,
                0,
                "Tesla V100-SXM2-16GB",
            )
        })
        .collect();
    let b = GpuNode::start("b", &b_devices, &["--join", &a.addr]);
    // c: an H100 in MIG mode, offered as its two instances.
    let c = GpuNode::start(
        "c",
        &[
            gpu(0, C0, 80, 0, "NVIDIA H100 80GB HBM3"),
            format!(
                "mig 0 {MIG0} {} 0 NVIDIA H100 80GB HBM3 MIG 1g.10gb",
                10 * GIB
            ),
            format!(
                "mig 0 {MIG1} {} 0 NVIDIA H100 80GB HBM3 MIG 1g.10gb",
                10 * GIB
            ),
            "driver 555.42.06".into(),
            "cuda 12050".into(),
        ],
        &["--join", &a.addr],
    );
    let addr = b.addr.clone();
    until("every node's devices seen from b", || {
        devices(&addr, "a").len() == 2
            && devices(&addr, "b").len() == 4
            && devices(&addr, "c").len() == 2
    });

    // Two devices with 30 GiB free each: nowhere, said clearly.
    assert_eq!(
        query(&addr, &["--gpu", "2", "--gpu-memory", "30GiB"]),
        (Some(1), vec![])
    );
    let o = run_gsp(
        &[
            "run",
            "--addr",
            &addr,
            "--gpu",
            "2",
            "--gpu-memory",
            "30GiB",
            "--",
            "true",
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no node matches"), "{}", stderr(&o));
    // One: only a's idle device has it.
    let o = run_gsp(
        &[
            "run",
            "--addr",
            &addr,
            "--gpu",
            "1",
            "--gpu-memory",
            "30GiB",
            "--json",
            "--",
            "sh",
            "-c",
            "echo $CUDA_VISIBLE_DEVICES",
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(output_lines(&o), vec![A0]);
    // The job ended: its device is free again once a's next record arrives.
    until("a's device free again", || {
        devices(&addr, "a")
            .iter()
            .any(|d| d["uuid"] == A0 && d["free"] == true)
    });
    // Two with 10 GiB each: b (a has one free, c's instances have 10 GiB
    // each, which is enough: both fit, c more tightly).
    assert_eq!(
        query(&addr, &["--gpu", "2", "--gpu-memory", "10GiB"]),
        (Some(0), vec!["c".to_owned(), "b".to_owned()])
    );
    // Best fit: a 1-GPU job goes to the node with the fewest free GPUs that
    // do, not to the idle 4-GPU node.
    assert_eq!(
        query(&addr, &["--gpu", "1"]).1,
        vec!["a".to_owned(), "c".to_owned(), "b".to_owned()]
    );
    // Models, any case, as a substring.
    assert_eq!(
        query(&addr, &["--gpu-model", "v100"]).1,
        vec!["b".to_owned()]
    );
    assert_eq!(
        query(&addr, &["--gpu-model", "A100", "--gpu", "2"]).1,
        Vec::<String>::new()
    );
    // MIG instances are devices of their own.
    let o = run_gsp(
        &[
            "run",
            "--addr",
            &addr,
            "--gpu",
            "2",
            "--gpu-model",
            "1g.10gb",
            "--json",
            "--",
            "sh",
            "-c",
            "echo $CUDA_VISIBLE_DEVICES $GSP_GPUS",
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(output_lines(&o), vec![format!("{MIG0},{MIG1} 0,0")]);

    // Another node's detailed view: every device, its free memory, the
    // driver, and whose processes run on it.
    let nodes = peers(&addr, &["--detailed"]);
    let node_a = nodes.iter().find(|n| n["node_name"] == "a").unwrap();
    let gpus = node_a["gpus"].as_array().unwrap();
    assert_eq!(
        gpus.iter()
            .map(|g| (
                g["uuid"].as_str().unwrap(),
                g["memory_free_bytes"].as_u64().unwrap(),
                g["free"].as_bool().unwrap()
            ))
            .collect::<Vec<_>>(),
        vec![(A0, 40 * GIB, true), (A1, 8 * GIB, false)]
    );
    let inv = &node_a["inventory"];
    assert_eq!(inv["gpu_driver"], "550.54.15");
    assert_eq!(inv["cuda_version"], "12.4");
    assert_eq!(inv["gpu_processes"][0]["pid"], 999_999, "{inv}");
    assert_eq!(inv["gpu_processes"][0]["gpu_uuid"], A1, "{inv}");
    let node_c = nodes.iter().find(|n| n["node_name"] == "c").unwrap();
    assert_eq!(node_c["inventory"]["cuda_version"], "12.5");
    assert_eq!(node_c["gpus"][1]["mig_parent"], C0);

    // The same for a person: tables within 100 columns.
    let o = run_gsp(&["peers", "--addr", &addr, "--detailed"], LIMIT);
    let text = String::from_utf8_lossy(&o.stdout);
    for line in text.lines().filter(|l| l.contains('│') || l.contains('─')) {
        assert!(
            line.chars().count() <= 100,
            "wider than 100 columns: {line}"
        );
    }
    assert!(
        text.contains("NVIDIA driver 555.42.06, CUDA 12.5: 2 GPU devices"),
        "{text}"
    );
    assert!(text.contains("MIG-c1c1c1c1"), "{text}");
    assert!(
        text.contains("process 999999 on GPU 1 (GPU-a1a1a1a1)"),
        "{text}"
    );
    // And the cluster's GPUs by model.
    let o = run_gsp(&["peers", "--addr", &addr, "--summary"], LIMIT);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("GPU Tesla V100-SXM2-16GB: 4 devices on 1 node, 4 free"),
        "{text}"
    );
    drop((a, c));
}
