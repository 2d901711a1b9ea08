//! Between the public flow types ([`FlowKey`], [`FlowAction`],
//! [`FlowCounters`]) and the structs of fastpath.h they are stored as.

use super::*;

/// An address as fastpath.h stores it: family and four network-order words.
pub(super) fn raw_addr(a: IpAddr) -> (u8, [u32; 4]) {
    match a {
        IpAddr::V4(a) => (FAMILY_V4, [u32::from_ne_bytes(a.octets()), 0, 0, 0]),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            (FAMILY_V6, [w(0), w(4), w(8), w(12)])
        }
    }
}

/// The inverse of [`raw_addr`]; `None` for an unknown family.
pub(super) fn addr_of(family: u8, w: [u32; 4]) -> Option<IpAddr> {
    match family {
        FAMILY_V4 => Some(IpAddr::from(w[0].to_ne_bytes())),
        FAMILY_V6 => {
            let mut o = [0u8; 16];
            for (chunk, word) in o.chunks_exact_mut(4).zip(w) {
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            Some(IpAddr::from(o))
        }
        _ => None,
    }
}

impl FlowKey {
    pub(super) fn to_raw(self) -> Result<RawFlowKey, FlowCacheError> {
        if !matches!(self.proto, TCP | UDP | SCTP) {
            return Err(FlowCacheError::Invalid(
                "the fast path handles TCP, UDP and SCTP only",
            ));
        }
        let (family, saddr) = raw_addr(self.src);
        let (dfamily, daddr) = raw_addr(self.dst);
        if family != dfamily {
            return Err(FlowCacheError::Invalid(
                "flow key: source and destination differ in family",
            ));
        }
        Ok(RawFlowKey {
            proto: self.proto,
            family,
            pad: 0,
            saddr,
            daddr,
            sport: self.sport.to_be(),
            dport: self.dport.to_be(),
        })
    }

    pub(super) fn from_raw(k: &RawFlowKey) -> Option<Self> {
        Some(FlowKey {
            proto: k.proto,
            src: addr_of(k.family, k.saddr)?,
            dst: addr_of(k.family, k.daddr)?,
            sport: u16::from_be(k.sport),
            dport: u16::from_be(k.dport),
        })
    }

    pub(super) fn family(&self) -> u8 {
        if self.src.is_ipv6() {
            FAMILY_V6
        } else {
            FAMILY_V4
        }
    }
}

impl FlowAction {
    /// The value to install for `key`, counters zero; checks that the
    /// program could apply it.
    pub(super) fn to_raw(self, key: &FlowKey) -> Result<RawFlowAction, FlowCacheError> {
        let none = [0u32; 4];
        let (method, family, addr_src, addr_dst, port) = match self.rewrite {
            FlowRewrite::Dr => (METHOD_DR, key.family(), none, none, 0),
            FlowRewrite::Tun { src, dst } => {
                let (f, s) = raw_addr(src);
                let (g, d) = raw_addr(dst);
                if f != g {
                    return Err(FlowCacheError::Invalid(
                        "tunnel: outer source and destination differ in family",
                    ));
                }
                if self.mtu == 0 {
                    return Err(FlowCacheError::Invalid("tunnel: MTU 0"));
                }
                (METHOD_TUN, f, s, d, 0)
            }
            FlowRewrite::NatIn { addr, port } | FlowRewrite::NatOut { addr, port } => {
                let method = if matches!(self.rewrite, FlowRewrite::NatIn { .. }) {
                    METHOD_NAT_IN
                } else {
                    METHOD_NAT_OUT
                };
                let (f, a) = raw_addr(addr);
                if f != key.family() {
                    return Err(FlowCacheError::Invalid(
                        "NAT: the new address is not of the flow's family",
                    ));
                }
                if key.proto == SCTP {
                    return Err(FlowCacheError::Invalid(
                        "NAT of SCTP stays in the slow path (CRC32c over the whole packet)",
                    ));
                }
                (method, f, none, a, port.to_be())
            }
        };
        Ok(RawFlowAction {
            packets: 0,
            bytes: 0,
            last_seen: 0,
            conn: self.conn,
            ifindex: self.ifindex,
            method,
            family,
            mtu: self.mtu,
            dst_mac: self.dst_mac,
            src_mac: self.src_mac,
            addr_src,
            addr_dst,
            port,
            flags: 0,
            cookie: self.cookie,
        })
    }

    pub(super) fn from_raw(v: &RawFlowAction) -> Option<Self> {
        let rewrite = match v.method {
            METHOD_DR => FlowRewrite::Dr,
            METHOD_TUN => FlowRewrite::Tun {
                src: addr_of(v.family, v.addr_src)?,
                dst: addr_of(v.family, v.addr_dst)?,
            },
            METHOD_NAT_IN => FlowRewrite::NatIn {
                addr: addr_of(v.family, v.addr_dst)?,
                port: u16::from_be(v.port),
            },
            METHOD_NAT_OUT => FlowRewrite::NatOut {
                addr: addr_of(v.family, v.addr_dst)?,
                port: u16::from_be(v.port),
            },
            _ => return None,
        };
        Some(FlowAction {
            rewrite,
            ifindex: v.ifindex,
            src_mac: v.src_mac,
            dst_mac: v.dst_mac,
            mtu: v.mtu,
            conn: v.conn,
            cookie: v.cookie,
        })
    }
}

impl From<&RawFlowAction> for FlowCounters {
    fn from(v: &RawFlowAction) -> Self {
        FlowCounters {
            packets: v.packets,
            bytes: v.bytes,
            last_seen_ns: v.last_seen,
        }
    }
}
