// SPDX-License-Identifier: GPL-2.0-or-later
//! `ha_suspend`'s address events: a NETLINK_ROUTE socket in the groups
//! of IPv4 and IPv6 address changes (RTMGRP_IPV4_IFADDR,
//! RTMGRP_IPV6_IFADDR), as keepalived follows netlink, in the
//! scheduler's epoll set. Any address added or removed makes the
//! scheduler read the host's addresses again (`look_at_addresses`, the
//! path the start takes), so a VIP that comes or goes pauses or resumes
//! the checkers at once.
//!
//! The events are not applied one by one: the addresses are read whole
//! again (getifaddrs), so a lost event (ENOBUFS: the socket's buffer
//! overran) costs nothing but the same re-read. The socket is opened
//! before the first read, so no change falls between the two. Where it
//! cannot be opened (no netlink in a sandbox), the scheduler reads the
//! addresses once a second instead, and the log says why.
//!
//! [`address_events`], the parsing of a datagram, is pure.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType, netlink};

/// rtnetlink's groups (the bitmask of `sockaddr_nl.nl_groups`,
/// linux/rtnetlink.h).
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

/// Message types (linux/rtnetlink.h, linux/netlink.h).
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const NLMSG_HDRLEN: usize = 16;

/// The subscribed socket.
#[derive(Debug)]
pub(super) struct AddrWatch {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl AddrWatch {
    /// A nonblocking NETLINK_ROUTE socket in the address groups.
    pub(super) fn open() -> std::io::Result<AddrWatch> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        let groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, groups))?;
        Ok(AddrWatch {
            fd,
            buf: vec![0; 32 << 10],
        })
    }

    /// What the scheduler's epoll set watches.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Read what came: whether the addresses may have changed (an
    /// address event, or events lost).
    pub(super) fn changed(&mut self) -> bool {
        let mut changed = false;
        loop {
            match rustix::net::recv(&self.fd, &mut self.buf[..], RecvFlags::DONTWAIT) {
                Ok((n, _)) => changed |= address_events(&self.buf[..n]) > 0,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return changed,
                // Overrun: events lost, read the addresses again.
                Err(Errno::NOBUFS) => changed = true,
                Err(_) => return true,
            }
        }
    }
}

/// The address messages (RTM_NEWADDR, RTM_DELADDR) in one netlink
/// datagram; a truncated one ends the count.
pub(super) fn address_events(mut d: &[u8]) -> usize {
    let mut n = 0;
    while d.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([d[0], d[1], d[2], d[3]]) as usize;
        let kind = u16::from_ne_bytes([d[4], d[5]]);
        if len < NLMSG_HDRLEN || len > d.len() {
            break;
        }
        if matches!(kind, RTM_NEWADDR | RTM_DELADDR) {
            n += 1;
        }
        // NLMSG_ALIGN: 4 bytes.
        d = &d[((len + 3) & !3).min(d.len())..];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink message of `kind` with `payload` bytes after its header.
    fn msg(kind: u16, payload: usize) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload;
        let mut m = Vec::new();
        m.extend((len as u32).to_ne_bytes());
        m.extend(kind.to_ne_bytes());
        m.extend(0u16.to_ne_bytes());
        m.extend([0; 8]);
        m.resize(len, 0);
        // Padded to 4 bytes, as the kernel packs them.
        m.resize((len + 3) & !3, 0);
        m
    }

    #[test]
    fn address_messages_are_counted_others_and_garbage_are_not() {
        let mut d = msg(RTM_NEWADDR, 41);
        d.extend(msg(16, 20)); // RTM_NEWLINK
        d.extend(msg(RTM_DELADDR, 8));
        assert_eq!(address_events(&d), 2);
        assert_eq!(address_events(&[]), 0);
        // Truncated, or a length shorter than a header: the rest ignored.
        let mut t = msg(RTM_NEWADDR, 8);
        t.truncate(20);
        assert_eq!(address_events(&t), 0);
        let mut bad = msg(RTM_NEWADDR, 8);
        bad[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(address_events(&bad), 0);
        let d = [msg(RTM_DELADDR, 0), bad].concat();
        assert_eq!(address_events(&d), 1);
    }

    /// An address added to and removed from `lo` is seen at once, and
    /// nothing else is. Root only (a namespace of its own, `ip netns`):
    /// skipped otherwise.
    #[test]
    fn an_address_added_and_removed_is_seen_at_once() {
        if !rvs_testsupport::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let ns = format!("rvs-aw-{}", std::process::id());
        rvs_testsupport::run(&["ip", "netns", "add", &ns]);
        let r = std::panic::catch_unwind(|| {
            rvs_testsupport::in_netns(&ns, || {
                let mut w = AddrWatch::open().unwrap();
                let wait = |w: &mut AddrWatch| {
                    let fd = w.fd();
                    let mut p = [rustix::event::PollFd::new(
                        &fd,
                        rustix::event::PollFlags::IN,
                    )];
                    let ts =
                        rustix::event::Timespec::try_from(std::time::Duration::from_millis(500))
                            .unwrap();
                    let _ = rustix::event::poll(&mut p, Some(&ts));
                    w.changed()
                };
                assert!(!w.changed(), "nothing yet");
                for words in ["addr add 10.9.9.9/32 dev lo", "addr del 10.9.9.9/32 dev lo"] {
                    // From before `ip` starts to the event read.
                    let t0 = std::time::Instant::now();
                    rvs_testsupport::ipn(&ns, words);
                    let seen = wait(&mut w);
                    let took = t0.elapsed();
                    assert!(seen, "{words}");
                    eprintln!("{words}: seen after {took:?}");
                    assert!(
                        took < std::time::Duration::from_millis(200),
                        "{words}: {took:?}"
                    );
                }
            })
        });
        rvs_testsupport::run(&["ip", "netns", "del", &ns]);
        if let Err(e) = r {
            std::panic::resume_unwind(e);
        }
    }
}
