//! Connection entries: `ipvsadm -L -c` and the kernel's
//! `/proc/net/ip_vs_conn` and `/proc/net/ip_vs_conn_sync`.
//!
//! ipvsadm builds `-c` by reading `/proc/net/ip_vs_conn` back in
//! (`print_conn`); the values it recovers are exactly the [`ConnInfo`]
//! fields, so `-c` is rendered from them directly, with what the round
//! trip does to them: the protocol is the kernel's name (`IP` for fwmark
//! templates) and only `TCP`/`UDP`/`SCTP` ports get service names, the
//! expiry is the kernel's `%7u` seconds shown as `%02d:%02d`, and the
//! state, PE name and PE data are single `%s` words.

use std::fmt::Write as _;
use std::net::IpAddr;

use rvs_proto::ConnInfo;
use rvs_proto::packed::ConnRecord;

use super::common::{addrport, full6, ljust};
use super::{Numeric, Resolver};

/// `IP_VS_CONN_F_SYNC`: the entry was created by the sync daemon.
const CONN_F_SYNC: u32 = 0x0020;

/// The kernel's `ip_vs_proto_name`.
fn proto_name(p: u8) -> String {
    match p {
        0 => "IP".into(),
        17 => "UDP".into(),
        6 => "TCP".into(),
        132 => "SCTP".into(),
        58 => "ICMPv6".into(),
        1 => "ICMP".into(),
        n => format!("IP_{n}"),
    }
}

/// The protocol ipvsadm resolves port names with: only for `TCP`, `UDP`
/// and `SCTP` lines (anything else is protocol 0 there).
fn lookup_proto(p: u8) -> Option<&'static str> {
    match p {
        6 => Some("tcp"),
        17 => Some("udp"),
        132 => Some("sctp"),
        _ => None,
    }
}

/// Seconds until expiry as the kernel prints them (`%7u` of an unsigned
/// 32-bit value).
fn expires(expire_secs: u64) -> u32 {
    u32::try_from(expire_secs).unwrap_or(u32::MAX)
}

/// An address as `/proc/net/ip_vs_conn` shows it: `%08X` (host order) or
/// `%pI6`.
fn proc_addr(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => format!("{:08X}", u32::from(v4)),
        IpAddr::V6(v6) => full6(v6),
    }
}

/// The state as one `%s` word (what ipvsadm's `sscanf` reads back).
fn state_word(state: &str) -> &str {
    state.split_whitespace().next().unwrap_or("")
}

/// `ipvsadm -L -c` (`-n` for numeric, `--persistent-conn` adds the PE
/// columns). Entries are printed in the order given (the kernel prints its
/// hash-table order; ipvsadm does not sort).
pub fn conns(c: &[ConnInfo], numeric: bool, persistent_conn: bool, r: &dyn Resolver) -> String {
    let mut out = conns_header(persistent_conn);
    conn_lines(&mut out, c, numeric, persistent_conn, r);
    out
}

/// The two header lines of [`conns`].
pub fn conns_header(persistent_conn: bool) -> String {
    let mut out = String::from("IPVS connection entries\n");
    // "pro expire %-11s %-18s %-18s %s\n", or with --persistent-conn
    // "pro expire %-11s %-18s %-18s %-18s %-16s %s\n".
    out.push_str("pro expire ");
    ljust(&mut out, "state", 11);
    out.push(' ');
    ljust(&mut out, "source", 18);
    out.push(' ');
    ljust(&mut out, "virtual", 18);
    out.push(' ');
    if persistent_conn {
        ljust(&mut out, "destination", 18);
        out.push(' ');
        ljust(&mut out, "pe name", 16);
        out.push_str(" pe_data\n");
    } else {
        out.push_str("destination\n");
    }
    out
}

/// The lines of [`conns`] for `c`, appended to `out` (a listing that
/// arrives in parts is formatted part by part).
pub fn conn_lines(
    out: &mut String,
    c: &[ConnInfo],
    numeric: bool,
    persistent_conn: bool,
    r: &dyn Resolver,
) {
    for e in c {
        conn_line(out, &e.record(), numeric, persistent_conn, r);
    }
}

/// One line of [`conns`], appended to `out`: with `numeric`, nothing is
/// allocated (a listing of a million entries is formatted line by line).
pub fn conn_line(
    out: &mut String,
    e: &ConnRecord<'_>,
    numeric: bool,
    persistent_conn: bool,
    r: &dyn Resolver,
) {
    let proto = lookup_proto(e.proto);
    push_proto_name(out, e.proto);
    out.push(' ');
    let secs = expires(e.expire_secs);
    let at = out.len();
    let _ = write!(out, "{:02}:{:02}", secs / 60, secs % 60);
    pad_from(out, at, 6);
    out.push(' ');
    ljust(out, state_word(e.state), 11);
    out.push(' ');
    addrport_col(out, e.caddr, e.cport, proto, numeric, r, 18);
    out.push(' ');
    addrport_col(out, e.vaddr, e.vport, proto, numeric, r, 18);
    out.push(' ');
    // sscanf yields 11 fields only if both a PE name and PE data word
    // follow the expiry.
    let pe: Option<(&str, &str)> = e.pe.and_then(|(name, data)| {
        let mut words = name.split_whitespace().chain(data.split_whitespace());
        Some((words.next()?, words.next()?))
    });
    match pe {
        Some((pe_name, pe_data)) if persistent_conn => {
            // "%-16s %-18s %s": destination padded to 16, PE name to 18.
            addrport_col(out, e.daddr, e.dport, proto, numeric, r, 16);
            out.push(' ');
            ljust(out, pe_name, 18);
            out.push(' ');
            out.push_str(pe_data);
        }
        _ => addrport_col(out, e.daddr, e.dport, proto, numeric, r, 0),
    }
    out.push('\n');
}

/// [`proto_name`] appended to `out`, padded to 3 (`%-3s`).
fn push_proto_name(out: &mut String, p: u8) {
    match p {
        0 => out.push_str("IP "),
        17 => out.push_str("UDP"),
        6 => out.push_str("TCP"),
        132 => out.push_str("SCTP"),
        _ => ljust(out, &proto_name(p), 3),
    }
}

/// `%-*s` of what was appended to `out` since `at`: pad to `w` bytes.
fn pad_from(out: &mut String, at: usize, w: usize) {
    for _ in out.len() - at..w {
        out.push(' ');
    }
}

/// [`addrport`] appended to `out`, padded to `w` (`%-*s`); numeric IPv4
/// without an allocation.
fn addrport_col(
    out: &mut String,
    addr: IpAddr,
    port: u16,
    proto: Option<&str>,
    numeric: bool,
    r: &dyn Resolver,
    w: usize,
) {
    let at = out.len();
    match addr {
        // At most 21 bytes: `addrport`'s cut at 59 never applies.
        IpAddr::V4(a) if numeric => {
            let [a, b, c, d] = a.octets();
            let _ = write!(out, "{a}.{b}.{c}.{d}:{port}");
        }
        _ => {
            let r: &dyn Resolver = if numeric { &Numeric } else { r };
            out.push_str(&addrport(addr, port, proto, r));
        }
    }
    pad_from(out, at, w);
}

/// The fixed part of a `/proc/net/ip_vs_conn*` line up to and including
/// the state column: `"%-3s %08X %04X %08X %04X %s %04X %-11s"` (IPv6
/// client/virtual addresses as `%pI6`).
fn proc_conn_prefix(out: &mut String, c: &ConnInfo) {
    ljust(out, &proto_name(c.proto), 3);
    let _ = write!(
        out,
        " {} {:04X} {} {:04X} {} {:04X} ",
        proc_addr(c.caddr),
        c.cport,
        proc_addr(c.vaddr),
        c.vport,
        proc_addr(c.daddr),
        c.dport
    );
    ljust(out, &c.state, 11);
}

/// The kernel's `/proc/net/ip_vs_conn`.
pub fn proc_ip_vs_conn(c: &[ConnInfo]) -> String {
    let mut out = String::from(
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n",
    );
    for e in c {
        proc_conn_prefix(&mut out, e);
        let _ = write!(out, " {:>7}", expires(e.expire_secs));
        if let Some((name, data)) = &e.pe {
            let _ = write!(out, " {name} {data}");
        }
        out.push('\n');
    }
    out
}

/// The kernel's `/proc/net/ip_vs_conn_sync` (origin `SYNC` for entries the
/// sync daemon created, else `LOCAL`).
pub fn proc_ip_vs_conn_sync(c: &[ConnInfo]) -> String {
    let mut out =
        String::from("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires\n");
    for e in c {
        proc_conn_prefix(&mut out, e);
        out.push(' ');
        let origin = if e.flags & CONN_F_SYNC != 0 {
            "SYNC"
        } else {
            "LOCAL"
        };
        ljust(&mut out, origin, 6);
        let _ = writeln!(out, " {:>7}", expires(e.expire_secs));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_conn_proto_names() {
        assert_eq!(proto_name(0), "IP");
        assert_eq!(proto_name(1), "ICMP");
        assert_eq!(proto_name(58), "ICMPv6");
        assert_eq!(proto_name(47), "IP_47");
        assert_eq!(lookup_proto(0), None);
        assert_eq!(lookup_proto(132), Some("sctp"));
    }
}
