// SPDX-License-Identifier: GPL-2.0-or-later
//! The `virtual_server`, `virtual_server_group` and `real_server` blocks.

use std::net::IpAddr;

use rvs_proto::{Fwd, Proto, SVC_F_ONEPACKET, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3};

use super::*;
use crate::keepalived::lex::{ConfError, Node, Pos, err_at};

/// `virtual_server_group NAME { … }` members.
pub(super) fn group_members(n: &Node) -> Result<Vec<GroupMember>, ConfError> {
    let mut out = Vec::new();
    for m in block(n)? {
        if m.key == "fwmark" {
            let mark = match m.args.first() {
                Some(v) => v.parse::<u32>().ok().filter(|&x| x > 0),
                None => None,
            };
            let mark = mark.ok_or_else(|| err_at(&m.pos, "fwmark needs a mark 1..=4294967295"))?;
            out.push(GroupMember::Fwmark(mark));
            continue;
        }
        let port = match m.args.first() {
            Some(p) => port(&m.pos, p)?,
            None => 0,
        };
        let (first, last) = address_range(&m.pos, &m.key)?;
        let (a, b) = (bits(first), bits(last));
        if b - a >= MAX_GROUP_RANGE {
            return Err(err_at(
                &m.pos,
                format!(
                    "range '{}' holds {} addresses; rvs makes one service of each, and takes \
                     at most {MAX_GROUP_RANGE} a range",
                    m.key,
                    (b - a).saturating_add(1)
                ),
            ));
        }
        for x in a..=b {
            out.push(GroupMember::Addr(from_bits(first, x), port));
        }
    }
    Ok(out)
}

/// The most addresses one group member may hold: each is a service of
/// its own, as keepalived adds each to IPVS.
const MAX_GROUP_RANGE: u128 = 65_536;

/// A group member's addresses, first and last, as keepalived writes them:
/// `IP`; `IP-N`, the last byte (IPv4) or hextet (IPv6, hex) running to N;
/// `IP-IP2`, any span; `IP/nn`, the whole prefix (its host bits must be
/// zero).
fn address_range(pos: &Pos, text: &str) -> Result<(IpAddr, IpAddr), ConfError> {
    let bad = |why: &str| err_at(pos, format!("invalid address range '{text}': {why}"));
    if let Some((a, len)) = text.split_once('/') {
        let a = ip(pos, a)?;
        let width = if a.is_ipv4() { 32 } else { 128 };
        let len: u32 = len
            .parse()
            .ok()
            .filter(|&l| l <= width)
            .ok_or_else(|| bad("bad prefix length"))?;
        // The host bits: the low `width - len` ones.
        let host = u128::MAX.checked_shr(len + 128 - width).unwrap_or(0);
        if bits(a) & host != 0 {
            return Err(bad("address mask bits not empty"));
        }
        return Ok((a, from_bits(a, bits(a) | host)));
    }
    let Some((a, end)) = text.split_once('-') else {
        let a = ip(pos, text)?;
        return Ok((a, a));
    };
    let a = ip(pos, a)?;
    let last = if end.contains('.') || end.contains(':') {
        let l = ip(pos, end)?;
        if l.is_ipv4() != a.is_ipv4() {
            return Err(bad("address families differ"));
        }
        l
    } else {
        let (radix, max, low) = match a {
            IpAddr::V4(_) => (10, 0xff, 0xff),
            IpAddr::V6(_) => (16, 0xffff, 0xffff),
        };
        let n = u128::from_str_radix(end, radix)
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| bad("bad range end"))?;
        from_bits(a, bits(a) & !low | n)
    };
    if bits(last) < bits(a) {
        return Err(bad("the end is below the start"));
    }
    Ok((a, last))
}

/// An address as a number.
fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => v6.into(),
    }
}

/// Number `x` as an address of `like`'s family.
fn from_bits(like: IpAddr, x: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => std::net::Ipv4Addr::from(x as u32).into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::from(x).into(),
    }
}

pub(super) fn virtual_server(
    n: &Node,
    groups: &std::collections::HashMap<String, Vec<GroupMember>>,
    tracks: &std::collections::HashMap<String, TrackFile>,
    scripts: &mut Scripts,
    warnings: &mut Vec<String>,
) -> Result<VirtualServer, ConfError> {
    let body = block(n)?;
    let addr = match n.args.as_slice() {
        [k, m] if k == "fwmark" => VsAddr::Fwmark(
            m.parse::<u32>()
                .ok()
                .filter(|&x| x > 0)
                .ok_or_else(|| err_at(&n.pos, format!("invalid fwmark '{m}'")))?,
        ),
        [k, name] if k == "group" => match groups.get(name) {
            Some(m) => VsAddr::Group(name.clone(), m.clone()),
            None => {
                return Err(err_at(
                    &n.pos,
                    format!("virtual_server_group '{name}' is not defined"),
                ));
            }
        },
        _ => {
            let (a, p) = addr_port(n)?;
            VsAddr::Addr(a, p)
        }
    };
    let mut vs = VirtualServer {
        addr,
        pos: n.pos.clone(),
        sched: "wlc".into(),
        sched_flags: 0,
        fwd: Fwd::Masq,
        proto: Proto::Tcp,
        persistence_timeout: None,
        persistence_granularity: None,
        persistence_engine: None,
        ipv6: None,
        alpha: false,
        omega: false,
        ha_suspend: false,
        smtp_alert: None,
        quorum: 1,
        hysteresis: 0,
        sorry_server: None,
        sorry_server_inhibit: false,
        sorry_server_fwd: None,
        quorum_up: None,
        quorum_down: None,
        reals: Vec::new(),
    };
    let mut inh = Inherit::default();
    let mut virtualhost = None;
    let mut real_nodes = Vec::new();
    for c in body {
        if inh.take(c)? {
            continue;
        }
        match c.key.as_str() {
            "lvs_sched" | "lb_algo" => {
                no_block(c)?;
                let Some((s, flags)) = c.args.split_first() else {
                    return Err(err_at(&c.pos, format!("'{}' needs a scheduler", c.key)));
                };
                vs.sched = s.clone();
                for f in flags {
                    vs.sched_flags |= sched_flag(&c.pos, f)?;
                }
            }
            "ops" => {
                flag(c)?;
                vs.sched_flags |= SVC_F_ONEPACKET;
            }
            "flag-1" | "sh-fallback" | "mh-fallback" | "flag-2" | "sh-port" | "mh-port"
            | "flag-3" | "hashed" => {
                flag(c)?;
                vs.sched_flags |= sched_flag(&c.pos, &c.key)?;
            }
            "lvs_method" | "lb_kind" => vs.fwd = method(c)?,
            "protocol" => {
                vs.proto = match value(c)? {
                    "TCP" => Proto::Tcp,
                    "UDP" => Proto::Udp,
                    "SCTP" => Proto::Sctp,
                    v => return Err(err_at(&c.pos, format!("unknown protocol '{v}'"))),
                }
            }
            "persistence_timeout" => {
                // keepalived: without a value, 360 s.
                vs.persistence_timeout = Some(if c.args.is_empty() {
                    no_block(c)?;
                    360
                } else {
                    number(c, 1, u32::MAX.into())? as u32
                });
            }
            "persistence_granularity" => {
                let v = value(c)?;
                vs.persistence_granularity = Some(match v.parse::<std::net::Ipv4Addr>() {
                    Ok(m) => u32::from(m),
                    Err(_) => match v.parse::<u32>() {
                        Ok(p) if (1..=128).contains(&p) => p,
                        _ => {
                            return Err(err_at(
                                &c.pos,
                                format!("invalid persistence_granularity '{v}'"),
                            ));
                        }
                    },
                });
            }
            "ip_family" => {
                vs.ipv6 = Some(match value(c)? {
                    "inet" => false,
                    "inet6" => true,
                    v => return Err(err_at(&c.pos, format!("unknown ip_family '{v}'"))),
                })
            }
            "omega" => vs.omega = flag(c)?,
            "quorum" => vs.quorum = number(c, 1, u32::MAX.into())? as u32,
            "hysteresis" => vs.hysteresis = number(c, 0, u32::MAX.into())? as u32,
            "sorry_server" => {
                no_block(c)?;
                vs.sorry_server = Some(addr_port(c)?);
            }
            "sorry_server_inhibit" => vs.sorry_server_inhibit = flag(c)?,
            "sorry_server_lvs_method" => vs.sorry_server_fwd = Some(method(c)?),
            "quorum_up" => vs.quorum_up = scripts.notify(c, warnings)?,
            "quorum_down" => vs.quorum_down = scripts.notify(c, warnings)?,
            "virtualhost" => virtualhost = Some(value(c)?.to_string()),
            "real_server" => real_nodes.push(c),
            "ha_suspend" => vs.ha_suspend = flag(c)?,
            "smtp_alert" => vs.smtp_alert = Some(flag(c)?),
            "persistence_engine" => {
                // keepalived copies the name (15 bytes at most) and the
                // kernel refuses the service if it has no such engine: rvs
                // has IPVS's one, `sip`, and says so of any other.
                let name: String = value(c)?.chars().take(15).collect();
                if name == "sip" {
                    vs.persistence_engine = Some(name);
                } else {
                    warnings.push(format!(
                        "{}: unknown persistence_engine '{name}' (IPVS has 'sip'); ignored, \
                         the virtual server persists by client address",
                        c.pos
                    ));
                }
            }
            "snmp_name" | "retry_attempts" => unsupported(c, warnings),
            _ => unknown(c, warnings),
        }
    }
    vs.alpha = inh.alpha.unwrap_or(false);
    let fwmarks = match &vs.addr {
        VsAddr::Fwmark(_) => true,
        VsAddr::Group(_, m) => m.iter().any(|g| matches!(g, GroupMember::Fwmark(_))),
        VsAddr::Addr(..) => false,
    };
    if vs.ha_suspend && fwmarks {
        // A mark has no address to be present or absent.
        warnings.push(format!(
            "{}: Virtual server {}: cannot use ha_suspend with fwmarks - clearing ha_suspend",
            n.pos,
            n.args.join(" ")
        ));
        vs.ha_suspend = false;
    }
    let vport = match &vs.addr {
        VsAddr::Addr(_, p) => *p,
        _ => 0,
    };
    for r in real_nodes {
        let rs = real_server(
            r,
            &vs,
            vport,
            inh,
            virtualhost.as_deref(),
            tracks,
            scripts,
            warnings,
        )?;
        vs.reals.push(rs);
    }
    if let Some((_, p)) = &mut vs.sorry_server
        && *p == 0
    {
        *p = vport;
    }
    Ok(vs)
}

pub(super) fn sched_flag(pos: &Pos, f: &str) -> Result<u32, ConfError> {
    Ok(match f {
        "flag-1" | "sh-fallback" | "mh-fallback" => SVC_F_SCHED1,
        "flag-2" | "sh-port" | "mh-port" => SVC_F_SCHED2,
        "flag-3" => SVC_F_SCHED3,
        "ops" => SVC_F_ONEPACKET,
        // Every live service is hashed anyway.
        "hashed" => 0,
        _ => return Err(err_at(pos, format!("unknown scheduler flag '{f}'"))),
    })
}

#[allow(clippy::too_many_arguments)]
pub(super) fn real_server(
    n: &Node,
    vs: &VirtualServer,
    vport: u16,
    parent: Inherit,
    virtualhost: Option<&str>,
    tracks: &std::collections::HashMap<String, TrackFile>,
    scripts: &mut Scripts,
    warnings: &mut Vec<String>,
) -> Result<RealServer, ConfError> {
    let (addr, mut port) = addr_port(n)?;
    if port == 0 {
        port = vport;
    }
    let mut rs = RealServer {
        addr,
        port,
        pos: n.pos.clone(),
        weight: 1,
        fwd: vs.fwd,
        inhibit_on_failure: false,
        notify_up: None,
        notify_down: None,
        uthreshold: 0,
        lthreshold: 0,
        smtp_alert: None,
        checkers: Vec::new(),
    };
    let mut inh = Inherit::default();
    let mut checker_nodes = Vec::new();
    let mut rs_virtualhost = None;
    for c in n.block.as_deref().unwrap_or_default() {
        if inh.take(c)? {
            continue;
        }
        match c.key.as_str() {
            "weight" => rs.weight = number(c, 0, 65535)? as u32,
            "lvs_method" => rs.fwd = method(c)?,
            "notify_up" => rs.notify_up = scripts.notify(c, warnings)?,
            "notify_down" => rs.notify_down = scripts.notify(c, warnings)?,
            "uthreshold" => rs.uthreshold = number(c, 0, u32::MAX.into())? as u32,
            "lthreshold" => rs.lthreshold = number(c, 0, u32::MAX.into())? as u32,
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "SMTP_CHECK" | "DNS_CHECK"
            | "UDP_CHECK" | "PING_CHECK" | "FILE_CHECK" | "BFD_CHECK" => checker_nodes.push(c),
            // HTTP_GET's Host when neither its url nor the checker names
            // one, before the virtual server's (check_http.c).
            "virtualhost" => rs_virtualhost = Some(value(c)?.to_string()),
            "smtp_alert" => rs.smtp_alert = Some(flag(c)?),
            _ => unknown(c, warnings),
        }
    }
    let inh = inh.over(parent);
    rs.inhibit_on_failure = inh.inhibit_on_failure.unwrap_or(false);
    for c in checker_nodes {
        if c.key == "BFD_CHECK" {
            rs.checkers.extend(super::bfd::bfd_check(c, &rs, warnings)?);
            continue;
        }
        if c.key == "FILE_CHECK" {
            let ck = file_check(c, &rs, tracks, warnings)?;
            rs.checkers.push(ck);
            continue;
        }
        let cks = checker(
            c,
            &rs,
            inh,
            rs_virtualhost.as_deref().or(virtualhost),
            scripts,
            warnings,
        )?;
        rs.checkers.extend(cks);
    }
    Ok(rs)
}
