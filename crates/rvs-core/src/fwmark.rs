//! Firewall-mark rules: rvs's own `iptables -t mangle … -j MARK`.
//!
//! The kernel's mangle marks are set after XDP, so rvs classifies packets
//! into marks itself. A rule matches on destination prefix, protocol and
//! destination ports; like a non-terminating `MARK` target, every rule is
//! tried in order and the last one that matches sets the mark.

use std::net::IpAddr;

use crate::types::Protocol;

/// One rule: `-d ADDR/LEN [-p PROTO] [--dport P[,P…]] --set-mark MARK`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FwmarkRule {
    /// Destination network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length (0..=32 for IPv4, 0..=128 for IPv6).
    pub prefix_len: u8,
    /// Protocol; `None` matches TCP, UDP and SCTP.
    pub proto: Option<Protocol>,
    /// Destination ports; empty matches every port.
    pub dports: Vec<u16>,
    /// Ingress interface (ifindex, as `-i IF`); `None` matches any.
    pub iif: Option<u32>,
    /// The mark set on a match (never 0).
    pub mark: u32,
}

impl FwmarkRule {
    /// Whether a packet arriving on `iif` to `dst`, `proto`, `dport` matches.
    pub fn matches(&self, iif: u32, dst: IpAddr, proto: Protocol, dport: u16) -> bool {
        if self.iif.is_some_and(|i| i != iif) {
            return false;
        }
        if self.proto.is_some_and(|p| p != proto) {
            return false;
        }
        if !self.dports.is_empty() && !self.dports.contains(&dport) {
            return false;
        }
        prefix_contains(self.addr, self.prefix_len, dst)
    }
}

/// Whether `addr/len` contains `ip` (never across address families).
pub fn prefix_contains(addr: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (addr, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The ordered rule list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FwmarkRules {
    rules: Vec<FwmarkRule>,
}

impl FwmarkRules {
    /// The rules, in order.
    pub fn rules(&self) -> &[FwmarkRule] {
        &self.rules
    }

    /// The mark of a packet (0 when no rule matches).
    pub fn mark_of(&self, iif: u32, dst: IpAddr, proto: Protocol, dport: u16) -> u32 {
        self.rules
            .iter()
            .rev()
            .find(|r| r.matches(iif, dst, proto, dport))
            .map_or(0, |r| r.mark)
    }
}
