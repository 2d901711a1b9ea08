//! The engine's side of IPv4 fragments (the table itself is
//! [`crate::frag`]): a first fragment's decision, recorded by
//! [`Engine::process`], and the later fragments that follow it.

use core::net::IpAddr;

use rvs_wire::{FlowMeta, TtlVerdict};

use super::xmit::Target;
use super::{Action, DropReason, Engine, Frame};
use crate::dest::DestId;
use crate::frag::{FragConfig, FragCounters, FragKey, FragTable, HeldFragment};
use crate::service::ServiceRef;

impl Engine {
    /// A held fragment whose datagram's first fragment came since
    /// (oldest first): process it again ([`Engine::process`], the frame at
    /// [`crate::frag::HELD_HEADROOM`] in its buffer) after that first
    /// fragment, then give the buffer back ([`Engine::recycle_fragment`]).
    pub fn pop_released_fragment(&mut self) -> Option<HeldFragment> {
        self.frags.pop_released()
    }

    /// Whether released fragments wait ([`Engine::pop_released_fragment`]).
    pub fn has_released_fragments(&self) -> bool {
        self.frags.has_released()
    }

    /// Give back the buffer of a released fragment.
    pub fn recycle_fragment(&mut self, buf: Vec<u8>) {
        self.frags.recycle(buf);
    }

    /// Replace the fragment table's bounds (forgets what it holds; the
    /// counters go on).
    pub fn set_frag_config(&mut self, cfg: FragConfig) {
        self.frag_base = self.counters.frag;
        self.frags = FragTable::new(cfg);
        self.sync_frag_counters();
    }

    /// Datagrams the fragment table tracks now.
    pub fn frag_datagrams(&self) -> usize {
        self.frags.len()
    }

    pub(super) fn sync_frag_counters(&mut self) {
        let (b, t) = (self.frag_base, *self.frags.counters());
        self.counters.frag = FragCounters {
            tracked: b.tracked + t.tracked,
            held: b.held + t.held,
            released: b.released + t.released,
            expired: b.expired + t.expired,
            evicted: b.evicted + t.evicted,
            no_room: b.no_room + t.no_room,
        };
    }

    /// Whether a fragment without ports may be of a datagram rvs serves:
    /// to a virtual address (or one a fwmark rule covers, or marked by the
    /// classifier), or from a NAT real server.
    pub(super) fn frag_claimed(&self, meta: &FlowMeta, fwmark: u32) -> bool {
        fwmark != 0
            || self.services.is_virtual_addr(meta.dst)
            || self.services.is_nat_source(&meta.src)
            || self
                .fwmark_rules
                .ordered()
                .any(|r| crate::fwmark::prefix_contains(r.addr, r.prefix_len, meta.dst))
    }

    /// A fragment without transport header of a datagram whose first
    /// fragment was decided `d`: forwarded the same way.
    pub(super) fn later_fragment(
        &mut self,
        frame: Frame<'_>,
        meta: &FlowMeta,
        d: FragDecision,
    ) -> Action {
        match d {
            FragDecision::Pass => Action::Pass,
            FragDecision::Drop => Action::Drop(DropReason::Fragment),
            FragDecision::In(target) => {
                // Counted like the first fragment, after the hop is known.
                self.forward_in(frame, meta, &target)
            }
            FragDecision::Out {
                sref,
                dest,
                vaddr,
                caddr,
            } => {
                let (hop, src_mac) = match self.egress(caddr) {
                    Ok(e) => e,
                    Err(a) => return a,
                };
                self.count_out(sref, dest, meta.l3_len);
                let f = &mut frame.buf[frame.start..frame.start + frame.len];
                match rvs_wire::decrement_ttl(f, meta) {
                    Ok(TtlVerdict::Expired) => return Action::Drop(DropReason::TtlExpired),
                    Ok(_) => {}
                    Err(_) => return Action::Drop(DropReason::RewriteFailed),
                }
                // No transport header: the address alone (the port is ignored).
                if rvs_wire::snat(f, meta, vaddr, 0).is_err()
                    || rvs_wire::set_macs(f, src_mac, hop.mac).is_err()
                {
                    return Action::Drop(DropReason::RewriteFailed);
                }
                Action::Forward {
                    port: hop.port,
                    start: frame.start,
                    len: frame.len,
                }
            }
        }
    }
}

/// What a fragmented datagram's first fragment was decided (its other
/// fragments follow it, see [`crate::frag`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum FragDecision {
    /// Not ours.
    Pass,
    /// Dropped (or answered with an ICMP error).
    Drop,
    /// Client → server, to this real server.
    In(Target),
    /// A NAT reply to translate to `vaddr` and send to `caddr`.
    Out {
        sref: ServiceRef,
        dest: DestId,
        vaddr: IpAddr,
        caddr: IpAddr,
    },
}

/// The datagram key of an IPv4 fragment, its offset in bytes and its MF flag.
pub(super) fn frag_fields(frame: &Frame<'_>, meta: &FlowMeta) -> (FragKey, u32, bool) {
    let at = |i: usize| {
        frame
            .buf
            .get(frame.start + meta.l3_offset + i)
            .copied()
            .unwrap_or(0)
    };
    let ident = u32::from(u16::from_be_bytes([at(4), at(5)]));
    let fo = u16::from_be_bytes([at(6), at(7)]);
    let key = FragKey {
        src: meta.src,
        dst: meta.dst,
        proto: meta.proto,
        ident,
    };
    (key, u32::from(fo & 0x1fff) * 8, fo & 0x2000 != 0)
}
