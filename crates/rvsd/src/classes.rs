//! What the packet filters in front of rvsd must claim, derived from the
//! engine's table: the XDP classifier's maps (`--io xdp`) and the nftables
//! drop rules of `--io packet` are both filled from one [`ClassSet`].
//!
//! A claimed packet cannot be handed back to the kernel, so nothing is
//! claimed unless the engine will take it. For firewall-mark rules that
//! means: a rule is claimed only when its mark has a fwmark service of the
//! rule's family, and no later rule that can match the same packets sets a
//! mark without one (the last matching rule wins, and such a packet would
//! then find no fwmark service). A rule left out this way is not claimed at
//! all; packets it would have marked go to the kernel (or to an address
//! service that claims them on its own).

use std::collections::HashSet;
use std::net::IpAddr;

use rvs_core::fwmark::{FwmarkRule, prefix_contains};
use rvs_core::service::ServiceKey;
use rvs_core::{Af, Engine, FwdMethod, Protocol};
use rvs_io::xdp::ClassKey;

/// Everything rvsd claims, plus the real servers to resolve ahead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassSet {
    /// (proto, VIP, port) of every address service; port 0 = every port.
    pub services: Vec<ClassKey>,
    /// (proto, real server, port) of every NAT real server (their replies).
    pub nat: Vec<ClassKey>,
    /// Fwmark rules whose mark has a fwmark service, in rule order.
    pub fwmark: Vec<FwmarkRule>,
    /// Addresses of every real server (resolved before their first packet).
    pub dests: Vec<IpAddr>,
}

/// The L4 protocols the engine serves.
const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

/// The class set of `engine`'s table.
pub fn class_set(engine: &Engine) -> ClassSet {
    let mut services = Vec::new();
    let mut nat = Vec::new();
    let mut dests = Vec::new();
    let mut marks: HashSet<(bool, u32)> = HashSet::new();
    for (_, svc) in engine.services().iter() {
        for d in &svc.dests {
            dests.push(d.addr);
        }
        let (proto, addr, port) = match svc.key {
            ServiceKey::Addr { proto, addr, port } => (proto, addr, port),
            ServiceKey::Fwmark { af, mark } => {
                marks.insert((af == Af::Inet6, mark));
                continue;
            }
        };
        let proto = proto.number();
        services.push(ClassKey { proto, addr, port });
        for d in &svc.dests {
            if d.fwd == FwdMethod::Masq {
                nat.push(ClassKey {
                    proto,
                    addr: d.addr,
                    port: d.port,
                });
            }
        }
    }
    let fwmark = claimed_rules(engine.fwmark_rules().rules(), &marks);
    // Replies of NAT real servers of fwmark services: the protocols and
    // ports the claimed rules of their mark let through.
    for (_, svc) in engine.services().iter() {
        let ServiceKey::Fwmark { mark, .. } = svc.key else {
            continue;
        };
        for r in fwmark.iter().filter(|r| r.mark == mark) {
            let protos: &[Protocol] = match &r.proto {
                Some(p) => core::slice::from_ref(p),
                None => &PROTOCOLS,
            };
            for d in svc.dests.iter().filter(|d| d.fwd == FwdMethod::Masq) {
                let ports: &[u16] = if d.port != 0 {
                    core::slice::from_ref(&d.port)
                } else if r.dports.is_empty() {
                    &[0]
                } else {
                    &r.dports
                };
                for p in protos {
                    for &port in ports {
                        nat.push(ClassKey {
                            proto: p.number(),
                            addr: d.addr,
                            port,
                        });
                    }
                }
            }
        }
    }
    services.sort_unstable_by_key(|k| (k.proto, k.addr, k.port));
    services.dedup();
    nat.sort_unstable_by_key(|k| (k.proto, k.addr, k.port));
    nat.dedup();
    dests.sort_unstable();
    dests.dedup();
    ClassSet {
        services,
        nat,
        fwmark,
        dests,
    }
}

/// The rules safe to claim (see the module docs), in order. `marks` holds
/// (IPv6, mark) of every fwmark service.
pub fn claimed_rules(rules: &[FwmarkRule], marks: &HashSet<(bool, u32)>) -> Vec<FwmarkRule> {
    let served = |r: &FwmarkRule| marks.contains(&(r.is_v6(), r.mark));
    rules
        .iter()
        .enumerate()
        .filter(|&(i, r)| {
            served(r)
                && !rules[i + 1..]
                    .iter()
                    .any(|later| !served(later) && overlaps(r, later))
        })
        .map(|(_, r)| r.clone())
        .collect()
}

/// Whether some packet can match both rules.
pub fn overlaps(a: &FwmarkRule, b: &FwmarkRule) -> bool {
    let (wide, narrow) = if a.prefix_len <= b.prefix_len {
        (a, b)
    } else {
        (b, a)
    };
    let prefix = prefix_contains(wide.addr, wide.prefix_len, narrow.addr)
        && a.addr.is_ipv6() == b.addr.is_ipv6();
    let proto = match (a.proto, b.proto) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    let ports =
        a.dports.is_empty() || b.dports.is_empty() || a.dports.iter().any(|p| b.dports.contains(p));
    let iif = match (a.iif, b.iif) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    prefix && proto && ports && iif
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::service::ServiceConfig;
    use rvs_core::{DestConfig, EngineConfig, Instant};

    fn rule(addr: &str, len: u8, proto: Option<Protocol>, dports: &[u16], mark: u32) -> FwmarkRule {
        FwmarkRule {
            addr: addr.parse().unwrap(),
            prefix_len: len,
            proto,
            dports: dports.to_vec(),
            iif: None,
            mark,
        }
    }

    fn fwmark_service(e: &mut Engine, af: Af, mark: u32, rs: &str, fwd: FwdMethod, port: u16) {
        let key = ServiceKey::Fwmark { af, mark };
        let mut cfg = ServiceConfig::new(af);
        cfg.scheduler = "rr".into();
        e.add_service(key, cfg).unwrap();
        let mut d = DestConfig::new(rs.parse().unwrap(), port);
        d.fwd = fwd;
        e.add_dest(&key, &d, Instant::ZERO).unwrap();
    }

    #[test]
    fn only_rules_whose_mark_has_a_service_of_their_family() {
        let mut e = Engine::new(EngineConfig::default());
        fwmark_service(&mut e, Af::Inet, 10, "192.168.1.11", FwdMethod::Route, 0);
        let tcp = Some(Protocol::Tcp);
        let r10 = rule("122.161.1.100", 32, tcp, &[80, 443], 10);
        let r20 = rule("122.161.1.101", 32, tcp, &[80], 20);
        let r10v6 = rule("2001:db8::1", 128, tcp, &[80], 10);
        for r in [&r10, &r20, &r10v6] {
            e.add_fwmark_rule(r).unwrap();
        }
        let set = class_set(&e);
        assert_eq!(set.fwmark, vec![r10.clone()]);
        assert!(set.nat.is_empty(), "DR: no replies to claim");
    }

    #[test]
    fn a_later_overlapping_rule_without_a_service_unclaims() {
        let marks: HashSet<(bool, u32)> = [(false, 10)].into_iter().collect();
        let tcp = Some(Protocol::Tcp);
        let udp = Some(Protocol::Udp);
        let a = rule("10.0.0.0", 8, tcp, &[80, 443], 10);
        // Disjoint later rules leave it claimed.
        for later in [
            rule("11.0.0.0", 8, tcp, &[80], 20),
            rule("10.1.0.0", 16, udp, &[80], 20),
            rule("10.1.0.0", 16, tcp, &[8080], 20),
            rule("2001:db8::", 32, None, &[], 20),
        ] {
            let got = claimed_rules(&[a.clone(), later.clone()], &marks);
            assert_eq!(got, vec![a.clone()], "{later:?}");
        }
        // Overlapping ones unclaim it; earlier ones do not matter.
        for later in [
            rule("10.1.2.3", 32, tcp, &[443], 20),
            rule("0.0.0.0", 0, None, &[], 20),
            rule("10.0.0.0", 8, None, &[80], 20),
        ] {
            assert!(claimed_rules(&[a.clone(), later.clone()], &marks).is_empty());
            assert_eq!(claimed_rules(&[later, a.clone()], &marks), vec![a.clone()]);
        }
        // Different ingress interfaces never overlap.
        let mut on1 = a.clone();
        on1.iif = Some(1);
        let mut on2 = rule("10.0.0.0", 8, tcp, &[80], 20);
        on2.iif = Some(2);
        assert_eq!(claimed_rules(&[on1.clone(), on2], &marks), vec![on1]);
    }

    #[test]
    fn nat_real_servers_of_fwmark_services_are_claimed_by_rule_ports() {
        let mut e = Engine::new(EngineConfig::default());
        fwmark_service(&mut e, Af::Inet, 10, "192.168.1.11", FwdMethod::Masq, 0);
        fwmark_service(&mut e, Af::Inet, 11, "192.168.1.12", FwdMethod::Masq, 8080);
        e.add_fwmark_rule(&rule("10.0.0.1", 32, Some(Protocol::Tcp), &[80, 443], 10))
            .unwrap();
        e.add_fwmark_rule(&rule("10.0.0.2", 32, None, &[], 11))
            .unwrap();
        let set = class_set(&e);
        let rs1: IpAddr = "192.168.1.11".parse().unwrap();
        let rs2: IpAddr = "192.168.1.12".parse().unwrap();
        let mut want = vec![
            ClassKey {
                proto: 6,
                addr: rs1,
                port: 80,
            },
            ClassKey {
                proto: 6,
                addr: rs1,
                port: 443,
            },
            ClassKey {
                proto: 6,
                addr: rs2,
                port: 8080,
            },
            ClassKey {
                proto: 17,
                addr: rs2,
                port: 8080,
            },
            ClassKey {
                proto: 132,
                addr: rs2,
                port: 8080,
            },
        ];
        want.sort_unstable_by_key(|k| (k.proto, k.addr, k.port));
        assert_eq!(set.nat, want);
    }
}
