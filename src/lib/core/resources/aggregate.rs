//! The cluster's resources at a glance (iarnet's resource aggregate view): totals
//! over alive nodes, nodes by tag, nodes by what they have free.

use serde::{Deserialize, Serialize};

use super::matcher::{available, rank};
use crate::membership::record::{Amounts, MemberRecord, MemberState};

/// Sums of one resource.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sums {
    /// Total.
    pub total: i64,
    /// In use.
    pub used: i64,
    /// Free.
    pub available: i64,
}

/// One node in the ranking.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ranked {
    /// Node id.
    pub node_id: String,
    /// Name.
    pub node_name: String,
    /// Free CPU millicores.
    pub cpu_available: i64,
    /// Free memory bytes.
    pub memory_available: i64,
    /// Free GPUs.
    pub gpu_available: i64,
}

/// Node names by capability tag.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ByTag {
    /// Nodes with CPU.
    pub cpu: Vec<String>,
    /// Nodes with a GPU.
    pub gpu: Vec<String>,
    /// Nodes with memory.
    pub memory: Vec<String>,
    /// Nodes with a camera.
    pub camera: Vec<String>,
}

/// The GPU devices of one model over alive nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GpuModel {
    /// The model name (a MIG instance's includes its profile).
    pub name: String,
    /// Devices.
    pub devices: u64,
    /// Of those, free for a job.
    pub free: u64,
    /// Nodes that have one.
    pub nodes: u64,
    /// Memory of the devices, bytes.
    pub memory_total_bytes: u64,
    /// Memory not in use, bytes.
    pub memory_free_bytes: u64,
}

/// The aggregate view over alive nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Aggregate {
    /// Alive nodes counted.
    pub nodes: usize,
    /// Alive nodes that have not published resources.
    pub nodes_without_resources: usize,
    /// CPU millicores.
    pub cpu: Sums,
    /// Memory bytes.
    pub memory: Sums,
    /// GPUs.
    pub gpu: Sums,
    /// Node names by tag, sorted.
    pub by_tag: ByTag,
    /// Alive nodes, most available first (the query order).
    pub by_available: Vec<Ranked>,
    /// GPU devices by model, by name.
    #[serde(default)]
    pub gpu_models: Vec<GpuModel>,
}

fn add(s: &mut Sums, pick: fn(&Amounts) -> i64, c: &crate::membership::record::Capacity) {
    s.total = s.total.saturating_add(pick(&c.total));
    s.used = s.used.saturating_add(pick(&c.used));
    s.available = s.available.saturating_add(pick(&c.available));
}

/// Builds the view from every known record (only alive ones count).
pub fn aggregate<'a>(records: impl IntoIterator<Item = &'a MemberRecord>) -> Aggregate {
    let mut alive: Vec<&MemberRecord> = records
        .into_iter()
        .filter(|r| r.state == MemberState::Alive)
        .collect();
    alive.sort_by(|a, b| rank(a, b));
    let mut v = Aggregate {
        nodes: alive.len(),
        ..Aggregate::default()
    };
    let mut models = std::collections::BTreeMap::<String, GpuModel>::new();
    for r in &alive {
        match &r.capacity {
            Some(c) => {
                add(&mut v.cpu, |a| a.cpu_millis, c);
                add(&mut v.memory, |a| a.memory_bytes, c);
                add(&mut v.gpu, |a| a.gpus, c);
            }
            None => v.nodes_without_resources += 1,
        }
        for (on, list) in [
            (r.tags.cpu, &mut v.by_tag.cpu),
            (r.tags.gpu, &mut v.by_tag.gpu),
            (r.tags.memory, &mut v.by_tag.memory),
            (r.tags.camera, &mut v.by_tag.camera),
        ] {
            if on {
                list.push(r.name.clone());
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for g in &r.gpus {
            let m = models.entry(g.name.clone()).or_insert_with(|| GpuModel {
                name: g.name.clone(),
                ..GpuModel::default()
            });
            m.devices += 1;
            m.free += u64::from(g.is_free());
            m.memory_total_bytes = m.memory_total_bytes.saturating_add(g.memory_total_bytes);
            m.memory_free_bytes = m.memory_free_bytes.saturating_add(g.memory_free_bytes());
            if seen.insert(&g.name) {
                m.nodes += 1;
            }
        }
        let a = available(r);
        v.by_available.push(Ranked {
            node_id: r.id.to_string(),
            node_name: r.name.clone(),
            cpu_available: a.cpu_millis,
            memory_available: a.memory_bytes,
            gpu_available: a.gpus,
        });
    }
    for list in [
        &mut v.by_tag.cpu,
        &mut v.by_tag.gpu,
        &mut v.by_tag.memory,
        &mut v.by_tag.camera,
    ] {
        list.sort();
    }
    v.gpu_models = models.into_values().collect();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::record::testing;

    fn node(id: &str, gpus: i64, state: MemberState) -> MemberRecord {
        testing::with_free(testing::record(id, 0, state), 1000, 10, gpus)
    }

    #[test]
    fn sums_alive_nodes_and_ranks_them() {
        let nodes = [
            node("a", 0, MemberState::Alive),
            node("b", 2, MemberState::Alive),
            node("c", 4, MemberState::Dead),
        ];
        let v = aggregate(&nodes);
        assert_eq!(v.nodes, 2);
        assert_eq!(
            v.gpu,
            Sums {
                total: 2,
                used: 0,
                available: 2
            }
        );
        assert_eq!(v.cpu.total, 2000);
        assert_eq!(v.by_tag.gpu, vec!["b"]);
        assert_eq!(v.by_available[0].node_name, "b");
    }

    #[test]
    fn gpu_models_are_counted_per_model_over_alive_nodes() {
        use crate::membership::record::Gpu;
        let dev = |name: &str, busy: bool| Gpu {
            name: name.into(),
            memory_total_bytes: 100,
            memory_used_bytes: 30,
            busy,
            ..Gpu::default()
        };
        let mut a = node("a", 2, MemberState::Alive);
        a.gpus = vec![dev("H100", false), dev("H100", true)];
        let mut b = node("b", 1, MemberState::Alive);
        b.gpus = vec![dev("H100", false), dev("A100", false)];
        let mut c = node("c", 1, MemberState::Dead);
        c.gpus = vec![dev("H100", false)];
        let v = aggregate(&[a, b, c]);
        assert_eq!(
            v.gpu_models
                .iter()
                .map(|m| (
                    m.name.as_str(),
                    m.devices,
                    m.free,
                    m.nodes,
                    m.memory_free_bytes
                ))
                .collect::<Vec<_>>(),
            vec![("A100", 1, 1, 1, 70), ("H100", 3, 2, 2, 210)]
        );
    }
}
