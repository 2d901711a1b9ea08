//! The packet generator of `rvs bench packet`: 64-byte UDP/IPv4 frames over
//! many flows, sent as native XDP frames ([`rvs_io::trafficgen::Generator`]:
//! `BPF_PROG_TEST_RUN` in live-frames mode) from a thread pinned to one CPU.
//!
//! Frames reach the device under test's veth as XDP frames, without an skb
//! on either side: the generator offers several times what the DUT can
//! forward, so the DUT, not the generator, is the limit.
//!
//! Each system call runs the generator millions of times (the kernel's
//! fixed cost of a call, its frame pool set up and torn down, is about
//! 25 ms here). Flat out (`Pace::Flat`) every run sends a frame; paced
//! (`Pace::Rate`) the program sends a frame only when it is due and drops
//! the others unsent, so the rate holds within a call and a late generator
//! never sends a burst larger than a quarter of the receiving veth's ring.

use std::time::{Duration, Instant};

pub use rvs_io::trafficgen::Flows;

/// Program runs per system call when sending flat out (0.2–0.5 s).
pub const FLAT_CHUNK: u32 = 1 << 21;

/// Program runs per system call when paced (most drop a frame not yet
/// due: about 0.4 s).
pub const PACED_CHUNK: u32 = 1 << 22;

/// How fast to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the generator's CPU allows.
    Flat,
    /// About this many frames per second.
    Rate(f64),
}

/// What a run sent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sent {
    /// Frames generated (the DUT's veth drops those its ring has no room
    /// for: they count as the DUT's losses).
    pub packets: u64,
    /// Wall-clock seconds of sending.
    pub seconds: f64,
    /// CPU seconds the generator thread used (user + system).
    pub cpu_seconds: f64,
}

/// Send `flows` round robin out of `iface` in namespace `ns` for `duration`
/// (at most `max_packets` runs of the program, stopping early on `stop`),
/// at `pace`, from a
/// thread pinned to `cpu`.
#[allow(clippy::too_many_arguments)]
pub fn send(
    ns: &str,
    iface: &str,
    cpu: usize,
    flows: &Flows,
    pace: Pace,
    duration: Duration,
    max_packets: u64,
    stop: super::topo::Stop,
) -> Result<Sent, String> {
    let path = format!("/run/netns/{ns}");
    let iface = iface.to_string();
    let flows = flows.clone();
    std::thread::spawn(move || -> Result<Sent, String> {
        super::topo::enter(&path)?;
        // The sink's NAPI thread on this CPU runs SCHED_FIFO: it always
        // goes first, so the sink keeps up and the generator uses what is
        // left (the kernel runs the generator in batches and yields the CPU
        // between them).
        super::topo::pin_self(cpu)?;
        let mut g = rvs_io::trafficgen::Generator::load(&iface, &flows)
            .map_err(|e| format!("generator on {iface}: {e}"))?;
        let (chunk, rate) = match pace {
            Pace::Flat => (FLAT_CHUNK, None),
            Pace::Rate(r) => (PACED_CHUNK, Some(r.max(1.0) as u64)),
        };
        g.pace(rate)
            .map_err(|e| format!("generator on {iface}: {e}"))?;
        let cpu0 = super::topo::thread_cpu_seconds();
        let start = Instant::now();
        let mut runs = 0u64;
        while runs < max_packets && start.elapsed() < duration && !super::topo::stopped(&stop) {
            let n = chunk.min(u32::try_from(max_packets - runs).unwrap_or(u32::MAX));
            g.send(n)
                .map_err(|e| format!("generator on {iface}: {e}"))?;
            runs += u64::from(n);
        }
        let seconds = start.elapsed().as_secs_f64();
        let cpu_seconds = super::topo::thread_cpu_seconds() - cpu0;
        Ok(Sent {
            packets: g
                .generated()
                .map_err(|e| format!("generator on {iface}: {e}"))?,
            seconds,
            cpu_seconds,
        })
    })
    .join()
    .map_err(|_| "generator thread panicked".to_string())?
}
