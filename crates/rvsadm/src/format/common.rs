//! Building blocks shared by the formats: C-style field padding and cuts,
//! `inet_ntop`, ipvsadm's address:port text and service name column,
//! `print_largenum` and `print_sched_flags`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_proto::{
    DestInfo, Proto, Rates, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3, ServiceId, ServiceSpec,
    Stats, TUN_F_CSUM, TUN_F_REMCSUM, TunnelSpec,
};

use super::Resolver;

/// Scheduler flag bits (`IP_VS_SVC_F_SCHED1|2|3`).
pub(super) const SCHED_FLAGS: u32 = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3;

/// `printf("%-*s", w, s)`: pad on the right to `w` bytes; never cuts.
pub(super) fn ljust(out: &mut String, s: &str, w: usize) {
    out.push_str(s);
    for _ in s.len()..w {
        out.push(' ');
    }
}

/// `printf("%*s", w, s)`: pad on the left to `w` bytes; never cuts.
pub(super) fn rjust(out: &mut String, s: &str, w: usize) {
    for _ in s.len()..w {
        out.push(' ');
    }
    out.push_str(s);
}

/// `buf[n] = '\0'`: cut to at most `n` bytes. C cuts bytes; a cut inside a
/// multi-byte UTF-8 character (possible only for non-ASCII host names)
/// backs off to the character's start so the result stays valid text.
pub(super) fn cut(s: &mut String, n: usize) {
    if s.len() > n {
        let mut i = n;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
}

/// glibc `inet_ntop(AF_INET6)`: RFC 5952-style compression (first longest
/// run of two or more zero words), lower-case hex, and the dotted forms
/// `::a.b.c.d` / `::ffff:a.b.c.d` exactly where glibc uses them.
pub(super) fn ntop6(a: Ipv6Addr) -> String {
    let w = a.segments();
    let (mut best_base, mut best_len) = (usize::MAX, 0usize);
    let (mut cur_base, mut cur_len) = (usize::MAX, 0usize);
    for (i, &word) in w.iter().enumerate() {
        if word == 0 {
            if cur_base == usize::MAX {
                (cur_base, cur_len) = (i, 1);
            } else {
                cur_len += 1;
            }
        } else if cur_base != usize::MAX {
            if best_base == usize::MAX || cur_len > best_len {
                (best_base, best_len) = (cur_base, cur_len);
            }
            cur_base = usize::MAX;
        }
    }
    if cur_base != usize::MAX && (best_base == usize::MAX || cur_len > best_len) {
        (best_base, best_len) = (cur_base, cur_len);
    }
    if best_base != usize::MAX && best_len < 2 {
        best_base = usize::MAX;
    }
    let in_best = |i: usize| best_base != usize::MAX && i >= best_base && i < best_base + best_len;
    let mut out = String::with_capacity(40);
    for i in 0..8 {
        if in_best(i) {
            if i == best_base {
                out.push(':');
            }
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
            let o = a.octets();
            out.push_str(&Ipv4Addr::new(o[12], o[13], o[14], o[15]).to_string());
            break;
        }
        out.push_str(&format!("{:x}", w[i]));
    }
    if best_base != usize::MAX && best_base + best_len == 8 {
        out.push(':');
    }
    out
}

/// `inet_ntop` for either family.
pub(super) fn ntop(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => ntop6(v6),
    }
}

/// The kernel's `%pI6`: eight zero-padded lower-case groups.
pub(super) fn full6(a: Ipv6Addr) -> String {
    let w = a.segments();
    format!(
        "{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}",
        w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
    )
}

/// ipvsadm's `addrport_to_anyname`: `host:port` (IPv6 `[host]:port`), the
/// host by reverse look-up else numeric, the port by `getservbyport` with
/// `proto` (`None` = protocol 0, never resolved) else decimal; at most 59
/// bytes (60-byte buffer).
pub(super) fn addrport(addr: IpAddr, port: u16, proto: Option<&str>, r: &dyn Resolver) -> String {
    let host = r.host(addr).unwrap_or_else(|| ntop(addr));
    let port = proto
        .and_then(|p| r.service(port, p))
        .unwrap_or_else(|| port.to_string());
    let mut s = match addr {
        IpAddr::V4(_) => format!("{host}:{port}"),
        IpAddr::V6(_) => format!("[{host}]:{port}"),
    };
    cut(&mut s, 59);
    s
}

/// The protocol a service has inside ipvsadm: fwmark services are created
/// with `IPPROTO_TCP` ("a sane value, even though it is not used") — which
/// makes their destinations' ports resolve as TCP names.
pub(super) fn svc_proto(spec: &ServiceSpec) -> Proto {
    match spec.id {
        ServiceId::Addr { proto, .. } => proto,
        ServiceId::Fwmark { .. } => Proto::Tcp,
    }
}

/// The service name column of the listings: `"%-4s %s"` (cut to 33 bytes
/// for IPv4), `"FWM  %u"` or `"FWM  %u IPv6"`.
pub(super) fn service_name(spec: &ServiceSpec, r: &dyn Resolver) -> String {
    match spec.id {
        ServiceId::Fwmark { v6: false, mark } => format!("FWM  {mark}"),
        ServiceId::Fwmark { v6: true, mark } => format!("FWM  {mark} IPv6"),
        ServiceId::Addr { proto, addr, port } => {
            let mut s = String::new();
            ljust(&mut s, proto.name(), 4);
            s.push(' ');
            s.push_str(&addrport(addr, port, Some(proto.lower()), r));
            if addr.is_ipv4() {
                cut(&mut s, 33);
            }
            s
        }
    }
}

/// The service as `-S` writes it: `-t|-u|--sctp-service addr:port`,
/// `-f mark` or `-f mark -6` (never cut).
pub(super) fn service_rule(spec: &ServiceSpec, r: &dyn Resolver) -> String {
    match spec.id {
        ServiceId::Fwmark { v6: false, mark } => format!("-f {mark}"),
        ServiceId::Fwmark { v6: true, mark } => format!("-f {mark} -6"),
        ServiceId::Addr { proto, addr, port } => {
            let opt = match proto {
                Proto::Tcp => "-t",
                Proto::Udp => "-u",
                Proto::Sctp => "--sctp-service",
            };
            format!("{opt} {}", addrport(addr, port, Some(proto.lower()), r))
        }
    }
}

/// A destination's address:port text (cut to 28 bytes for IPv4 unless
/// `rule`).
pub(super) fn dest_name(spec: &ServiceSpec, d: &DestInfo, rule: bool, r: &dyn Resolver) -> String {
    let mut s = addrport(d.spec.addr, d.spec.port, Some(svc_proto(spec).lower()), r);
    if !rule && d.spec.addr.is_ipv4() {
        cut(&mut s, 28);
    }
    s
}

/// Whether the service is IPv6 (`af == AF_INET6`).
pub(super) fn is_v6(spec: &ServiceSpec) -> bool {
    spec.id.is_v6()
}

/// The netmask as printed after `mask` / `-M`, if it is not the full one:
/// dotted quad for IPv4 (≠ 255.255.255.255), `%i` of the prefix for IPv6
/// (≠ 128).
pub(super) fn netmask_text(spec: &ServiceSpec) -> Option<String> {
    if is_v6(spec) {
        (spec.netmask != 128).then(|| (spec.netmask as i32).to_string())
    } else {
        (spec.netmask != 0xffff_ffff).then(|| Ipv4Addr::from(spec.netmask).to_string())
    }
}

/// The persistence engine name, if set (`pe_name[0] != '\0'`).
pub(super) fn pe_name(spec: &ServiceSpec) -> Option<&str> {
    spec.pe.as_deref().filter(|p| !p.is_empty())
}

/// `print_sched_flags`: `None` if no scheduler flag bit is set, else the
/// text (possibly empty, e.g. `sh` with only bit 0x20).
pub(super) fn sched_flags(spec: &ServiceSpec) -> Option<String> {
    if spec.flags & SCHED_FLAGS == 0 {
        return None;
    }
    let names: [(u32, &str); 3] = match spec.scheduler.as_str() {
        "sh" => [
            (SVC_F_SCHED1, "sh-fallback"),
            (SVC_F_SCHED2, "sh-port"),
            (0, ""),
        ],
        "mh" => [
            (SVC_F_SCHED1, "mh-fallback"),
            (SVC_F_SCHED2, "mh-port"),
            (0, ""),
        ],
        _ => [
            (SVC_F_SCHED1, "flag-1"),
            (SVC_F_SCHED2, "flag-2"),
            (SVC_F_SCHED3, "flag-3"),
        ],
    };
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| spec.flags & bit != 0)
        .map(|&(_, n)| n)
        .collect();
    Some(set.join(","))
}

/// ipvsadm's `print_largenum`: a 9-byte field (`%9llu`, or `%8llu` plus a
/// K/M/G/T suffix after integer division); with `exact` (`--exact`) the
/// plain number, width 9 or digits + 1.
pub fn print_largenum(n: u64, exact: bool) -> String {
    if exact {
        let digits = n.to_string();
        let w = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        return format!("{n:>w$}");
    }
    if n < 100_000_000 {
        format!("{n:>9}")
    } else if n < 1_000_000_000 {
        format!("{:>8}K", n / 1_000)
    } else if n < 100_000_000_000 {
        format!("{:>8}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        format!("{:>8}G", n / 1_000_000_000)
    } else {
        format!("{:>8}T", n / 1_000_000_000_000)
    }
}

/// A destination's counters and rates as ipvsadm 1.31 sees them: libipvs
/// decodes the dest's `STATS64` nest with `nla_get_u32` for everything but
/// the byte counters, so on little-endian hosts connections, packets and
/// all five rates keep only their low 32 bits.
pub(super) fn dest_counters(d: &DestInfo) -> (Stats, Rates) {
    let low = |v: u64| v & 0xffff_ffff;
    let s = d.stats;
    let r = d.rates;
    (
        Stats {
            conns: low(s.conns),
            inpkts: low(s.inpkts),
            outpkts: low(s.outpkts),
            inbytes: s.inbytes,
            outbytes: s.outbytes,
        },
        Rates {
            cps: low(r.cps),
            inpps: low(r.inpps),
            outpps: low(r.outpps),
            inbps: low(r.inbps),
            outbps: low(r.outbps),
        },
    )
}

/// Index into ipvsadm's `tunflags` / `tun_flags_opts` tables (0 nocsum,
/// 1 csum, 2 remcsum). ipvsadm indexes with the raw flags; values other
/// than 0, 1, 2 cannot be set with ipvsadm (the options are exclusive) and
/// would index out of bounds there — here remcsum wins over csum.
pub(super) fn tun_flag_index(t: &TunnelSpec) -> usize {
    if t.flags & TUN_F_REMCSUM != 0 {
        2
    } else if t.flags & TUN_F_CSUM != 0 {
        1
    } else {
        0
    }
}

/// `tunflags[]`: the checksum mode as `--tun-info` shows it.
pub(super) const TUN_FLAGS: [&str; 3] = ["-c", "+c", "r+c"];

/// `tun_flags_opts[]`: the checksum mode as `-S` writes it.
pub(super) const TUN_FLAG_OPTS: [&str; 3] = ["--tun-nocsum", "--tun-csum", "--tun-remcsum"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_ntop6_matches_glibc() {
        // Expected values printed by glibc 2.36's inet_ntop.
        let cases = [
            ("::", "::"),
            ("::1", "::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
            ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
            ("2001:0:0:1:0:0:1:1", "2001::1:0:0:1:1"),
            ("2001:db8:1:2:3:4:5:0", "2001:db8:1:2:3:4:5:0"),
            ("2001:db8::", "2001:db8::"),
            ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
            ("::10.0.0.1", "::10.0.0.1"),
            ("::1:0", "::0.1.0.0"),
            ("fe80::1:2", "fe80::1:2"),
            ("1:0:0:2::3", "1:0:0:2::3"),
            ("::ffff:0:1", "::ffff:0.0.0.1"),
            ("0:0:0:0:0:ffff:0:0", "::ffff:0.0.0.0"),
        ];
        for (input, want) in cases {
            let a: Ipv6Addr = input.parse().unwrap();
            assert_eq!(ntop6(a), want, "{input}");
        }
    }

    #[test]
    fn format_full6_is_kernel_pi6() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(full6(a), "2001:0db8:0000:0000:0000:0000:0000:0001");
    }

    #[test]
    fn format_cut_and_pad() {
        let mut s = String::from("abcdef");
        cut(&mut s, 3);
        assert_eq!(s, "abc");
        let mut s = String::from("ab\u{e9}");
        cut(&mut s, 3);
        assert_eq!(s, "ab");
        let mut o = String::new();
        ljust(&mut o, "ab", 4);
        rjust(&mut o, "cd", 4);
        ljust(&mut o, "toolong", 2);
        assert_eq!(o, "ab    cdtoolong");
    }
}
