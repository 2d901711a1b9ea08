//! Firewall-mark rules on the wire, and their command-line form.
//!
//! A rule is written the way `rvs fwmark add` takes it (and close to
//! iptables' `-t mangle -A PREROUTING … -j MARK --set-mark N`):
//!
//! ```text
//! -d ADDR[/LEN] [-p tcp|udp|sctp] [--dport PORT[,PORT…]] [-i IF] --set-mark N
//! ```
//!
//! [`parse_args`] reads that form (also the iptables spellings
//! `--destination`, `--protocol`, `--dports`, `--destination-port(s)`,
//! `--in-interface`, and the no-ops `-m multiport|tcp|udp|sctp`, `-j MARK`),
//! [`FwmarkSpec`]'s `Display` writes it back, so a listed rule can be given
//! to `rvs fwmark del` or `add` as is.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::Proto;

/// Most destination ports one rule lists.
pub const MAX_PORTS: usize = 16;

/// One firewall-mark rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FwmarkSpec {
    /// Destination address (host bits are cleared by rvsd).
    pub addr: IpAddr,
    /// Prefix length (32 or 128 when not given).
    pub prefix_len: u8,
    /// Protocol; `None` matches TCP, UDP and SCTP.
    pub proto: Option<Proto>,
    /// Destination ports; empty matches every port.
    pub dports: Vec<u16>,
    /// Ingress interface name; `None` matches any.
    pub iif: Option<String>,
    /// The mark (1..=u32::MAX).
    pub mark: u32,
}

impl fmt::Display for FwmarkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-d {}/{}", self.addr, self.prefix_len)?;
        if let Some(p) = self.proto {
            write!(f, " -p {}", p.lower())?;
        }
        if !self.dports.is_empty() {
            let ports: Vec<String> = self.dports.iter().map(u16::to_string).collect();
            write!(f, " --dport {}", ports.join(","))?;
        }
        if let Some(i) = &self.iif {
            write!(f, " -i {i}")?;
        }
        write!(f, " --set-mark {}", self.mark)
    }
}

/// The rules rvsd mirrors from the host's firewall (`rvs fwmark list`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostMarks {
    /// `host` (rvsd follows the host's MARK rules) or `rvs` (it does not).
    pub source: String,
    /// The host's rules rvsd applies, in the order packets meet them.
    pub rules: Vec<HostRule>,
    /// The host's rules rvsd leaves to the kernel, and why.
    pub ignored: Vec<IgnoredRule>,
}

/// One mirrored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRule {
    /// `iptables` or `nft`.
    pub origin: String,
    /// The rule as the host's firewall prints it.
    pub text: String,
    /// What rvsd applies for it.
    pub spec: FwmarkSpec,
}

/// One rule of the host's that rvsd does not mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoredRule {
    /// `iptables` or `nft`.
    pub origin: String,
    /// The rule as the host's firewall prints it.
    pub text: String,
    /// Why it is not mirrored.
    pub reason: String,
}

/// Parse the arguments of `rvs fwmark add|del`.
///
/// # Errors
///
/// A message naming the bad argument: unknown option, missing value,
/// bad address, prefix, protocol, port or mark, missing `-d` or
/// `--set-mark`, an option given twice.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<FwmarkSpec, String> {
    let mut dst: Option<(IpAddr, u8)> = None;
    let mut proto: Option<Proto> = None;
    let mut dports: Option<Vec<u16>> = None;
    let mut iif: Option<String> = None;
    let mut mark: Option<u32> = None;
    let mut it = args.iter().map(AsRef::as_ref);
    while let Some(opt) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("option {opt} needs a value"))
        };
        let twice = || format!("option {opt} given twice");
        match opt {
            "-d" | "--destination" | "--dst" => {
                let v = value()?;
                if dst.replace(parse_prefix(v)?).is_some() {
                    return Err(twice());
                }
            }
            "-p" | "--protocol" => {
                let v = value()?;
                if proto.replace(parse_proto(v)?).is_some() {
                    return Err(twice());
                }
            }
            "--dport" | "--dports" | "--destination-port" | "--destination-ports" => {
                let v = value()?;
                if dports.replace(parse_ports(v)?).is_some() {
                    return Err(twice());
                }
            }
            "-i" | "--in-interface" => {
                let v = value()?;
                if !valid_ifname(v) {
                    return Err(format!("bad interface name '{v}'"));
                }
                if iif.replace(v.to_string()).is_some() {
                    return Err(twice());
                }
            }
            "--set-mark" | "--mark" => {
                let v = value()?;
                if mark.replace(parse_mark(v)?).is_some() {
                    return Err(twice());
                }
            }
            "-m" | "--match" => {
                let v = value()?;
                if !matches!(v, "multiport" | "tcp" | "udp" | "sctp") {
                    return Err(format!("unsupported match '-m {v}'"));
                }
            }
            "-j" | "--jump" => {
                let v = value()?;
                if v != "MARK" {
                    return Err(format!("unsupported target '-j {v}' (only MARK)"));
                }
            }
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    let (addr, prefix_len) = dst.ok_or("missing destination: -d ADDR[/LEN]")?;
    let mark = mark.ok_or("missing --set-mark N")?;
    Ok(FwmarkSpec {
        addr,
        prefix_len,
        proto,
        dports: dports.unwrap_or_default(),
        iif,
        mark,
    })
}

/// `ADDR` or `ADDR/LEN` (IPv6 may be bracketed).
fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let a = a
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(a);
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("bad destination address '{s}'"))?;
    let max = if addr.is_ipv6() { 128 } else { 32 };
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max && !l.starts_with('+') => n,
            _ => return Err(format!("bad prefix length '{l}' in '{s}' (0 to {max})")),
        },
    };
    Ok((addr, len))
}

fn parse_proto(s: &str) -> Result<Proto, String> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" | "6" => Ok(Proto::Tcp),
        "udp" | "17" => Ok(Proto::Udp),
        "sctp" | "132" => Ok(Proto::Sctp),
        _ => Err(format!("bad protocol '{s}' (tcp, udp or sctp)")),
    }
}

/// `PORT[,PORT…]`: 1 to 65535, at most [`MAX_PORTS`], none twice.
fn parse_ports(s: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for p in s.split(',') {
        let n = match p.parse::<u16>() {
            Ok(n) if n != 0 && !p.starts_with('+') => n,
            _ if p.contains(':') => {
                return Err(format!("port ranges are not supported: '{p}'"));
            }
            _ => return Err(format!("bad port '{p}' (1 to 65535)")),
        };
        if ports.contains(&n) {
            return Err(format!("port {n} given twice"));
        }
        ports.push(n);
    }
    if ports.len() > MAX_PORTS {
        return Err(format!(
            "{} ports given, at most {MAX_PORTS} per rule",
            ports.len()
        ));
    }
    Ok(ports)
}

/// A mark: decimal or `0x` hex, 1 to 4294967295.
fn parse_mark(s: &str) -> Result<u32, String> {
    let n = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None if !s.starts_with('+') => s.parse::<u32>().ok(),
        None => None,
    };
    match n {
        Some(n) if n != 0 => Ok(n),
        _ => Err(format!("bad mark '{s}' (1 to 4294967295)")),
    }
}

/// An interface name as the kernel allows it.
fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 16
        && s != "."
        && s != ".."
        && !s
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace() || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<FwmarkSpec, String> {
        parse_args(&s.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn seed_iptables_spelling() {
        let r = parse("-d 122.161.1.100 -p tcp --dport 443 -j MARK --set-mark 10").unwrap();
        assert_eq!(r.addr, "122.161.1.100".parse::<IpAddr>().unwrap());
        assert_eq!(r.prefix_len, 32);
        assert_eq!(r.proto, Some(Proto::Tcp));
        assert_eq!(r.dports, vec![443]);
        assert_eq!(r.mark, 10);
        assert_eq!(
            r.to_string(),
            "-d 122.161.1.100/32 -p tcp --dport 443 --set-mark 10"
        );
        let r = parse("-i eth0 -m multiport --dports 80,443 -p tcp -d 10.0.0.0/8 --set-mark 0x10")
            .unwrap();
        assert_eq!(r.dports, vec![80, 443]);
        assert_eq!(r.mark, 16);
        assert_eq!(r.iif.as_deref(), Some("eth0"));
        assert_eq!(
            r.to_string(),
            "-d 10.0.0.0/8 -p tcp --dport 80,443 -i eth0 --set-mark 16"
        );
        let r = parse("-d 2001:db8::/32 --set-mark 7").unwrap();
        assert_eq!(r.to_string(), "-d 2001:db8::/32 --set-mark 7");
        assert_eq!(parse(&r.to_string()), Ok(r));
    }

    #[test]
    fn bad_input_is_named() {
        for (args, want) in [
            ("-d 10.0.0.300 --set-mark 1", "bad destination address"),
            ("-d 10.0.0.1/33 --set-mark 1", "bad prefix length"),
            ("-d ::1/129 --set-mark 1", "bad prefix length"),
            ("-d 10.0.0.1 -p icmp --set-mark 1", "bad protocol"),
            ("-d 10.0.0.1 --dport 0 --set-mark 1", "bad port"),
            ("-d 10.0.0.1 --dport 70000 --set-mark 1", "bad port"),
            ("-d 10.0.0.1 --dport 80,80 --set-mark 1", "given twice"),
            ("-d 10.0.0.1 --dport 80:90 --set-mark 1", "ranges"),
            (
                "-d 10.0.0.1 --dport 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17 --set-mark 1",
                "at most 16",
            ),
            ("-d 10.0.0.1 --set-mark 0", "bad mark"),
            ("-d 10.0.0.1 --set-mark 4294967296", "bad mark"),
            ("-d 10.0.0.1 --set-mark ten", "bad mark"),
            ("-d 10.0.0.1", "missing --set-mark"),
            ("--set-mark 1", "missing destination"),
            ("-d 10.0.0.1 --set-mark 1 --frob", "unknown option '--frob'"),
            ("-d 10.0.0.1 --set-mark", "needs a value"),
            ("-d 10.0.0.1 -d 10.0.0.2 --set-mark 1", "given twice"),
            ("-d 10.0.0.1 -j ACCEPT --set-mark 1", "unsupported target"),
            ("-d 10.0.0.1 -i a/b --set-mark 1", "bad interface"),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.contains(want), "{args}: {e}");
        }
    }
}
