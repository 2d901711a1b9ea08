//! The packet generator of `rvs bench packet`: 64-byte UDP/IPv4 frames over
//! many flows, sent as native XDP frames ([`rvs_io::trafficgen::Generator`]:
//! `BPF_PROG_TEST_RUN` in live-frames mode) from a thread pinned to one CPU.
//!
//! Frames reach the device under test's veth as XDP frames, without an skb
//! on either side: the generator offers several times what the DUT can
//! forward, so the DUT, not the generator, is the limit.
//!
//! Flat out (`Pace::Flat`) the kernel runs the generator in calls of
//! `FLAT_CHUNK` frames; paced (`Pace::Rate`) it sends `PACED_CHUNK`
//! frames at a time, each when it is due: a burst never holds more than the
//! receiving veth's ring (256 frames), so losses are the DUT's, not bursts'.

use std::time::{Duration, Instant};

pub use rvs_io::trafficgen::Flows;

/// Frames per system call when sending flat out (tens of milliseconds).
pub const FLAT_CHUNK: u32 = 65_536;

/// Frames per system call when paced.
pub const PACED_CHUNK: u32 = 256;

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

/// When the frame after the first `sent` is due, at `rate` per second.
pub fn due(sent: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(sent as f64 / rate.max(1.0))
}

/// Send `flows` round robin out of `iface` in namespace `ns` for `duration`
/// (at most `max_packets`, stopping early on `stop`), at `pace`, from a
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
        let g = rvs_io::trafficgen::Generator::load(&iface, &flows)
            .map_err(|e| format!("generator on {iface}: {e}"))?;
        let cpu0 = super::topo::thread_cpu_seconds();
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < max_packets && !super::topo::stopped(&stop) {
            let elapsed = start.elapsed();
            if elapsed >= duration {
                break;
            }
            let chunk = match pace {
                Pace::Flat => FLAT_CHUNK,
                Pace::Rate(r) => {
                    let at = due(sent, r);
                    if at > elapsed {
                        let wait = at - elapsed;
                        if wait > Duration::from_micros(200) {
                            std::thread::sleep(wait - Duration::from_micros(100));
                        } else {
                            std::hint::spin_loop();
                        }
                        continue;
                    }
                    PACED_CHUNK
                }
            };
            let chunk = chunk.min(u32::try_from(max_packets - sent).unwrap_or(u32::MAX));
            g.send(chunk)
                .map_err(|e| format!("generator on {iface}: {e}"))?;
            sent += u64::from(chunk);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_due_at_the_rate() {
        assert_eq!(due(0, 1e6), Duration::ZERO);
        assert_eq!(due(1_000_000, 1e6), Duration::from_secs(1));
        assert_eq!(due(500, 1e3), Duration::from_millis(500));
        // A zero rate does not divide by zero.
        assert_eq!(due(1, 0.0), Duration::from_secs(1));
    }
}
