//! AF_XDP sockets: one socket per (interface, queue), each with its own UMEM.
//!
//! The rings themselves are [xdpilone]'s (pure Rust, no libxdp); this module
//! owns the memory and the bookkeeping of who holds which frame:
//!
//! ```text
//!             refill                 RX
//!   free ───────────────► fill ───────────► rx_batch(f) ──┬─ Drop / Done ──► free
//!    ▲                  (kernel)                          └─ TxSame ──┐
//!    │                                                                 ▼
//!    └──────────── completion ◄──────── (kernel) ◄──────────────── TX ring
//!                                                       ▲
//!   free ──────── tx_copy(bytes) ───────────────────────┘
//! ```
//!
//! Every frame is in exactly one place: our free list, the fill ring (the
//! kernel's, to receive into), the caller's hands during `f`, or the TX ring
//! until its completion comes back. There is no allocation per packet: the
//! free list is a `Vec` allocated once with room for every frame.
//!
//! Half of the frames are meant for the fill ring (`fill_target`); the rest
//! serve transmission. [`XskSocket::tx_copy`] never takes a frame the fill
//! ring is owed, so heavy forwarding into a socket cannot starve its RX.
//!
//! The socket is bound without `XDP_COPY` or `XDP_ZEROCOPY`: the kernel
//! uses zero-copy where the driver supports it and falls back to copy mode
//! elsewhere (veth, the lab's device, supports only copy mode; this
//! machine has no zero-copy driver to test that path). It is bound with
//! `XDP_USE_NEED_WAKEUP`, so [`XskSocket::flush`] only makes a syscall when
//! the kernel asks for one (in copy mode it always does for TX: transmission
//! happens inside `sendto`).
//!
//! A worker drives its sockets like this (run to completion, one thread per
//! queue, sleeping in `poll` when idle):
//!
//! ```no_run
//! # use rvs_io::xsk::{UmemConfig, Verdict, XskSocket, wait_readable};
//! # fn main() -> Result<(), rvs_io::xsk::XskError> {
//! let cfg = UmemConfig::default();
//! let mut a = XskSocket::open("eth0", 0, &cfg)?;
//! let mut b = XskSocket::open("eth1", 0, &cfg)?;
//! // ... put a.fd() and b.fd() into the XSKMAP at key 0 ...
//! loop {
//!     wait_readable(&[&a, &b], 100)?;
//!     a.rx_batch(64, |frame| {
//!         // rewrite in place and send back out of eth0 ...
//!         frame.data_mut()[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
//!         frame.tx_same()
//!     })?;
//!     b.rx_batch(64, |frame| {
//!         // ... or copy out of eth0 (another UMEM: one copy).
//!         a.tx_copy(frame.data());
//!         Verdict::Done
//!     })?;
//!     a.flush()?;
//!     b.flush()?;
//! }
//! # }
//! ```
//!
//! [xdpilone]: https://github.com/197g/xdpilone

use std::alloc::Layout;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use xdpilone::xdp::XdpDesc;
use xdpilone::{
    CompletionQueue, FillQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, User,
};

mod frame;
mod sys;
#[cfg(test)]
mod tests;
mod umem;

pub use frame::FrameBuf;
use sys::{check_ifname, ethtool_rx_channels, kick};
pub use sys::{set_tx_checksum_offload, wait_readable};
use umem::UmemArea;

/// The kernel leaves this much room in front of every received frame, on
/// top of [`UmemConfig::headroom`] (`XDP_PACKET_HEADROOM` in `linux/bpf.h`).
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// The largest Ethernet frame every UMEM must hold: 1500 bytes of payload, an
/// Ethernet header and one VLAN tag.
const MIN_FRAME_LEN: u32 = 1518;

/// Upper bound on the sendto(2) calls one [`XskSocket::flush`] makes. In copy
/// mode the kernel transmits at most 32 frames per call (its TX budget).
const MAX_KICKS: u32 = 64;

/// How long [`XskSocket::open`] retries a bind that fails with `EBUSY`.
const BIND_BUSY_WAIT: Duration = Duration::from_millis(200);

/// Shape of the UMEM of one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemConfig {
    /// Size of one frame (a UMEM chunk): 2048 or 4096.
    pub frame_size: u32,
    /// Number of frames; half of them feed the fill ring, the rest serve TX.
    pub frames: u32,
    /// Bytes the kernel leaves free in front of each received frame, beyond
    /// its own [`XDP_PACKET_HEADROOM`]; at least 128 so that the engine can
    /// prepend tunnel headers in place. A frame of up to
    /// `frame_size - XDP_PACKET_HEADROOM - headroom` bytes can be received.
    pub headroom: u32,
}

impl Default for UmemConfig {
    /// 4096 frames of 2048 bytes (8 MiB per socket), 128 bytes of headroom.
    fn default() -> Self {
        UmemConfig {
            frame_size: 2048,
            frames: 4096,
            headroom: 128,
        }
    }
}

impl UmemConfig {
    /// Longest frame the kernel can receive into this UMEM.
    pub fn max_rx_frame_len(&self) -> u32 {
        self.frame_size
            .saturating_sub(XDP_PACKET_HEADROOM)
            .saturating_sub(self.headroom)
    }

    fn validate(&self) -> Result<(), XskError> {
        if !matches!(self.frame_size, 2048 | 4096) {
            return Err(XskError::Config("frame_size must be 2048 or 4096"));
        }
        if self.frames < 64 || self.frames > 1 << 20 {
            return Err(XskError::Config("frames must be in 64..=1048576"));
        }
        if self.headroom < 128 {
            return Err(XskError::Config("headroom must be at least 128 bytes"));
        }
        if self.max_rx_frame_len() < MIN_FRAME_LEN {
            return Err(XskError::Config(
                "headroom too large: a 1518-byte frame would not fit",
            ));
        }
        Ok(())
    }
}

/// What to do with a received frame; returned by the callback of
/// [`XskSocket::rx_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Drop the frame (counted in [`XskStats::dropped_verdict`]); it goes
    /// back to the fill ring.
    Drop,
    /// The callback is done with the frame, typically after copying it to
    /// another socket with [`XskSocket::tx_copy`]; it goes back to the fill
    /// ring. Not counted as a drop.
    Done,
    /// Transmit `buf[start..start + len]` of this frame's buffer (see
    /// [`FrameBuf::buf`]) out of this same socket, without copying.
    /// [`FrameBuf::tx_same`] builds it from the frame's current range.
    TxSame {
        /// Offset of the first byte in the frame's buffer.
        start: usize,
        /// Length in bytes.
        len: usize,
    },
}

/// The kernel's own counters for a socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelXskStats {
    /// Frames dropped for reasons other than an invalid descriptor (RX ring
    /// full included).
    pub rx_dropped: u64,
    /// Invalid descriptors found in the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors found in the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full (Linux ≥ 5.9).
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived (Linux ≥ 5.9).
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty when the kernel looked (Linux ≥ 5.9).
    pub tx_ring_empty_descs: u64,
}

/// Counters of one socket. All but `kernel` are counted by this module.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames put on the TX ring (by `TxSame` and `tx_copy`).
    pub tx_packets: u64,
    /// Bytes put on the TX ring.
    pub tx_bytes: u64,
    /// Transmissions the kernel completed.
    pub tx_completed: u64,
    /// Frames the callback dropped ([`Verdict::Drop`]).
    pub dropped_verdict: u64,
    /// `tx_copy` calls refused for want of a free frame.
    pub dropped_no_frame: u64,
    /// Frames not sent because the TX ring had no free slot.
    pub dropped_ring_full: u64,
    /// Frames not sent because their range or length did not fit a frame.
    pub dropped_invalid: u64,
    /// sendto(2) kicks that failed with an unexpected error.
    pub kick_errors: u64,
    /// Gauge: frames free in user space (the TX pool).
    pub frames_free: u32,
    /// Gauge: frames lent to the kernel to receive into.
    pub frames_fill: u32,
    /// Gauge: frames on the TX ring or awaiting completion.
    pub frames_tx: u32,
    /// The kernel's counters; `None` if it would not give them.
    pub kernel: Option<KernelXskStats>,
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// The [`UmemConfig`] is unusable.
    #[error("invalid UMEM configuration: {0}")]
    Config(&'static str),
    /// Not a possible interface name.
    #[error("invalid interface name {0:?}")]
    IfName(String),
    /// The UMEM could not be allocated.
    #[error("cannot allocate {0} bytes of UMEM")]
    Alloc(usize),
    /// A system call failed.
    #[error("{op} ({target}): {source}")]
    Os {
        /// What was being done.
        op: &'static str,
        /// Interface and queue, or the path.
        target: String,
        /// The error.
        source: io::Error,
    },
    /// A previous `rx_batch` callback panicked: the ring state is unknown and
    /// the socket must be dropped.
    #[error("socket poisoned by a panic in an rx_batch callback")]
    Poisoned,
}

impl XskError {
    /// The errno of a failed system call (e.g. `EOPNOTSUPP`, `ENODEV`).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            XskError::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    fn os(op: &'static str, target: impl fmt::Display, source: io::Error) -> XskError {
        XskError::Os {
            op,
            target: target.to_string(),
            source,
        }
    }

    fn errno(op: &'static str, target: impl fmt::Display, e: xdpilone::Errno) -> XskError {
        // xdpilone reports some of its own checks as negative errnos.
        XskError::os(op, target, io::Error::from_raw_os_error(e.get_raw().abs()))
    }
}

/// One AF_XDP socket bound to `(ifname, queue)` (zero-copy where the driver
/// can, else copy mode), with its own
/// UMEM and its fill, completion, RX and TX rings.
///
/// Not `Sync`: one worker thread owns it. It is `Send`, so it may be opened
/// in one thread (for instance one that entered a network namespace) and
/// used in another.
pub struct XskSocket {
    // Field order is drop order: the rings and the socket first (the last of
    // them closes the fd, which unregisters the UMEM), the memory last.
    rx: RingRx,
    tx: RingTx,
    fill: FillQueue,
    comp: CompletionQueue,
    user: User,
    _umem: Umem,
    area: UmemArea,

    /// Base addresses of the frames user space holds and nobody uses.
    free: Vec<u64>,
    /// Frames in the fill ring or being received into by the kernel.
    in_fill: u32,
    /// How many frames the fill ring should hold.
    fill_target: u32,
    /// Frames on the TX ring or awaiting their completion.
    tx_outstanding: u32,
    frame_size: u32,
    poisoned: bool,
    ifname: String,
    queue: u32,
    stats: XskStats,
}

// SAFETY: the only members that are not `Send` are raw pointers to the UMEM
// (in `Umem` and `UmemArea`), which this struct owns exclusively; nothing in
// it is tied to the creating thread (the kernel objects are file descriptors,
// the rings are mmaps of them, and xdpilone's ring types are already `Send`).
unsafe impl Send for XskSocket {}

impl XskSocket {
    /// Open a socket on `queue` of `ifname` (in the calling thread's network
    /// namespace), register a fresh UMEM, fill the fill ring and bind in copy
    /// mode. Frames arrive only once the socket's [`fd`](Self::fd) is in the
    /// XSKMAP of the XDP program attached to `ifname`.
    ///
    /// Errors carry the kernel's errno ([`XskError::raw_os_error`]): `ENODEV`
    /// no such interface, `EINVAL` no such queue, `EBUSY` the queue already
    /// has a socket (after waiting up to 200 ms for a just-closed one to be
    /// released), `EAFNOSUPPORT` no AF_XDP in the kernel.
    pub fn open(ifname: &str, queue: u32, cfg: &UmemConfig) -> Result<XskSocket, XskError> {
        cfg.validate()?;
        let cname = check_ifname(ifname)?;
        let target = format!("{ifname} queue {queue}");

        let mut info = IfInfo::invalid();
        info.from_name(&cname)
            .map_err(|e| XskError::errno("if_nametoindex", &target, e))?;
        info.set_queue(queue);

        let size = cfg.frames as usize * cfg.frame_size as usize;
        // Declared before everything that refers to it, so dropped after
        // all of them on the error paths below.
        let area = UmemArea::new(size)?;

        // Every ring can hold every frame, so no ring can overflow whatever
        // the mix of RX, TxSame and tx_copy.
        let ring = cfg.frames.next_power_of_two();
        let umem_cfg = xdpilone::UmemConfig {
            fill_size: ring,
            complete_size: ring,
            frame_size: cfg.frame_size,
            headroom: cfg.headroom,
            flags: 0,
        };
        // SAFETY: `area` is page aligned, valid for `size` bytes, and
        // outlives the Umem and every socket using it (field order of
        // XskSocket, declaration order here).
        let umem = unsafe { Umem::new(umem_cfg, area.as_slice_ptr()) }
            .map_err(|e| XskError::errno("AF_XDP socket / XDP_UMEM_REG", &target, e))?;
        let sock = Socket::with_shared(&info, &umem)
            .map_err(|e| XskError::errno("SO_NETNS_COOKIE", &target, e))?;
        let (fill, comp) = umem
            .fq_cq(&sock)
            .map_err(|e| XskError::errno("fill/completion rings", &target, e))?
            .into_parts();
        let ring = NonZeroU32::new(ring);
        let user = umem
            .rx_tx(
                &sock,
                &SocketConfig {
                    rx_size: ring,
                    tx_size: ring,
                    // Neither XDP_COPY nor XDP_ZEROCOPY: zero-copy if the
                    // driver has it, copy mode otherwise.
                    bind_flags: SocketConfig::XDP_BIND_NEED_WAKEUP,
                },
            )
            .map_err(|e| XskError::errno("RX/TX rings", &target, e))?;
        let rx = user
            .map_rx()
            .map_err(|e| XskError::errno("mmap RX ring", &target, e))?;
        let tx = user
            .map_tx()
            .map_err(|e| XskError::errno("mmap TX ring", &target, e))?;

        // All frames start free; `pop` hands out low addresses first.
        let frame_size = u64::from(cfg.frame_size);
        let free: Vec<u64> = (0..u64::from(cfg.frames))
            .rev()
            .map(|i| i * frame_size)
            .collect();
        let mut this = XskSocket {
            rx,
            tx,
            fill,
            comp,
            user,
            _umem: umem,
            area,
            free,
            in_fill: 0,
            fill_target: cfg.frames / 2,
            tx_outstanding: 0,
            frame_size: cfg.frame_size,
            poisoned: false,
            ifname: ifname.to_string(),
            queue,
            stats: XskStats::default(),
        };
        // Prime the fill ring before binding, so the first frame finds room.
        this.refill();
        // The kernel frees a closed socket's hold on its queue from a work
        // queue, a few milliseconds later: reopening a queue at once (a
        // restarted worker) gets EBUSY for a moment. Wait that out, briefly.
        let deadline = Instant::now() + BIND_BUSY_WAIT;
        loop {
            match this._umem.bind(&this.user) {
                Ok(()) => return Ok(this),
                Err(e) if e.get_raw() == libc::EBUSY && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(XskError::errno("bind", &target, e)),
            }
        }
    }

    /// The socket's file descriptor, to put in an XSKMAP (key: the queue).
    pub fn fd(&self) -> RawFd {
        self.user.as_raw_fd()
    }

    /// Interface this socket is bound to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Size of one frame (UMEM chunk); also the longest frame `tx_copy` takes.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Number of RX queues of `ifname`, in the calling thread's network
    /// namespace: one socket per queue receives everything.
    ///
    /// Asks the driver (ethtool `GCHANNELS`: RX plus combined channels), which
    /// is right in any namespace; falls back to counting
    /// `/sys/class/net/IF/queues/rx-*` when the driver has no channel count.
    /// (sysfs shows the namespace it was mounted in, not the thread's.)
    pub fn queue_count(ifname: &str) -> Result<u32, XskError> {
        let cname = check_ifname(ifname)?;
        match ethtool_rx_channels(&cname) {
            Ok(n) if n > 0 => return Ok(n),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                return Err(XskError::os("SIOCETHTOOL", ifname, e));
            }
            Err(_) => {}
        }
        let path = format!("/sys/class/net/{ifname}/queues");
        let dir = std::fs::read_dir(&path).map_err(|e| XskError::os("read_dir", &path, e))?;
        let mut n = 0;
        for entry in dir {
            let entry = entry.map_err(|e| XskError::os("read_dir", &path, e))?;
            if entry.file_name().as_encoded_bytes().starts_with(b"rx-") {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Receive up to `max` frames and hand each to `f`, which may rewrite it
    /// in place (and move its start into the headroom) and returns what to do
    /// with it. Returns the number of frames received.
    ///
    /// `f` can copy a frame to another socket with that socket's
    /// [`tx_copy`](Self::tx_copy) and return [`Verdict::Done`]. Frames sent
    /// with [`Verdict::TxSame`] are queued on the TX ring; call
    /// [`flush`](Self::flush) after the batch to have them sent (and to get
    /// frames back from earlier transmissions). Dropped and done frames go
    /// straight back to the fill ring.
    ///
    /// If `f` panics, the socket is poisoned: later calls fail with
    /// [`XskError::Poisoned`].
    pub fn rx_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(&mut FrameBuf<'_>) -> Verdict,
    ) -> Result<usize, XskError> {
        if self.poisoned {
            return Err(XskError::Poisoned);
        }
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        if max == 0 {
            return Ok(0);
        }
        let frame_size = self.frame_size as usize;
        let mask = !(u64::from(self.frame_size) - 1);
        let area_len = self.area.len() as u64;
        let base_ptr = self.area.ptr.as_ptr();

        let mut rx = self.rx.receive(max);
        let n = rx.capacity();
        if n == 0 {
            return Ok(0);
        }
        self.poisoned = true;
        // Up to one TX slot per received frame; the unused part of the
        // reservation is given back when `tx` is dropped. xdpilone reserves
        // from its cached view of the kernel's consumer and refreshes that
        // view only when it shows no free slot at all, so a reservation can
        // come out short while the ring has room: when it runs out, it is
        // committed and a new one taken (which then sees the kernel's view).
        let mut tx = self.tx.transmit(n);
        let mut left = n;
        while let Some(desc) = rx.read() {
            left -= 1;
            self.in_fill -= 1;
            let base = desc.addr & mask;
            let offset = (desc.addr - base) as usize;
            let len = desc.len as usize;
            if base + u64::from(self.frame_size) > area_len || offset + len > frame_size {
                // Cannot come from a sane kernel; leave the frame alone
                // rather than trust the address.
                debug_assert!(false, "bad RX descriptor {desc:?}");
                self.stats.dropped_invalid += 1;
                continue;
            }
            // SAFETY: `base..base + frame_size` lies in the UMEM (checked
            // above). The kernel handed this chunk over on the RX ring (the
            // acquire in `receive` orders its writes before our reads) and
            // does not touch it until we put it on the fill or TX ring, which
            // happens after `f` returns; no other reference to it exists.
            let buf =
                unsafe { std::slice::from_raw_parts_mut(base_ptr.add(base as usize), frame_size) };
            let mut frame = FrameBuf {
                buf,
                start: offset,
                len,
                gso_size: 0,
            };
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
            match f(&mut frame) {
                Verdict::Drop => {
                    self.stats.dropped_verdict += 1;
                    self.free.push(base);
                }
                Verdict::Done => self.free.push(base),
                Verdict::TxSame { start, len } => {
                    let fits = start
                        .checked_add(len)
                        .is_some_and(|end| end <= frame_size && len > 0);
                    let desc = XdpDesc {
                        addr: base + start as u64,
                        len: len as u32,
                        options: 0,
                    };
                    if !fits {
                        self.stats.dropped_invalid += 1;
                        self.free.push(base);
                    } else if tx.insert_once(desc) || {
                        tx.commit();
                        drop(tx);
                        tx = self.tx.transmit(left + 1);
                        tx.insert_once(desc)
                    } {
                        self.tx_outstanding += 1;
                        self.stats.tx_packets += 1;
                        self.stats.tx_bytes += len as u64;
                    } else {
                        self.stats.dropped_ring_full += 1;
                        self.free.push(base);
                    }
                }
            }
        }
        tx.commit();
        rx.release();
        drop(tx);
        drop(rx);
        self.poisoned = false;
        self.refill();
        Ok(n as usize)
    }

    /// Queue a copy of `frame` (a whole Ethernet frame) for transmission.
    /// Returns false, counting a drop, if no frame is free (the fill ring's
    /// share is never taken), the TX ring is full, or `frame` is empty or
    /// longer than a frame. Call [`flush`](Self::flush) to send.
    pub fn tx_copy(&mut self, frame: &[u8]) -> bool {
        if frame.is_empty() || frame.len() > self.frame_size as usize {
            self.stats.dropped_invalid += 1;
            return false;
        }
        let owed_to_fill = self.fill_target.saturating_sub(self.in_fill) as usize;
        if self.free.len() <= owed_to_fill {
            self.stats.dropped_no_frame += 1;
            return false;
        }
        let Some(base) = self.free.pop() else {
            self.stats.dropped_no_frame += 1;
            return false;
        };
        // SAFETY: `base` is a frame base from our free list, so
        // `base..base + frame_size` is in the UMEM and neither the kernel nor
        // anyone else uses it; `frame.len() <= frame_size`; `frame` is
        // ordinary memory, which cannot overlap the UMEM chunk we own.
        unsafe {
            std::ptr::copy_nonoverlapping(
                frame.as_ptr(),
                self.area.ptr.as_ptr().add(base as usize),
                frame.len(),
            );
        }
        let mut w = self.tx.transmit(1);
        if !w.insert_once(XdpDesc {
            addr: base,
            len: frame.len() as u32,
            options: 0,
        }) {
            drop(w);
            self.free.push(base);
            self.stats.dropped_ring_full += 1;
            return false;
        }
        w.commit();
        self.tx_outstanding += 1;
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += frame.len() as u64;
        true
    }

    /// Send what is queued on the TX ring (sendto with `MSG_DONTWAIT`, when
    /// the kernel asks for a wakeup; in copy mode that means whenever frames
    /// are queued), take completed frames back and top up the fill ring.
    /// Never blocks. Errors are those the device gives (for instance
    /// `ENXIO` once it is gone); busy and out-of-buffer conditions are left
    /// for the next flush.
    pub fn flush(&mut self) -> Result<(), XskError> {
        self.reap();
        let mut result = Ok(());
        let mut kicks = 0;
        while self.tx.pending() > 0 && self.tx.needs_wakeup() && kicks < MAX_KICKS {
            kicks += 1;
            let before = self.tx.pending();
            if let Err(e) = kick(self.tx.as_raw_fd()) {
                match e.raw_os_error() {
                    // Budget used up (copy mode sends 32 per call), or the
                    // device or completion ring is busy: try again below if
                    // that made progress, else at the next flush.
                    Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => {}
                    Some(libc::ENETDOWN) => break,
                    _ => {
                        self.stats.kick_errors += 1;
                        result = Err(XskError::os(
                            "sendto",
                            format!("{} queue {}", self.ifname, self.queue),
                            e,
                        ));
                        break;
                    }
                }
            }
            if self.tx.pending() >= before {
                break;
            }
        }
        self.reap();
        self.refill();
        result
    }

    /// The counters, with the kernel's (one getsockopt).
    pub fn stats(&self) -> XskStats {
        let mut s = self.stats;
        s.frames_free = self.free.len() as u32;
        s.frames_fill = self.in_fill;
        s.frames_tx = self.tx_outstanding;
        s.kernel = self.user.statistics_v2().ok().map(|k| KernelXskStats {
            rx_dropped: k.rx_dropped,
            rx_invalid_descs: k.rx_invalid_descs,
            tx_invalid_descs: k.tx_invalid_descs,
            rx_ring_full: k.rx_ring_full,
            rx_fill_ring_empty_descs: k.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: k.tx_ring_empty_descs,
        });
        s
    }

    /// Take completed transmissions back into the free list.
    fn reap(&mut self) {
        if self.tx_outstanding == 0 {
            return;
        }
        let mask = !(u64::from(self.frame_size) - 1);
        let mut c = self.comp.complete(self.tx_outstanding);
        while let Some(addr) = c.read() {
            self.free.push(addr & mask);
            self.tx_outstanding -= 1;
            self.stats.tx_completed += 1;
        }
        c.release();
    }

    /// Top the fill ring up to its target from the free list.
    fn refill(&mut self) {
        // A reservation can come out short on a stale view of the kernel's
        // consumer (see `rx_batch`); the next one sees the real room.
        for _ in 0..2 {
            let want = self.fill_target.saturating_sub(self.in_fill);
            let n = want.min(self.free.len() as u32);
            if n == 0 {
                break;
            }
            let mut w = self.fill.fill(n);
            let start = self.free.len() - w.capacity() as usize;
            let inserted = w.insert(self.free[start..].iter().copied());
            w.commit();
            self.free.truncate(self.free.len() - inserted as usize);
            self.in_fill += inserted;
            if inserted == 0 {
                break;
            }
        }
        // Zero-copy drivers may stop when the fill ring ran dry; copy mode
        // never sets the flag, so this costs nothing on veth.
        if self.fill.needs_wakeup() {
            self.fill.wake();
        }
    }
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd stays open as long as `self` (xdpilone closes it when
        // the last ring referring to it is dropped, in our Drop).
        unsafe { BorrowedFd::borrow_raw(self.fd()) }
    }
}

impl fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskSocket")
            .field("ifname", &self.ifname)
            .field("queue", &self.queue)
            .field("fd", &self.fd())
            .field("frame_size", &self.frame_size)
            .field("free", &self.free.len())
            .field("in_fill", &self.in_fill)
            .field("tx_outstanding", &self.tx_outstanding)
            .finish_non_exhaustive()
    }
}
