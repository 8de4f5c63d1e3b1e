//! The resource loop: reads the machine every resource interval and publishes a
//! new version of this node's record only when something changed meaningfully.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::membership::{MembershipAgent, now};
use crate::{
    core::resources::capacity::{Declared, Published, changed_meaningfully, publish},
    probe::ResourceProbe,
};

/// Default time between readings (iarnet's resource sync).
pub const DEFAULT_RESOURCE_INTERVAL: Duration = Duration::from_secs(30);
/// Change in use, in percent of the total, that is worth a new version.
pub const CHANGE_THRESHOLD_PCT: u32 = 5;
/// Readings between two refreshes of the hardware inventory.
const INVENTORY_EVERY: u32 = 20;

/// Settings of the resource loop.
#[derive(Debug, Clone, Copy)]
pub struct ResourceConfig {
    /// Time between readings.
    pub interval: Duration,
    /// Operator-declared totals.
    pub declared: Declared,
}

impl Default for ResourceConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_RESOURCE_INTERVAL,
            declared: Declared::default(),
        }
    }
}

/// Applies a reading: publishes when it differs meaningfully from `last`.
/// Returns what is now published.
pub fn apply(agent: &MembershipAgent, last: Option<&Published>, next: Published) -> Published {
    if last.is_none_or(|l| changed_meaningfully(l, &next, CHANGE_THRESHOLD_PCT)) {
        let p = next.clone();
        agent.with_state(|s| {
            s.update_local(now(), |r| {
                r.capacity = Some(p.capacity);
                r.tags = p.tags;
                r.gpus = p.gpus;
            });
        });
        debug!(
            cpu_free = next.capacity.available.cpu_millis,
            mem_free = next.capacity.available.memory_bytes,
            gpus = next.capacity.total.gpus,
            "resources published"
        );
        next
    } else {
        last.cloned().unwrap_or(next)
    }
}

/// Runs until `shutdown`: reads `probe` every interval (on a blocking thread:
/// sysinfo and NVML read files and call into C) and publishes changes.
pub async fn run(
    agent: MembershipAgent,
    probe: Box<dyn ResourceProbe>,
    config: ResourceConfig,
    shutdown: CancellationToken,
) {
    let mut probe = Some(probe);
    let mut last: Option<Published> = None;
    let mut ticks = 0u32;
    loop {
        let Some(mut p) = probe.take() else { return };
        let refresh_inventory = ticks.is_multiple_of(INVENTORY_EVERY);
        let read = tokio::task::spawn_blocking(move || {
            let sample = p.sample();
            let inventory = refresh_inventory.then(crate::probe::inventory::read);
            (p, sample, inventory)
        });
        let (p, sample, inventory) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = read => match r {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        probe = Some(p);
        if let Some(inv) = inventory {
            agent.set_inventory(inv);
        }
        last = Some(apply(
            &agent,
            last.as_ref(),
            publish(&sample, &config.declared),
        ));
        ticks = ticks.wrapping_add(1);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(config.interval) => {}
        }
    }
}
