//! What the packet filters in front of the engine must claim, derived from
//! a table: the XDP classifier's maps (`--io xdp`) and the nftables drop
//! rules of `--io packet` are both filled from one [`Claims`], and the
//! engine refuses up front a change whose claims the filter cannot hold
//! ([`Engine::set_claim_check`](crate::Engine::set_claim_check)), so that a
//! change rvsadm sees acknowledged is one the data plane carries.
//!
//! A claimed packet cannot be handed back to the kernel, so nothing is
//! claimed unless the engine will take it. For firewall-mark rules that
//! means: a rule is claimed only when its mark has a fwmark service of the
//! rule's family, and no later rule that can match the same packets sets a
//! mark without one (the last matching rule wins, and such a packet would
//! then find no fwmark service). A rule left out this way is not claimed at
//! all; packets it would have marked go to the kernel (or to an address
//! service that claims them on its own).
//!
//! The derivation is a pure function of a [`TableView`]: the engine's own
//! table ([`TableView::of`]) or the picture a dry run of a batch ends with
//! (`batch::Model`), so the check and the filter can never disagree.

use core::net::IpAddr;

use std::collections::HashSet;

use crate::engine::Engine;
use crate::fwmark::{FwmarkRule, prefix_contains};
use crate::service::ServiceKey;
use crate::types::{Af, FwdMethod, Protocol};

/// One claimed (protocol, address, port); port 0 = every port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClaimKey {
    /// IP protocol number (6, 17 or 132).
    pub proto: u8,
    /// Address.
    pub addr: IpAddr,
    /// Port, host order; 0 = every port.
    pub port: u16,
}

/// Everything a filter claims, plus the real servers to resolve ahead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// (proto, VIP, port) of every address service, sorted, unique.
    pub services: Vec<ClaimKey>,
    /// (proto, real server, port) of every NAT real server (their
    /// replies), sorted, unique.
    pub nat: Vec<ClaimKey>,
    /// Fwmark rules whose mark has a fwmark service, in rule order.
    pub fwmark: Vec<FwmarkRule>,
    /// Addresses of every real server, sorted, unique.
    pub dests: Vec<IpAddr>,
}

/// One real server as the claims see it: address, port, method.
pub type DestView = (IpAddr, u16, FwdMethod);

/// A table as the claims see it: each service's key and real servers, and
/// the firewall-mark rules in order.
#[derive(Debug, Clone, Default)]
pub struct TableView {
    /// Every service.
    pub services: Vec<(ServiceKey, Vec<DestView>)>,
    /// Every firewall-mark rule, in order.
    pub fwmark: Vec<FwmarkRule>,
}

impl TableView {
    /// The view of `engine`'s table.
    pub fn of(engine: &Engine) -> TableView {
        TableView {
            services: engine
                .services()
                .iter()
                .map(|(_, s)| {
                    let dests = s.dests.iter().map(|d| (d.addr, d.port, d.fwd)).collect();
                    (s.key, dests)
                })
                .collect(),
            fwmark: engine.fwmark_rules().ordered().cloned().collect(),
        }
    }
}

/// The L4 protocols the engine serves.
const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

/// The claims of `table`.
pub fn claims(table: &TableView) -> Claims {
    let mut services = Vec::new();
    let mut nat = Vec::new();
    let mut dests = Vec::new();
    let mut marks: HashSet<(bool, u32)> = HashSet::new();
    for (key, ds) in &table.services {
        dests.extend(ds.iter().map(|d| d.0));
        let (proto, addr, port) = match *key {
            ServiceKey::Addr { proto, addr, port } => (proto.number(), addr, port),
            ServiceKey::Fwmark { af, mark } => {
                marks.insert((af == Af::Inet6, mark));
                continue;
            }
        };
        services.push(ClaimKey { proto, addr, port });
        for &(addr, port, fwd) in ds {
            if fwd == FwdMethod::Masq {
                nat.push(ClaimKey { proto, addr, port });
            }
        }
    }
    let fwmark = claimed_rules(&table.fwmark, &marks);
    // Replies of NAT real servers of fwmark services: the protocols and
    // ports the claimed rules of their mark let through.
    for (key, ds) in &table.services {
        let ServiceKey::Fwmark { mark, .. } = *key else {
            continue;
        };
        for r in fwmark.iter().filter(|r| r.mark == mark) {
            let protos: &[Protocol] = match &r.proto {
                Some(p) => core::slice::from_ref(p),
                None => &PROTOCOLS,
            };
            for &(addr, dport, _) in ds.iter().filter(|d| d.2 == FwdMethod::Masq) {
                let ports: &[u16] = if dport != 0 {
                    core::slice::from_ref(&dport)
                } else if r.dports.is_empty() {
                    &[0]
                } else {
                    &r.dports
                };
                for p in protos {
                    for &port in ports {
                        nat.push(ClaimKey {
                            proto: p.number(),
                            addr,
                            port,
                        });
                    }
                }
            }
        }
    }
    services.sort_unstable();
    services.dedup();
    nat.sort_unstable();
    nat.dedup();
    dests.sort_unstable();
    dests.dedup();
    Claims {
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

/// A filter's capacity check: `Err` with the reason when it cannot hold
/// the claims. Pure (it runs under the engine's control path).
pub type ClaimCheck = dyn Fn(&Claims) -> Result<(), String> + Send + Sync;

/// An installed [`ClaimCheck`] (the engine holds at most one).
#[derive(Clone)]
pub struct ClaimGuard(pub std::sync::Arc<ClaimCheck>);

impl core::fmt::Debug for ClaimGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ClaimGuard")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceConfig;
    use crate::{DestConfig, EngineConfig, Instant};

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
        let set = claims(&TableView::of(&e));
        assert_eq!(set.fwmark, vec![r10.clone()]);
        assert!(set.nat.is_empty(), "DR: no replies to claim");
    }

    #[test]
    fn host_rules_run_before_rvs_rules_and_pass_the_claim_check() {
        let mut e = Engine::new(EngineConfig::default());
        fwmark_service(&mut e, Af::Inet, 10, "192.168.1.11", FwdMethod::Route, 0);
        let tcp = Some(Protocol::Tcp);
        let host = rule("122.161.1.100", 32, tcp, &[80, 443], 10);
        e.set_host_fwmark_rules(std::slice::from_ref(&host))
            .unwrap();
        assert_eq!(claims(&TableView::of(&e)).fwmark, vec![host.clone()]);
        assert!(e.fwmark_rules().rules().is_empty(), "not an rvs rule");
        // An rvs rule runs later: with a mark without a service it wins
        // for port 443, so the host's rule is no longer claimed.
        e.add_fwmark_rule(&rule("122.161.1.100", 32, tcp, &[443], 99))
            .unwrap();
        assert!(claims(&TableView::of(&e)).fwmark.is_empty());
        e.flush_fwmark_rules();
        assert_eq!(claims(&TableView::of(&e)).fwmark, vec![host.clone()]);
        // A claim check that refuses changes nothing.
        e.set_claim_check(std::sync::Arc::new(|c: &Claims| {
            if c.fwmark.len() > 1 {
                Err("too many".to_string())
            } else {
                Ok(())
            }
        }))
        .unwrap();
        let two = [host.clone(), rule("122.161.1.101", 32, tcp, &[80], 10)];
        assert_eq!(e.set_host_fwmark_rules(&two), Err("too many".into()));
        assert_eq!(e.fwmark_rules().host(), std::slice::from_ref(&host));
        e.set_host_fwmark_rules(&[]).unwrap();
        assert!(claims(&TableView::of(&e)).fwmark.is_empty());
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
        let set = claims(&TableView::of(&e));
        let rs1: IpAddr = "192.168.1.11".parse().unwrap();
        let rs2: IpAddr = "192.168.1.12".parse().unwrap();
        let key = |proto, addr, port| ClaimKey { proto, addr, port };
        let mut want = vec![
            key(6, rs1, 80),
            key(6, rs1, 443),
            key(6, rs2, 8080),
            key(17, rs2, 8080),
            key(132, rs2, 8080),
        ];
        want.sort_unstable();
        assert_eq!(set.nat, want);
    }
}
