//! Property: any valid `-A` / `-a` option set, parsed, rendered back in the
//! `-S` (save) format and parsed again, gives the same operation.
//!
//! The renderer below is a small local copy of ipvsadm's rule format
//! (`print_service_entry` with `FMT_RULE | FMT_NUMERIC`), extended with
//! `-x`/`-y` (which `-S` does not print) so thresholds are covered too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use rvs_proto::{
    DestSpec, Fwd, Op, Proto, SVC_F_ONEPACKET, SVC_F_PERSISTENT, SVC_F_SCHED1, SVC_F_SCHED2,
    SVC_F_SCHED3, ServiceId, ServiceSpec, TunKind,
};
use rvsadm::cli::{Command, parse_args};

fn addrport(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn render_service_id(id: &ServiceId) -> String {
    match *id {
        ServiceId::Fwmark { v6: false, mark } => format!("-f {mark}"),
        ServiceId::Fwmark { v6: true, mark } => format!("-f {mark} -6"),
        ServiceId::Addr { proto, addr, port } => {
            let opt = match proto {
                Proto::Tcp => "-t",
                Proto::Udp => "-u",
                Proto::Sctp => "--sctp-service",
            };
            format!("{opt} {}", addrport(addr, port))
        }
    }
}

fn render_sched_flags(s: &ServiceSpec) -> String {
    let names: [(u32, &str); 3] = match s.scheduler.as_str() {
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
    names
        .iter()
        .filter(|(bit, _)| s.flags & bit != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// `-A` line as `ipvsadm -S -n` prints it.
fn render_service(s: &ServiceSpec) -> String {
    let mut line = format!("-A {} -s {}", render_service_id(&s.id), s.scheduler);
    if s.flags & SVC_F_PERSISTENT != 0 {
        line.push_str(&format!(" -p {}", s.timeout));
        if s.id.is_v6() {
            if s.netmask != 128 {
                line.push_str(&format!(" -M {}", s.netmask));
            }
        } else if s.netmask != 0xffff_ffff {
            line.push_str(&format!(" -M {}", Ipv4Addr::from(s.netmask)));
        }
    }
    if let Some(pe) = &s.pe {
        line.push_str(&format!(" --pe {pe}"));
    }
    if s.flags & SVC_F_ONEPACKET != 0 {
        line.push_str(" -o");
    }
    if s.flags & (SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3) != 0 {
        line.push_str(&format!(" -b {}", render_sched_flags(s)));
    }
    line
}

/// `-a` line as `ipvsadm -S -n` prints it, plus `-x`/`-y`.
fn render_dest(id: &ServiceId, d: &DestSpec) -> String {
    let switch = match d.fwd {
        Fwd::Masq => "-m",
        Fwd::Tunnel => "-i",
        Fwd::Route | Fwd::Local => "-g",
    };
    let mut line = format!(
        "-a {} -r {} {switch} -w {}",
        render_service_id(id),
        addrport(d.addr, d.port),
        d.weight
    );
    if d.fwd == Fwd::Tunnel {
        let csum = ["--tun-nocsum", "--tun-csum", "--tun-remcsum"][usize::from(d.tunnel.flags)];
        match d.tunnel.kind {
            TunKind::Ipip => line.push_str(" --tun-type ipip"),
            TunKind::Gue => line.push_str(&format!(
                " --tun-type gue --tun-port {} {csum}",
                d.tunnel.port
            )),
            TunKind::Gre => line.push_str(&format!(" --tun-type gre {csum}")),
        }
    }
    if d.u_threshold != 0 {
        line.push_str(&format!(" -x {}", d.u_threshold));
    }
    if d.l_threshold != 0 {
        line.push_str(&format!(" -y {}", d.l_threshold));
    }
    line
}

fn render(op: &Op) -> String {
    match op {
        Op::AddService(s) => render_service(s),
        Op::AddDest { service, dest } => render_dest(service, dest),
        other => panic!("not rendered: {other:?}"),
    }
}

fn parse_op(args: &[String]) -> Result<Op, String> {
    match parse_args("ipvsadm", args) {
        Ok(Command::Apply(op)) => Ok(op),
        Ok(other) => Err(format!("not an operation: {other:?}")),
        Err(e) => Err(e.render("ipvsadm")),
    }
}

/// A virtual service's identity, as option words.
#[derive(Debug, Clone)]
struct Svc {
    /// 0 tcp, 1 udp, 2 sctp, 3 fwmark.
    kind: u8,
    v6: bool,
    words: Vec<String>,
}

fn any_v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn any_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn svc_strategy(port_zero_ok: bool) -> impl Strategy<Value = Svc> {
    let port = if port_zero_ok {
        0..=65535u16
    } else {
        1..=65535u16
    };
    (
        0u8..4,
        any::<bool>(),
        any_v4(),
        any_v6(),
        port,
        1..=u32::MAX,
    )
        .prop_map(|(kind, v6, a4, a6, port, mark)| {
            let words = if kind == 3 {
                let mut w = vec!["-f".to_string(), mark.to_string()];
                if v6 {
                    w.push("-6".into());
                }
                w
            } else {
                let opt = ["-t", "-u", "--sctp-service"][usize::from(kind)];
                let text = if v6 {
                    format!("[{a6}]:{port}")
                } else {
                    format!("{a4}:{port}")
                };
                vec![opt.to_string(), text]
            };
            Svc { kind, v6, words }
        })
}

const SCHEDULERS: [&str; 7] = ["rr", "wrr", "lc", "wlc", "sh", "mh", "sed"];

/// A valid `-A` command line, options in random order.
fn add_service_line() -> impl Strategy<Value = Vec<String>> {
    (
        svc_strategy(true),
        proptest::option::of(0usize..SCHEDULERS.len()),
        proptest::option::of(proptest::option::of(1u32..=2_678_400)),
        proptest::option::of(0u32..=128),
        any::<bool>(),
        any::<bool>(),
        0u32..8,
    )
        .prop_filter("port 0 needs -p", |(svc, _, persistent, ..)| {
            persistent.is_some() || svc.kind == 3 || !svc.words[1].ends_with(":0")
        })
        .prop_flat_map(|(svc, sched, persistent, mask, pe, ops, flag_bits)| {
            let mut groups: Vec<Vec<String>> = vec![svc.words.clone()];
            let sched_name = sched.map(|i| SCHEDULERS[i]);
            if let Some(s) = sched_name {
                groups.push(vec!["-s".into(), s.into()]);
            }
            if let Some(timeout) = persistent {
                let mut g = vec!["-p".to_string()];
                if let Some(t) = timeout {
                    g.push(t.to_string());
                }
                groups.push(g);
                // The save format prints -M only for persistent services.
                if let Some(m) = mask {
                    let text = if svc.v6 {
                        m.max(1).to_string()
                    } else {
                        let bits = m.min(32);
                        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                        Ipv4Addr::from(mask).to_string()
                    };
                    // -M must follow the address for IPv6 (else it is read
                    // as IPv4 and overridden): keep it with the service.
                    if svc.v6 {
                        groups[0].extend(["-M".to_string(), text]);
                    } else {
                        groups.push(vec!["-M".into(), text]);
                    }
                }
            }
            if pe {
                groups.push(vec!["--pe".into(), "sip".into()]);
            }
            if ops && (svc.kind == 1 || svc.kind == 3) {
                groups.push(vec!["-o".into()]);
            }
            let names: &[&str] = match sched_name {
                Some("sh") => &["sh-fallback", "sh-port"],
                Some("mh") => &["mh-fallback", "mh-port"],
                _ => &["flag-1", "flag-2", "flag-3"],
            };
            let flags: Vec<&str> = names
                .iter()
                .enumerate()
                .filter(|(i, _)| flag_bits & (1 << i) != 0)
                .map(|(_, n)| *n)
                .collect();
            if !flags.is_empty() {
                groups.push(vec!["-b".into(), flags.join(",")]);
            }
            Just(groups).prop_shuffle()
        })
        .prop_map(|groups| {
            let mut args = vec!["-A".to_string()];
            args.extend(groups.into_iter().flatten());
            args
        })
}

/// A valid `-a` command line, options in random order.
fn add_dest_line() -> impl Strategy<Value = Vec<String>> {
    (
        svc_strategy(true),
        any::<bool>(),
        any_v4(),
        any_v6(),
        proptest::option::of(any::<u16>()),
        proptest::option::of(0u8..3),
        proptest::option::of(0u32..=65535),
        proptest::option::of(0u32..=i32::MAX as u32),
        proptest::option::of(0u32..=i32::MAX as u32),
        (
            proptest::option::of(0u8..3),
            1u16..=65535,
            proptest::option::of(0u8..3),
        ),
    )
        .prop_flat_map(
            |(svc, dest_v6, a4, a6, dport, fwd, weight, x, y, (tun_type, tun_port, csum))| {
                // Mixed families need tunnelling.
                let fwd = if dest_v6 != svc.v6 { Some(1) } else { fwd };
                let addr = if dest_v6 {
                    match dport {
                        Some(p) => format!("[{a6}]:{p}"),
                        None => a6.to_string(),
                    }
                } else {
                    match dport {
                        Some(p) => format!("{a4}:{p}"),
                        None => a4.to_string(),
                    }
                };
                let mut groups: Vec<Vec<String>> = vec![svc.words.clone()];
                // Without a port, -r copies the service port known so far:
                // keep it after the service.
                if dport.is_none() {
                    groups[0].extend(["-r".to_string(), addr]);
                } else {
                    groups.push(vec!["-r".into(), addr]);
                }
                if let Some(f) = fwd {
                    groups.push(vec![["-g", "-i", "-m"][usize::from(f)].to_string()]);
                }
                if let Some(w) = weight {
                    groups.push(vec!["-w".into(), w.to_string()]);
                }
                if let Some(x) = x {
                    groups.push(vec!["-x".into(), x.to_string()]);
                }
                if let Some(y) = y {
                    groups.push(vec!["-y".into(), y.to_string()]);
                }
                if let (Some(1), Some(t)) = (fwd, tun_type) {
                    groups.push(vec![
                        "--tun-type".into(),
                        ["ipip", "gue", "gre"][usize::from(t)].into(),
                    ]);
                    let allowed: &[&str] = match t {
                        1 => &["--tun-nocsum", "--tun-csum", "--tun-remcsum"],
                        2 => &["--tun-nocsum", "--tun-csum"],
                        _ => &[],
                    };
                    if t == 1 {
                        groups.push(vec!["--tun-port".into(), tun_port.to_string()]);
                    }
                    if let Some(c) = csum.and_then(|c| allowed.get(usize::from(c))) {
                        groups.push(vec![(*c).to_string()]);
                    }
                }
                Just(groups).prop_shuffle()
            },
        )
        .prop_map(|groups| {
            let mut args = vec!["-a".to_string()];
            args.extend(groups.into_iter().flatten());
            args
        })
}

fn words(line: &str) -> Vec<String> {
    line.split(' ').map(str::to_string).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cli_roundtrip_add_service(args in add_service_line()) {
        let first = parse_op(&args).map_err(|e| TestCaseError::fail(format!("{args:?}: {e}")))?;
        prop_assert!(matches!(first, Op::AddService(_)), "not an -A operation");
        let line = render(&first);
        let again = parse_op(&words(&line)).map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
        prop_assert_eq!(first, again, "{:?} -> {}", args, line);
    }

    #[test]
    fn cli_roundtrip_add_dest(args in add_dest_line()) {
        let first = parse_op(&args).map_err(|e| TestCaseError::fail(format!("{args:?}: {e}")))?;
        prop_assert!(matches!(first, Op::AddDest { .. }), "not an -a operation");
        let line = render(&first);
        let again = parse_op(&words(&line)).map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
        prop_assert_eq!(first, again, "{:?} -> {}", args, line);
    }
}

/// A fixed example, to show the renderer's output.
#[test]
fn cli_roundtrip_example() {
    let args = words("-A -u [2001:db8::1]:53 -M 64 -p -s sh -b sh-port -o --pe sip");
    let op = parse_op(&args).unwrap();
    assert_eq!(
        render(&op),
        "-A -u [2001:db8::1]:53 -s sh -p 360 -M 64 --pe sip -o -b sh-port"
    );
    let args = words("-a -f 5 -r 10.0.0.9 -i --tun-type gue --tun-port 6080 --tun-remcsum -x 9");
    let op = parse_op(&args).unwrap();
    assert_eq!(
        render(&op),
        "-a -f 5 -r 10.0.0.9:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum -x 9"
    );
    assert_eq!(parse_op(&words(&render(&op))).unwrap(), op);
}
