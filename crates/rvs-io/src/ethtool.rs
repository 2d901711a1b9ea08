//! The `SIOCETHTOOL` ioctl, shared by the modules that read or set an
//! interface's offloads, channels and driver counters (there is no
//! `ethtool` binary on the machines rvs runs on).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `struct ethtool_value` of `linux/ethtool.h`: the block of the simple
/// get/set commands (`ETHTOOL_GGRO`, `ETHTOOL_STXCSUM` …).
#[repr(C)]
pub(crate) struct EthtoolValue {
    pub(crate) cmd: u32,
    pub(crate) data: u32,
}

/// `ETHTOOL_STXCSUM`: set transmit checksum offload.
pub(crate) const ETHTOOL_STXCSUM: u32 = 0x17;
/// `ETHTOOL_GGRO`: get generic receive offload.
pub(crate) const ETHTOOL_GGRO: u32 = 0x2b;
/// `ETHTOOL_SGRO`: set generic receive offload.
pub(crate) const ETHTOOL_SGRO: u32 = 0x2c;

/// Run a get/set command with an [`EthtoolValue`] block on `ifname`;
/// returns the block's `data` afterwards.
pub(crate) fn value(ifname: &CStr, cmd: u32, data: u32) -> io::Result<u32> {
    let mut v = EthtoolValue { cmd, data };
    ioctl(ifname, (&raw mut v).cast())?;
    Ok(v.data)
}

/// `ioctl(SIOCETHTOOL)` on `ifname` with the command block at `data`, which
/// must point to the `linux/ethtool.h` struct its first `u32` names, sized
/// for that command.
pub(crate) fn ioctl(ifname: &CStr, data: *mut libc::c_char) -> io::Result<()> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero bytes are a valid ifreq (integers, arrays, pointers).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(ifname.to_bytes()) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = data;
    // SAFETY: SIOCETHTOOL reads the ifreq, then reads and writes the command
    // block at `data`, which the callers keep alive across the call and size
    // for their command (the counts in it bound what the kernel writes); the
    // name is NUL-terminated (callers check its length; the ifreq is zeroed).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL, &raw mut ifr) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
