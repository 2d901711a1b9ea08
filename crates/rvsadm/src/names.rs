//! Name look-ups, as ipvsadm does them through libc: host names
//! (`gethostbyname` / `gethostbyaddr`) and service names (`getservbyname` /
//! `getservbyport`).
//!
//! Service names come from `/etc/services` (what glibc's `files` backend
//! reads); host names go through the system resolver (`getaddrinfo` /
//! `getnameinfo`, so `/etc/hosts` and DNS as `nsswitch.conf` says).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::sync::OnceLock;

/// `(name or alias, proto) -> port` and `(port, proto) -> first name`.
#[derive(Debug, Default)]
struct Services {
    by_name: HashMap<(String, String), u16>,
    by_port: HashMap<(u16, String), String>,
}

fn services() -> &'static Services {
    static S: OnceLock<Services> = OnceLock::new();
    S.get_or_init(|| parse_services(&std::fs::read_to_string("/etc/services").unwrap_or_default()))
}

fn parse_services(text: &str) -> Services {
    let mut s = Services::default();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut it = line.split_whitespace();
        let (Some(name), Some(pp)) = (it.next(), it.next()) else {
            continue;
        };
        let Some((port, proto)) = pp.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        s.by_port
            .entry((port, proto.to_string()))
            .or_insert_with(|| name.to_string());
        for n in std::iter::once(name).chain(it) {
            s.by_name
                .entry((n.to_string(), proto.to_string()))
                .or_insert(port);
        }
    }
    s
}

/// `getservbyname(name, proto)`.
pub fn port_by_name(name: &str, proto: &str) -> Option<u16> {
    services()
        .by_name
        .get(&(name.to_string(), proto.to_string()))
        .copied()
}

/// `getservbyport(port, proto)`.
pub fn name_by_port(port: u16, proto: &str) -> Option<&'static str> {
    services()
        .by_port
        .get(&(port, proto.to_string()))
        .map(String::as_str)
}

/// `gethostbyname(name)`: the first IPv4 address of a host name.
pub fn host_v4(name: &str) -> Option<Ipv4Addr> {
    (name, 0)
        .to_socket_addrs()
        .ok()?
        .find_map(|a| match a.ip() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
}

/// `gethostbyaddr(addr)`: the host name of an address, if it has one.
pub fn host_name(addr: IpAddr) -> Option<String> {
    let name = dns_lookup::lookup_addr(&addr).ok()?;
    // getnameinfo falls back to the numeric form; gethostbyaddr fails instead.
    if name.parse::<IpAddr>().is_ok() {
        None
    } else {
        Some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_file_parsing() {
        let s = parse_services(
            "# comment\nhttp\t80/tcp\twww # WorldWideWeb\nhttp 80/udp\nhttps 443/tcp\nbad line\nx y/z\n",
        );
        assert_eq!(s.by_name.get(&("www".into(), "tcp".into())), Some(&80));
        assert_eq!(
            s.by_port.get(&(80, "tcp".into())).map(String::as_str),
            Some("http")
        );
        assert_eq!(s.by_port.get(&(443, "udp".into())), None);
    }
}
