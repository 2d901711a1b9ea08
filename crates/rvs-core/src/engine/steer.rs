//! Steering: which engine replica owns a packet.
//!
//! With per-worker engines (`rvsd --engines per-worker`) each worker owns
//! one [`Engine`] — its connections, templates, fragments and scheduler
//! positions — and no lock is shared on the packet path. A packet belongs to
//! the replica of its connection's **client address**, masked by the
//! persistence netmasks ([`crate::service::Services::persist_masks`]): the
//! client address is the one field both directions of a NAT connection
//! carry unchanged (the source of a request, the destination of a reply),
//! a fragment without ports carries it, and masking keeps a persistence
//! template and every connection it covers in one replica, as IPVS's
//! semantics need. A worker that reads a packet another replica owns hands
//! it to that worker.
//!
//! The decision reads only the configuration (services, real servers,
//! firewall-mark rules), which every replica holds identically, so any
//! replica can make it.

use core::net::IpAddr;

use rvs_wire::{FlowMeta, Parsed};

use super::{Engine, PortId};
use crate::service::addr_key;
use crate::types::{Af, Protocol};

impl Engine {
    /// The steering hash of the frame `bytes` that arrived on `ingress`
    /// (see the module docs), or `None` when no replica owns it in
    /// particular (not IP, not parsed: any replica gives the same answer).
    /// Map it to a replica with [`owner`].
    pub fn steer(&self, bytes: &[u8], ingress: PortId) -> Option<u64> {
        // The common case reads two addresses where they are; ICMP, IPv6
        // extension headers and firewall-mark rules take the full parse.
        if self.fwmark_rules.is_empty()
            && let Some((src, dst)) = plain_addrs(bytes)
        {
            let client = if self.services.is_nat_source(&src) && !self.services.is_virtual_addr(dst)
            {
                dst
            } else {
                src
            };
            return Some(self.steer_addr(client));
        }
        let meta = match rvs_wire::parse_frame(bytes) {
            Ok(Parsed::Ip(m)) => m,
            _ => return None,
        };
        Some(self.steer_addr(self.client_of(&meta, ingress)))
    }

    /// The steering hash of a connection whose client is `caddr` (a sync
    /// message's or a handed-over connection's, a template's).
    pub fn steer_addr(&self, caddr: IpAddr) -> u64 {
        let (m4, p6) = self.services.persist_masks();
        let masked = match caddr {
            IpAddr::V4(a) => IpAddr::V4((a.to_bits() & m4).into()),
            IpAddr::V6(a) => {
                let bits = a.to_bits();
                let keep = if p6 == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(p6.min(128)))
                };
                IpAddr::V6((bits & keep).into())
            }
        };
        mix(addr_key(masked))
    }

    /// The client address of a packet: its destination when it comes from
    /// a NAT real server to an address that is not a virtual service's (a
    /// reply), else its source. ICMP errors: the client of the packet they
    /// quote.
    fn client_of(&self, meta: &FlowMeta, ingress: PortId) -> IpAddr {
        if let Some(icmp) = meta.icmp {
            // Quoted by a real server: a request (client -> server).
            if self.services.is_nat_source(&icmp.inner_dst) {
                return icmp.inner_src;
            }
            // Quoted from the client side: a reply (service -> client).
            return icmp.inner_dst;
        }
        if self.services.is_nat_source(&meta.src)
            && !self.services.is_virtual_addr(meta.dst)
            && !self.to_fwmark_service(meta, ingress)
        {
            return meta.dst;
        }
        meta.src
    }

    /// Whether a firewall-mark service takes the packet (the engine's own
    /// rules; a mark given by the classifier is not known here, and the
    /// classifier only marks traffic to services).
    fn to_fwmark_service(&self, meta: &FlowMeta, ingress: PortId) -> bool {
        if self.fwmark_rules.is_empty() || meta.is_fragment && !meta.l4_present {
            return false;
        }
        let Some(proto) = Protocol::from_number(meta.proto) else {
            return false;
        };
        let mark = self
            .fwmark_rules
            .mark_of(ingress.0, meta.dst, proto, meta.dport);
        let af = if meta.af_v6 { Af::Inet6 } else { Af::Inet };
        mark != 0 && self.services.lookup(mark, af, proto, meta.dst, 0).is_some()
    }
}

/// Source and destination of an IPv4 or IPv6 packet (after one optional
/// VLAN tag) that is not ICMP and, for IPv6, whose first header is TCP,
/// UDP or SCTP; `None` for anything else (the full parse decides).
fn plain_addrs(b: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let mut l3 = 14;
    let mut ethertype = u16::from_be_bytes([*b.get(12)?, *b.get(13)?]);
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes([*b.get(16)?, *b.get(17)?]);
        l3 = 18;
    }
    match ethertype {
        0x0800 => {
            let h = b.get(l3..l3 + 20)?;
            if h[0] >> 4 != 4 || h[9] == 1 {
                return None;
            }
            let src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
            let dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
            Some((IpAddr::V4(src.into()), IpAddr::V4(dst.into())))
        }
        0x86dd => {
            let h = b.get(l3..l3 + 40)?;
            if h[0] >> 4 != 6 || !matches!(h[6], 6 | 17 | 132) {
                return None;
            }
            let src = u128::from_be_bytes(h[8..24].try_into().ok()?);
            let dst = u128::from_be_bytes(h[24..40].try_into().ok()?);
            Some((IpAddr::V6(src.into()), IpAddr::V6(dst.into())))
        }
        _ => None,
    }
}

/// The replica (of `n`) that owns steering hash `h`.
#[inline]
pub fn owner(h: u64, n: usize) -> usize {
    (((h >> 32) * n as u64) >> 32) as usize
}

/// A fast 64-bit mix of an address (not keyed: a client can only choose
/// its own replica, which it shares with nobody it could hurt more than by
/// sending from one address).
#[inline]
fn mix(k: u128) -> u64 {
    let x = (k as u64) ^ ((k >> 64) as u64).rotate_left(29);
    let x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    let x = (x ^ (x >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}
