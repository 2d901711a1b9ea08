//! nftables drop rules that keep the kernel from answering what rvs claims
//! (`--io packet`).
//!
//! An AF_PACKET socket gets a copy of each frame; the kernel still gets the
//! original, and would answer a SYN to a virtual service without a local
//! listener with a reset, or forward a NAT real server's reply untranslated.
//! One table, `table netdev rvs`, holds an ingress-hook chain per served
//! interface that drops what rvs claims: service traffic (protocol, virtual
//! address, port), replies of NAT real servers (protocol, source address,
//! source port), ICMP errors about either (as the XDP classifier claims
//! them; the quoted IPv4 header without options, the quoted IPv6 header
//! without extension headers) and what the fwmark rules of fwmark services
//! match. Packet
//! taps see frames before the netdev ingress hook, so rvs still gets them.
//!
//! [`ruleset`] is a pure function from what is claimed to the text of one
//! `nft -f` transaction that replaces the whole table (a table left over
//! from a crashed run is replaced, not stacked); [`NftTable`] applies it and
//! deletes the table when dropped.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::xdp::ClassKey;

/// The table's name (family `netdev`).
pub const TABLE: &str = "rvs";

/// Priority of the ingress chains: early, before other netdev filters.
pub const PRIORITY: i32 = -500;

/// One served interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftInterface {
    /// Name, as `device "…"` of the chain.
    pub name: String,
    /// Index, to match fwmark rules restricted to an ingress interface.
    pub ifindex: u32,
}

/// A fwmark rule's match (`-d ADDR/LEN [-p PROTO] [--dport P,…] [-i IF]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwmarkMatch {
    /// Destination network.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// IP protocol number; `None`: TCP, UDP and SCTP.
    pub proto: Option<u8>,
    /// Destination ports; empty: every port.
    pub dports: Vec<u16>,
    /// Ingress interface index; `None`: every served interface.
    pub iif: Option<u32>,
}

/// Everything to drop in front of the kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Claims<'a> {
    /// (proto, virtual address, port; 0 = every port) of the services.
    pub services: &'a [ClassKey],
    /// (proto, real server, port; 0 = every port) of the NAT real servers.
    pub nat: &'a [ClassKey],
    /// Fwmark rules of fwmark services.
    pub fwmark: &'a [FwmarkMatch],
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` is not installed.
    #[error("cannot run `nft` ({0}): install the nftables package")]
    Missing(io::Error),
    /// `nft` refused the ruleset.
    #[error("nft -f failed: {0}")]
    Failed(String),
    /// An interface name that cannot be quoted safely.
    #[error("interface name {0:?} cannot be used in an nftables rule")]
    IfName(String),
    /// A fwmark rule with a bad prefix.
    #[error("bad prefix {addr}/{len}")]
    Prefix {
        /// Address.
        addr: IpAddr,
        /// Length.
        len: u8,
    },
}

fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

fn family(a: &IpAddr) -> &'static str {
    match a {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    }
}

/// The chain name of an interface: `in_` and its index (names may hold
/// characters chain names may not).
fn chain_name(i: &NftInterface) -> String {
    format!("in_{}", i.ifindex)
}

/// Whether `name` is safe inside double quotes in nft's grammar.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@:+".contains(&b))
}

/// Which end of the packet an ICMP error quotes is matched.
#[derive(Clone, Copy)]
enum Quoted {
    Src,
    Dst,
}

/// A rule dropping ICMP (ICMPv6) errors whose quoted packet has `k`'s
/// protocol and, at the `end` side, its address and port (0: any). Raw
/// payload offsets from the ICMP header: the quoted IPv4 header starts 8
/// bytes in and must have no options (`0x45`); the quoted IPv6 header has no
/// extension headers.
fn icmp_error_rule(k: &ClassKey, end: Quoted) -> String {
    match k.addr {
        IpAddr::V4(a) => {
            let (addr_bit, port_bit) = match end {
                Quoted::Src => (160, 224),
                Quoted::Dst => (192, 240),
            };
            let mut r = format!(
                "icmp type {{ destination-unreachable, source-quench, time-exceeded, \
                 parameter-problem }} @th,64,8 0x45 @th,136,8 {} @th,{addr_bit},32 0x{:08x}",
                k.proto,
                u32::from(a)
            );
            if k.port != 0 {
                let _ = write!(r, " @th,{port_bit},16 {}", k.port);
            }
            r.push_str(" drop");
            r
        }
        IpAddr::V6(a) => {
            let (addr_bit, port_bit) = match end {
                Quoted::Src => (128, 384),
                Quoted::Dst => (256, 400),
            };
            let mut r = format!(
                "icmpv6 type {{ destination-unreachable, packet-too-big, time-exceeded, \
                 parameter-problem }} @th,112,8 {} @th,{addr_bit},128 0x{:032x}",
                k.proto,
                u128::from(a)
            );
            if k.port != 0 {
                let _ = write!(r, " @th,{port_bit},16 {}", k.port);
            }
            r.push_str(" drop");
            r
        }
    }
}

/// The drop rules of one interface, one per line, without indentation.
fn rules_for(iface: &NftInterface, claims: &Claims<'_>) -> Result<Vec<String>, NftError> {
    let mut out = Vec::new();
    for k in claims.services {
        let mut r = format!(
            "{} daddr {} meta l4proto {}",
            family(&k.addr),
            k.addr,
            proto_name(k.proto)
        );
        if k.port != 0 {
            let _ = write!(r, " th dport {}", k.port);
        }
        r.push_str(" drop");
        out.push(r);
    }
    for k in claims.nat {
        let mut r = format!(
            "{} saddr {} meta l4proto {}",
            family(&k.addr),
            k.addr,
            proto_name(k.proto)
        );
        if k.port != 0 {
            let _ = write!(r, " th sport {}", k.port);
        }
        r.push_str(" drop");
        out.push(r);
    }
    // ICMP errors about claimed traffic: about a packet to a NAT real
    // server (quoted destination), or from a virtual service (quoted
    // source), as the XDP classifier claims them.
    for k in claims.nat {
        out.push(icmp_error_rule(k, Quoted::Dst));
    }
    for k in claims.services {
        out.push(icmp_error_rule(k, Quoted::Src));
    }
    for m in claims.fwmark {
        if m.iif.is_some_and(|i| i != iface.ifindex) {
            continue;
        }
        let max = if m.addr.is_ipv4() { 32 } else { 128 };
        if m.prefix_len > max {
            return Err(NftError::Prefix {
                addr: m.addr,
                len: m.prefix_len,
            });
        }
        let mut r = format!("{} daddr {}/{}", family(&m.addr), m.addr, m.prefix_len);
        match m.proto {
            Some(p) => {
                let _ = write!(r, " meta l4proto {}", proto_name(p));
            }
            None => r.push_str(" meta l4proto { tcp, udp, sctp }"),
        }
        match m.dports.as_slice() {
            [] => {}
            [p] => {
                let _ = write!(r, " th dport {p}");
            }
            ps => {
                let mut ps = ps.to_vec();
                ps.sort_unstable();
                ps.dedup();
                let list: Vec<String> = ps.iter().map(u16::to_string).collect();
                let _ = write!(r, " th dport {{ {} }}", list.join(", "));
            }
        }
        r.push_str(" drop");
        out.push(r);
    }
    Ok(out)
}

/// The `nft -f` text of one transaction that replaces `table netdev rvs`
/// with one ingress chain per interface dropping `claims`.
///
/// `add table` first so the `delete` of a table that is not there does not
/// fail the transaction; all or nothing is applied.
pub fn ruleset(ifaces: &[NftInterface], claims: &Claims<'_>) -> Result<String, NftError> {
    let mut s = String::new();
    let _ = writeln!(s, "add table netdev {TABLE}");
    let _ = writeln!(s, "delete table netdev {TABLE}");
    let _ = writeln!(s, "table netdev {TABLE} {{");
    for i in ifaces {
        if !valid_ifname(&i.name) {
            return Err(NftError::IfName(i.name.clone()));
        }
        let _ = writeln!(s, "\tchain {} {{", chain_name(i));
        let _ = writeln!(
            s,
            "\t\ttype filter hook ingress device \"{}\" priority {PRIORITY}; policy accept;",
            i.name
        );
        for r in rules_for(i, claims)? {
            let _ = writeln!(s, "\t\t{r}");
        }
        let _ = writeln!(s, "\t}}");
    }
    let _ = writeln!(s, "}}");
    Ok(s)
}

/// The transaction that removes the table (if it is there).
pub fn delete_ruleset() -> String {
    format!("add table netdev {TABLE}\ndelete table netdev {TABLE}\n")
}

/// Run `nft -f -` with `text` on its standard input (in the calling
/// thread's network namespace).
pub fn apply(text: &str) -> Result<(), NftError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Missing)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| NftError::Failed(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NftError::Failed(format!("waiting for nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftError::Failed(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The rvs table of the network namespace, for the served interfaces;
/// deleted on drop.
#[derive(Debug)]
pub struct NftTable {
    ifaces: Vec<NftInterface>,
    /// The text last applied (to skip no-op updates).
    applied: Option<String>,
}

impl NftTable {
    /// Install the table with nothing claimed (replacing a leftover one).
    pub fn install(ifaces: Vec<NftInterface>) -> Result<NftTable, NftError> {
        let mut t = NftTable {
            ifaces,
            applied: None,
        };
        t.set(&Claims::default())?;
        Ok(t)
    }

    /// Replace the rules with `claims`, atomically; nothing changes on error.
    pub fn set(&mut self, claims: &Claims<'_>) -> Result<(), NftError> {
        let text = ruleset(&self.ifaces, claims)?;
        if self.applied.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        apply(&text)?;
        self.applied = Some(text);
        Ok(())
    }

    /// The text last applied.
    pub fn applied(&self) -> Option<&str> {
        self.applied.as_deref()
    }

    /// Delete the table now, reporting errors.
    pub fn remove(mut self) -> Result<(), NftError> {
        self.applied = None;
        apply(&delete_ruleset())
    }
}

impl Drop for NftTable {
    fn drop(&mut self) {
        if self.applied.is_some() {
            let _ = apply(&delete_ruleset());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(proto: u8, addr: &str, port: u16) -> ClassKey {
        ClassKey {
            proto,
            addr: addr.parse().unwrap(),
            port,
        }
    }

    fn ifs() -> Vec<NftInterface> {
        vec![
            NftInterface {
                name: "eth0".into(),
                ifindex: 2,
            },
            NftInterface {
                name: "eth1".into(),
                ifindex: 3,
            },
        ]
    }

    #[test]
    fn empty_claims() {
        let t = ruleset(&ifs()[..1], &Claims::default()).unwrap();
        assert_eq!(
            t,
            "add table netdev rvs\n\
             delete table netdev rvs\n\
             table netdev rvs {\n\
             \tchain in_2 {\n\
             \t\ttype filter hook ingress device \"eth0\" priority -500; policy accept;\n\
             \t}\n\
             }\n"
        );
    }

    #[test]
    fn services_nat_and_fwmark() {
        let services = [
            k(6, "10.0.0.1", 80),
            k(17, "10.0.0.1", 0),
            k(132, "2001:db8::1", 9),
        ];
        let nat = [k(6, "192.168.1.2", 8080), k(17, "192.168.1.3", 0)];
        let fwmark = [
            FwmarkMatch {
                addr: "10.1.0.0".parse().unwrap(),
                prefix_len: 24,
                proto: None,
                dports: vec![443, 80, 443],
                iif: None,
            },
            FwmarkMatch {
                addr: "10.2.0.0".parse().unwrap(),
                prefix_len: 16,
                proto: Some(6),
                dports: vec![22],
                iif: Some(3),
            },
            FwmarkMatch {
                addr: "2001:db8:1::".parse().unwrap(),
                prefix_len: 48,
                proto: Some(17),
                dports: vec![],
                iif: None,
            },
        ];
        let claims = Claims {
            services: &services,
            nat: &nat,
            fwmark: &fwmark,
        };
        let t = ruleset(&ifs(), &claims).unwrap();
        let common = "\
\t\tip daddr 10.0.0.1 meta l4proto tcp th dport 80 drop
\t\tip daddr 10.0.0.1 meta l4proto udp drop
\t\tip6 daddr 2001:db8::1 meta l4proto sctp th dport 9 drop
\t\tip saddr 192.168.1.2 meta l4proto tcp th sport 8080 drop
\t\tip saddr 192.168.1.3 meta l4proto udp drop
\t\ticmp type { destination-unreachable, source-quench, time-exceeded, parameter-problem } @th,64,8 0x45 @th,136,8 6 @th,192,32 0xc0a80102 @th,240,16 8080 drop
\t\ticmp type { destination-unreachable, source-quench, time-exceeded, parameter-problem } @th,64,8 0x45 @th,136,8 17 @th,192,32 0xc0a80103 drop
\t\ticmp type { destination-unreachable, source-quench, time-exceeded, parameter-problem } @th,64,8 0x45 @th,136,8 6 @th,160,32 0x0a000001 @th,224,16 80 drop
\t\ticmp type { destination-unreachable, source-quench, time-exceeded, parameter-problem } @th,64,8 0x45 @th,136,8 17 @th,160,32 0x0a000001 drop
\t\ticmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } @th,112,8 132 @th,128,128 0x20010db8000000000000000000000001 @th,384,16 9 drop
\t\tip daddr 10.1.0.0/24 meta l4proto { tcp, udp, sctp } th dport { 80, 443 } drop
";
        let expected = format!(
            "add table netdev rvs
delete table netdev rvs
table netdev rvs {{
\tchain in_2 {{
\t\ttype filter hook ingress device \"eth0\" priority -500; policy accept;
{common}\t\tip6 daddr 2001:db8:1::/48 meta l4proto udp drop
\t}}
\tchain in_3 {{
\t\ttype filter hook ingress device \"eth1\" priority -500; policy accept;
{common}\t\tip daddr 10.2.0.0/16 meta l4proto tcp th dport 22 drop
\t\tip6 daddr 2001:db8:1::/48 meta l4proto udp drop
\t}}
}}
"
        );
        assert_eq!(t, expected);
    }

    #[test]
    fn bad_input() {
        let bad_if = [NftInterface {
            name: "a\"; flush ruleset".into(),
            ifindex: 9,
        }];
        assert!(matches!(
            ruleset(&bad_if, &Claims::default()),
            Err(NftError::IfName(_))
        ));
        let fw = [FwmarkMatch {
            addr: "10.0.0.0".parse().unwrap(),
            prefix_len: 33,
            proto: None,
            dports: vec![],
            iif: None,
        }];
        assert!(matches!(
            ruleset(
                &ifs(),
                &Claims {
                    fwmark: &fw,
                    ..Claims::default()
                }
            ),
            Err(NftError::Prefix { .. })
        ));
        assert_eq!(
            delete_ruleset(),
            "add table netdev rvs\ndelete table netdev rvs\n"
        );
    }
}
