//! `-L` in all its forms, `-S`, `--timeout` and `--daemon` (ipvsadm's
//! `list_all`, `list_service`, `print_title`, `print_service_entry`,
//! `list_timeout`, `list_daemon`).

use std::fmt::Write as _;

use rvs_proto::{
    DaemonInfo, DaemonRole, DestInfo, Fwd, SVC_F_ONEPACKET, SVC_F_PERSISTENT, ServiceInfo, TunKind,
};

use super::common::{
    TUN_FLAG_OPTS, TUN_FLAGS, dest_counters, dest_name, ljust, netmask_text, ntop, pe_name,
    print_largenum, sched_flags, service_name, service_rule, tun_flag_index,
};
use super::{ListFlags, Numeric, Resolver, sort};

/// Which listing: the first of stats > rate > thresholds > persistent-conn
/// > tun-info that is set, else the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    TunInfo,
    Default,
}

impl Form {
    fn of(f: &ListFlags) -> Form {
        if f.stats {
            Form::Stats
        } else if f.rate {
            Form::Rate
        } else if f.thresholds {
            Form::Thresholds
        } else if f.persistent_conn {
            Form::PersistentConn
        } else if f.tun_info {
            Form::TunInfo
        } else {
            Form::Default
        }
    }
}

/// `print_title`.
fn title(out: &mut String, form: Form) {
    let two_line = |out: &mut String, cols: &[&str], w: usize, left: bool| {
        ljust(out, "Prot LocalAddress:Port", 33);
        for c in cols {
            out.push(' ');
            if left {
                ljust(out, c, w);
            } else {
                super::common::rjust(out, c, w);
            }
        }
        out.push_str("\n  -> RemoteAddress:Port\n");
    };
    match form {
        Form::Stats => two_line(
            out,
            &["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"],
            8,
            false,
        ),
        Form::Rate => two_line(
            out,
            &["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"],
            8,
            false,
        ),
        Form::Thresholds => two_line(
            out,
            &["Uthreshold", "Lthreshold", "ActiveConn", "InActConn"],
            10,
            true,
        ),
        Form::PersistentConn => {
            // "%-33s %-9s %-11s %-10s %-10s\n"
            ljust(out, "Prot LocalAddress:Port", 33);
            out.push(' ');
            ljust(out, "Weight", 9);
            out.push(' ');
            ljust(out, "PersistConn", 11);
            out.push(' ');
            ljust(out, "ActiveConn", 10);
            out.push(' ');
            ljust(out, "InActConn", 10);
            out.push_str("\n  -> RemoteAddress:Port\n");
        }
        Form::TunInfo => out.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n",
        ),
        Form::Default => out.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        ),
    }
}

/// The service line of the default, thresholds, persistent-conn and
/// tun-info forms: name, scheduler, ` (flags)`, ` persistent T [mask M]
/// [pe P]`, ` ops`.
fn service_line(out: &mut String, s: &ServiceInfo, r: &dyn Resolver) {
    let spec = &s.spec;
    let _ = write!(out, "{} {}", service_name(spec, r), spec.scheduler);
    if let Some(flags) = sched_flags(spec) {
        let _ = write!(out, " ({flags})");
    }
    if spec.flags & SVC_F_PERSISTENT != 0 {
        let _ = write!(out, " persistent {}", spec.timeout);
        if let Some(mask) = netmask_text(spec) {
            let _ = write!(out, " mask {mask}");
        }
        if let Some(pe) = pe_name(spec) {
            let _ = write!(out, " pe {pe}");
        }
    }
    if spec.flags & SVC_F_ONEPACKET != 0 {
        out.push_str(" ops");
    }
    out.push('\n');
}

/// `fwd_tun_info`: `ipip`, `gue:<port>:<csum>`, `gre:<csum>`, or `n/a` for
/// a destination that does not tunnel.
fn tun_info(d: &DestInfo) -> String {
    if d.spec.fwd != Fwd::Tunnel {
        return "n/a".into();
    }
    let t = &d.spec.tunnel;
    match t.kind {
        TunKind::Ipip => "ipip".into(),
        TunKind::Gue => format!("gue:{}:{}", t.port, TUN_FLAGS[tun_flag_index(t)]),
        TunKind::Gre => format!("gre:{}", TUN_FLAGS[tun_flag_index(t)]),
    }
}

/// `print_service_entry` for the listing forms.
fn service_entry(out: &mut String, s: &ServiceInfo, f: &ListFlags, r: &dyn Resolver) {
    let form = Form::of(f);
    match form {
        Form::Stats | Form::Rate => {
            ljust(out, &service_name(&s.spec, r), 33);
            let v = if form == Form::Stats {
                let t = &s.stats;
                [t.conns, t.inpkts, t.outpkts, t.inbytes, t.outbytes]
            } else {
                let t = &s.rates;
                [t.cps, t.inpps, t.outpps, t.inbps, t.outbps]
            };
            for n in v {
                out.push_str(&print_largenum(n, f.exact));
            }
            out.push('\n');
        }
        _ => service_line(out, s, r),
    }
    for d in sort::dests(s, f.nosort) {
        let name = dest_name(&s.spec, d, false, r);
        out.push_str("  -> ");
        ljust(out, &name, 28);
        let weight = d.spec.weight as i32;
        match form {
            Form::Stats => {
                let (st, _) = dest_counters(d);
                for n in [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes] {
                    out.push_str(&print_largenum(n, f.exact));
                }
                out.push('\n');
            }
            Form::Rate => {
                let (_, rt) = dest_counters(d);
                let _ = write!(out, " {:>8} {:>8} {:>8}", rt.cps, rt.inpps, rt.outpps);
                out.push_str(&print_largenum(rt.inbps, f.exact));
                out.push_str(&print_largenum(rt.outbps, f.exact));
                out.push('\n');
            }
            Form::Thresholds => {
                let _ = writeln!(
                    out,
                    " {:<10} {:<10} {:<10} {:<10}",
                    d.spec.u_threshold, d.spec.l_threshold, d.active, d.inactive
                );
            }
            Form::PersistentConn => {
                let _ = writeln!(
                    out,
                    " {:<9} {:<11} {:<10} {:<10}",
                    d.spec.weight, d.persist, d.active, d.inactive
                );
            }
            Form::TunInfo => {
                let _ = writeln!(
                    out,
                    " {:<7} {:<13} {:<6} {:<10} {:<10}",
                    d.spec.fwd.name(),
                    tun_info(d),
                    weight,
                    d.active,
                    d.inactive
                );
            }
            Form::Default => {
                let _ = writeln!(
                    out,
                    " {:<7} {:<6} {:<10} {:<10}",
                    d.spec.fwd.name(),
                    weight,
                    d.active,
                    d.inactive
                );
            }
        }
    }
}

/// `ipvsadm -L` (all services): the version header, the title of the
/// chosen form, then every service with its destinations.
///
/// `version` is `IP_VS_VERSION_CODE` (printed as `%d.%d.%d`),
/// `conn_tab_size` the connection table size. Services are sorted like
/// ipvsadm unless `f.nosort` (then the slice order is kept: the daemon's
/// order). With `f.numeric` the resolver `r` is not used.
pub fn list_all(
    version: u32,
    conn_tab_size: u32,
    services: &[ServiceInfo],
    f: &ListFlags,
    r: &dyn Resolver,
) -> String {
    let r: &dyn Resolver = if f.numeric { &Numeric } else { r };
    let mut out = format!(
        "IP Virtual Server version {}.{}.{} (size={})\n",
        (version >> 16) & 0xff,
        (version >> 8) & 0xff,
        version & 0xff,
        conn_tab_size as i32
    );
    title(&mut out, Form::of(f));
    for s in sort::services(services, f.nosort) {
        service_entry(&mut out, s, f, r);
    }
    out
}

/// `ipvsadm -L -t|-u|--sctp-service|-f …` (one service): the title and the
/// service, no version header.
pub fn list_one(service: &ServiceInfo, f: &ListFlags, r: &dyn Resolver) -> String {
    let r: &dyn Resolver = if f.numeric { &Numeric } else { r };
    let mut out = String::new();
    title(&mut out, Form::of(f));
    service_entry(&mut out, service, f, r);
    out
}

/// `ipvsadm -S` / `-S -n`: the table as `-A` / `-a` rules, sorted like
/// `-L`. Thresholds are not saved (as in ipvsadm); tunnel destinations are
/// saved with `--tun-type` (plain `-i` ones as `--tun-type ipip`).
pub fn save(services: &[ServiceInfo], numeric: bool, r: &dyn Resolver) -> String {
    let r: &dyn Resolver = if numeric { &Numeric } else { r };
    let mut out = String::new();
    for s in sort::services(services, false) {
        let spec = &s.spec;
        let svc = service_rule(spec, r);
        let _ = write!(out, "-A {svc} -s {}", spec.scheduler);
        if spec.flags & SVC_F_PERSISTENT != 0 {
            let _ = write!(out, " -p {}", spec.timeout);
            if let Some(mask) = netmask_text(spec) {
                let _ = write!(out, " -M {mask}");
            }
        }
        if let Some(pe) = pe_name(spec) {
            let _ = write!(out, " --pe {pe}");
        }
        if spec.flags & SVC_F_ONEPACKET != 0 {
            out.push_str(" -o");
        }
        if let Some(flags) = sched_flags(spec) {
            let _ = write!(out, " -b {flags}");
        }
        out.push('\n');
        for d in sort::dests(s, false) {
            let dname = dest_name(spec, d, true, r);
            let _ = write!(
                out,
                "-a {svc} -r {dname} {} -w {}",
                d.spec.fwd.switch(),
                d.spec.weight as i32
            );
            if d.spec.fwd == Fwd::Tunnel {
                let t = &d.spec.tunnel;
                let _ = write!(out, " --tun-type {}", t.kind.name());
                match t.kind {
                    TunKind::Ipip => {}
                    TunKind::Gue => {
                        let _ = write!(
                            out,
                            " --tun-port {} {}",
                            t.port,
                            TUN_FLAG_OPTS[tun_flag_index(t)]
                        );
                    }
                    TunKind::Gre => {
                        let _ = write!(out, " {}", TUN_FLAG_OPTS[tun_flag_index(t)]);
                    }
                }
            }
            out.push('\n');
        }
    }
    out
}

/// `ipvsadm -L --timeout`.
pub fn timeouts(tcp: u32, tcpfin: u32, udp: u32) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        tcp as i32, tcpfin as i32, udp as i32
    )
}

/// `ipvsadm -L --daemon`: one line per running daemon, in the order given
/// (the daemon reports master first, as the kernel does). `maxlen`, `port`
/// and `ttl` are shown when non-zero, the group when known.
pub fn daemons(d: &[DaemonInfo]) -> String {
    let mut out = String::new();
    for info in d {
        let s = &info.spec;
        let role = match s.role {
            DaemonRole::Master => "master",
            DaemonRole::Backup => "backup",
        };
        let _ = write!(
            out,
            "{role} sync daemon (mcast={}, syncid={}",
            s.mcast_ifn, s.syncid as i32
        );
        if s.maxlen != 0 {
            let _ = write!(out, ", maxlen={}", s.maxlen);
        }
        if let Some(g) = s.group {
            let _ = write!(out, ", group={}", ntop(g));
        }
        if s.port != 0 {
            let _ = write!(out, ", port={}", s.port);
        }
        if s.ttl != 0 {
            let _ = write!(out, ", ttl={}", s.ttl);
        }
        out.push_str(")\n");
    }
    out
}
