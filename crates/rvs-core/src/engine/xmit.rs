//! Forwarding: the egress environment (ports, next hops), a known
//! connection's packets in both directions ([`Engine::conn_in`],
//! [`Engine::conn_out`]), and the rewrite for each forwarding method (DR,
//! NAT, TUN, with tunnelled packets cut into fragments when they would
//! not fit).

use core::net::IpAddr;

use hashbrown::HashMap;
use rvs_wire::{EncapResult, EthernetAddress, FlowMeta, TtlVerdict};

use super::frag::FragDecision;
use super::{Action, DropReason, Engine, Frame, Hop, PortConfig, PortId};
use crate::conn::state::tcp_flags::{ACK as TCP_ACK, RST as TCP_RST, SYN as TCP_SYN};
use crate::conn::{self, Activity, Conn, ConnId, ConnTable, Direction, Timeouts};
use crate::dest::{Dest, DestId};
use crate::service::{ServiceRef, addr_key};
use crate::time::Instant;
use crate::types::{FwdMethod, Protocol};

impl Engine {
    /// Declare or update a port.
    pub fn set_port(&mut self, id: PortId, cfg: PortConfig) {
        let i = id.0 as usize;
        if self.ports.len() <= i {
            self.ports.resize(i + 1, None);
        }
        let old = self.ports[i].replace(cfg);
        if old.is_some_and(|o| o != cfg) {
            // No cache holds a port that was not there: only a change
            // makes them stale.
            self.hop_epoch = self.hop_epoch.wrapping_add(1);
            self.fast_path_invalidate(|_| true);
        }
    }

    #[inline]
    pub(super) fn port(&self, id: PortId) -> Option<PortConfig> {
        self.ports.get(id.0 as usize).copied().flatten()
    }

    /// Set the next hop for an address (a real server, or a client / its router).
    pub fn set_hop(&mut self, addr: IpAddr, hop: Hop) {
        let old = self.hops.insert(addr_key(addr), hop);
        if old.is_some_and(|o| o != hop) {
            // A new address (every NAT client's) leaves the caches alone.
            self.hop_epoch = self.hop_epoch.wrapping_add(1);
            self.fast_path_invalidate(|c| c.daddr == addr || c.caddr == addr);
        }
    }

    /// Whether the next hop of `addr` is known.
    pub fn has_hop(&self, addr: IpAddr) -> bool {
        self.hops.contains_key(&addr_key(addr))
    }

    /// Forget a next hop.
    pub fn remove_hop(&mut self, addr: &IpAddr) {
        if self.hops.remove(&addr_key(*addr)).is_some() {
            self.hop_epoch = self.hop_epoch.wrapping_add(1);
            let a = *addr;
            self.fast_path_invalidate(|c| c.daddr == a || c.caddr == a);
        }
    }

    /// The next hop for `addr` and the MAC address of its egress port (the
    /// frame's new source), or the action to take instead (resolve the
    /// neighbour; unknown port). The packet path's look-up: it copies 14
    /// bytes, not the port's whole configuration.
    #[inline]
    pub(super) fn egress(&self, addr: IpAddr) -> Result<(Hop, EthernetAddress), Action> {
        egress_of(&self.hops, &self.ports, addr)
    }

    /// The next hop for `addr` and its egress port's whole configuration
    /// (tunnels, fast-path entries), or the action to take instead.
    pub(super) fn egress_port(&self, addr: IpAddr) -> Result<(Hop, PortConfig), Action> {
        let (hop, _) = self.egress(addr)?;
        match self.port(hop.port) {
            Some(port) => Ok((hop, port)),
            None => Err(Action::Drop(DropReason::UnknownPort)),
        }
    }

    /// The reply frame of the last [`Action::Reply`].
    pub fn reply_frame(&self, len: usize) -> &[u8] {
        &self.reply[..len.min(self.reply.len())]
    }

    /// Frame `i` of the last [`Action::Frames`] (empty past its count).
    pub fn frame_at(&self, i: usize) -> &[u8] {
        match self.frame_spans.get(i) {
            Some(&(start, len)) => &self.frames[start..start + len],
            None => &[],
        }
    }

    /// A client → server packet of a known connection: the hot path.
    pub(super) fn conn_in(
        &mut self,
        frame: Frame<'_>,
        meta: &FlowMeta,
        id: ConnId,
        proto: Protocol,
        now: Instant,
    ) -> Action {
        let Some(mut c) = self.conns.get(id) else {
            return Action::Drop(DropReason::NoConnection);
        };
        if c.owner == super::UNBOUND_OWNER {
            // A synced connection whose service this director did not
            // have: bind it now if it has it (ip_vs_try_bind_dest).
            self.try_bind(id);
            c = match self.conns.get(id) {
                Some(c) => c,
                None => return Action::Drop(DropReason::NoConnection),
            };
        }
        let target = Target::of(c);
        let mut svc = self.services.get_mut(target.sref);
        let dest_index = svc
            .as_ref()
            .and_then(|svc| svc.dests.iter().position(|d| d.id == target.dest));
        // The next hop from the real server's cache while the hops and
        // ports are unchanged, else looked up (and kept).
        let egress = match (svc.as_deref_mut(), dest_index) {
            (Some(svc), Some(i)) if svc.dests[i].addr == target.daddr => {
                let cache = &mut svc.dests[i].egress;
                match cache.0 {
                    Some((epoch, hop, mac)) if epoch == self.hop_epoch => Ok((hop, mac)),
                    _ => {
                        let e = egress_of(&self.hops, &self.ports, target.daddr);
                        cache.0 = e.ok().map(|(hop, mac)| (self.hop_epoch, hop, mac));
                        e
                    }
                }
            }
            _ => egress_of(&self.hops, &self.ports, target.daddr),
        };
        let dest_weight = match (&svc, dest_index) {
            (Some(svc), Some(i)) => Some(svc.dests[i].weight),
            _ => None,
        };

        // A new connection attempt on an old entry (reference §5.8).
        if proto != Protocol::Udp && is_conn_start(proto, meta, &frame) {
            let reuse = self.sysctls.conn_reuse_mode != 0
                && conn::is_new_conn_expected(c, self.sysctls.conn_reuse_mode as u32);
            let nodest = self.sysctls.expire_nodest_conn && dest_weight.unwrap_or(0) == 0;
            if reuse || nodest {
                self.expire_now(id);
                return self.reschedule(frame, meta, proto, now);
            }
        }
        let (Some(svc), Some(di)) = (svc, dest_index) else {
            if self.sysctls.expire_nodest_conn {
                self.expire_now(id);
                return self.reschedule(frame, meta, proto, now);
            }
            return Action::Drop(DropReason::DestGone);
        };
        // No state change and no counting without a next hop (NeedHop
        // leaves everything as it was, so the frame can be processed again).
        let (hop, src_mac) = match egress {
            Ok(e) => e,
            Err(a) => return a,
        };

        let activity = update_state(
            &mut self.conns,
            &self.timeouts,
            id,
            Direction::Input,
            proto,
            &frame,
            meta,
            now,
        );
        self.conns.count_in_pkt(id);
        if self.embryonic.back().is_some_and(|&(b, _)| b == id)
            && self
                .conns
                .get(id)
                .is_some_and(|c| c.state != conn::state::TcpState::SynRecv as u8)
        {
            // The newest embryonic handle's handshake completed before
            // the next SYN: no stale handle left (others wait for
            // `prune_embryonic`).
            self.embryonic.pop_back();
        }

        // Counters and activity, with one look-up of the real server.
        let bytes = meta.l3_len;
        svc.stats.count_in(bytes);
        let d = &mut svc.dests[di];
        d.stats.count_in(bytes);
        apply_activity(d, activity.unwrap_or(Activity::Unchanged));
        self.stats.count_in(bytes);
        let action = self.emit_in(frame, meta, &target, hop, src_mac);
        if self.sync.master {
            self.sync_conn(id, now);
        }
        if self.fast.is_some() && matches!(action, Action::Forward { .. }) {
            self.fast_path_update(id);
        }
        action
    }

    pub(super) fn apply_activity(&mut self, sref: ServiceRef, dest: DestId, a: Activity) {
        if let Some(d) = self
            .services
            .get_mut(sref)
            .and_then(|s| s.dest_by_id_mut(dest))
        {
            apply_activity(d, a);
        }
    }

    /// Count a client → server packet, rewrite it for the forwarding method,
    /// and pick the egress.
    pub(super) fn forward_in(&mut self, frame: Frame<'_>, meta: &FlowMeta, t: &Target) -> Action {
        let (hop, src_mac) = match self.egress(t.daddr) {
            Ok(e) => e,
            Err(a) => return a,
        };
        let bytes = meta.l3_len;
        if let Some(svc) = self.services.get_mut(t.sref) {
            svc.stats.count_in(bytes);
            if let Some(d) = svc.dest_by_id_mut(t.dest) {
                d.stats.count_in(bytes);
            }
        }
        self.stats.count_in(bytes);
        self.emit_in(frame, meta, t, hop, src_mac)
    }

    /// Rewrite a client → server packet for the forwarding method towards
    /// the egress `hop`, from its port's `src_mac` (counting is the
    /// caller's).
    pub(super) fn emit_in(
        &mut self,
        frame: Frame<'_>,
        meta: &FlowMeta,
        t: &Target,
        hop: Hop,
        src_mac: EthernetAddress,
    ) -> Action {
        let end = frame.start + frame.len;
        if meta.is_fragment {
            // Recorded for the later fragments (`Engine::process`). Only
            // then: the copy of the target costs a packet ~5 ns.
            self.last_fwd = Some(FragDecision::In(*t));
        }
        match t.fwd {
            FwdMethod::Route | FwdMethod::Masq => {
                let f = &mut frame.buf[frame.start..end];
                let rewritten = if t.fwd == FwdMethod::Masq {
                    if meta.icmp.is_some() {
                        rvs_wire::icmp_error_in(f, meta, t.daddr, t.dport)
                    } else {
                        rvs_wire::dnat(f, meta, t.daddr, t.dport)
                    }
                } else {
                    Ok(())
                };
                if rewritten.is_err() || rvs_wire::set_macs(f, src_mac, hop.mac).is_err() {
                    return Action::Drop(DropReason::RewriteFailed);
                }
                Action::Forward {
                    port: hop.port,
                    start: frame.start,
                    len: frame.len,
                }
            }
            FwdMethod::Tunnel => {
                let Some(port) = self.port(hop.port) else {
                    return Action::Drop(DropReason::UnknownPort);
                };
                let src = match t.daddr {
                    IpAddr::V4(_) => port.addr_v4.map(IpAddr::V4),
                    IpAddr::V6(_) => port.addr_v6.map(IpAddr::V6),
                };
                let Some(src) = src else {
                    return Action::Drop(DropReason::RewriteFailed);
                };
                let outer = if t.daddr.is_ipv6() { 40 } else { 20 };
                if !meta.af_v6 && !meta.dont_fragment && meta.l3_len + outer > usize::from(port.mtu)
                {
                    // No DF: cut the inner packet (a fragment too) so that
                    // each piece fits once encapsulated, as the kernel's
                    // tunnels fragment (RFC 2003 allows either).
                    let bytes = &frame.buf[frame.start..end];
                    return self.tunnel_pieces(bytes, meta, src, t.daddr, hop, port, outer);
                }
                let encap = rvs_wire::encap_ipip(
                    frame.buf,
                    frame.start,
                    frame.len,
                    src,
                    t.daddr,
                    port.mtu,
                    TUNNEL_TTL,
                );
                match encap {
                    Ok(EncapResult::Encapsulated { start, len }) => {
                        let f = &mut frame.buf[start..start + len];
                        if rvs_wire::set_macs(f, port.mac, hop.mac).is_err() {
                            return Action::Drop(DropReason::RewriteFailed);
                        }
                        Action::Forward {
                            port: hop.port,
                            start,
                            len,
                        }
                    }
                    Ok(EncapResult::TooBig { mtu }) => {
                        let orig = &frame.buf[frame.start..end];
                        match rvs_wire::icmp_frag_needed(orig, meta, mtu, meta.dst, &mut self.reply)
                        {
                            Ok(len) => Action::Reply {
                                port: frame.ingress,
                                len,
                            },
                            Err(_) => Action::Drop(DropReason::RewriteFailed),
                        }
                    }
                    Err(_) => Action::Drop(DropReason::RewriteFailed),
                }
            }
        }
    }

    /// Cut the inner IPv4 packet `bytes` (a frame, DF clear) into pieces
    /// that fit `port`'s MTU under an `outer`-byte header, encapsulate each
    /// towards `daddr` and keep them for [`Action::Frames`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tunnel_pieces(
        &mut self,
        bytes: &[u8],
        meta: &FlowMeta,
        src: IpAddr,
        daddr: IpAddr,
        hop: Hop,
        port: PortConfig,
        outer: usize,
    ) -> Action {
        const ROOM: usize = 64;
        let max_ip_len = usize::from(port.mtu).saturating_sub(outer);
        self.frames.clear();
        self.frame_spans.clear();
        let want = ROOM + meta.l3_offset + max_ip_len;
        if self.piece.len() < want {
            self.piece.resize(want, 0);
        }
        for i in 0.. {
            let len = match rvs_wire::ipv4_fragment(
                bytes,
                meta,
                max_ip_len,
                i,
                &mut self.piece[ROOM..],
            ) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(_) => return Action::Drop(DropReason::RewriteFailed),
            };
            let encap =
                rvs_wire::encap_ipip(&mut self.piece, ROOM, len, src, daddr, port.mtu, TUNNEL_TTL);
            let Ok(EncapResult::Encapsulated { start, len }) = encap else {
                return Action::Drop(DropReason::RewriteFailed);
            };
            let f = &mut self.piece[start..start + len];
            if rvs_wire::set_macs(f, port.mac, hop.mac).is_err() {
                return Action::Drop(DropReason::RewriteFailed);
            }
            self.frame_spans.push((self.frames.len(), len));
            self.frames.extend_from_slice(f);
        }
        self.counters.tunnel_fragmented += 1;
        Action::Frames {
            port: hop.port,
            count: self.frame_spans.len(),
        }
    }

    /// A real server → client packet of a NAT connection.
    pub(super) fn conn_out(
        &mut self,
        frame: Frame<'_>,
        meta: &FlowMeta,
        id: ConnId,
        proto: Protocol,
        now: Instant,
    ) -> Action {
        let Some(c) = self.conns.get(id) else {
            return Action::Drop(DropReason::NoConnection);
        };
        let (sref, dest_id, vaddr, vport, caddr) = (
            ServiceRef::from_owner(c.owner),
            c.dest,
            c.vaddr,
            c.vport,
            c.caddr,
        );
        // No state change and no counting without a next hop.
        let (hop, src_mac) = match self.egress(caddr) {
            Ok(e) => e,
            Err(a) => return a,
        };
        let activity = update_state(
            &mut self.conns,
            &self.timeouts,
            id,
            Direction::Output,
            proto,
            &frame,
            meta,
            now,
        );
        self.apply_activity(sref, dest_id, activity.unwrap_or(Activity::Unchanged));
        self.count_out(sref, dest_id, meta.l3_len);
        if meta.is_fragment {
            self.last_fwd = Some(FragDecision::Out {
                sref,
                dest: dest_id,
                vaddr,
                caddr,
            });
        }

        let f = &mut frame.buf[frame.start..frame.start + frame.len];
        // Replies are routed by the director: TTL goes down by one.
        match rvs_wire::decrement_ttl(f, meta) {
            Ok(TtlVerdict::Expired) => return Action::Drop(DropReason::TtlExpired),
            Ok(_) => {}
            Err(_) => return Action::Drop(DropReason::RewriteFailed),
        }
        if rvs_wire::snat(f, meta, vaddr, vport).is_err()
            || rvs_wire::set_macs(f, src_mac, hop.mac).is_err()
        {
            return Action::Drop(DropReason::RewriteFailed);
        }
        if self.fast.is_some() {
            self.fast_path_update(id);
        }
        Action::Forward {
            port: hop.port,
            start: frame.start,
            len: frame.len,
        }
    }

    pub(super) fn count_out(&mut self, sref: ServiceRef, dest: DestId, bytes: usize) {
        if let Some(svc) = self.services.get_mut(sref) {
            svc.stats.count_out(bytes);
            if let Some(d) = svc.dest_by_id_mut(dest) {
                d.stats.count_out(bytes);
            }
        }
        self.stats.count_out(bytes);
    }
}

/// [`Engine::egress`] over the engine's fields, for a caller that holds
/// another of them.
#[inline]
fn egress_of(
    hops: &HashMap<u128, Hop>,
    ports: &[Option<PortConfig>],
    addr: IpAddr,
) -> Result<(Hop, EthernetAddress), Action> {
    let Some(&hop) = hops.get(&addr_key(addr)) else {
        return Err(Action::NeedHop(addr));
    };
    match ports.get(hop.port.0 as usize) {
        Some(Some(port)) => Ok((hop, port.mac)),
        _ => Err(Action::Drop(DropReason::UnknownPort)),
    }
}

/// TCP SYN (without ACK/RST) or SCTP INIT: a packet that opens a connection.
pub(super) fn is_conn_start(proto: Protocol, meta: &FlowMeta, frame: &Frame<'_>) -> bool {
    match proto {
        Protocol::Tcp => meta.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN,
        Protocol::Sctp => sctp_first_chunk(frame, meta) == Some(SCTP_INIT),
        Protocol::Udp => false,
    }
}

/// Advance a connection's protocol state machine for one packet.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(super) fn update_state(
    conns: &mut ConnTable,
    timeouts: &Timeouts,
    id: ConnId,
    dir: Direction,
    proto: Protocol,
    frame: &Frame<'_>,
    meta: &FlowMeta,
    now: Instant,
) -> Option<Activity> {
    match proto {
        Protocol::Tcp => conns.tcp_update(id, dir, meta.tcp_flags, timeouts, now),
        Protocol::Udp => conns.udp_update(id, timeouts, now),
        Protocol::Sctp => conns.sctp_update(id, dir, sctp_event_of(frame, meta), timeouts, now),
    }
}

pub(super) fn apply_activity(d: &mut Dest, a: Activity) {
    match a {
        Activity::ToActive => d.count(1, -1),
        Activity::ToInactive => d.count(-1, 1),
        Activity::Unchanged => {}
    }
}

/// SCTP chunk type INIT.
pub(super) const SCTP_INIT: u8 = 1;

/// TTL of the outer header of tunnelled packets.
pub(super) const TUNNEL_TTL: u8 = 64;

/// Where a client → server packet goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target {
    pub(super) sref: ServiceRef,
    pub(super) dest: DestId,
    pub(super) daddr: IpAddr,
    pub(super) dport: u16,
    pub(super) fwd: FwdMethod,
}

impl Target {
    pub(super) fn of(c: &Conn) -> Target {
        Target {
            sref: ServiceRef::from_owner(c.owner),
            dest: c.dest,
            daddr: c.daddr,
            dport: c.dport,
            fwd: fwd_of(c.flags),
        }
    }
}

/// Type of the SCTP chunk at `off` bytes into the packet's transport part.
pub(super) fn sctp_chunk_at(frame: &Frame<'_>, meta: &FlowMeta, off: usize) -> Option<u8> {
    let l4 = frame.start.checked_add(meta.l4_offset)?;
    let end = frame.start.checked_add(frame.len)?;
    let pos = l4.checked_add(off)?;
    if pos >= end {
        return None;
    }
    frame.buf.get(pos).copied()
}

/// Type of the first chunk of an SCTP packet (after the 12-byte common header).
pub(super) fn sctp_first_chunk(frame: &Frame<'_>, meta: &FlowMeta) -> Option<u8> {
    sctp_chunk_at(frame, meta, 12)
}

/// The state-machine event of an SCTP packet: its first chunk, and the
/// second one when present (COOKIE-ECHO/ACK followed by ABORT).
pub(super) fn sctp_event_of(frame: &Frame<'_>, meta: &FlowMeta) -> conn::SctpEvent {
    let first = sctp_first_chunk(frame, meta).unwrap_or(0);
    let len_hi = sctp_chunk_at(frame, meta, 14).unwrap_or(0) as usize;
    let len_lo = sctp_chunk_at(frame, meta, 15).unwrap_or(0) as usize;
    let len = (len_hi << 8 | len_lo).div_ceil(4) * 4;
    let second = if len >= 4 {
        sctp_chunk_at(frame, meta, 12 + len)
    } else {
        None
    };
    conn::sctp_event(first, second)
}

pub(super) fn fwd_of(flags: u32) -> FwdMethod {
    match flags & conn::flags::FWD_MASK {
        0 => FwdMethod::Masq,
        2 => FwdMethod::Tunnel,
        _ => FwdMethod::Route,
    }
}
