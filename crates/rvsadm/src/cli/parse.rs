//! Value parsers with the C library's rules ipvsadm relies on: `strtol`
//! (`string_to_number`), `atoi`, `inet_aton`, and ipvsadm's
//! `parse_service` (host[:port] with `gethostbyname` / `getservbyname`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_proto::Proto;

use crate::names;

/// C `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `strtol(s, &end, 10)` over a prefix of `s`: the value (saturated as
/// strtol does, with an overflow flag) and the number of bytes consumed
/// (0 when no digits were found).
fn strtol10_prefix(s: &str) -> (i64, bool, usize) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_c_space(b[i]) {
        i += 1;
    }
    let neg = match b.get(i) {
        Some(b'+') => {
            i += 1;
            false
        }
        Some(b'-') => {
            i += 1;
            true
        }
        _ => false,
    };
    let start = i;
    let mut mag: u64 = 0;
    let mut overflow = false;
    while i < b.len() && b[i].is_ascii_digit() {
        match mag
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(b[i] - b'0')))
        {
            Some(m) => mag = m,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return (0, false, 0);
    }
    let limit = if neg {
        i64::MAX.unsigned_abs() + 1
    } else {
        i64::MAX.unsigned_abs()
    };
    if overflow || mag > limit {
        return (if neg { i64::MIN } else { i64::MAX }, true, i);
    }
    let v = if neg {
        0i64.wrapping_sub_unsigned(mag)
    } else {
        mag as i64
    };
    (v, false, i)
}

/// ipvsadm's `string_to_number`: base 10, the whole (non-empty) string,
/// leading blanks and a sign allowed, within `min..=max`.
pub(super) fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let (v, overflow, used) = strtol10_prefix(s);
    (used > 0 && used == s.len() && !overflow && (min..=max).contains(&v)).then_some(v)
}

/// C `atoi` (glibc: `(int) strtol(s, NULL, 10)`).
pub(super) fn atoi(s: &str) -> i32 {
    strtol10_prefix(s).0 as i32
}

/// `strtoul(s, &end, 0)` starting at a digit: value (None on overflow past
/// 32 bits, which inet_aton rejects anyway) and end index.
fn strtoul0(b: &[u8], mut i: usize) -> (Option<u64>, usize) {
    let (radix, digits_from) = if b[i] == b'0'
        && matches!(b.get(i + 1), Some(b'x' | b'X'))
        && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        (16, i + 2)
    } else if b[i] == b'0' {
        (8, i)
    } else {
        (10, i)
    };
    i = digits_from;
    let mut v: Option<u64> = Some(0);
    while let Some(d) = b.get(i).and_then(|&c| char::from(c).to_digit(radix)) {
        v = v
            .and_then(|x| x.checked_mul(u64::from(radix)))
            .and_then(|x| x.checked_add(u64::from(d)))
            .filter(|&x| x <= 0xffff_ffff);
        i += 1;
    }
    (v, i)
}

/// glibc `inet_aton`: `a`, `a.b`, `a.b.c` or `a.b.c.d`, each part decimal,
/// octal (`0` prefix) or hex (`0x`), the last part filling the remaining
/// bytes; trailing blanks (and anything after them) are ignored. Returns the
/// address as a host-order `u32`.
pub(super) fn inet_aton(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    let mut parts: [u32; 3] = [0; 3];
    let mut nparts = 0;
    let mut i = 0;
    let last = loop {
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let (v, end) = strtoul0(b, i);
        let v = u32::try_from(v?).ok()?;
        i = end;
        if b.get(i) == Some(&b'.') {
            if nparts > 2 || v > 0xff {
                return None;
            }
            parts[nparts] = v;
            nparts += 1;
            i += 1;
        } else {
            break v;
        }
    };
    if b.get(i).is_some_and(|&c| !is_c_space(c)) {
        return None;
    }
    let max = [0xffff_ffff, 0x00ff_ffff, 0xffff, 0xff][nparts];
    if last > max {
        return None;
    }
    let mut addr = last;
    for (k, p) in parts[..nparts].iter().enumerate() {
        addr |= p << (24 - 8 * k);
    }
    Some(addr)
}

/// `inet_aton`, else `gethostbyname` (first IPv4 address).
pub(super) fn host_or_dotted(host: &str) -> Option<Ipv4Addr> {
    if let Some(a) = inet_aton(host) {
        return Some(Ipv4Addr::from(a));
    }
    if host.is_empty() {
        return None;
    }
    names::host_v4(host)
}

/// A port: decimal `0..=65535`, else a service name of the protocol.
fn parse_port(text: &str, proto: Option<Proto>) -> Option<u16> {
    if let Some(n) = string_to_number(text, 0, 65535) {
        return u16::try_from(n).ok();
    }
    names::port_by_name(text, proto?.lower())
}

/// ipvsadm's `parse_service`: the address and, when given, the port.
///
/// * digits only (or empty): rejected;
/// * `[addr]:port`: the port is mandatory; if `addr` is not IPv6 the text
///   inside the brackets is parsed like an unbracketed IPv4 host[:port]
///   (so `[1.2.3.4]:80` has no port — ipvsadm's quirk, kept);
/// * a whole IPv6 literal: that address, no port;
/// * otherwise `host:port` split at the last `:`, host by `inet_aton` or
///   `gethostbyname`.
///
/// `proto` selects the `getservbyname` protocol (none: names fail).
pub(super) fn parse_service(buf: &str, proto: Option<Proto>) -> Option<(IpAddr, Option<u16>)> {
    if buf.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (text, bracket_port) = match buf.strip_prefix('[') {
        Some(inner) => {
            let (addr, after) = inner.split_once(']')?;
            (addr, Some(after.strip_prefix(':')?))
        }
        None => (buf, None),
    };
    let (addr, port_text) = match text.parse::<Ipv6Addr>() {
        Ok(v6) => (IpAddr::V6(v6), bracket_port),
        Err(_) => {
            let (host, port) = match text.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            };
            (IpAddr::V4(host_or_dotted(host)?), port)
        }
    };
    let port = match port_text {
        Some(p) => Some(parse_port(p, proto)?),
        None => None,
    };
    Some((addr, port))
}

/// `inet_pton(AF_INET6)` + multicast, or `inet_pton(AF_INET)` + multicast,
/// chosen by the presence of a `:` (as ipvsadm's `--mcast-group`).
pub(super) fn mcast_group(text: &str) -> Result<IpAddr, String> {
    if text.contains(':') {
        match text.parse::<Ipv6Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V6(a)),
            _ => Err(format!("invalid IPv6 mcast-group `{text}'")),
        }
    } else {
        match text.parse::<Ipv4Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V4(a)),
            _ => Err(format!("invalid IPv4 mcast-group `{text}'")),
        }
    }
}

/// The first `max` bytes of `s` (as C `strncpy` into a fixed buffer), cut
/// back to a character boundary.
pub(super) fn truncate_bytes(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_number_rules() {
        let n = |s| string_to_number(s, 0, 65535);
        assert_eq!(n("5"), Some(5));
        assert_eq!(n("+5"), Some(5));
        assert_eq!(n(" 5"), Some(5));
        assert_eq!(n("\t\n5"), Some(5));
        assert_eq!(n("-0"), Some(0));
        assert_eq!(n("007"), Some(7));
        assert_eq!(n("5 "), None);
        assert_eq!(n("5x"), None);
        assert_eq!(n(""), None);
        assert_eq!(n(" "), None);
        assert_eq!(n("+"), None);
        assert_eq!(n("-1"), None);
        assert_eq!(n("65536"), None);
        assert_eq!(n("0x10"), None);
        assert_eq!(n("99999999999999999999"), None);
        assert_eq!(
            string_to_number("-9223372036854775808", i64::MIN, 0),
            Some(i64::MIN)
        );
        assert_eq!(string_to_number("-9223372036854775809", i64::MIN, 0), None);
        assert_eq!(
            string_to_number("4294967295", 1, 4294967295),
            Some(4294967295)
        );
    }

    #[test]
    fn atoi_rules() {
        assert_eq!(atoi("64"), 64);
        assert_eq!(atoi(" 64abc"), 64);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi("-3"), -3);
        // strtol saturates at LONG_MAX, which is -1 as an int.
        assert_eq!(atoi("99999999999999999999"), -1);
    }

    #[test]
    fn inet_aton_forms() {
        let a = |s| inet_aton(s).map(Ipv4Addr::from);
        assert_eq!(a("10.0.0.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(a("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(a("10.1.2"), Some(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(a("167772161"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(a("0x0a.0.0.010"), Some(Ipv4Addr::new(10, 0, 0, 8)));
        assert_eq!(a("1.2.3.4 junk"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(a("10.1.65535"), Some(Ipv4Addr::new(10, 1, 255, 255)));
        assert_eq!(a("10.1.65536"), None);
        assert_eq!(a("256.1.1.1"), None);
        assert_eq!(a("1.2.3.4.5"), None);
        assert_eq!(a("1.2.3."), None);
        assert_eq!(a("08"), None);
        assert_eq!(a("0x"), None);
        assert_eq!(a(""), None);
        assert_eq!(a(" 1.2.3.4"), None);
        assert_eq!(a("1.2.3.4x"), None);
        assert_eq!(a("4294967296"), None);
    }

    #[test]
    fn service_forms() {
        let p = |s| parse_service(s, Some(Proto::Tcp));
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        assert_eq!(p("10.0.0.1:80"), Some((v4(10, 0, 0, 1), Some(80))));
        assert_eq!(p("10.0.0.1"), Some((v4(10, 0, 0, 1), None)));
        assert_eq!(p("10.1:80"), Some((v4(10, 0, 0, 1), Some(80))));
        assert_eq!(p("80"), None);
        assert_eq!(p(""), None);
        assert_eq!(p("10.0.0.1:"), None);
        assert_eq!(p("10.0.0.1:65536"), None);
        assert_eq!(p("10.0.0.1:+80"), Some((v4(10, 0, 0, 1), Some(80))));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(p("[2001:db8::1]:80"), Some((v6, Some(80))));
        assert_eq!(p("2001:db8::1"), Some((v6, None)));
        assert_eq!(p("[2001:db8::1]"), None);
        assert_eq!(p("[2001:db8::1]:"), None);
        assert_eq!(p("[2001:db8::1]x80"), None);
        assert_eq!(p("[2001:db8::1"), None);
        // ipvsadm quirk: a bracketed IPv4 address loses its port.
        assert_eq!(p("[1.2.3.4]:80"), Some((v4(1, 2, 3, 4), None)));
        // Service names need a protocol.
        assert_eq!(parse_service("1.2.3.4:http", None), None);
    }

    #[test]
    fn mcast_groups() {
        assert!(mcast_group("224.0.0.81").is_ok());
        assert!(mcast_group("ff02::1").is_ok());
        assert_eq!(
            mcast_group("10.0.0.1"),
            Err("invalid IPv4 mcast-group `10.0.0.1'".into())
        );
        assert_eq!(
            mcast_group("224.1"),
            Err("invalid IPv4 mcast-group `224.1'".into())
        );
        assert_eq!(
            mcast_group("2001:db8::1"),
            Err("invalid IPv6 mcast-group `2001:db8::1'".into())
        );
        // inet_pton rejects leading zeros, as Rust's parser does.
        assert!(mcast_group("224.0.0.081").is_err());
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate_bytes("0123456789abcdefXYZ", 15), "0123456789abcde");
        assert_eq!(truncate_bytes("rr", 15), "rr");
        assert_eq!(truncate_bytes("aaaaaaaaaaaaaaé", 15), "aaaaaaaaaaaaaa");
    }
}
