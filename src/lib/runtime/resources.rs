//! The resource loop: reads the machine every resource interval and publishes a
//! new version of this node's record only when something changed meaningfully.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::membership::{MembershipAgent, now};
use crate::{
    core::{
        membership::record::{Amounts, Capacity},
        resources::{
            capacity::{Declared, Published, changed_meaningfully, publish},
            reserve::{shortfall, with_reserved},
        },
    },
    probe::ResourceProbe,
};

/// Resources held by this node's running jobs, shared by the job table
/// (which reserves) and the resource loop (which publishes what is left, at
/// once when a reservation changes).
#[derive(Debug, Clone, Default)]
pub struct Reservations {
    inner: Arc<ReservationsInner>,
}

#[derive(Debug, Default)]
struct ReservationsInner {
    /// What is held, and the last measured capacity.
    state: Mutex<(Amounts, Option<Capacity>)>,
    changed: Notify,
}

/// A job's hold on resources; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    owner: Reservations,
    amounts: Amounts,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.amounts != Amounts::default() {
            self.owner.add(self.amounts, -1);
        }
    }
}

impl Reservations {
    fn state(&self) -> std::sync::MutexGuard<'_, (Amounts, Option<Capacity>)> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, a: Amounts, sign: i64) {
        {
            let mut g = self.state();
            g.0.cpu_millis = g.0.cpu_millis.saturating_add(sign * a.cpu_millis);
            g.0.memory_bytes = g.0.memory_bytes.saturating_add(sign * a.memory_bytes);
            g.0.gpus = g.0.gpus.saturating_add(sign * a.gpus);
        }
        self.inner.changed.notify_one();
    }

    /// What running jobs hold.
    pub fn held(&self) -> Amounts {
        self.state().0
    }

    /// Holds `want` if this node has it free (measured use and other jobs'
    /// reservations considered).
    ///
    /// # Errors
    /// What is short, in words; or that the node has no readings yet.
    pub fn try_reserve(&self, want: Amounts) -> Result<Reservation, String> {
        if want != Amounts::default() {
            let mut g = self.state();
            let Some(capacity) = g.1 else {
                return Err("this node has no resource readings to reserve from".to_owned());
            };
            if let Some(why) = shortfall(capacity, g.0, want) {
                return Err(why);
            }
            // Checked and held under one lock: two jobs cannot both take the last GPU.
            g.0.cpu_millis = g.0.cpu_millis.saturating_add(want.cpu_millis);
            g.0.memory_bytes = g.0.memory_bytes.saturating_add(want.memory_bytes);
            g.0.gpus = g.0.gpus.saturating_add(want.gpus);
            drop(g);
            self.inner.changed.notify_one();
        }
        Ok(Reservation {
            owner: self.clone(),
            amounts: want,
        })
    }

    fn set_measured(&self, c: Capacity) {
        self.state().1 = Some(c);
    }
}

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

/// Publishes `next` now, whatever changed.
fn publish_now(agent: &MembershipAgent, next: &Published) {
    agent.with_state(|s| {
        s.update_local(now(), |r| {
            r.capacity = Some(next.capacity);
            r.tags = next.tags;
            r.gpus.clone_from(&next.gpus);
        });
    });
}

/// Runs until `shutdown`: reads `probe` every interval (on a blocking thread:
/// sysinfo and NVML read files and call into C) and publishes changes; when
/// `reservations` change, publishes what is left at once.
pub async fn run(
    agent: MembershipAgent,
    probe: Box<dyn ResourceProbe>,
    config: ResourceConfig,
    reservations: Reservations,
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
        let reading = publish(&sample, &config.declared);
        reservations.set_measured(reading.capacity);
        let mut shown = reading.clone();
        shown.capacity = with_reserved(reading.capacity, reservations.held());
        let raw = reading;
        last = Some(apply(&agent, last.as_ref(), shown));
        ticks = ticks.wrapping_add(1);
        let next_reading = tokio::time::Instant::now() + config.interval;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(next_reading) => break,
                () = reservations.inner.changed.notified() => {
                    let mut shown = raw.clone();
                    shown.capacity = with_reserved(raw.capacity, reservations.held());
                    publish_now(&agent, &shown);
                    last = Some(shown);
                }
            }
        }
    }
}
