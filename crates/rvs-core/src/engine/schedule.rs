//! New connections: may this packet open one, persistence templates
//! (`ip_vs_sched_persist`), the scheduler, `ip_vs_leave` when no real
//! server is available, and eviction of embryonic entries near the table's
//! bound.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::time::Duration;

use rvs_wire::FlowMeta;

use super::xmit::{SCTP_INIT, Target, sctp_first_chunk};
use super::{
    Action, CONN_F_INACTIVE, CONN_F_NOOUTPUT, CONN_F_TEMPLATE, DropReason, EMBRYONIC_PRUNE,
    EVICT_SCAN, Engine, Frame, NEAR_FULL, client_tag,
};
use crate::conn::state::tcp_flags::{RST as TCP_RST, SYN as TCP_SYN};
use crate::conn::{self, Conn, ConnId};
use crate::dest::Dest;
use crate::sched::SchedInput;
use crate::service::{SVC_F_ONEPACKET, Service, ServiceKey, ServiceRef, addr_key};
use crate::time::Instant;
use crate::types::{Af, FwdMethod, Protocol};

/// Timeout of a new connection until its first state transition.
pub(super) const INITIAL_TIMEOUT: Duration =
    Duration::from_millis(conn::state::INITIAL_TIMEOUT_MS as u64);

impl Engine {
    /// Whether this packet may create a connection (reference §5.5).
    pub(super) fn may_schedule(&self, proto: Protocol, meta: &FlowMeta, frame: &Frame<'_>) -> bool {
        match proto {
            Protocol::Tcp => {
                let f = meta.tcp_flags;
                f & TCP_RST == 0 && (f & TCP_SYN != 0 || self.sysctls.sloppy_tcp)
            }
            Protocol::Udp => true,
            Protocol::Sctp => {
                self.sysctls.sloppy_sctp || sctp_first_chunk(frame, meta) == Some(SCTP_INIT)
            }
        }
    }

    pub(super) fn new_conn(
        &mut self,
        frame: Frame<'_>,
        meta: &FlowMeta,
        sref: ServiceRef,
        proto: Protocol,
        now: Instant,
    ) -> Action {
        if !self.may_schedule(proto, meta, &frame) {
            return Action::Drop(DropReason::NoConnection);
        }
        self.evict_if_near_full();
        let (svc_persistent, sip) = match self.services.get(sref) {
            Some(s) => (s.persistent(), s.config.pe.as_deref() == Some("sip")),
            None => return Action::Pass,
        };
        let scheduled = if svc_persistent {
            let pe = if sip { pe_data(&frame, meta) } else { None };
            self.schedule_persist(sref, meta, proto, pe, now)
        } else {
            self.schedule_plain(sref, meta, now)
        };
        let sched = match scheduled {
            Ok(s) => s,
            Err(SchedFail::NoDest) => return self.leave(frame, meta),
            Err(SchedFail::NoConnection) => return Action::Drop(DropReason::NoConnection),
            Err(SchedFail::TableFull) => return Action::Drop(DropReason::TableFull),
        };
        let Some(svc) = self.services.get_mut(sref) else {
            return Action::Pass;
        };
        let one_packet = svc.config.flags & SVC_F_ONEPACKET != 0 && proto == Protocol::Udp;
        let Some(dest) = svc.dests.get_mut(sched.dest_index) else {
            return Action::Drop(DropReason::NoDest);
        };
        let (dest_id, daddr, fwd) = (dest.id, dest.addr, dest.fwd);
        if one_packet {
            // Not hashed: counted, forwarded and gone (a template, if any, stays).
            // Nothing is counted before the next hop is known (NeedHop
            // leaves the table as it was, so the frame can be processed again).
            if !self.hops.contains_key(&addr_key(daddr)) {
                return Action::NeedHop(daddr);
            }
            dest.stats.count_conn();
            svc.stats.count_conn();
            self.stats.count_conn();
            let target = Target {
                sref,
                dest: dest_id,
                daddr,
                dport: sched.dport,
                fwd,
            };
            if let Some(t) = sched.template {
                self.sync_one_packet(t, now);
            }
            return self.forward_in(frame, meta, &target);
        }
        let mut flags = fwd.conn_flag() | CONN_F_INACTIVE;
        if fwd != FwdMethod::Masq {
            flags |= CONN_F_NOOUTPUT;
        }
        let conn = Conn {
            proto: meta.proto,
            caddr: meta.src,
            cport: meta.sport,
            vaddr: meta.dst,
            vport: meta.dport,
            daddr,
            dport: sched.dport,
            fwmark: frame.fwmark,
            flags,
            state: 0,
            timeout_ms: INITIAL_TIMEOUT.as_millis() as u32,
            expires: now + INITIAL_TIMEOUT,
            owner: sref.to_owner(),
            dest: dest_id,
            control: sched.template,
            n_control: 0,
            in_pkts: 0,
            old_state: 0,
        };
        let id = match self.conns.insert(conn, fwd == FwdMethod::Masq, now) {
            Ok(id) => id,
            Err(_) => return Action::Drop(DropReason::TableFull),
        };
        if proto == Protocol::Tcp {
            self.embryonic
                .push_back((id, client_tag(meta.src, meta.sport)));
            if self.embryonic.len() > self.conns.capacity_limit() {
                self.embryonic.pop_front();
            }
        }
        dest.count(0, 1);
        dest.after_bind();
        dest.stats.count_conn();
        svc.stats.count_conn();
        self.stats.count_conn();
        self.conn_in(frame, meta, id, proto, now)
    }

    pub(super) fn schedule_plain(
        &mut self,
        sref: ServiceRef,
        meta: &FlowMeta,
        now: Instant,
    ) -> Result<Scheduled, SchedFail> {
        let svc = self.services.get_mut(sref).ok_or(SchedFail::NoDest)?;
        if svc.key.port() == 0 && matches!(svc.key, ServiceKey::Addr { .. }) {
            // "port zero only supported in persistent services"
            return Err(SchedFail::NoConnection);
        }
        let input = sched_input(svc, meta, now);
        let i = svc
            .scheduler
            .schedule(&svc.dests, &input)
            .ok_or(SchedFail::NoDest)?;
        let d = &svc.dests[i];
        Ok(Scheduled {
            dest_index: i,
            dport: if d.port != 0 { d.port } else { meta.dport },
            template: None,
        })
    }

    /// `ip_vs_sched_persist` (reference §5.7). With persistence-engine data
    /// `pe` (a SIP Call-ID), the template is the one of that data and the
    /// client network (`ip_vs_sip_ct_match`), created with it.
    pub(super) fn schedule_persist(
        &mut self,
        sref: ServiceRef,
        meta: &FlowMeta,
        proto: Protocol,
        pe: Option<&[u8]>,
        now: Instant,
    ) -> Result<Scheduled, SchedFail> {
        let svc = self.services.get_mut(sref).ok_or(SchedFail::NoDest)?;
        let snet = mask_addr(meta.src, svc.config.netmask);
        let svc_port = svc.key.port();
        let (t_proto, t_vaddr, t_vport) = match svc.key {
            ServiceKey::Fwmark { af, mark } => (0u8, conn::fwmark_vaddr(af == Af::Inet6, mark), 0),
            ServiceKey::Addr { .. } if svc_port == 0 || svc_port == 21 => {
                (proto.number(), meta.dst, 0)
            }
            ServiceKey::Addr { .. } => (proto.number(), meta.dst, meta.dport),
        };
        // The real connection's port: the packet's, or the server's when the
        // packet is for the service port.
        let port_of = |d: &Dest| -> u16 {
            if meta.dport == svc_port && d.port != 0 {
                d.port
            } else {
                meta.dport
            }
        };

        let found = match pe {
            Some(pe) => self
                .conns
                .lookup_template_pe(t_proto, snet, t_vaddr, t_vport, pe),
            None => self.conns.lookup_template(t_proto, snet, t_vaddr, t_vport),
        };
        if let Some(tid) = found {
            let tmpl_dest = self.conns.get(tid).map(|t| t.dest);
            let valid = tmpl_dest
                .and_then(|id| svc.dest_index_by_id(id))
                .filter(|&i| {
                    let d = &svc.dests[i];
                    d.available && !(self.sysctls.expire_quiescent_template && d.weight == 0)
                });
            match valid {
                Some(i) => {
                    // ip_vs_conn_put: each use re-arms the template.
                    self.conns.refresh(tid, now);
                    return Ok(Scheduled {
                        dest_index: i,
                        dport: port_of(&svc.dests[i]),
                        template: Some(tid),
                    });
                }
                None => self.conns.neutralize_template(tid),
            }
        }

        let input = sched_input(svc, meta, now);
        let i = svc
            .scheduler
            .schedule(&svc.dests, &input)
            .ok_or(SchedFail::NoDest)?;
        let timeout = Duration::from_secs(svc.config.timeout.max(1) as u64);
        let fwmark = match svc.key {
            ServiceKey::Fwmark { mark, .. } => mark,
            ServiceKey::Addr { .. } => 0,
        };
        let d = &mut svc.dests[i];
        // PPC templates keep the server port; PCC / fwmark / FTP ones use 0.
        let t_dport = if t_vport != 0 { d.port } else { 0 };
        let tmpl = Conn {
            proto: t_proto,
            caddr: snet,
            cport: 0,
            vaddr: t_vaddr,
            vport: t_vport,
            daddr: d.addr,
            dport: t_dport,
            fwmark,
            flags: CONN_F_TEMPLATE | d.fwd.conn_flag(),
            state: conn::state::TPL_NONE,
            timeout_ms: timeout.as_millis() as u32,
            expires: now + timeout,
            owner: sref.to_owner(),
            dest: d.id,
            control: None,
            n_control: 0,
            in_pkts: 0,
            old_state: 0,
        };
        let tid = match pe {
            Some(pe) => self.conns.insert_template_pe(tmpl, pe.into(), now),
            None => self.conns.insert(tmpl, false, now),
        }
        .map_err(|_| SchedFail::TableFull)?;
        d.count_persist(1);
        d.after_bind();
        Ok(Scheduled {
            dest_index: i,
            dport: port_of(d),
            template: Some(tid),
        })
    }

    /// `ip_vs_leave`: no server for a new connection. Answer with ICMP port
    /// unreachable from the virtual address when we can, else drop.
    pub(super) fn leave(&mut self, frame: Frame<'_>, meta: &FlowMeta) -> Action {
        let orig = &frame.buf[frame.start..frame.start + frame.len];
        match rvs_wire::icmp_port_unreachable(orig, meta, meta.dst, &mut self.reply) {
            Ok(len) if self.port(frame.ingress).is_some() => Action::Reply {
                port: frame.ingress,
                len,
            },
            _ => Action::Drop(DropReason::NoDest),
        }
    }

    pub(super) fn reschedule(
        &mut self,
        mut frame: Frame<'_>,
        meta: &FlowMeta,
        proto: Protocol,
        now: Instant,
    ) -> Action {
        let af = if meta.af_v6 { Af::Inet6 } else { Af::Inet };
        frame.fwmark = self.flow_mark(&frame, meta, proto);
        match self
            .services
            .lookup(frame.fwmark, af, proto, meta.dst, meta.dport)
        {
            Some(sref) => self.new_conn(frame, meta, sref, proto, now),
            None => Action::Pass,
        }
    }

    /// Near the table's bound ([`NEAR_FULL`]), evict the oldest entry that
    /// a SYN made and that is still in `SYN_RECV`, with no entry under it.
    pub(super) fn evict_if_near_full(&mut self) {
        let limit = self.conns.capacity_limit();
        if self.conns.occupancy() * NEAR_FULL.1 < limit * NEAR_FULL.0 {
            return;
        }
        self.counters.table_full += 1;
        for _ in 0..EVICT_SCAN {
            let Some((id, tag)) = self.embryonic.pop_front() else {
                return;
            };
            let victim = self
                .conns
                .get(id)
                .is_some_and(|c| Self::is_embryonic(c, tag));
            if victim {
                self.expire_now(id);
                self.counters.evicted_syn_recv += 1;
                return;
            }
        }
    }

    /// Housekeeping ([`Engine::poll`]): look at up to [`EMBRYONIC_PRUNE`]
    /// handles at the front of the embryonic queue; drop those whose entry
    /// is gone or past `SYN_RECV`, and move those still in `SYN_RECV` to
    /// the back, so that the queue holds about the entries still in their
    /// handshake rather than the table's bound of stale handles. Not near
    /// the bound only: there eviction takes them from the front in order
    /// (a handshake slower than one poll may have moved behind younger
    /// ones; eviction order among embryonic entries is a preference, the
    /// kernel's `drop_entry` picks at random).
    pub(super) fn prune_embryonic(&mut self) {
        let limit = self.conns.capacity_limit();
        if self.conns.occupancy() * NEAR_FULL.1 >= limit * NEAR_FULL.0 {
            return;
        }
        for _ in 0..EMBRYONIC_PRUNE.min(self.embryonic.len()) {
            let Some((id, tag)) = self.embryonic.pop_front() else {
                break;
            };
            if self
                .conns
                .get(id)
                .is_some_and(|c| Self::is_embryonic(c, tag))
            {
                self.embryonic.push_back((id, tag));
            }
        }
        if self.embryonic.capacity() > 4 * self.embryonic.len().max(1024) {
            self.embryonic.shrink_to(2 * self.embryonic.len().max(1024));
        }
    }

    /// Whether `c` is still the embryonic entry a SYN of the client with
    /// `tag` made.
    fn is_embryonic(c: &Conn, tag: u32) -> bool {
        client_tag(c.caddr, c.cport) == tag
            && c.proto == 6
            && !c.is_template()
            && c.n_control == 0
            && c.state == conn::state::TcpState::SynRecv as u8
    }

    pub(super) fn expire_now(&mut self, id: ConnId) {
        let mut out = core::mem::take(&mut self.expired);
        self.conns.remove_forced(id, &mut out);
        for c in out.drain(..) {
            self.unbind(&c);
        }
        self.expired = out;
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Scheduled {
    dest_index: usize,
    dport: u16,
    template: Option<ConnId>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum SchedFail {
    NoDest,
    NoConnection,
    TableFull,
}

/// The persistence-engine data of a new connection's first packet for a
/// service with `--pe sip` (`ip_vs_sip_fill_param`): the SIP Call-ID of a
/// UDP datagram ([`rvs_wire::sip::call_id`], searched as the kernel
/// searches, from the IP and UDP headers' length into the payload). `None`
/// (not UDP, no Call-ID) means the client-address persistence, as in the
/// kernel. A first fragment is searched as far as it goes (the kernel
/// searches the reassembled datagram).
fn pe_data<'f>(frame: &'f Frame<'_>, meta: &FlowMeta) -> Option<&'f [u8]> {
    if meta.proto != 17 || !meta.l4_present {
        return None;
    }
    let skip = meta.l4_offset.checked_sub(meta.l3_offset)? + 8;
    let from = frame.start + meta.l4_offset + 8;
    let to = (frame.start + meta.l3_offset + meta.l3_len).min(frame.start + frame.len);
    rvs_wire::sip::call_id(frame.buf.get(from..to)?, skip)
}

pub(super) fn sched_input(svc: &Service, meta: &FlowMeta, now: Instant) -> SchedInput {
    SchedInput {
        saddr: meta.src,
        sport: meta.sport,
        daddr: meta.dst,
        dport: meta.dport,
        proto: meta.proto,
        svc_flags: svc.config.flags,
        now,
    }
}

/// The client network for persistence: IPv4 `addr & mask`, IPv6 prefix of `len`.
pub fn mask_addr(addr: IpAddr, netmask: u32) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & netmask)),
        IpAddr::V6(a) => {
            let len = netmask.min(128);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    /// An embryonic entry is 8 bytes: the table's bound of them costs 8
    /// bytes per connection at most.
    #[test]
    fn embryonic_entry_is_eight_bytes() {
        assert_eq!(core::mem::size_of::<(ConnId, u32)>(), 8);
    }

    /// Clients that differ in one address bit or one port bit get
    /// different tags (v4, v6, and a v4 address against its v4-mapped v6).
    #[test]
    fn client_tags_tell_clients_apart() {
        let mut seen = std::collections::HashSet::new();
        let base4 = u32::from(Ipv4Addr::new(10, 200, 0, 1));
        let base6 = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        for bit in 0..32 {
            for port in [1024u16, 1025, 40001, 65535] {
                let a = IpAddr::V4(Ipv4Addr::from(base4 ^ (1 << bit)));
                assert!(seen.insert(client_tag(a, port)), "{a} {port}");
            }
        }
        for bit in 0..128 {
            let a = IpAddr::V6(Ipv6Addr::from(base6 ^ (1 << bit)));
            assert!(seen.insert(client_tag(a, 80)), "{a}");
        }
        for bit in 0..16 {
            let a = IpAddr::V4(Ipv4Addr::from(base4));
            assert!(seen.insert(client_tag(a, 1 << bit)), "port bit {bit}");
        }
    }
}
