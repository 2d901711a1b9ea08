//! Firewall-mark rules: rvs's own `iptables -t mangle … -j MARK`.
//!
//! The kernel's mangle marks are set after XDP, so rvs classifies packets
//! into marks itself. A rule matches on destination prefix, protocol,
//! destination ports and ingress interface; like a non-terminating `MARK`
//! target, every rule is tried in order and the last one that matches sets
//! the mark.
//!
//! [`FwmarkRules::add`] validates a rule before it is stored: mark 0, a
//! prefix longer than the family allows, port 0, more than
//! [`MAX_PORTS`] ports, a port given twice and a rule already present are
//! refused. Host bits below the prefix are cleared (`10.0.0.1/24` is stored
//! as `10.0.0.0/24`, as iptables does) and ports are kept sorted, so two
//! spellings of one rule are the same rule.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::service::CtlError;
use crate::types::Protocol;

/// Most destination ports one rule lists (iptables' `multiport` limit).
pub const MAX_PORTS: usize = 16;

/// Most rules a table holds (the per-packet match is a linear scan).
pub const MAX_RULES: usize = 1024;

/// One rule: `-d ADDR/LEN [-p PROTO] [--dport P[,P…]] [-i IF] --set-mark MARK`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FwmarkRule {
    /// Destination network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length (0..=32 for IPv4, 0..=128 for IPv6).
    pub prefix_len: u8,
    /// Protocol; `None` matches TCP, UDP and SCTP.
    pub proto: Option<Protocol>,
    /// Destination ports, ascending; empty matches every port.
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

    /// Whether the rule is for IPv6 destinations.
    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// The rule checked and in canonical form: host bits cleared, ports
    /// sorted.
    ///
    /// # Errors
    ///
    /// [`CtlError::Invalid`] for mark 0, a prefix longer than the address
    /// family allows, port 0, more than [`MAX_PORTS`] ports or a port given
    /// twice; [`CtlError::NotFound`] for interface index 0.
    pub fn normalized(&self) -> Result<FwmarkRule, CtlError> {
        if self.mark == 0 {
            return Err(CtlError::Invalid("fwmark rule: mark 0 is not a mark"));
        }
        let max = if self.is_v6() { 128 } else { 32 };
        if self.prefix_len > max {
            return Err(CtlError::Invalid(
                "fwmark rule: prefix length too long for the address family",
            ));
        }
        if self.dports.len() > MAX_PORTS {
            return Err(CtlError::Invalid("fwmark rule: more than 16 ports"));
        }
        if self.dports.contains(&0) {
            return Err(CtlError::Invalid("fwmark rule: port 0"));
        }
        if self.iif == Some(0) {
            return Err(CtlError::NotFound("interface index 0"));
        }
        let mut dports = self.dports.clone();
        dports.sort_unstable();
        if dports.windows(2).any(|w| w[0] == w[1]) {
            return Err(CtlError::Invalid("fwmark rule: a port is given twice"));
        }
        Ok(FwmarkRule {
            addr: network(self.addr, self.prefix_len),
            prefix_len: self.prefix_len,
            proto: self.proto,
            dports,
            iif: self.iif,
            mark: self.mark,
        })
    }
}

/// `addr` with the bits after the first `len` cleared.
pub fn network(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(len))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(len))),
    }
}

fn mask_v4(len: u8) -> u32 {
    let len = u32::from(len.min(32));
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

fn mask_v6(len: u8) -> u128 {
    let len = u32::from(len.min(128));
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

/// Whether `addr/len` contains `ip` (never across address families).
pub fn prefix_contains(addr: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (addr, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = mask_v4(len);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = mask_v6(len);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The ordered rule list: the rules mirrored from the host's firewall
/// (`host`, in the order its PREROUTING hooks run them, replaced as a whole
/// by [`FwmarkRules::set_host`]) then rvs's own (`rvs fwmark add`), as if
/// they were appended last: the last matching rule of the two wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FwmarkRules {
    rules: Vec<FwmarkRule>,
    host: Vec<FwmarkRule>,
}

impl FwmarkRules {
    /// rvs's own rules (`rvs fwmark add`), in order.
    pub fn rules(&self) -> &[FwmarkRule] {
        &self.rules
    }

    /// The rules mirrored from the host's firewall, in order.
    pub fn host(&self) -> &[FwmarkRule] {
        &self.host
    }

    /// Every rule in the order packets meet them: the host's, then rvs's.
    pub fn ordered(&self) -> impl DoubleEndedIterator<Item = &FwmarkRule> {
        self.host.iter().chain(self.rules.iter())
    }

    /// Replace the host's rules (each normalised; a rule that is not valid
    /// is left out: the caller checks them).
    pub fn set_host(&mut self, rules: &[FwmarkRule]) {
        self.host = rules.iter().filter_map(|r| r.normalized().ok()).collect();
    }

    /// Whether there is no rule (of rvs's own or the host's).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.host.is_empty()
    }

    /// Number of rvs's own rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The mark of a packet (0 when no rule matches).
    pub fn mark_of(&self, iif: u32, dst: IpAddr, proto: Protocol, dport: u16) -> u32 {
        self.ordered()
            .rev()
            .find(|r| r.matches(iif, dst, proto, dport))
            .map_or(0, |r| r.mark)
    }

    /// Append `rule` (validated and normalised, see
    /// [`FwmarkRule::normalized`]); nothing changes on error.
    ///
    /// # Errors
    ///
    /// Those of [`FwmarkRule::normalized`]; [`CtlError::Exists`] when the
    /// same rule is already there; [`CtlError::Invalid`] beyond
    /// [`MAX_RULES`] rules.
    pub fn add(&mut self, rule: &FwmarkRule) -> Result<(), CtlError> {
        let rule = self.check_add(rule)?;
        self.rules.push(rule);
        Ok(())
    }

    /// What [`FwmarkRules::add`] would store, changing nothing.
    ///
    /// # Errors
    ///
    /// As [`FwmarkRules::add`].
    pub fn check_add(&self, rule: &FwmarkRule) -> Result<FwmarkRule, CtlError> {
        let rule = rule.normalized()?;
        if self.rules.contains(&rule) {
            return Err(CtlError::Exists);
        }
        if self.rules.len() >= MAX_RULES {
            return Err(CtlError::Invalid("too many fwmark rules (1024 at most)"));
        }
        Ok(rule)
    }

    /// Remove the rule equal to `rule` (after normalisation).
    ///
    /// # Errors
    ///
    /// Those of [`FwmarkRule::normalized`]; [`CtlError::NotFound`] when no
    /// such rule exists.
    pub fn delete(&mut self, rule: &FwmarkRule) -> Result<(), CtlError> {
        let i = self.position(rule)?;
        self.rules.remove(i);
        Ok(())
    }

    /// Index of the rule equal to `rule` (after normalisation).
    ///
    /// # Errors
    ///
    /// As [`FwmarkRules::delete`].
    pub fn position(&self, rule: &FwmarkRule) -> Result<usize, CtlError> {
        let rule = rule.normalized()?;
        self.rules
            .iter()
            .position(|r| *r == rule)
            .ok_or(CtlError::NotFound("fwmark rule"))
    }

    /// Remove every rule of rvs's own (the host's stay).
    pub fn clear(&mut self) {
        self.rules.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(addr: &str, len: u8, mark: u32) -> FwmarkRule {
        FwmarkRule {
            addr: addr.parse().unwrap(),
            prefix_len: len,
            proto: None,
            dports: Vec::new(),
            iif: None,
            mark,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matches_prefix_edges_v4() {
        let r = rule("10.1.2.0", 24, 1);
        assert!(r.matches(1, ip("10.1.2.0"), Protocol::Tcp, 80));
        assert!(r.matches(1, ip("10.1.2.255"), Protocol::Tcp, 80));
        assert!(!r.matches(1, ip("10.1.3.0"), Protocol::Tcp, 80));
        assert!(!r.matches(1, ip("10.1.1.255"), Protocol::Tcp, 80));
        let host = rule("10.1.2.3", 32, 1);
        assert!(host.matches(1, ip("10.1.2.3"), Protocol::Udp, 1));
        assert!(!host.matches(1, ip("10.1.2.4"), Protocol::Udp, 1));
        let all = rule("0.0.0.0", 0, 1);
        assert!(all.matches(1, ip("255.255.255.255"), Protocol::Sctp, 9));
        assert!(
            !all.matches(1, ip("::1"), Protocol::Tcp, 9),
            "no family crossing"
        );
    }

    #[test]
    fn matches_prefix_edges_v6() {
        let r = rule("2001:db8::", 33, 1);
        assert!(r.matches(1, ip("2001:db8:7fff::1"), Protocol::Tcp, 80));
        assert!(!r.matches(1, ip("2001:db8:8000::1"), Protocol::Tcp, 80));
        let host = rule("2001:db8::1", 128, 1);
        assert!(host.matches(1, ip("2001:db8::1"), Protocol::Tcp, 80));
        assert!(!host.matches(1, ip("2001:db8::2"), Protocol::Tcp, 80));
        let all = rule("::", 0, 1);
        assert!(all.matches(1, ip("ff02::1"), Protocol::Tcp, 80));
        assert!(!all.matches(1, ip("10.0.0.1"), Protocol::Tcp, 80));
    }

    #[test]
    fn matches_proto_ports_iif() {
        let mut r = rule("10.0.0.1", 32, 1);
        r.proto = Some(Protocol::Tcp);
        r.dports = vec![80, 443];
        r.iif = Some(4);
        let d = ip("10.0.0.1");
        assert!(r.matches(4, d, Protocol::Tcp, 80));
        assert!(r.matches(4, d, Protocol::Tcp, 443));
        assert!(!r.matches(4, d, Protocol::Tcp, 8080));
        assert!(!r.matches(4, d, Protocol::Udp, 80));
        assert!(!r.matches(5, d, Protocol::Tcp, 80));
    }

    #[test]
    fn last_matching_rule_wins() {
        let mut t = FwmarkRules::default();
        assert_eq!(t.mark_of(1, ip("10.0.0.1"), Protocol::Tcp, 80), 0);
        t.add(&rule("10.0.0.0", 8, 1)).unwrap();
        let mut narrow = rule("10.0.0.1", 32, 2);
        narrow.dports = vec![443];
        t.add(&narrow).unwrap();
        assert_eq!(t.mark_of(1, ip("10.0.0.1"), Protocol::Tcp, 443), 2);
        assert_eq!(t.mark_of(1, ip("10.0.0.1"), Protocol::Tcp, 80), 1);
        assert_eq!(t.mark_of(1, ip("11.0.0.1"), Protocol::Tcp, 80), 0);
        // A later, broader rule overrides the narrow one.
        t.add(&rule("10.0.0.0", 16, 3)).unwrap();
        assert_eq!(t.mark_of(1, ip("10.0.0.1"), Protocol::Tcp, 443), 3);
        assert_eq!(t.mark_of(1, ip("10.1.0.1"), Protocol::Tcp, 443), 1);
    }

    #[test]
    fn add_normalises_host_bits_and_port_order() {
        let mut t = FwmarkRules::default();
        let mut r = rule("10.1.2.3", 24, 7);
        r.dports = vec![443, 80];
        t.add(&r).unwrap();
        assert_eq!(t.rules()[0].addr, ip("10.1.2.0"));
        assert_eq!(t.rules()[0].dports, vec![80, 443]);
        // The same rule in another spelling is a duplicate, and deletable.
        let mut same = rule("10.1.2.0", 24, 7);
        same.dports = vec![80, 443];
        assert_eq!(t.add(&same), Err(CtlError::Exists));
        t.delete(&r).unwrap();
        assert!(t.is_empty());
        let mut v6 = rule("2001:db8::ffff", 64, 7);
        v6.proto = Some(Protocol::Udp);
        t.add(&v6).unwrap();
        assert_eq!(t.rules()[0].addr, ip("2001:db8::"));
    }

    #[test]
    fn add_refuses_bad_rules_and_changes_nothing() {
        let mut t = FwmarkRules::default();
        t.add(&rule("10.0.0.0", 8, 1)).unwrap();
        let before = t.clone();
        let bad = |f: &dyn Fn(&mut FwmarkRule)| {
            let mut r = rule("10.0.0.1", 32, 5);
            f(&mut r);
            r
        };
        let cases: Vec<(FwmarkRule, &str)> = vec![
            (bad(&|r| r.mark = 0), "mark 0"),
            (bad(&|r| r.prefix_len = 33), "prefix length"),
            (
                bad(&|r| {
                    r.addr = ip("::1");
                    r.prefix_len = 129
                }),
                "prefix length",
            ),
            (bad(&|r| r.dports = vec![0]), "port 0"),
            (bad(&|r| r.dports = (1..=17).collect()), "16 ports"),
            (bad(&|r| r.dports = vec![80, 80]), "twice"),
        ];
        for (r, want) in cases {
            let e = t.add(&r).unwrap_err();
            assert!(e.to_string().contains(want), "{r:?}: {e}");
            assert_eq!(t, before);
        }
        assert_eq!(t.add(&rule("10.0.0.0", 8, 1)), Err(CtlError::Exists));
        assert!(matches!(
            t.add(&bad(&|r| r.iif = Some(0))),
            Err(CtlError::NotFound(_))
        ));
        // Sixteen ports is the limit, not beyond.
        t.add(&bad(&|r| r.dports = (1..=16).collect())).unwrap();
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn delete_of_a_missing_rule_is_an_error() {
        let mut t = FwmarkRules::default();
        t.add(&rule("10.0.0.0", 8, 1)).unwrap();
        assert_eq!(
            t.delete(&rule("10.0.0.0", 8, 2)),
            Err(CtlError::NotFound("fwmark rule"))
        );
        assert_eq!(t.len(), 1);
        t.delete(&rule("10.0.0.0", 8, 1)).unwrap();
        assert_eq!(
            t.delete(&rule("10.0.0.0", 8, 1)),
            Err(CtlError::NotFound("fwmark rule"))
        );
    }

    #[test]
    fn host_rules_run_first_and_survive_a_flush() {
        let mut t = FwmarkRules::default();
        t.set_host(&[rule("10.0.0.1", 24, 10), rule("10.0.0.9", 32, 0)]);
        assert_eq!(t.host().len(), 1, "an invalid host rule is left out");
        assert_eq!(t.host()[0].addr, ip("10.0.0.0"));
        assert!(!t.is_empty());
        assert_eq!(t.len(), 0);
        assert_eq!(t.mark_of(1, ip("10.0.0.1"), Protocol::Tcp, 80), 10);
        t.add(&rule("10.0.0.1", 32, 11)).unwrap();
        assert_eq!(t.mark_of(1, ip("10.0.0.1"), Protocol::Tcp, 80), 11);
        assert_eq!(t.mark_of(1, ip("10.0.0.2"), Protocol::Tcp, 80), 10);
        t.clear();
        assert_eq!(t.mark_of(1, ip("10.0.0.1"), Protocol::Tcp, 80), 10);
        t.set_host(&[]);
        assert!(t.is_empty());
    }

    #[test]
    fn rule_limit() {
        let mut t = FwmarkRules::default();
        for i in 0..MAX_RULES as u32 {
            t.add(&rule("10.0.0.0", 8, i + 1)).unwrap();
        }
        assert!(matches!(
            t.add(&rule("10.0.0.0", 8, 9999)),
            Err(CtlError::Invalid(_))
        ));
    }
}
