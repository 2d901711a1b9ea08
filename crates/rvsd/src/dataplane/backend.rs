//! The two socket backends: opening them (AF_XDP sockets behind the XDP
//! classifier, or AF_PACKET sockets behind an nftables table), choosing one,
//! and the sockets a worker reads and writes.

use std::os::fd::RawFd;

use rvs_io::neigh::Resolver;
use rvs_io::nft::{NftInterface, NftTable};
use rvs_io::packet::PacketError;
use rvs_io::packet::{PacketConfig, PacketSocket};
use rvs_io::xdp::Classifier;
use rvs_io::xsk::{FrameBuf, UmemConfig, Verdict, XskError, XskSocket};

use super::Backend;
use super::error::OpenError;
use crate::options::IoMode;

/// What keeps the kernel from handling claimed frames.
#[derive(Debug)]
pub(super) enum Filter {
    Xdp(Box<Classifier>),
    Nft(NftTable),
}

// What reaches rvs with the kernel's default offloads, which rvsd leaves
// as they are (measured on veth, kernel 6.18; see drivers/net/veth.c and
// net/core/dev.c):
// * Transmit checksum offload of a local sender: frames carry partial
//   TCP/UDP checksums (the pseudo-header sum) and zero SCTP CRCs on
//   every path (XDP, AF_XDP, AF_PACKET); the engine and the XDP fast path
//   finish them (`rvs_wire::offload`), counted in `rvs dataplane`.
// * TSO/GSO of a local sender: while an XDP program without multi-buffer
//   support is attached to a veth, the kernel clears TSO on its peer
//   (`ethtool -k`: tcp-segmentation-offload off), so software GSO cuts
//   MTU-sized segments before the veth, each with its own partial
//   checksum; native XDP on a NIC disables LRO. XDP and AF_XDP never see
//   a super-frame. Without XDP (`--io packet`) the peer keeps TSO and
//   AF_PACKET reads its TCP packets of up to 64 KiB whole.
// * GRO runs after XDP (on the frames XDP passes), so it merges nothing
//   that XDP or AF_XDP see; AF_PACKET taps frames after GRO, merged.
//
// So `--io packet` reads into 64 KiB buffers and its workers cut TCP
// super-frames into segments of the ingress MTU before the engine
// ([`Worker::cut_super_frames`], `rvs_wire::tcp_segment`), as the
// kernel's GSO would on the way out. UDP super-frames (UDP GSO, or
// GRO with `rx-udp-gro-forwarding`, off by default) cannot be cut without
// the sender's segment size and are dropped (counted).

/// One served interface.
#[derive(Debug, Clone)]
pub(super) struct Port {
    pub(super) ifindex: u32,
    pub(super) name: String,
    /// RX queues (XDP sockets opened, or fanout members).
    pub(super) queues: u32,
    /// IP MTU: the size TCP super-frames read from it are cut to.
    pub(super) mtu: u32,
}

/// An error of a worker's socket, as its backend gave it.
#[derive(Debug, thiserror::Error)]
pub(super) enum SockError {
    #[error(transparent)]
    Xsk(#[from] XskError),
    #[error(transparent)]
    Packet(#[from] PacketError),
}

/// A socket of a worker.
#[derive(Debug)]
pub(super) enum Sock {
    Xsk(Box<XskSocket>),
    Packet(Box<PacketSocket>),
}

impl Sock {
    pub(super) fn rx_batch(
        &mut self,
        max: usize,
        f: impl FnMut(&mut FrameBuf<'_>) -> Verdict,
    ) -> Result<usize, SockError> {
        match self {
            Sock::Xsk(s) => Ok(s.rx_batch(max, f)?),
            Sock::Packet(s) => Ok(s.rx_batch(max, f)?),
        }
    }

    pub(super) fn tx_copy(&mut self, frame: &[u8]) -> bool {
        match self {
            Sock::Xsk(s) => s.tx_copy(frame),
            Sock::Packet(s) => s.tx_copy(frame),
        }
    }

    pub(super) fn flush(&mut self) -> Result<(), SockError> {
        match self {
            Sock::Xsk(s) => Ok(s.flush()?),
            Sock::Packet(s) => Ok(s.flush()?),
        }
    }

    /// Frames dropped at send time, counted by the socket (AF_PACKET:
    /// refused by the kernel in `flush`; AF_XDP counts them at `tx_copy`).
    pub(super) fn tx_dropped(&self) -> u64 {
        match self {
            Sock::Xsk(_) => 0,
            Sock::Packet(s) => s.stats().tx_dropped,
        }
    }

    /// Frames the kernel dropped on receive so far (one getsockopt).
    pub(super) fn kernel_drops(&mut self) -> u64 {
        match self {
            Sock::Xsk(s) => s.stats().kernel.map_or(0, |k| {
                k.rx_dropped + k.rx_ring_full + k.rx_fill_ring_empty_descs
            }),
            Sock::Packet(s) => s.kernel_stats().map_or(0, |k| k.drops),
        }
    }

    pub(super) fn fd(&self) -> RawFd {
        match self {
            Sock::Xsk(s) => s.fd(),
            Sock::Packet(s) => s.fd(),
        }
    }

    pub(super) fn ifname(&self) -> &str {
        match self {
            Sock::Xsk(s) => s.ifname(),
            Sock::Packet(s) => s.ifname(),
        }
    }
}

/// The sockets of one worker: per served port (by index), the socket it
/// transmits with, which also receives unless it is a transmit-only
/// AF_PACKET socket (an XDP worker for a queue that port does not have).
#[derive(Debug)]
pub(super) struct WorkerSocks {
    pub(super) socks: Vec<Sock>,
    pub(super) receives: Vec<bool>,
}

/// RX queues of `name`, at least 1.
fn queues_of(name: &str) -> Result<u32, OpenError> {
    XskSocket::queue_count(name)
        .map(|n| n.max(1))
        .map_err(|source| OpenError::Queues {
            name: name.to_string(),
            source,
        })
}

/// The served ports, as the resolver knows them.
pub(super) fn ports_of(resolver: &Resolver, interfaces: &[String]) -> Result<Vec<Port>, OpenError> {
    interfaces
        .iter()
        .map(|name| {
            let info = resolver
                .interface_by_name(name)
                .ok_or_else(|| OpenError::UnknownInterface(name.clone()))?;
            Ok(Port {
                ifindex: info.ifindex,
                name: name.clone(),
                queues: queues_of(name)?,
                mtu: crate::system::interface_mtu(name).unwrap_or(1500),
            })
        })
        .collect()
}

/// Pick the backend of `mode` (not `None`): the one asked for, or for
/// `Auto` XDP if `xdp` opens it, else AF_PACKET. Returns the backend, what
/// the opener gave, and why (for the log).
pub(super) fn choose<T>(
    mode: IoMode,
    xdp: impl FnOnce() -> Result<T, OpenError>,
    packet: impl FnOnce() -> Result<T, OpenError>,
) -> Result<(Backend, T, String), OpenError> {
    match mode {
        IoMode::Xdp => Ok((Backend::Xdp, xdp()?, "asked for (--io xdp)".into())),
        IoMode::Packet => Ok((Backend::Packet, packet()?, "asked for (--io packet)".into())),
        IoMode::Auto => match xdp() {
            Ok(t) => Ok((
                Backend::Xdp,
                t,
                "--io auto: the XDP classifier attached and the AF_XDP sockets opened".into(),
            )),
            Err(xdp_err) => match packet() {
                Ok(t) => Ok((
                    Backend::Packet,
                    t,
                    format!("--io auto: XDP is unavailable ({xdp_err}); using AF_PACKET"),
                )),
                Err(packet_err) => Err(OpenError::NoBackend {
                    xdp: Box::new(xdp_err),
                    packet: Box::new(packet_err),
                }),
            },
        },
        IoMode::None => Err(OpenError::NoDataPlane),
    }
}

/// Attach the classifier and open a socket per RX queue; worker `q` gets
/// queue `q` of every port, or a transmit-only AF_PACKET socket for a port
/// with fewer queues.
pub(super) fn open_xdp(
    ports: &[Port],
    flow_entries: u32,
    umem_note: &mut Option<String>,
) -> Result<(Filter, Vec<WorkerSocks>), OpenError> {
    let names: Vec<String> = ports.iter().map(|p| p.name.clone()).collect();
    let mut classifier =
        Classifier::attach_sized(&names, flow_entries).map_err(OpenError::Attach)?;
    // The UMEMs are locked memory, counted against RLIMIT_MEMLOCK unless
    // rvsd has CAP_IPC_LOCK: where the limit cannot be raised (a host whose
    // bounding set lacks CAP_SYS_RESOURCE ignores rvsd.service's
    // LimitMEMLOCK=infinity) the default UMEM of every socket may not fit.
    // Then the sockets are opened again with half the frames each, down
    // to MIN_UMEM_FRAMES, and the log says so, before AF_XDP is given up.
    let mut cfg = UmemConfig::default();
    loop {
        match open_xdp_sockets(ports, &mut classifier, &cfg) {
            Err(OpenError::Xsk {
                name,
                queue,
                source,
            }) if source.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error())
                && cfg.frames / 2 >= MIN_UMEM_FRAMES =>
            {
                let smaller = UmemConfig {
                    frames: cfg.frames / 2,
                    ..cfg
                };
                tracing::warn!(
                    "AF_XDP: {name} queue {queue}: the locked-memory limit ({}) does not hold \
                     a UMEM of {} frames for every socket ({source}); opening the sockets with \
                     {} frames each ({} KiB)",
                    memlock_limit(),
                    cfg.frames,
                    smaller.frames,
                    u64::from(smaller.frames) * u64::from(smaller.frame_size) / 1024
                );
                *umem_note = Some(format!(
                    "the locked-memory limit ({}) holds UMEMs of {} frames per socket, not {}",
                    memlock_limit(),
                    smaller.frames,
                    UmemConfig::default().frames
                ));
                cfg = smaller;
                // The failed attempt's UMEMs leave the count once the
                // kernel's deferred release of their sockets has run.
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Ok(workers) => return Ok((Filter::Xdp(Box::new(classifier)), workers)),
            Err(e) => return Err(e),
        }
    }
}

/// The fewest frames a socket's UMEM is given when the locked-memory limit
/// is short (the default is 4096): 512 hold eight batches.
const MIN_UMEM_FRAMES: u32 = 512;

/// RLIMIT_MEMLOCK as the log says it.
fn memlock_limit() -> String {
    match rustix::process::getrlimit(rustix::process::Resource::Memlock).current {
        Some(b) => format!("RLIMIT_MEMLOCK {} KiB, without CAP_IPC_LOCK", b / 1024),
        None => "RLIMIT_MEMLOCK unlimited".into(),
    }
}

/// The sockets of [`open_xdp`], each with a UMEM of `cfg`; worker `q` gets
/// queue `q` of every port.
fn open_xdp_sockets(
    ports: &[Port],
    classifier: &mut Classifier,
    cfg: &UmemConfig,
) -> Result<Vec<WorkerSocks>, OpenError> {
    let n = ports.iter().map(|p| p.queues).max().unwrap_or(1).max(1);
    let mut workers: Vec<WorkerSocks> = (0..n)
        .map(|_| WorkerSocks {
            socks: Vec::new(),
            receives: Vec::new(),
        })
        .collect();
    let mut base = 0u32;
    for p in ports {
        classifier
            .set_if_base(p.ifindex, base)
            .map_err(|source| OpenError::Classifier {
                name: p.name.clone(),
                source,
            })?;
        for (q, w) in (0..n).zip(workers.iter_mut()) {
            if q < p.queues {
                let s = XskSocket::open(&p.name, q, cfg).map_err(|source| OpenError::Xsk {
                    name: p.name.clone(),
                    queue: q,
                    source,
                })?;
                classifier
                    .xsk_map_set(base + q, s.fd())
                    .map_err(|source| OpenError::XskMap {
                        name: p.name.clone(),
                        queue: q,
                        source,
                    })?;
                w.socks.push(Sock::Xsk(Box::new(s)));
                w.receives.push(true);
            } else {
                let s = PacketSocket::open_tx_only(&p.name, &PacketConfig::default())
                    .map_err(|e| packet_error(p, e))?;
                w.socks.push(Sock::Packet(Box::new(s)));
                w.receives.push(false);
            }
        }
        base += p.queues;
    }
    Ok(workers)
}

/// Install the nftables table and open the AF_PACKET
/// sockets: one per port and worker, the workers of a port in one fanout
/// group.
pub(super) fn open_packet(ports: &[Port]) -> Result<(Filter, Vec<WorkerSocks>), OpenError> {
    let table = NftTable::install(
        ports
            .iter()
            .map(|p| NftInterface {
                name: p.name.clone(),
                ifindex: p.ifindex,
            })
            .collect(),
    )?;
    let n = ports.iter().map(|p| p.queues).max().unwrap_or(1).max(1);
    let mut workers: Vec<WorkerSocks> = (0..n)
        .map(|_| WorkerSocks {
            socks: Vec::new(),
            receives: Vec::new(),
        })
        .collect();
    for p in ports {
        let mut group = None;
        for w in workers.iter_mut() {
            // Buffers that hold a 64 KiB TCP super-frame (a local sender's
            // TSO reaches AF_PACKET whole): cut by the worker.
            // cut by the worker into the sender's segment size, which the
            // vnet header tells.
            let rx_cfg = PacketConfig {
                buf_size: PacketConfig::default().headroom + rvs_io::packet::SUPER_FRAME_MAX,
                vnet_hdr: true,
                ..PacketConfig::default()
            };
            let mut s = PacketSocket::open(&p.name, &rx_cfg).map_err(|e| packet_error(p, e))?;
            if n > 1 {
                group = Some(s.join_fanout(group).map_err(|e| packet_error(p, e))?);
            }
            w.socks.push(Sock::Packet(Box::new(s)));
            w.receives.push(true);
        }
    }
    Ok((Filter::Nft(table), workers))
}

fn packet_error(p: &Port, source: PacketError) -> OpenError {
    OpenError::Packet {
        name: p.name.clone(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_to_packet() {
        let ok = || Ok::<u8, OpenError>(1);
        let bad = || Err::<u8, OpenError>(OpenError::ClaimCheck("no AF_XDP".into()));
        let bad2 = || Err::<u8, OpenError>(OpenError::ClaimCheck("no nft".into()));
        let (b, _, why) = choose(IoMode::Auto, ok, bad2).unwrap();
        assert_eq!(b, Backend::Xdp);
        assert!(why.contains("auto"), "{why}");
        let (b, _, why) = choose(IoMode::Auto, bad, ok).unwrap();
        assert_eq!(b, Backend::Packet);
        assert!(why.contains("no AF_XDP"), "{why}");
        let e = choose(IoMode::Auto, bad, bad2).unwrap_err().to_string();
        assert_eq!(
            e,
            "no packet I/O works: xdp: the rules loaded do not fit: no AF_XDP; \
             packet: the rules loaded do not fit: no nft \
             (use --io none for the control plane only)"
        );
        assert!(
            e.contains("no AF_XDP") && e.contains("no nft") && e.contains("--io none"),
            "{e}"
        );
        // An explicit mode never falls back.
        assert_eq!(
            choose(IoMode::Xdp, bad, ok).unwrap_err().to_string(),
            "the rules loaded do not fit: no AF_XDP"
        );
        assert_eq!(
            choose(IoMode::Packet, ok, bad2).unwrap_err().to_string(),
            "the rules loaded do not fit: no nft"
        );
        assert_eq!(choose(IoMode::Packet, bad, ok).unwrap().0, Backend::Packet);
        assert!(choose(IoMode::None, ok, ok).is_err());
    }
}
