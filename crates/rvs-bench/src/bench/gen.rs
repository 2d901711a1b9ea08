//! The packet generator of `rvs bench packet`: 64-byte UDP/IPv4 frames over
//! many flows, from a thread pinned to one CPU, by one of two generators
//! ([`Kind`], chosen once per run by [`choose`]):
//!
//! * `xdp-live-frames` ([`crate::trafficgen::Generator`]): native XDP
//!   frames, `BPF_PROG_TEST_RUN` in live-frames mode. Frames reach the
//!   device under test's veth as XDP frames, without an skb on either side:
//!   the generator offers several times what the DUT can forward, so the
//!   DUT, not the generator, is the limit.
//! * `af-packet` ([`crate::trafficgen::PacketGenerator`]): the same frames
//!   with `sendmmsg` on an AF_PACKET socket, where the host refuses
//!   live-frames test runs (or `RVS_LIVE_FRAMES=off`). Each frame is an
//!   skb, which a veth running XDP copies into an XDP frame on the DUT's
//!   side: every contender pays that copy, and the generator (about 1 Mpps)
//!   may be the limit of the fastest ones. Ratios within one run stay
//!   meaningful.
//!
//! With the XDP generator:
//! Each system call runs the generator millions of times (the kernel's
//! fixed cost of a call, its frame pool set up and torn down, is about
//! 25 ms here). Flat out (`Pace::Flat`) every run sends a frame; paced
//! (`Pace::Rate`) the program sends a frame only when it is due and drops
//! the others unsent, so the rate holds within a call and a late generator
//! never sends a burst larger than a quarter of the receiving veth's ring.

use std::time::{Duration, Instant};

pub use crate::trafficgen::{Flows, SynFlows, UdpCsum};

/// What a generator sends.
#[derive(Debug, Clone)]
pub enum Frames {
    /// UDP over many flows, round robin.
    Udp(Flows),
    /// The SYN of a new connection per frame.
    Syn(SynFlows),
}

impl Frames {
    fn live(&self, iface: &str) -> Result<crate::trafficgen::Generator, rvs_io::xdp::XdpError> {
        match self {
            Frames::Udp(f) => crate::trafficgen::Generator::load(iface, f),
            Frames::Syn(s) => crate::trafficgen::Generator::load_syn(iface, s),
        }
    }

    fn packet(
        &self,
        iface: &str,
    ) -> Result<crate::trafficgen::PacketGenerator, rvs_io::packet::PacketError> {
        match self {
            Frames::Udp(f) => crate::trafficgen::PacketGenerator::open(iface, f),
            Frames::Syn(s) => crate::trafficgen::PacketGenerator::from_frames(iface, s.frames()),
        }
    }
}

/// Which generator measures a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Native XDP frames from `BPF_PROG_TEST_RUN` in live-frames mode.
    LiveFrames,
    /// `sendmmsg` on an AF_PACKET socket (socket buffers).
    Packet,
}

impl Kind {
    /// The name in the rows (`generator`) and the tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::LiveFrames => "xdp-live-frames",
            Kind::Packet => "af-packet",
        }
    }
}

/// The generator to use from `iface` in namespace `ns`: live frames unless
/// the host refuses them (tried with one frame) or `RVS_LIVE_FRAMES=off`;
/// then AF_PACKET, with the reason.
pub fn choose(ns: &str, iface: &str, frames: &Frames) -> Result<(Kind, Option<String>), String> {
    if rvs_io::livefr::forced_off() {
        return Ok((Kind::Packet, Some(rvs_io::livefr::forced_message())));
    }
    let path = format!("/run/netns/{ns}");
    let iface = iface.to_string();
    let frames = frames.clone();
    std::thread::spawn(move || -> Result<(Kind, Option<String>), String> {
        super::topo::enter(&path)?;
        let g = frames
            .live(&iface)
            .map_err(|e| format!("generator on {iface}: {e}"))?;
        match g.send(1) {
            Ok(()) => Ok((Kind::LiveFrames, None)),
            Err(e @ rvs_io::xdp::XdpError::LiveFramesRefused { .. }) => {
                Ok((Kind::Packet, Some(e.to_string())))
            }
            Err(e) => Err(format!("generator on {iface}: {e}")),
        }
    })
    .join()
    .map_err(|_| "generator thread panicked".to_string())?
}

/// Program runs per system call when sending flat out (0.2–0.5 s).
pub const FLAT_CHUNK: u32 = 1 << 21;

/// Program runs per system call when paced (most drop a frame not yet
/// due: about 0.4 s).
pub const PACED_CHUNK: u32 = 1 << 22;

/// Frames per call of the AF_PACKET generator (it checks the time every
/// few batches, so this only bounds a call).
pub const PACKET_CHUNK: u64 = 1 << 20;

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

/// Send `frames` out of `iface` in namespace `ns` for `duration`
/// (at most `max_packets` frames, or runs of the XDP program, stopping
/// early on `stop`), at `pace`, with generator `kind`, from a thread pinned
/// to `cpu`.
#[allow(clippy::too_many_arguments)]
pub fn send(
    kind: Kind,
    ns: &str,
    iface: &str,
    cpu: usize,
    frames: &Frames,
    pace: Pace,
    duration: Duration,
    max_packets: u64,
    stop: super::topo::Stop,
) -> Result<Sent, String> {
    let path = format!("/run/netns/{ns}");
    let iface = iface.to_string();
    let frames = frames.clone();
    std::thread::spawn(move || -> Result<Sent, String> {
        super::topo::enter(&path)?;
        // The sink's NAPI thread on this CPU runs SCHED_FIFO: it always
        // goes first, so the sink keeps up and the generator uses what is
        // left (the kernel runs the generator in batches and yields the CPU
        // between them).
        super::topo::pin_self(cpu)?;
        let rate = match pace {
            Pace::Flat => None,
            Pace::Rate(r) => Some(r.max(1.0) as u64),
        };
        let err =
            |e: &dyn std::fmt::Display| format!("generator ({}) on {iface}: {e}", kind.name());
        match kind {
            Kind::LiveFrames => {
                let mut g = frames.live(&iface).map_err(|e| err(&e))?;
                let chunk = if rate.is_some() {
                    PACED_CHUNK
                } else {
                    FLAT_CHUNK
                };
                g.pace(rate).map_err(|e| err(&e))?;
                let cpu0 = super::topo::thread_cpu_seconds();
                let start = Instant::now();
                let mut runs = 0u64;
                while runs < max_packets
                    && start.elapsed() < duration
                    && !super::topo::stopped(&stop)
                {
                    let n = chunk.min(u32::try_from(max_packets - runs).unwrap_or(u32::MAX));
                    g.send(n).map_err(|e| err(&e))?;
                    runs += u64::from(n);
                }
                let seconds = start.elapsed().as_secs_f64();
                let cpu_seconds = super::topo::thread_cpu_seconds() - cpu0;
                Ok(Sent {
                    packets: g.generated().map_err(|e| err(&e))?,
                    seconds,
                    cpu_seconds,
                })
            }
            Kind::Packet => {
                let mut g = frames.packet(&iface).map_err(|e| err(&e))?;
                g.pace(rate);
                let cpu0 = super::topo::thread_cpu_seconds();
                let start = Instant::now();
                let end = start + duration;
                while g.generated() < max_packets
                    && Instant::now() < end
                    && !super::topo::stopped(&stop)
                {
                    let n = PACKET_CHUNK.min(max_packets - g.generated());
                    g.send(n, end.min(Instant::now() + Duration::from_millis(100)))
                        .map_err(|e| err(&e))?;
                }
                let seconds = start.elapsed().as_secs_f64();
                let cpu_seconds = super::topo::thread_cpu_seconds() - cpu0;
                Ok(Sent {
                    packets: g.generated(),
                    seconds,
                    cpu_seconds,
                })
            }
        }
    })
    .join()
    .map_err(|_| "generator thread panicked".to_string())?
}
