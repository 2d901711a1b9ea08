//! The fwmark rules compiled into the classifier's `fwm_v4` / `fwm_v6`
//! entries (pure: no map is touched here).

use std::net::IpAddr;

use aya::Pod;

use super::{MAX_FWMARK_MATCHERS, MAX_FWMARK_PORTS, XdpError};
use crate::nft::FwmarkMatch;

/// `struct fwm_match` of classify.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct RawFwmMatch {
    /// 0: TCP, UDP and SCTP.
    proto: u8,
    /// 0: every port.
    nports: u8,
    pad: u16,
    /// 0: any interface.
    iif: u32,
    /// Network order.
    ports: [u16; MAX_FWMARK_PORTS],
}

/// `struct fwm_value` of classify.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct RawFwmValue {
    count: u32,
    m: [RawFwmMatch; MAX_FWMARK_MATCHERS],
}

const _: () = assert!(size_of::<RawFwmMatch>() == 40);
const _: () = assert!(size_of::<RawFwmValue>() == 324);

// SAFETY: both are repr(C), made of integers only, without padding
// (1 + 1 + 2 + 4 + 32 = 40 at alignment 4; 4 + 8 * 40 = 324, checked above):
// every byte pattern is valid and no byte is uninitialised.
unsafe impl Pod for RawFwmMatch {}
// SAFETY: as above.
unsafe impl Pod for RawFwmValue {}

/// One entry of `fwm_v4` / `fwm_v6`: a prefix and every matcher of the
/// rules covering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FwmEntry {
    pub(super) addr: IpAddr,
    pub(super) prefix_len: u8,
    pub(super) value: RawFwmValue,
}

/// (IP protocol or 0, ingress ifindex or 0): rules sharing it share matchers.
type MatchGroup = (u8, u32);

/// The `fwm_v4` / `fwm_v6` entries of `rules`: one per distinct prefix,
/// holding the matchers of every rule whose prefix covers it (so the
/// longest-prefix match alone decides). Rules of one (protocol, interface)
/// share matchers: their ports are merged, a rule without ports makes the
/// matcher take every port.
pub(super) fn fwmark_entries(rules: &[FwmarkMatch]) -> Result<Vec<FwmEntry>, XdpError> {
    let norm: Vec<(IpAddr, u8, &FwmarkMatch)> = rules
        .iter()
        .map(|r| {
            let len = r.prefix_len.min(if r.addr.is_ipv6() { 128 } else { 32 });
            (network(r.addr, len), len, r)
        })
        .collect();
    let mut prefixes: Vec<(IpAddr, u8)> = norm.iter().map(|&(a, l, _)| (a, l)).collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    let mut out = Vec::with_capacity(prefixes.len());
    for (addr, len) in prefixes {
        // (proto, iif) -> ports; None = every port.
        let mut groups: Vec<(MatchGroup, Option<Vec<u16>>)> = Vec::new();
        for &(raddr, rlen, r) in &norm {
            if rlen > len || network(addr, rlen) != raddr || raddr.is_ipv6() != addr.is_ipv6() {
                continue;
            }
            let g = (r.proto.unwrap_or(0), r.iif.unwrap_or(0));
            let i = match groups.iter().position(|(k, _)| *k == g) {
                Some(i) => i,
                None => {
                    groups.push((g, Some(Vec::new())));
                    groups.len() - 1
                }
            };
            let ports = &mut groups[i].1;
            if r.dports.is_empty() {
                *ports = None;
            } else if let Some(p) = ports {
                p.extend_from_slice(&r.dports);
            }
        }
        let mut value = RawFwmValue::default();
        let mut n = 0usize;
        let mut push = |value: &mut RawFwmValue, m: RawFwmMatch| {
            if n < MAX_FWMARK_MATCHERS {
                value.m[n] = m;
            }
            n += 1;
        };
        for ((proto, iif), ports) in groups {
            let base = RawFwmMatch {
                proto,
                iif,
                ..RawFwmMatch::default()
            };
            match ports {
                None => push(&mut value, base),
                Some(mut ports) => {
                    ports.sort_unstable();
                    ports.dedup();
                    for chunk in ports.chunks(MAX_FWMARK_PORTS) {
                        let mut m = base;
                        // A chunk holds at most 16 ports.
                        m.nports = chunk.len() as u8;
                        for (slot, p) in m.ports.iter_mut().zip(chunk) {
                            *slot = p.to_be();
                        }
                        push(&mut value, m);
                    }
                }
            }
        }
        if n > MAX_FWMARK_MATCHERS {
            return Err(XdpError::FwmarkTooComplex {
                prefix: format!("{addr}/{len}"),
                matchers: n,
            });
        }
        // n <= 8 here.
        value.count = n as u32;
        out.push(FwmEntry {
            addr,
            prefix_len: len,
            value,
        });
    }
    Ok(out)
}

/// `addr` with the bits after the first `len` cleared.
fn network(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwm(
        addr: &str,
        len: u8,
        proto: Option<u8>,
        dports: &[u16],
        iif: Option<u32>,
    ) -> FwmarkMatch {
        FwmarkMatch {
            addr: addr.parse().unwrap(),
            prefix_len: len,
            proto,
            dports: dports.to_vec(),
            iif,
        }
    }

    fn matchers(e: &FwmEntry) -> Vec<(u8, u32, Vec<u16>)> {
        e.value.m[..e.value.count as usize]
            .iter()
            .map(|m| {
                let ports = m.ports[..usize::from(m.nports)]
                    .iter()
                    .map(|p| u16::from_be(*p))
                    .collect();
                (m.proto, m.iif, ports)
            })
            .collect()
    }

    #[test]
    fn fwmark_entries_carry_the_covering_rules() {
        let rules = [
            fwm("10.0.0.0", 8, Some(6), &[80], None),
            fwm("10.1.2.3", 24, Some(6), &[443, 80], None), // host bits cleared
            fwm("10.1.2.0", 24, Some(17), &[], Some(3)),
            fwm("2001:db8::", 32, None, &[53], None),
        ];
        let e = fwmark_entries(&rules).unwrap();
        let shown: Vec<_> = e
            .iter()
            .map(|e| (e.addr.to_string(), e.prefix_len))
            .collect();
        assert_eq!(
            shown,
            [
                ("10.0.0.0".to_string(), 8),
                ("10.1.2.0".to_string(), 24),
                ("2001:db8::".to_string(), 32)
            ]
        );
        assert_eq!(matchers(&e[0]), [(6, 0, vec![80])]);
        // The /24 holds its own rules and the /8's (ports merged per protocol).
        assert_eq!(matchers(&e[1]), [(6, 0, vec![80, 443]), (17, 3, vec![])]);
        assert_eq!(matchers(&e[2]), [(0, 0, vec![53])]);
    }

    #[test]
    fn fwmark_entries_any_port_absorbs_and_ports_split_by_sixteen() {
        let e = fwmark_entries(&[
            fwm("10.0.0.1", 32, Some(6), &[80], None),
            fwm("10.0.0.1", 32, Some(6), &[], None),
        ])
        .unwrap();
        assert_eq!(matchers(&e[0]), [(6, 0, vec![])]);
        let a: Vec<u16> = (1..=16).collect();
        let b: Vec<u16> = (17..=20).collect();
        let e = fwmark_entries(&[
            fwm("10.0.0.1", 32, Some(6), &a, None),
            fwm("10.0.0.1", 32, Some(6), &b, None),
        ])
        .unwrap();
        assert_eq!(matchers(&e[0]), [(6, 0, a), (6, 0, b)]);
        // Nine (protocol, interface) pairs on one prefix do not fit.
        let many: Vec<_> = (1..=9)
            .map(|i| fwm("10.0.0.1", 32, Some(6), &[80], Some(i)))
            .collect();
        assert!(matches!(
            fwmark_entries(&many),
            Err(XdpError::FwmarkTooComplex { matchers: 9, .. })
        ));
    }
}
