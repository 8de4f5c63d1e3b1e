//! The resource loop: reads the machine every resource interval and publishes a
//! new version of this node's record only when something changed meaningfully.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::membership::{MembershipAgent, now};
use crate::{
    core::{
        membership::record::{Amounts, Capacity, Gpu},
        resources::{
            capacity::{Declared, Published, changed_meaningfully, publish},
            request::GpuFilter,
            reserve::{pick_gpus, shortfall, with_reserved},
        },
    },
    probe::ResourceProbe,
};

/// Resources held by this node's running jobs, shared by the job table
/// (which reserves) and the resource loop (which publishes what is left, at
/// once when a reservation changes). GPUs are held device by device: a job
/// that asks for N is given N specific free devices, and no two running
/// jobs hold the same one.
#[derive(Debug, Clone, Default)]
pub struct Reservations {
    inner: Arc<ReservationsInner>,
}

#[derive(Debug, Default)]
struct ReservationsInner {
    state: Mutex<Held>,
    changed: Notify,
    /// Held devices the last reading did not find (lost while held).
    lost: tokio::sync::watch::Sender<BTreeSet<String>>,
}

/// What is held, against the last reading.
#[derive(Debug, Default)]
struct Held {
    amounts: Amounts,
    /// The last measured capacity (`None`: no reading yet).
    measured: Option<Capacity>,
    /// The devices of the last reading.
    devices: Vec<Gpu>,
    /// Devices held by jobs, by UUID.
    gpus: BTreeSet<String>,
    /// Devices let go of since the last reading: the gsp processes it lists
    /// on them are the job's that just ended.
    released: BTreeSet<String>,
}

/// A device a job was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundGpu {
    /// Its UUID (`GPU-…` or `MIG-…`).
    pub uuid: String,
    /// NVML's index of its GPU.
    pub index: u32,
}

/// A job's hold on resources; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    owner: Reservations,
    amounts: Amounts,
    gpus: Vec<BoundGpu>,
}

impl Reservation {
    /// The devices it holds.
    pub fn gpus(&self) -> &[BoundGpu] {
        &self.gpus
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.amounts != Amounts::default() || !self.gpus.is_empty() {
            {
                let mut g = self.owner.state();
                add(&mut g.amounts, self.amounts, -1);
                for b in &self.gpus {
                    g.gpus.remove(&b.uuid);
                    g.released.insert(b.uuid.clone());
                }
            }
            self.owner.inner.changed.notify_one();
        }
    }
}

fn add(to: &mut Amounts, a: Amounts, sign: i64) {
    to.cpu_millis = to.cpu_millis.saturating_add(sign * a.cpu_millis);
    to.memory_bytes = to.memory_bytes.saturating_add(sign * a.memory_bytes);
    to.gpus = to.gpus.saturating_add(sign * a.gpus);
}

impl Reservations {
    fn state(&self) -> std::sync::MutexGuard<'_, Held> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What running jobs hold.
    pub fn held(&self) -> Amounts {
        self.state().amounts
    }

    /// The UUIDs of the devices running jobs hold.
    pub fn held_gpus(&self) -> BTreeSet<String> {
        self.state().gpus.clone()
    }

    /// Holds `want` if this node has it free (measured use and other jobs'
    /// reservations considered), GPUs as `want.gpus` specific devices that
    /// pass `filter` (see [`pick_gpus`]). A node whose GPUs are declared,
    /// not read, holds a count of them, and cannot match `filter`.
    ///
    /// # Errors
    /// What is short, in words; or that the node has no readings yet.
    pub fn try_reserve(&self, want: Amounts, filter: &GpuFilter) -> Result<Reservation, String> {
        if want == Amounts::default() && filter.is_empty() {
            return Ok(Reservation {
                owner: self.clone(),
                amounts: want,
                gpus: Vec::new(),
            });
        }
        let mut g = self.state();
        let Some(capacity) = g.measured else {
            return Err("this node has no resource readings to reserve from".to_owned());
        };
        let n = usize::try_from(want.gpus.max(0)).unwrap_or(usize::MAX);
        let by_device = !g.devices.is_empty();
        let mut bound = Vec::new();
        if n > 0 && by_device {
            bound = pick_gpus(&g.devices, &g.gpus, n, filter)?
                .into_iter()
                .map(|d| BoundGpu {
                    uuid: d.uuid.clone(),
                    index: d.index,
                })
                .collect();
        } else if n > 0 && !filter.is_empty() {
            return Err(
                "this node's GPUs are declared, not read: it has no model or memory to match"
                    .to_owned(),
            );
        }
        // The devices are checked above: counts check the rest.
        let counted = Amounts {
            gpus: if by_device { 0 } else { want.gpus },
            ..want
        };
        if let Some(why) = shortfall(capacity, g.amounts, counted) {
            return Err(why);
        }
        // Checked and held under one lock: two jobs cannot both take a device.
        add(&mut g.amounts, want, 1);
        for b in &bound {
            g.gpus.insert(b.uuid.clone());
        }
        drop(g);
        self.inner.changed.notify_one();
        Ok(Reservation {
            owner: self.clone(),
            amounts: want,
            gpus: bound,
        })
    }

    /// Takes a new reading; held devices it does not list are reported
    /// lost (see [`Self::lost_gpus`]).
    fn set_measured(&self, reading: &Published) {
        let lost: BTreeSet<String> = {
            let mut g = self.state();
            g.measured = Some(reading.capacity);
            g.devices.clone_from(&reading.gpus);
            g.released.clear();
            let found: BTreeSet<&str> = reading.gpus.iter().map(|d| d.uuid.as_str()).collect();
            g.gpus
                .iter()
                .filter(|u| !found.contains(u.as_str()))
                .cloned()
                .collect()
        };
        self.inner.lost.send_if_modified(|l| {
            let news = *l != lost;
            *l = lost;
            news
        });
    }

    /// The held devices the last reading did not find, as readings come.
    pub fn lost_gpus(&self) -> tokio::sync::watch::Receiver<BTreeSet<String>> {
        self.inner.lost.subscribe()
    }

    /// `reading` as the node shows it: devices that jobs hold marked held,
    /// and the available amounts less what jobs hold. A device no job holds
    /// that a gsp job's process uses anyway (a job started with
    /// `--exec-expose-gpus` sees every GPU) is busy, unless a job let go of
    /// it since the reading (the process is most likely that job's, gone).
    pub fn shown(&self, reading: &Published) -> Published {
        let g = self.state();
        let mut shown = reading.clone();
        shown.capacity = with_reserved(reading.capacity, g.amounts);
        if !shown.gpus.is_empty() {
            for d in &mut shown.gpus {
                d.held = g.gpus.contains(&d.uuid);
                if !d.held && d.processes > d.foreign_processes && !g.released.contains(&d.uuid) {
                    d.busy = true;
                }
            }
            let used = shown.gpus.iter().filter(|d| !d.is_free()).count();
            let used = i64::try_from(used).unwrap_or(i64::MAX);
            shown.capacity.used.gpus = used;
            shown.capacity.available.gpus = (shown.capacity.total.gpus - used).max(0);
        }
        shown
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
        reservations.set_measured(&reading);
        agent.set_gpu_host(sample.gpu_host);
        let shown = reservations.shown(&reading);
        let raw = reading;
        last = Some(apply(&agent, last.as_ref(), shown));
        ticks = ticks.wrapping_add(1);
        let next_reading = tokio::time::Instant::now() + config.interval;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(next_reading) => break,
                () = reservations.inner.changed.notified() => {
                    let shown = reservations.shown(&raw);
                    publish_now(&agent, &shown);
                    last = Some(shown);
                }
            }
        }
    }
}
