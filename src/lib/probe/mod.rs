//! Resource collection behind a trait: the machine (sysinfo, plus NVIDIA GPUs via
//! NVML when the driver library loads), and a scripted fake for tests.

pub mod gpu;
pub mod inventory;
mod system;

pub use system::SystemProbe;

use crate::core::resources::capacity::Sample;

/// Reads the machine's resources.
pub trait ResourceProbe: Send + 'static {
    /// Takes one reading. Failures of optional sources (no GPU driver, no
    /// `/dev`) are not errors: they read as absent.
    fn sample(&mut self) -> Sample;
}

/// A probe that returns prepared samples in turn, repeating the last one.
#[derive(Debug, Clone)]
pub struct FakeProbe {
    samples: Vec<Sample>,
    next: usize,
}

impl FakeProbe {
    /// Returns `samples` in order, then the last forever.
    pub fn new(samples: Vec<Sample>) -> Self {
        Self { samples, next: 0 }
    }

    /// Always returns `sample`.
    pub fn constant(sample: Sample) -> Self {
        Self::new(vec![sample])
    }
}

impl ResourceProbe for FakeProbe {
    fn sample(&mut self) -> Sample {
        let s = self
            .samples
            .get(self.next)
            .or_else(|| self.samples.last())
            .cloned()
            .unwrap_or_default();
        self.next += 1;
        s
    }
}
