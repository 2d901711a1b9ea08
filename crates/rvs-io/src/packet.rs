//! AF_PACKET raw sockets: the fallback packet I/O where XDP is unavailable.
//!
//! A [`PacketSocket`] is a `SOCK_RAW` socket of protocol `ETH_P_ALL` bound to
//! one interface. It receives a copy of every frame the interface receives
//! (`PACKET_IGNORE_OUTGOING`: not the frames sent from this host, our own
//! included) and sends whole Ethernet frames out of it.
//!
//! Unlike AF_XDP, the kernel keeps its own copy of every frame: what rvs
//! claims must be dropped in front of the kernel's stack (the [`nft`]
//! module's netdev ingress rules; taps run before that hook), and what rvs
//! does not claim needs nothing from us.
//!
//! Frames are received with `recvmmsg(2)` into reusable buffers and sent
//! with `sendmmsg(2)`, a batch per syscall. Why not a `TPACKET_V3` ring: the
//! engine rewrites frames in place and prepends headers (IP-in-IP), so it
//! needs each frame in a private buffer with headroom in front of it; a ring
//! block is shared with the kernel and has no headroom, so every frame would
//! be copied out anyway. `recvmmsg` puts each frame straight where the
//! engine wants it, with one syscall per batch.
//!
//! Several sockets on one interface share its traffic with
//! [`PacketSocket::join_fanout`] (`PACKET_FANOUT_HASH`: one flow, one
//! socket). A packet socket sees IP fragments one by one (the IP layer
//! reassembles after the taps); the fragments of one datagram may reach
//! different sockets (only the first has ports to hash), which is fine: the
//! engine, shared by the workers, tracks them by datagram
//! (`rvs_core::frag`), and the nftables table drops them in front of the
//! kernel by address.
//!
//! [`nft`]: crate::nft

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::xsk::{FrameBuf, Verdict};

/// `ETH_P_ALL` in network byte order, as `sll_protocol` and `socket(2)` want it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();
/// `PACKET_IGNORE_OUTGOING` of `linux/if_packet.h` (Linux ≥ 4.20).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `PACKET_FANOUT` of `linux/if_packet.h`.
const PACKET_FANOUT: libc::c_int = 18;
/// `PACKET_STATISTICS` of `linux/if_packet.h`.
const PACKET_STATISTICS: libc::c_int = 6;
/// `PACKET_VNET_HDR` of linux/if_packet.h.
const PACKET_VNET_HDR: libc::c_int = 15;
/// `struct virtio_net_hdr`: flags, gso_type, hdr_len, gso_size,
/// csum_start, csum_offset (host order for packet sockets).
const VNET_HDR_LEN: usize = 10;
/// A `virtio_net_hdr` that asks nothing of the kernel (no GSO, no
/// checksum to finish), in front of every frame a vnet-header socket sends.
static NO_VNET_HDR: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];
/// Fanout by flow hash.
const PACKET_FANOUT_HASH: u32 = 0;
/// Let the kernel pick an unused group id (Linux ≥ 4.12).
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
/// Receive buffer asked for (`SO_RCVBUFFORCE`, else `SO_RCVBUF`).
const RCVBUF: libc::c_int = 4 << 20;

/// The largest buffer: a 64 KiB TCP super-frame (a local sender's TSO,
/// GRO) with its Ethernet header and headroom fits.
const MAX_BUF: usize = 128 << 10;

/// Bytes a buffer needs for the largest frame the kernel hands over: an
/// IP packet of 65535 bytes, an Ethernet header and one VLAN tag.
pub const SUPER_FRAME_MAX: usize = 65535 + 18;

/// Shape of the buffers of one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketConfig {
    /// Frames received per `recvmmsg` (and buffers kept for them).
    pub batch: usize,
    /// Bytes per buffer, headroom included.
    pub buf_size: usize,
    /// Free bytes in front of every received frame, for headers the engine
    /// prepends.
    pub headroom: usize,
    /// Receive with `PACKET_VNET_HDR`: every frame comes with the kernel's
    /// GSO metadata, so a super-frame (a local sender's TSO, GRO) says the
    /// segment size its sender meant ([`FrameBuf::gso_size`]). Frames sent
    /// through the socket then go out with an empty header.
    pub vnet_hdr: bool,
}

impl Default for PacketConfig {
    fn default() -> Self {
        PacketConfig {
            batch: 64,
            buf_size: 2048,
            headroom: 256,
            vnet_hdr: false,
        }
    }
}

impl PacketConfig {
    /// Check the shape: a batch of 1 to 1024, room for a 1514-byte frame
    /// after the headroom.
    pub fn validate(&self) -> Result<(), PacketError> {
        if self.batch == 0 || self.batch > 1024 {
            return Err(PacketError::Config(format!(
                "batch {} not in 1..=1024",
                self.batch
            )));
        }
        if self.vnet_hdr && self.headroom < VNET_HDR_LEN {
            return Err(PacketError::Config(format!(
                "headroom {} cannot hold the {VNET_HDR_LEN}-byte vnet header",
                self.headroom
            )));
        }
        if self.buf_size > MAX_BUF || self.buf_size < self.headroom + 1514 {
            return Err(PacketError::Config(format!(
                "buffer of {} bytes with {} of headroom cannot hold a 1514-byte frame (or exceeds 128 KiB)",
                self.buf_size, self.headroom
            )));
        }
        Ok(())
    }
}

/// Counters of one socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames longer than a buffer (dropped).
    pub rx_truncated: u64,
    /// Frames handed to the kernel for transmission.
    pub tx_packets: u64,
    /// Bytes handed to the kernel.
    pub tx_bytes: u64,
    /// Frames the kernel refused to send (queue full, device down): dropped.
    pub tx_dropped: u64,
    /// Frames refused before queueing: empty, or longer than a buffer.
    pub tx_invalid: u64,
    /// Frames the callback dropped ([`Verdict::Drop`]).
    pub dropped_verdict: u64,
}

/// The kernel's counters of a socket (`PACKET_STATISTICS`; reading them
/// resets them, so they are added up here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelPacketStats {
    /// Frames the socket was given (`tp_packets`).
    pub packets: u64,
    /// Frames dropped because the receive buffer was full (`tp_drops`).
    pub drops: u64,
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// A system call failed.
    #[error("{op} on {target}: {source}")]
    Os {
        /// What was being done.
        op: &'static str,
        /// On what.
        target: String,
        /// The error.
        source: io::Error,
    },
    /// Not a valid interface name.
    #[error("invalid interface name {0:?}")]
    IfName(String),
    /// A bad [`PacketConfig`].
    #[error("bad packet socket configuration: {0}")]
    Config(String),
}

impl PacketError {
    fn os(op: &'static str, target: impl fmt::Display, source: io::Error) -> PacketError {
        PacketError::Os {
            op,
            target: target.to_string(),
            source,
        }
    }

    /// The errno, for system-call errors.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            PacketError::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// One AF_PACKET socket bound to one interface, with its receive buffers
/// and a transmit queue.
///
/// Not `Sync`: one worker thread owns it; `Send`, so it can be opened in one
/// thread and used in another.
pub struct PacketSocket {
    fd: OwnedFd,
    ifname: String,
    ifindex: u32,
    cfg: PacketConfig,
    /// `batch` buffers of `buf_size` bytes, received into.
    rx: Vec<u8>,
    /// Frames waiting for [`flush`](Self::flush): bytes, back to back.
    tx: Vec<u8>,
    /// `(offset, len)` of each frame in `tx`.
    tx_frames: Vec<(usize, usize)>,
    stats: PacketStats,
    kernel: KernelPacketStats,
}

impl PacketSocket {
    /// Open a socket on `ifname` (in the calling thread's network namespace)
    /// that receives every frame the interface receives.
    pub fn open(ifname: &str, cfg: &PacketConfig) -> Result<PacketSocket, PacketError> {
        Self::open_inner(ifname, cfg, true)
    }

    /// Open a socket on `ifname` that only sends (it receives nothing).
    pub fn open_tx_only(ifname: &str, cfg: &PacketConfig) -> Result<PacketSocket, PacketError> {
        Self::open_inner(ifname, cfg, false)
    }

    fn open_inner(
        ifname: &str,
        cfg: &PacketConfig,
        receive: bool,
    ) -> Result<PacketSocket, PacketError> {
        cfg.validate()?;
        let cname = check_ifname(ifname)?;
        // SAFETY: `cname` is a NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(PacketError::os(
                "if_nametoindex",
                ifname,
                io::Error::last_os_error(),
            ));
        }
        // Protocol 0: nothing is received until bind names the protocol, so
        // no frame of another interface slips in before the bind.
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if fd < 0 {
            return Err(PacketError::os(
                "socket(AF_PACKET)",
                ifname,
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if receive {
            setsockopt_int(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
                .map_err(|e| PacketError::os("setsockopt(PACKET_IGNORE_OUTGOING)", ifname, e))?;
            // Bigger than the default: bursts wait there while the worker
            // holds the engine. FORCE needs CAP_NET_ADMIN; plain is capped.
            if setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
                let _ = setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF);
            }
        }
        if cfg.vnet_hdr {
            setsockopt_int(&fd, libc::SOL_PACKET, PACKET_VNET_HDR, 1)
                .map_err(|e| PacketError::os("setsockopt(PACKET_VNET_HDR)", ifname, e))?;
        }
        // SAFETY: all-zero bytes are a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = if receive { ETH_P_ALL_BE } else { 0 };
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the length given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(PacketError::os(
                "bind(AF_PACKET)",
                ifname,
                io::Error::last_os_error(),
            ));
        }
        Ok(PacketSocket {
            fd,
            ifname: ifname.to_string(),
            ifindex,
            cfg: *cfg,
            rx: if receive {
                vec![0; cfg.batch * cfg.buf_size]
            } else {
                Vec::new()
            },
            tx: Vec::new(),
            tx_frames: Vec::new(),
            stats: PacketStats::default(),
            kernel: KernelPacketStats::default(),
        })
    }

    /// Join fanout group `group` of this socket's interface (hash of the
    /// flow), or create a new group with a
    /// kernel-chosen id when `group` is `None`. Returns the group id, for the
    /// other sockets to join.
    pub fn join_fanout(&mut self, group: Option<u16>) -> Result<u16, PacketError> {
        let flags = PACKET_FANOUT_HASH;
        let arg = match group {
            Some(id) => u32::from(id) | (flags << 16),
            None => (flags | PACKET_FANOUT_FLAG_UNIQUEID) << 16,
        };
        setsockopt_int(
            &self.fd,
            libc::SOL_PACKET,
            PACKET_FANOUT,
            arg as libc::c_int,
        )
        .map_err(|e| PacketError::os("setsockopt(PACKET_FANOUT)", &self.ifname, e))?;
        if let Some(id) = group {
            return Ok(id);
        }
        let mut v: u32 = 0;
        let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for writes of the sizes given.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_FANOUT,
                (&raw mut v).cast(),
                &raw mut len,
            )
        };
        if r < 0 {
            return Err(PacketError::os(
                "getsockopt(PACKET_FANOUT)",
                &self.ifname,
                io::Error::last_os_error(),
            ));
        }
        Ok((v & 0xffff) as u16)
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The raw descriptor (to poll).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receive up to `max` frames (at most the configured batch) without
    /// blocking and hand each to `f`, which may rewrite it in place (moving
    /// its start into the headroom). [`Verdict::TxSame`] queues the frame
    /// for transmission out of this socket's interface (call
    /// [`flush`](Self::flush)); [`Verdict::Done`] and [`Verdict::Drop`] let
    /// it go. Returns the number of frames received.
    pub fn rx_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(&mut FrameBuf<'_>) -> Verdict,
    ) -> Result<usize, PacketError> {
        let n_max = max
            .min(self.cfg.batch)
            .min(self.rx.len() / self.cfg.buf_size);
        if n_max == 0 {
            return Ok(0);
        }
        let (size, head) = (self.cfg.buf_size, self.cfg.headroom);
        // With a vnet header, it lands just before the frame, in the
        // headroom (validate: head >= VNET_HDR_LEN).
        let vh = if self.cfg.vnet_hdr { VNET_HDR_LEN } else { 0 };
        let base = self.rx.as_mut_ptr();
        let mut iovs: Vec<libc::iovec> = (0..n_max)
            .map(|i| libc::iovec {
                // SAFETY: `i * size + head - vh` is inside `rx` (n_max
                // buffers of `size` bytes, vh <= head < size).
                iov_base: unsafe { base.add(i * size + head - vh) }.cast(),
                iov_len: size - head + vh,
            })
            .collect();
        // SAFETY: all-zero bytes are a valid mmsghdr (null pointers, zero lengths).
        let mut msgs: Vec<libc::mmsghdr> =
            (0..n_max).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` holds `n_max` headers, each pointing at one iovec
        // of a distinct region of `rx` that stays alive and unaliased for
        // the call; no address or control buffers.
        let r = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n_max as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(0),
                // The interface went down: nothing to read now.
                Some(libc::ENETDOWN) => Ok(0),
                _ => Err(PacketError::os("recvmmsg", &self.ifname, e)),
            };
        }
        let n = r as usize;
        let lens: Vec<(usize, bool)> = msgs[..n]
            .iter()
            .map(|m| {
                (
                    m.msg_len as usize,
                    m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                )
            })
            .collect();
        drop(msgs);
        drop(iovs);
        let mut same: Vec<(usize, usize, usize)> = Vec::new();
        for (i, (len, trunc)) in lens.into_iter().enumerate() {
            if trunc || len < vh || len - vh > size - head {
                self.stats.rx_truncated += 1;
                continue;
            }
            let len = len - vh;
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
            let buf = &mut self.rx[i * size..(i + 1) * size];
            // virtio_net_hdr.gso_size (0 without GSO).
            let gso = if vh > 0 {
                let h = head - vh;
                u16::from_ne_bytes([buf[h + 4], buf[h + 5]])
            } else {
                0
            };
            let Some(frame) = FrameBuf::new(buf, head, len) else {
                continue;
            };
            let mut frame = frame.with_gso(gso);
            match f(&mut frame) {
                Verdict::Drop => self.stats.dropped_verdict += 1,
                Verdict::Done => {}
                Verdict::TxSame { start, len } => {
                    if len > 0 && start.checked_add(len).is_some_and(|e| e <= size) {
                        same.push((i, start, len));
                    } else {
                        self.stats.tx_invalid += 1;
                    }
                }
            }
        }
        for (i, start, len) in same {
            let off = i * size + start;
            self.tx_frames.push((self.tx.len(), len));
            let (rx, tx) = (&self.rx, &mut self.tx);
            tx.extend_from_slice(&rx[off..off + len]);
        }
        Ok(n)
    }

    /// Queue a copy of `frame` (a whole Ethernet frame) for transmission;
    /// false (counted in `tx_invalid`) if it is empty or longer than a buffer.
    /// [`flush`](Self::flush) sends what is queued.
    pub fn tx_copy(&mut self, frame: &[u8]) -> bool {
        if frame.is_empty() || frame.len() > self.cfg.buf_size {
            self.stats.tx_invalid += 1;
            return false;
        }
        self.tx_frames.push((self.tx.len(), frame.len()));
        self.tx.extend_from_slice(frame);
        true
    }

    /// Frames queued for transmission.
    pub fn tx_pending(&self) -> usize {
        self.tx_frames.len()
    }

    /// Send every queued frame (`sendmmsg`, non-blocking). What the kernel
    /// refuses (queue full, device down) is dropped and counted; the queue
    /// is empty afterwards. Errors other than those are returned (after
    /// the queue was emptied).
    pub fn flush(&mut self) -> Result<(), PacketError> {
        let mut result = Ok(());
        let mut done = 0;
        while done < self.tx_frames.len() {
            let chunk = &self.tx_frames[done..self.tx_frames.len().min(done + 1024)];
            let base = self.tx.as_ptr();
            // Per frame: [empty vnet header,] the frame.
            let per = if self.cfg.vnet_hdr { 2 } else { 1 };
            let mut iovs: Vec<libc::iovec> = Vec::with_capacity(chunk.len() * per);
            for &(off, len) in chunk {
                if self.cfg.vnet_hdr {
                    iovs.push(libc::iovec {
                        // Only read by the kernel.
                        iov_base: NO_VNET_HDR.as_ptr() as *mut libc::c_void,
                        iov_len: VNET_HDR_LEN,
                    });
                }
                iovs.push(libc::iovec {
                    // SAFETY: `off..off + len` lies in `tx` (pushed together).
                    iov_base: unsafe { base.add(off) } as *mut libc::c_void,
                    iov_len: len,
                });
            }
            // SAFETY: all-zero bytes are a valid mmsghdr.
            let mut msgs: Vec<libc::mmsghdr> = (0..chunk.len())
                .map(|_| unsafe { std::mem::zeroed() })
                .collect();
            for (m, iov) in msgs.iter_mut().zip(iovs.chunks_exact_mut(per)) {
                m.msg_hdr.msg_iov = iov.as_mut_ptr();
                m.msg_hdr.msg_iovlen = per;
            }
            // SAFETY: every header points at one iovec over live bytes of
            // `tx` (only read by the kernel); the socket is bound, so no
            // destination address is needed.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    msgs.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r <= 0 {
                // The first frame of the chunk failed: drop it, go on.
                let e = io::Error::last_os_error();
                self.stats.tx_dropped += 1;
                done += 1;
                match e.raw_os_error() {
                    Some(
                        libc::EAGAIN
                        | libc::ENOBUFS
                        | libc::ENETDOWN
                        | libc::EINTR
                        | libc::EMSGSIZE,
                    ) => {}
                    _ if r == 0 => {}
                    _ => {
                        if result.is_ok() {
                            result = Err(PacketError::os("sendmmsg", &self.ifname, e));
                        }
                    }
                }
                continue;
            }
            for &(_, len) in &chunk[..r as usize] {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += len as u64;
            }
            done += r as usize;
        }
        self.tx.clear();
        self.tx_frames.clear();
        result
    }

    /// The counters.
    pub fn stats(&self) -> PacketStats {
        self.stats
    }

    /// The kernel's counters, added up since the socket opened (one
    /// getsockopt; needs `&mut` because the kernel resets them on read).
    pub fn kernel_stats(&mut self) -> Result<KernelPacketStats, PacketError> {
        #[repr(C)]
        #[derive(Default)]
        struct TpacketStats {
            tp_packets: u32,
            tp_drops: u32,
        }
        let mut s = TpacketStats::default();
        let mut len = std::mem::size_of::<TpacketStats>() as libc::socklen_t;
        // SAFETY: `s` and `len` are valid for writes of the sizes given.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                (&raw mut s).cast(),
                &raw mut len,
            )
        };
        if r < 0 {
            return Err(PacketError::os(
                "getsockopt(PACKET_STATISTICS)",
                &self.ifname,
                io::Error::last_os_error(),
            ));
        }
        self.kernel.packets += u64::from(s.tp_packets);
        self.kernel.drops += u64::from(s.tp_drops);
        Ok(self.kernel)
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for PacketSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketSocket")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("fd", &self.fd.as_raw_fd())
            .field("tx_pending", &self.tx_frames.len())
            .finish_non_exhaustive()
    }
}

/// Sleep until one of `fds` is readable or `timeout_ms` passes (negative: no
/// timeout). A signal ends the wait early without error.
pub fn wait_readable(fds: &[RawFd], timeout_ms: i32) -> Result<(), PacketError> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(PacketError::os("poll", "packet sockets", e));
        }
    }
    Ok(())
}

/// Whether generic receive offload is on for `ifname` (in the calling
/// thread's network namespace), like `ethtool -k IF | grep generic-receive`.
///
/// An AF_PACKET socket sees frames after GRO has merged them: a merged TCP
/// frame is longer than the MTU, does not fit a receive buffer and could
/// not be forwarded as it is. `--io packet` turns GRO off on the interfaces
/// it serves (and back on when it stops).
pub fn gro(ifname: &str) -> Result<bool, PacketError> {
    let cname = check_ifname(ifname)?;
    let on = crate::ethtool::value(&cname, crate::ethtool::ETHTOOL_GGRO, 0)
        .map_err(|e| PacketError::os("SIOCETHTOOL GGRO", ifname, e))?;
    Ok(on != 0)
}

/// Turn generic receive offload of `ifname` on or off (`ethtool -K IF gro
/// on|off`); see [`gro`].
pub fn set_gro(ifname: &str, enabled: bool) -> Result<(), PacketError> {
    let cname = check_ifname(ifname)?;
    crate::ethtool::value(&cname, crate::ethtool::ETHTOOL_SGRO, u32::from(enabled))
        .map(drop)
        .map_err(|e| PacketError::os("SIOCETHTOOL SGRO", ifname, e))
}

/// Set a socket's receive (`recv`) or send buffer to `bytes`: with
/// `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` (CAP_NET_ADMIN: past the system's
/// `rmem_max`/`wmem_max`), else the plain option (capped by the kernel).
pub fn set_socket_buffer(fd: &impl AsFd, recv: bool, bytes: i32) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    let (force, plain) = if recv {
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF)
    } else {
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)
    };
    let set = |name: libc::c_int| {
        // SAFETY: `bytes` is a valid c_int for the length given; `raw` is
        // borrowed from `fd` for the call.
        let r = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                name,
                (&raw const bytes).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    set(force).or_else(|_| set(plain))
}

fn setsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `v` is a valid c_int for the length given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn check_ifname(ifname: &str) -> Result<CString, PacketError> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('/') {
        return Err(PacketError::IfName(ifname.to_string()));
    }
    CString::new(ifname).map_err(|_| PacketError::IfName(ifname.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        assert!(PacketConfig::default().validate().is_ok());
        let d = PacketConfig::default();
        assert!(PacketConfig { batch: 0, ..d }.validate().is_err());
        assert!(PacketConfig { batch: 4096, ..d }.validate().is_err());
        assert!(
            PacketConfig {
                buf_size: 1600,
                ..d
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn bad_interface_names() {
        for name in ["", "a/b", "nul\0x", "0123456789abcdef"] {
            assert!(matches!(
                PacketSocket::open(name, &PacketConfig::default()),
                Err(PacketError::IfName(_))
            ));
        }
    }
}
