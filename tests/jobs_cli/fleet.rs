//! ClusterShell habits: `--node` takes node sets and `--fold` groups
//! identical output under one.

use super::{LIMIT, events};
use crate::common::{
    procs::{cluster, stop},
    run_gsp, stderr,
};

#[test]
fn node_sets_name_the_targets_and_fold_groups_identical_output() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = cluster(
        3,
        &dirs,
        &[
            &["--name", "n1", "--exec", "--label", "rack=a"],
            &["--name", "n2", "--exec", "--label", "rack=b"],
            &["--name", "n3", "--exec", "--label", "rack=a"],
        ],
    );
    let addr = nodes[0].1.clone();
    let script = "if [ \"$GSP_NODE_NAME\" = n2 ]; then echo two; exit 3; else echo same; fi";
    let o = run_gsp(
        &[
            "run", "--addr", &addr, "--node", "n[1-3]", "--fold", "--", "sh", "-c", script,
        ],
        LIMIT,
    );
    // One node failed: the run says so.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("n[1,3] (2): exit 0\n"), "{out}");
    assert!(out.contains("n2 (1): exit 3\n"), "{out}");
    assert_eq!(out.matches("same").count(), 1, "folded once: {out}");
    // The larger group first.
    assert!(out.find("n[1,3]") < out.find("n2 (1)"), "{out}");
    // A label selector and a name, repeated --node; the groups in JSON.
    let o = run_gsp(
        &[
            "run", "--addr", &addr, "--node", "@rack=a", "--node", "n2", "--fold", "--json", "--",
            "echo", "hi",
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let groups: Vec<_> = events(&o)
        .into_iter()
        .filter(|e| e["event"] == "group")
        .collect();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["node_set"], "n[1-3]");
    assert_eq!(groups[0]["output"], "hi\n");
    assert_eq!(groups[0]["exit_code"], 0);
    assert_eq!(groups[0]["schema"], "gsp.run.v1");
    // A name in the set that no member has: nothing runs, exit 3 naming it.
    let o = run_gsp(
        &["run", "--addr", &addr, "--node", "n[1-4]", "--", "true"],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no member named n4"), "{}", stderr(&o));
    // A malformed set is a usage error.
    let o = run_gsp(
        &["run", "--addr", &addr, "--node", "n[3-1]", "--", "true"],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("goes down"), "{}", stderr(&o));
    for (mut child, _) in nodes.drain(..) {
        stop(&mut child);
    }
}
