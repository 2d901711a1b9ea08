//! The syscalls around the sockets: `poll(2)` for idle workers
//! ([`wait_readable`]) and the ethtool ioctls (channels, transmit checksum
//! offload).

use super::*;

/// Sleep until one of `socks` has a frame on its RX ring, or `timeout_ms`
/// passes (negative: no timeout). Returns early, without error, when a
/// signal interrupts the wait. In copy mode the kernel also pushes out
/// queued TX frames of a socket it polls.
pub fn wait_readable(socks: &[&XskSocket], timeout_ms: i32) -> Result<(), XskError> {
    const ON_STACK: usize = 16;
    let pfd = |s: &&XskSocket| libc::pollfd {
        fd: s.fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let mut stack = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; ON_STACK];
    let mut heap = Vec::new();
    let fds: &mut [libc::pollfd] = if socks.len() <= ON_STACK {
        for (slot, s) in stack.iter_mut().zip(socks) {
            *slot = pfd(s);
        }
        &mut stack[..socks.len()]
    } else {
        heap.extend(socks.iter().map(pfd));
        &mut heap
    };
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs; the fds
    // are open (borrowed from live sockets).
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(XskError::os("poll", "AF_XDP sockets", e));
        }
    }
    Ok(())
}

/// sendto(fd, NULL, 0, MSG_DONTWAIT): makes the kernel transmit (copy mode).
pub(super) fn kick(fd: RawFd) -> io::Result<()> {
    // SAFETY: a zero-length send with null buffer and address is valid for
    // an AF_XDP socket; `fd` is open.
    let r = unsafe {
        libc::sendto(
            fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub(super) fn check_ifname(ifname: &str) -> Result<CString, XskError> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('/') {
        return Err(XskError::IfName(ifname.to_string()));
    }
    CString::new(ifname).map_err(|_| XskError::IfName(ifname.to_string()))
}

/// Turn transmit checksum offload of `ifname` (in the calling thread's
/// network namespace) on or off, like `ethtool -K IF tx on|off`.
///
/// What an AF_XDP or AF_PACKET socket receives from a local sender whose
/// device has transmit checksum offload on (every veth, by default) is a
/// frame whose TCP/UDP checksum is *partial*: only the pseudo-header sum,
/// for the "hardware" to finish. rvsd finishes it
/// (`rvs_wire::complete_partial`), so nothing needs this to be off; the
/// benchmark's checksum-cost rows and the test that proves both settings
/// work use it, and say so.
pub fn set_tx_checksum_offload(ifname: &str, enabled: bool) -> Result<(), XskError> {
    let cname = check_ifname(ifname)?;
    crate::ethtool::value(&cname, crate::ethtool::ETHTOOL_STXCSUM, u32::from(enabled))
        .map(drop)
        .map_err(|e| XskError::os("SIOCETHTOOL STXCSUM", ifname, e))
}

/// `struct ethtool_channels` of `linux/ethtool.h`.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// RX plus combined channels of `ifname` (ethtool `GCHANNELS`).
pub(super) fn ethtool_rx_channels(ifname: &std::ffi::CStr) -> io::Result<u32> {
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    crate::ethtool::ioctl(ifname, (&raw mut ch).cast())?;
    Ok(ch.rx_count + ch.combined_count)
}
