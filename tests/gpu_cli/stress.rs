//! No two running jobs ever share a device: 1,000 random starts and
//! cancellations on a 4-node cluster of mock 8-GPU nodes, each job checking
//! from inside (an atomic `mkdir` per device it was given) that no other
//! running job has its devices.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use gsp::transport::pb::jobs::v1::{
    self as pb, CancelRequest, RunRequest, StepSpec, job_event::Kind, jobs_client::JobsClient,
};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use super::{GpuNode, devices, gpu, until};

const OPERATIONS: usize = 1000;

/// Takes each device it was given by `mkdir` (which fails if another
/// running job took it), holds them for `$HOLD` seconds, and lets go; on
/// SIGTERM (a cancellation) lets go too. A device found taken is written to
/// `$LOCKS/shared`.
const JOB: &str = r#"
got=""
cleanup() { for d in $got; do rmdir "$LOCKS/$d"; done; }
trap 'cleanup; exit 143' TERM
for d in $(echo "$CUDA_VISIBLE_DEVICES" | tr , ' '); do
  prev=$got
  got="$got $d"
  if ! mkdir "$LOCKS/$d" 2>/dev/null; then
    got=$prev
    echo "$GSP_JOB_ID $d" >> "$LOCKS/shared"
    cleanup
    exit 99
  fi
done
sleep "$HOLD" & wait $!
cleanup
"#;

fn eight(node: usize) -> Vec<String> {
    (0..8)
        .map(|i| {
            gpu(
                i,
                &format!("GPU-{node:08x}-5555-4555-8555-{i:012x}"),
                80,
                0,
                "NVIDIA H100 80GB HBM3",
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_jobs_never_share_a_device_over_1000_random_operations() {
    let locks = tempfile::tempdir().unwrap();
    let first = GpuNode::start("s0", &eight(0), &["--exec-max-jobs", "32"]);
    let join = first.addr.clone();
    let mut nodes = vec![first];
    for n in 1..4 {
        nodes.push(GpuNode::start(
            &format!("s{n}"),
            &eight(n),
            &["--exec-max-jobs", "32", "--join", &join],
        ));
    }
    for (n, node) in nodes.iter().enumerate() {
        until("8 devices published", || {
            devices(&node.addr, &format!("s{n}")).len() == 8
        });
    }
    let mut clients = Vec::new();
    for node in &nodes {
        clients.push(
            JobsClient::connect(format!("http://{}", node.addr))
                .await
                .unwrap(),
        );
    }

    let mut rng = StdRng::seed_from_u64(33);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(String, pb::Job)>();
    let mut running: Vec<(usize, String)> = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    let mut finished = 0;
    let t0 = Instant::now();
    for _ in 0..OPERATIONS {
        while let Ok((id, job)) = done_rx.try_recv() {
            running.retain(|(_, j)| *j != id);
            finished += 1;
            *ends.entry(format!("exit {}", job.exit_code)).or_default() += 1;
        }
        if running.is_empty() || rng.random_bool(0.7) {
            let n = rng.random_range(0..nodes.len());
            let gpus = rng.random_range(1..=3);
            let hold = format!("{:.3}", rng.random_range(0.02..0.3));
            let req = RunRequest {
                steps: vec![StepSpec {
                    argv: vec!["sh".into(), "-c".into(), JOB.into()],
                    env: [
                        ("LOCKS".to_owned(), locks.path().display().to_string()),
                        ("HOLD".to_owned(), hold),
                    ]
                    .into(),
                    ..StepSpec::default()
                }],
                reserve_gpus: gpus,
                ..RunRequest::default()
            };
            match clients[n].run(req).await {
                Ok(resp) => {
                    let mut stream = resp.into_inner();
                    let Some(pb::JobEvent {
                        kind: Some(Kind::Started(job)),
                    }) = stream.message().await.unwrap()
                    else {
                        panic!("no started event");
                    };
                    assert_eq!(job.gpus.len(), usize::try_from(gpus).unwrap());
                    *counts.entry("started").or_default() += 1;
                    running.push((n, job.id.clone()));
                    let tx = done_tx.clone();
                    tokio::spawn(async move {
                        while let Ok(Some(e)) = stream.message().await {
                            if let Some(Kind::Finished(job)) = e.kind {
                                let _ = tx.send((job.id.clone(), job));
                                return;
                            }
                        }
                        panic!("a job's stream ended without its end");
                    });
                }
                Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                    *counts.entry("refused: devices held").or_default() += 1;
                }
                Err(s) => panic!("run: {s}"),
            }
        } else {
            let (n, id) = running.swap_remove(rng.random_range(0..running.len()));
            clients[n]
                .cancel(CancelRequest { job_id: id })
                .await
                .unwrap();
            *counts.entry("cancel").or_default() += 1;
        }
    }
    let issued = t0.elapsed();
    drop(done_tx);
    let deadline = Instant::now() + Duration::from_secs(60);
    while finished < counts["started"] {
        let (_, job) = tokio::time::timeout_at(deadline.into(), done_rx.recv())
            .await
            .expect("every job ends")
            .expect("every job's stream");
        finished += 1;
        *ends.entry(format!("exit {}", job.exit_code)).or_default() += 1;
    }
    let shared = std::fs::read_to_string(locks.path().join("shared")).unwrap_or_default();
    assert_eq!(
        shared.lines().count(),
        0,
        "devices two running jobs held at once (job, device), the first of them:\n{}",
        shared.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(
        ends.keys()
            .filter(|k| !["exit 0", "exit 130"].contains(&k.as_str()))
            .count(),
        0,
        "jobs ended only completed or cancelled: {ends:?}"
    );
    for (n, node) in nodes.iter().enumerate() {
        until("every hold released", || {
            devices(&node.addr, &format!("s{n}"))
                .iter()
                .all(|d| d["held"] == false)
        });
    }
    println!(
        "{OPERATIONS} operations in {:.2} s ({:.0}/s): {counts:?}; jobs ended {ends:?}",
        issued.as_secs_f64(),
        OPERATIONS as f64 / issued.as_secs_f64()
    );
}
