//! The host's firewall-mark rules, translated into rvs fwmark rules (pure:
//! text and JSON in, rules out; the commands are run by
//! [`crate::hostwatch`]).
//!
//! rvs classifies packets in XDP, before netfilter's PREROUTING hooks run,
//! so the marks `iptables -t mangle -A PREROUTING … -j MARK` would set are
//! computed by rvs itself: the host's MARK rules are read from
//! `iptables-save -t mangle` text (iptables-nft and iptables-legacy, IPv4
//! and IPv6) and from `nft -j list ruleset` (native nftables chains on the
//! `prerouting` hook), and turned into the rules `rvs fwmark add` makes.
//!
//! # Semantics
//!
//! * Order: the chains run by hook priority, lowest first (iptables' mangle
//!   PREROUTING is priority -150, for iptables-nft and iptables-legacy
//!   alike; a native chain at `priority mangle` is -150 too); at equal
//!   priority iptables-nft, then iptables-legacy, then the nft chains in
//!   the order `nft list ruleset` prints them. Within a chain, rule order.
//!   rvs's own rules (`rvs fwmark add`) run after all of them.
//! * A packet enters PREROUTING with mark 0. Every target is the kernel's
//!   `MARK --set-xmark VALUE/MASK`: `mark = (mark & ~MASK) ^ VALUE`
//!   (`--set-mark V` is V/0xffffffff, `--set-mark V/M` is V/(M|V),
//!   `--and-mark A` is 0/~A, `--or-mark O` is O/O, `--xor-mark X` is X/0;
//!   nft's `meta mark set` forms likewise). A rule with a full mask sets the
//!   mark outright: the last matching such rule wins, which is how rvs's
//!   rules work. A partial mask is translated when no earlier rule can have
//!   marked the same packets (the mark it starts from is then 0, and the
//!   result is VALUE); otherwise the rule is left to the kernel.
//! * Matches rvs can express: destination address/prefix, protocol
//!   (tcp, udp, sctp), destination ports (lists and ranges, 128 ports at
//!   most, one rvs rule per 16) and the input interface. Anything else
//!   (source address or port, negation, `-m conntrack`, `-m string`, `-m mark`, named sets,
//!   interface wildcards, …) makes the rule unsupported: it is reported
//!   with its text and reason, and the flows it would mark stay the
//!   kernel's. Because that rule may change the mark of packets that
//!   earlier rules marked, every supported rule that can match the same
//!   packets (judged by the matches that are understood) is left to the
//!   kernel too. Non-MARK targets that end or change the chain's walk
//!   (`ACCEPT`, `RETURN`, `DROP`, jumps, `CONNMARK`, …) likewise hold back
//!   the rules they can overlap; `LOG`, `counter` and the like are
//!   ignored.
//! * Which marks are claimed is decided as for `rvs fwmark add`: a rule
//!   is claimed only when its mark has a fwmark service of its family.
//!
//! # Files
//!
//! * this file: the rule model both parsers produce ([`Chain`], [`Rule`],
//!   [`Match`], [`Action`]), the [`Translation`] result, and the helpers
//!   the two parsers share (protocols, prefixes, port lists);
//! * `iptables.rs`: `iptables-save -t mangle` text;
//! * `nft.rs`: `nft -j list ruleset` JSON;
//! * `translate.rs`: chain order, mark semantics and the overlap analysis
//!   that decides which rules rvs applies and which stay the kernel's;
//! * `tests.rs`: unit tests that read rules and translate them.

use std::net::IpAddr;

use rvs_proto::Proto;
use rvs_proto::fwmark::{HostRule, IgnoredRule, MAX_PORTS};

mod iptables;
mod nft;
#[cfg(test)]
mod tests;
mod translate;

pub use iptables::parse_iptables_save;
pub use nft::{NftJsonError, parse_nft_json};
pub use translate::translate;

/// Most destination ports one host rule may list (or span): it becomes
/// one rvs rule per 16 ports, and the classifier holds 8 matchers of 16
/// ports per prefix.
pub const MAX_HOST_PORTS: usize = 8 * MAX_PORTS;

/// iptables' mangle table hooks PREROUTING at this priority.
pub const IPTABLES_MANGLE_PRIORITY: i32 = -150;

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `iptables-save` text (nf_tables or legacy backend).
    Iptables,
    /// `nft -j list ruleset`.
    Nft,
}

impl Origin {
    /// As `rvs fwmark list` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Iptables => "iptables",
            Origin::Nft => "nft",
        }
    }
}

/// Address family of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
    /// Both (nft's `inet`).
    Both,
}

/// The matches of a rule that rvs understands. `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// Destination prefix.
    pub dst: Option<(IpAddr, u8)>,
    /// Protocol; `Some(None)`-like "other protocol" is `other_proto`.
    pub proto: Option<Proto>,
    /// A protocol rvs does not serve (icmp, …): the rule never marks a
    /// packet rvs could claim.
    pub other_proto: Option<String>,
    /// Destination ports.
    pub dports: Option<Vec<u16>>,
    /// Input interface.
    pub iif: Option<String>,
    /// Only IPv4 / IPv6 packets (nft's `meta nfproto`, inet chains).
    pub v6: Option<bool>,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `mark = (mark & !mask) ^ value`.
    Mark {
        /// Bits replaced.
        mask: u32,
        /// Value xor-ed in.
        value: u32,
    },
    /// Nothing to the mark or the chain's walk (LOG, counter, …).
    Nothing,
    /// Ends the walk for the packets it matches (ACCEPT, RETURN).
    Ends(String),
    /// Anything else: can change the mark or the walk (jumps, DROP,
    /// CONNMARK, …).
    Other(String),
}

/// One rule as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Where it comes from.
    pub origin: Origin,
    /// Its text.
    pub text: String,
    /// Family of its chain.
    pub family: Family,
    /// The understood matches (a superset of the packets it matches when
    /// `problems` is not empty).
    pub m: Match,
    /// What it does.
    pub action: Action,
    /// Why rvs cannot express it (empty: it can).
    pub problems: Vec<String>,
}

/// One base chain on the PREROUTING hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Hook priority.
    pub priority: i32,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// The result of a translation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translation {
    /// The rules rvs applies, in order.
    pub rules: Vec<HostRule>,
    /// The rules left to the kernel.
    pub ignored: Vec<IgnoredRule>,
}

// ----- shared by the two parsers ----------------------------------------------------

fn set_proto(m: &mut Match, v: &str) {
    match v.to_ascii_lowercase().as_str() {
        "tcp" | "6" => m.proto = Some(Proto::Tcp),
        "udp" | "17" => m.proto = Some(Proto::Udp),
        "sctp" | "132" => m.proto = Some(Proto::Sctp),
        "all" | "0" => {}
        other => m.other_proto = Some(other.to_string()),
    }
}

/// `ADDR[/LEN]` (no dotted masks).
fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().ok()?;
    let max = if addr.is_ipv6() { 128 } else { 32 };
    let len = match l {
        None => max,
        Some(l) => l.parse::<u8>().ok().filter(|&n| n <= max)?,
    };
    Some((addr, len))
}

/// A destination-port match rvs cannot take (the text is the rule's
/// problem, as listed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortsError {
    /// A range with port 0, reversed, or too wide.
    #[error(
        "destination ports {0}:{1} (rvs matches at most {max} ports, not 0)",
        max = MAX_HOST_PORTS
    )]
    Range(u16, u16),
    /// More ports than rvs matches.
    #[error("{0} destination ports (rvs matches at most {max})", max = MAX_HOST_PORTS)]
    TooMany(usize),
    /// An iptables port that is not a number (the text given).
    #[error("port '{0}'")]
    Port(String),
    /// An nft port item that is neither a port nor a range (as nft writes it).
    #[error("ports {0}")]
    NftItem(String),
}

fn push_range(out: &mut Vec<u16>, a: u16, b: u16) -> Result<(), PortsError> {
    if a == 0 || b < a || usize::from(b - a) >= MAX_HOST_PORTS {
        return Err(PortsError::Range(a, b));
    }
    out.extend(a..=b);
    Ok(())
}

fn finish_ports(mut out: Vec<u16>) -> Result<Vec<u16>, PortsError> {
    out.sort_unstable();
    out.dedup();
    if out.len() > MAX_HOST_PORTS {
        return Err(PortsError::TooMany(out.len()));
    }
    Ok(out)
}
