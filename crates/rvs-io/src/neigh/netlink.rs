//! rtnetlink for the resolver thread: the sockets ([`NlSock`]), the dumps
//! and the events they bring (applied to the [`Worker`]'s tables),
//! `RTM_GETROUTE` and the parsing of its answer, and the kernel's constants.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr as InetSocketAddr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteType, RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::RecvFlags;

use super::NeighError;
use super::state::{Link, NKey, Neigh, Route};
use super::worker::Worker;

// ----- kernel constants ------------------------------------------------------------

pub(super) const MSG_TRUNC: i32 = RecvFlags::TRUNC.bits() as i32;
pub(super) const ENOBUFS: i32 = Errno::NOBUFS.raw_os_error();
pub(super) const ENETUNREACH: i32 = Errno::NETUNREACH.raw_os_error();
pub(super) const EHOSTUNREACH: i32 = Errno::HOSTUNREACH.raw_os_error();
pub(super) const EACCES: i32 = Errno::ACCESS.raw_os_error();
pub(super) const EINVAL: i32 = Errno::INVAL.raw_os_error();

// rtnetlink multicast groups (enum rtnetlink_groups in linux/rtnetlink.h).
pub(super) const RTNLGRP_LINK: u32 = 1;
pub(super) const RTNLGRP_NEIGH: u32 = 3;
pub(super) const RTNLGRP_IPV4_IFADDR: u32 = 5;
pub(super) const RTNLGRP_IPV4_ROUTE: u32 = 7;
pub(super) const RTNLGRP_IPV4_RULE: u32 = 8;
pub(super) const RTNLGRP_IPV6_IFADDR: u32 = 9;
pub(super) const RTNLGRP_IPV6_ROUTE: u32 = 11;
pub(super) const RTNLGRP_IPV6_RULE: u32 = 19;
pub(super) const RTNLGRP_NEXTHOP: u32 = 32;

pub(super) const GROUPS: [u32; 9] = [
    RTNLGRP_LINK,
    RTNLGRP_NEIGH,
    RTNLGRP_IPV4_IFADDR,
    RTNLGRP_IPV6_IFADDR,
    RTNLGRP_IPV4_ROUTE,
    RTNLGRP_IPV6_ROUTE,
    RTNLGRP_IPV4_RULE,
    RTNLGRP_IPV6_RULE,
    RTNLGRP_NEXTHOP,
];

// Message types the packet crate may not parse (nexthop objects), and the
// ranges whose parse failures mean "routes may have changed".
pub(super) const RTM_NEWROUTE: u16 = 24;
pub(super) const RTM_GETROUTE: u16 = 26;

pub(super) const RTM_NEWRULE: u16 = 32;
pub(super) const RTM_GETRULE: u16 = 34;
pub(super) const RTM_NEWNEXTHOP: u16 = 104;
pub(super) const RTM_GETNEXTHOP: u16 = 106;

/// Receive buffer asked for the event socket (capped by net.core.rmem_max).
pub(super) const EVENT_RCVBUF: i32 = 4 << 20;
/// How long a synchronous netlink request may take.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one dump may take.
pub(super) const DUMP_TIMEOUT: Duration = Duration::from_secs(5);

// ----- netlink socket --------------------------------------------------------------

pub(super) type Msg = NetlinkMessage<RouteNetlinkMessage>;

/// What one read from a netlink socket gave.
pub(super) enum Recv {
    /// Parsed messages, and the raw types of those that did not parse.
    Msgs(Vec<Msg>, Vec<u16>),
    /// Nothing to read.
    Empty,
    /// Multicast messages were lost (ENOBUFS, or a truncated datagram).
    Overrun,
}

pub(super) struct NlSock {
    pub(super) sock: Socket,
    port: u32,
    seq: u32,
    buf: Vec<u8>,
}

impl NlSock {
    pub(super) fn open(groups: &[u32]) -> io::Result<NlSock> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        let addr = sock.bind_auto()?;
        for &g in groups {
            sock.add_membership(g)?;
        }
        if !groups.is_empty() {
            // Best effort: the default is enough for small hosts.
            let _ = sock.set_rx_buf_sz(EVENT_RCVBUF);
        }
        sock.connect(&SocketAddr::new(0, 0))?;
        sock.set_non_blocking(true)?;
        Ok(NlSock {
            sock,
            port: addr.port_number(),
            seq: 0,
            buf: vec![0; 64 << 10],
        })
    }

    pub(super) fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        msg.finalize();
        let mut bytes = vec![0; msg.buffer_len()];
        msg.serialize(&mut bytes);
        self.sock.send(&bytes, 0)?;
        Ok(self.seq)
    }

    /// Wait until readable or `deadline`; false on timeout.
    pub(super) fn wait(&self, deadline: Instant) -> io::Result<bool> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let ts = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            let mut fds = [PollFd::new(&self.sock, PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(0) => continue,
                Ok(_) => return Ok(true),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(super) fn recv(&mut self) -> io::Result<Recv> {
        let n = {
            let mut slice = &mut self.buf[..];
            match self.sock.recv(&mut slice, MSG_TRUNC) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Recv::Empty),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Recv::Empty),
                Err(e) if e.raw_os_error() == Some(ENOBUFS) => return Ok(Recv::Overrun),
                Err(e) => return Err(e),
            }
        };
        if n > self.buf.len() {
            // The datagram was cut: grow for the next one, and resynchronise.
            self.buf.resize(n.next_power_of_two(), 0);
            return Ok(Recv::Overrun);
        }
        let mut msgs = Vec::new();
        let mut unparsed = Vec::new();
        let mut off = 0;
        while off + 16 <= n {
            let b = &self.buf[off..n];
            let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
            if len < 16 || len > b.len() {
                break;
            }
            match Msg::deserialize(&b[..len]) {
                Ok(m) => msgs.push(m),
                Err(_) => unparsed.push(u16::from_ne_bytes([b[4], b[5]])),
            }
            off += (len + 3) & !3;
        }
        Ok(Recv::Msgs(msgs, unparsed))
    }

    /// Send a request and wait for the answer with its sequence number: the
    /// reply message (`Ok(Some)`), an ACK (`Ok(None)`) or an error.
    pub(super) fn transact(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Result<Option<RouteNetlinkMessage>, io::Error>> {
        let seq = self.send(msg, flags)?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            match self.recv()? {
                Recv::Empty | Recv::Overrun => {
                    if !self.wait(deadline)? {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no answer from the kernel",
                        ));
                    }
                }
                Recv::Msgs(msgs, _) => {
                    for m in msgs {
                        if m.header.sequence_number != seq {
                            continue; // a late answer to an earlier request
                        }
                        match m.payload {
                            NetlinkPayload::InnerMessage(inner) => return Ok(Ok(Some(inner))),
                            NetlinkPayload::Error(e) => {
                                return Ok(match e.code {
                                    None => Ok(None),
                                    Some(_) => Err(e.to_io()),
                                });
                            }
                            NetlinkPayload::Done(_) => return Ok(Ok(None)),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}

impl Worker {
    // ----- dumps and events --------------------------------------------------------

    pub(super) fn dump_all(&mut self) -> Result<(), NeighError> {
        let mut link = LinkMessage::default();
        link.header.interface_family = AddressFamily::Unspec;
        self.dump(RouteNetlinkMessage::GetLink(link))?;
        self.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut n = NeighbourMessage::default();
            n.header.family = family;
            self.dump(RouteNetlinkMessage::GetNeighbour(n))?;
        }
        self.links_dirty = true;
        self.routes_dirty = true;
        Ok(())
    }

    /// Dump on the event socket, applying the events that arrive meanwhile.
    pub(super) fn dump(&mut self, req: RouteNetlinkMessage) -> Result<(), NeighError> {
        for _ in 0..5 {
            let seq = self
                .ev
                .send(req.clone(), NLM_F_REQUEST | NLM_F_DUMP)
                .map_err(|e| NeighError::netlink("dump request", e))?;
            let deadline = Instant::now() + DUMP_TIMEOUT;
            let mut interrupted = false;
            let mut overrun = false;
            'dump: loop {
                match self.ev.recv().map_err(|e| NeighError::netlink("dump", e))? {
                    Recv::Empty => {
                        if !self
                            .ev
                            .wait(deadline)
                            .map_err(|e| NeighError::netlink("dump", e))?
                        {
                            return Err(NeighError::Netlink("dump timed out".into()));
                        }
                    }
                    Recv::Overrun => overrun = true,
                    Recv::Msgs(msgs, unparsed) => {
                        self.unparsed(&unparsed);
                        let mut done = false;
                        for m in msgs {
                            let ours = m.header.sequence_number == seq
                                && m.header.port_number == self.ev.port;
                            if ours && m.header.flags & NLM_F_DUMP_INTR != 0 {
                                interrupted = true;
                            }
                            match m.payload {
                                NetlinkPayload::Done(_) if ours => done = true,
                                NetlinkPayload::Error(e) if ours => {
                                    if e.code.is_some() {
                                        return Err(NeighError::netlink("dump", e.to_io()));
                                    }
                                    done = true;
                                }
                                NetlinkPayload::InnerMessage(inner) => self.apply(inner),
                                _ => {}
                            }
                        }
                        if done {
                            break 'dump;
                        }
                    }
                }
            }
            if overrun {
                // Events were lost while dumping: dump everything again.
                self.need_resync = true;
            }
            if !interrupted {
                return Ok(());
            }
        }
        Err(NeighError::Netlink("dump kept being interrupted".into()))
    }

    pub(super) fn drain_events(&mut self) -> Result<(), NeighError> {
        for _ in 0..4096 {
            match self
                .ev
                .recv()
                .map_err(|e| NeighError::netlink("events", e))?
            {
                Recv::Empty => return Ok(()),
                Recv::Overrun => self.need_resync = true,
                Recv::Msgs(msgs, unparsed) => {
                    self.unparsed(&unparsed);
                    for m in msgs {
                        if let NetlinkPayload::InnerMessage(inner) = m.payload {
                            self.apply(inner);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Events were lost: dump the tables again (on failure, keep the old
    /// ones and try again later).
    pub(super) fn resync(&mut self) -> Result<(), NeighError> {
        let old_neighs = std::mem::take(&mut self.neighs);
        let old_links = std::mem::take(&mut self.links);
        let old_addrs = std::mem::take(&mut self.addrs);
        if let Err(e) = self.dump_all() {
            self.neighs = old_neighs;
            self.links = old_links;
            self.addrs = old_addrs;
            return Err(e);
        }
        for (key, n) in &old_neighs {
            if self.neighs.get(key) != Some(n) && self.users.contains_key(key) {
                self.dirty_keys.insert(*key);
            }
        }
        for key in self.neighs.keys() {
            if !old_neighs.contains_key(key) && self.users.contains_key(key) {
                self.dirty_keys.insert(*key);
            }
        }
        Ok(())
    }

    pub(super) fn unparsed(&mut self, types: &[u16]) {
        for &t in types {
            if (RTM_NEWROUTE..=RTM_GETROUTE).contains(&t)
                || (RTM_NEWRULE..=RTM_GETRULE).contains(&t)
                || (RTM_NEWNEXTHOP..=RTM_GETNEXTHOP).contains(&t)
            {
                self.routes_dirty = true;
            }
        }
    }

    pub(super) fn apply(&mut self, msg: RouteNetlinkMessage) {
        match msg {
            RouteNetlinkMessage::NewLink(m) => self.link_msg(m, true),
            RouteNetlinkMessage::DelLink(m) => self.link_msg(m, false),
            RouteNetlinkMessage::NewAddress(m) => self.addr_msg(m, true),
            RouteNetlinkMessage::DelAddress(m) => self.addr_msg(m, false),
            RouteNetlinkMessage::NewNeighbour(m) => self.neigh_msg(m, true),
            RouteNetlinkMessage::DelNeighbour(m) => self.neigh_msg(m, false),
            RouteNetlinkMessage::NewRoute(_)
            | RouteNetlinkMessage::DelRoute(_)
            | RouteNetlinkMessage::NewRule(_)
            | RouteNetlinkMessage::DelRule(_) => self.routes_dirty = true,
            _ => {}
        }
    }

    pub(super) fn link_msg(&mut self, m: LinkMessage, new: bool) {
        // AF_BRIDGE messages describe bridge ports, not the link itself.
        if m.header.interface_family == AddressFamily::Bridge {
            return;
        }
        let ifindex = m.header.index;
        if !new {
            if self.links.remove(&ifindex).is_some() {
                self.addrs.remove(&ifindex);
                // The kernel flushes the link's neighbours without telling.
                let gone: Vec<NKey> = self
                    .neighs
                    .keys()
                    .filter(|k| k.0 == ifindex)
                    .copied()
                    .collect();
                for key in gone {
                    self.neighs.remove(&key);
                    if self.users.contains_key(&key) {
                        self.dirty_keys.insert(key);
                    }
                }
                self.links_dirty = true;
                self.routes_dirty = true;
            }
            return;
        }
        let mut link = Link {
            name: String::new(),
            mac: None,
            mtu: 0,
            flags: m.header.flags,
        };
        for a in m.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::Mtu(mtu) => link.mtu = mtu,
                _ => {}
            }
        }
        let old = self.links.insert(ifindex, link.clone());
        if let Some(old) = old {
            if old == link {
                return;
            }
            if old.flags.contains(LinkFlags::Up) != link.flags.contains(LinkFlags::Up) {
                self.routes_dirty = true;
            }
        }
        self.links_dirty = true;
    }

    pub(super) fn addr_msg(&mut self, m: AddressMessage, new: bool) {
        let ifindex = m.header.index;
        let mut local = None;
        let mut address = None;
        let mut flags = AddressFlags::from_bits_retain(u32::from(m.header.flags.bits()));
        for a in m.attributes {
            match a {
                AddressAttribute::Local(ip) => local = Some(ip),
                AddressAttribute::Address(ip) => address = Some(ip),
                AddressAttribute::Flags(f) => flags = f,
                _ => {}
            }
        }
        let Some(ip) = local.or(address) else { return };
        let usable = new && !flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed);
        let list = self.addrs.entry(ifindex).or_default();
        let pos = list.iter().position(|a| *a == ip);
        match (usable, pos) {
            (true, None) => list.push(ip),
            (false, Some(i)) => {
                list.remove(i);
            }
            _ => return,
        }
        self.links_dirty = true;
        self.routes_dirty = true;
    }

    pub(super) fn neigh_msg(&mut self, m: NeighbourMessage, new: bool) {
        if !matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6)
            || m.header.flags.contains(NeighbourFlags::Proxy)
        {
            return;
        }
        let mut dst = None;
        let mut mac = None;
        for a in m.attributes {
            match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                    dst = Some(IpAddr::V4(ip));
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
                    dst = Some(IpAddr::V6(ip));
                }
                NeighbourAttribute::LinkLayerAddress(a) => {
                    mac = <[u8; 6]>::try_from(a.as_slice()).ok();
                }
                _ => {}
            }
        }
        let Some(dst) = dst else { return };
        let key = (m.header.ifindex, dst);
        let (changed, significant) = if new {
            let n = Neigh {
                state: u16::from(m.header.state),
                mac,
            };
            let old = self.neighs.insert(key, n);
            (
                old != Some(n),
                old.and_then(|o| o.usable_mac()) != n.usable_mac(),
            )
        } else {
            let gone = self.neighs.remove(&key).is_some();
            (gone, gone)
        };
        if changed && self.users.contains_key(&key) {
            self.dirty_keys.insert(key);
            // REACHABLE <-> STALE and the like change nothing copied.
            self.bump |= significant;
        }
    }

    // ----- RTM_GETROUTE ------------------------------------------------------------------

    pub(super) fn get_route(&mut self, dst: IpAddr) -> Result<Route, NeighError> {
        let mut m = RouteMessage::default();
        m.header.address_family = family(dst);
        m.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        m.attributes.push(RouteAttribute::Destination(match dst {
            IpAddr::V4(v4) => RouteAddress::Inet(v4),
            IpAddr::V6(v6) => RouteAddress::Inet6(v6),
        }));
        let reply = match self
            .rq
            .transact(RouteNetlinkMessage::GetRoute(m), NLM_F_REQUEST)
        {
            Err(e) => return Err(NeighError::netlink("RTM_GETROUTE", e)),
            Ok(Err(e)) => return Err(route_errno(dst, &e)),
            Ok(Ok(Some(RouteNetlinkMessage::NewRoute(r)))) => r,
            Ok(Ok(other)) => {
                return Err(NeighError::Netlink(format!(
                    "unexpected RTM_GETROUTE answer {other:?}"
                )));
            }
        };
        parse_route(dst, &reply)
    }
}

pub(super) fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// What an `RTM_GETROUTE` error means.
pub(super) fn route_errno(dst: IpAddr, e: &io::Error) -> NeighError {
    match e.raw_os_error() {
        Some(e) if [ENETUNREACH, EHOSTUNREACH, EACCES, EINVAL].contains(&e) => {
            NeighError::NoRoute {
                dst,
                reason: e.to_string(),
            }
        }
        _ => NeighError::netlink("RTM_GETROUTE", e),
    }
}

/// The next hop in an `RTM_GETROUTE` answer.
pub(super) fn parse_route(dst: IpAddr, r: &RouteMessage) -> Result<Route, NeighError> {
    match r.header.kind {
        RouteType::Unicast => {}
        RouteType::Local | RouteType::Anycast => return Err(NeighError::Local(dst)),
        kind => {
            return Err(NeighError::NoRoute {
                dst,
                reason: format!("route type {kind:?}"),
            });
        }
    }
    let mut ifindex = None;
    let mut via = None;
    let mut src = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Oif(i) => ifindex = Some(*i),
            RouteAttribute::Gateway(g) => via = route_addr(g),
            RouteAttribute::Via(RouteVia::Inet(v4)) => via = Some(IpAddr::V4(*v4)),
            RouteAttribute::Via(RouteVia::Inet6(v6)) => via = Some(IpAddr::V6(*v6)),
            RouteAttribute::PrefSource(s) => src = route_addr(s),
            _ => {}
        }
    }
    let Some(ifindex) = ifindex else {
        return Err(NeighError::NoRoute {
            dst,
            reason: "route without egress interface".into(),
        });
    };
    Ok(Route {
        ifindex,
        via: via.unwrap_or(dst),
        src,
    })
}

pub(super) fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Fallback when the kernel refuses `NTF_USE`: one datagram to the
/// neighbour's discard port makes the kernel resolve it.
pub(super) fn poke(ip: IpAddr, ifindex: u32) {
    let (bind, to): (InetSocketAddr, InetSocketAddr) = match ip {
        IpAddr::V4(v4) => ((Ipv4Addr::UNSPECIFIED, 0).into(), (v4, 9).into()),
        IpAddr::V6(v6) => {
            let scope = if v6.is_unicast_link_local() {
                ifindex
            } else {
                0
            };
            (
                (Ipv6Addr::UNSPECIFIED, 0).into(),
                SocketAddrV6::new(v6, 9, 0, scope).into(),
            )
        }
    };
    if let Ok(s) = UdpSocket::bind(bind) {
        let _ = s.send_to(&[], to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(kind: RouteType, attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.kind = kind;
        m.attributes = attrs;
        m
    }

    #[test]
    fn route_answers() {
        let dst: IpAddr = "192.0.2.7".parse().unwrap();
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        let src = Ipv4Addr::new(10, 0, 0, 2);
        let r = route(
            RouteType::Unicast,
            vec![
                RouteAttribute::Oif(3),
                RouteAttribute::Gateway(RouteAddress::Inet(gw)),
                RouteAttribute::PrefSource(RouteAddress::Inet(src)),
            ],
        );
        assert_eq!(
            parse_route(dst, &r).unwrap(),
            Route {
                ifindex: 3,
                via: gw.into(),
                src: Some(src.into())
            }
        );
        let direct = route(RouteType::Unicast, vec![RouteAttribute::Oif(3)]);
        assert_eq!(parse_route(dst, &direct).unwrap().via, dst);
        let v6gw: Ipv6Addr = "fe80::1".parse().unwrap();
        let rfc5549 = route(
            RouteType::Unicast,
            vec![
                RouteAttribute::Oif(4),
                RouteAttribute::Via(RouteVia::Inet6(v6gw)),
            ],
        );
        assert_eq!(parse_route(dst, &rfc5549).unwrap().via, IpAddr::V6(v6gw));
        assert_eq!(
            parse_route(dst, &route(RouteType::Local, vec![])),
            Err(NeighError::Local(dst))
        );
        assert!(matches!(
            parse_route(
                dst,
                &route(RouteType::Broadcast, vec![RouteAttribute::Oif(3)])
            ),
            Err(NeighError::NoRoute { .. })
        ));
        assert!(matches!(
            route_errno(dst, &io::Error::from_raw_os_error(ENETUNREACH)),
            NeighError::NoRoute { .. }
        ));
        assert!(matches!(
            route_errno(
                dst,
                &io::Error::from_raw_os_error(Errno::PERM.raw_os_error())
            ),
            NeighError::Netlink(_)
        ));
    }
}
