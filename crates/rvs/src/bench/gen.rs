//! The packet generator of `rvs bench packet`: 64-byte UDP/IPv4 frames over
//! many flows, sent as fast as one CPU can through an AF_XDP socket
//! ([`rvs_io::xsk::XskSocket`], copy mode) from a thread pinned to one CPU.
//!
//! In copy mode every frame costs the sender a copy into the UMEM and the
//! kernel an skb; the receiving veth (the device under test) runs its own
//! NAPI or RPS on the other CPU, so the generator's CPU only pays for
//! building and sending.

use std::time::{Duration, Instant};

/// Length of every generated frame (64 on the wire with the FCS).
pub const FRAME_LEN: usize = 60;

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flows {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub dst_port: u16,
    /// Number of flows: source ports `10000..10000 + flows`.
    pub flows: u16,
}

/// The RFC 1071 checksum of `data` (an even length).
pub fn ip_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Frame of flow number `i`: Ethernet, IPv4 (valid header checksum), UDP
/// (checksum 0: none, legal over IPv4) from source port `10000 + i`, zero
/// padding to [`FRAME_LEN`].
pub fn frame(f: &Flows, i: u16) -> [u8; FRAME_LEN] {
    let mut b = [0u8; FRAME_LEN];
    b[0..6].copy_from_slice(&f.dst_mac);
    b[6..12].copy_from_slice(&f.src_mac);
    b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut b[14..34];
    ip[0] = 0x45;
    let total = (FRAME_LEN - 14) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&f.src_ip);
    ip[16..20].copy_from_slice(&f.dst_ip);
    let c = ip_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut b[34..42];
    udp[0..2].copy_from_slice(&10000u16.wrapping_add(i).to_be_bytes());
    udp[2..4].copy_from_slice(&f.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&((FRAME_LEN - 34) as u16).to_be_bytes());
    b
}

/// What a run sent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sent {
    /// Frames the kernel completed (sent or dropped by the device).
    pub packets: u64,
    /// Wall-clock seconds of sending.
    pub seconds: f64,
    /// CPU seconds the generator thread used (user + system).
    pub cpu_seconds: f64,
}

/// Send `flows` round robin out of `iface` in namespace `ns` for `duration`
/// (at most `max_packets`, stopping early on `stop`), from a thread pinned to
/// `cpu`.
pub fn send(
    ns: &str,
    iface: &str,
    cpu: usize,
    flows: &Flows,
    duration: Duration,
    max_packets: u64,
    stop: super::topo::Stop,
) -> Result<Sent, String> {
    let frames: Vec<[u8; FRAME_LEN]> = (0..flows.flows.max(1)).map(|i| frame(flows, i)).collect();
    let path = format!("/run/netns/{ns}");
    let iface = iface.to_string();
    std::thread::spawn(move || -> Result<Sent, String> {
        super::topo::enter(&path)?;
        super::topo::pin_self(cpu)?;
        // SCHED_IDLE: the sink's NAPI thread on this CPU always goes first,
        // so the sink keeps up and the generator only uses what is left.
        super::topo::chrt(super::topo::gettid(), "idle")?;
        let cfg = rvs_io::xsk::UmemConfig {
            frame_size: 2048,
            frames: 4096,
            headroom: 128,
        };
        let mut sock = rvs_io::xsk::XskSocket::open(&iface, 0, &cfg)
            .map_err(|e| format!("AF_XDP socket on {iface}: {e}"))?;
        let cpu0 = super::topo::thread_cpu_seconds();
        let start = Instant::now();
        let mut k = 0usize;
        let mut rounds = 0u64;
        loop {
            for _ in 0..64 {
                if !sock.tx_copy(&frames[k]) {
                    break;
                }
                k += 1;
                if k == frames.len() {
                    k = 0;
                }
            }
            sock.flush()
                .map_err(|e| format!("AF_XDP send on {iface}: {e}"))?;
            rounds += 1;
            if rounds.is_multiple_of(64)
                && (start.elapsed() >= duration
                    || sock.stats().tx_packets >= max_packets
                    || super::topo::stopped(&stop))
            {
                break;
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let cpu_seconds = super::topo::thread_cpu_seconds() - cpu0;
        // Let the last frames leave before the socket closes.
        let drain = Instant::now() + Duration::from_millis(50);
        while Instant::now() < drain {
            let _ = sock.flush();
            std::thread::sleep(Duration::from_millis(5));
        }
        let s = sock.stats();
        Ok(Sent {
            packets: s.tx_completed,
            seconds,
            cpu_seconds,
        })
    })
    .join()
    .map_err(|_| "generator thread panicked".to_string())?
}
