// SPDX-License-Identifier: GPL-2.0-or-later
//! The `bfd_instance` blocks (keepalived's BFD process, bfd_parser.c) and
//! the `BFD_CHECK`s that follow them (check_bfd.c).
//!
//! As keepalived, a bad value is reported and ignored (the default stays),
//! an instance without a usable neighbour, with addresses of two families,
//! a duplicate name or a duplicate neighbour is reported and dropped, and a
//! BFD_CHECK that names no instance the checker knows is reported and
//! dropped; none of them refuses the file. One difference: the default
//! IPv6 hop limit is 255 (RFC 5881), not keepalived's 64, which peers that
//! keep RFC 5881's GTSM rule (BIRD, FRR) discard.

use std::net::IpAddr;

use super::*;
use crate::keepalived::lex::{ConfError, Node};

/// keepalived's BFD_INAME_MAX less its NUL.
const NAME_MAX: usize = 31;

/// A `bfd_instance NAME { … }` the checker runs a session for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdInstance {
    /// Its name.
    pub name: String,
    /// `neighbor_ip` / `neighbour_ip`.
    pub neighbor: IpAddr,
    /// `source_ip`.
    pub source: Option<IpAddr>,
    /// `min_rx`, microseconds (default 10 ms).
    pub min_rx: u32,
    /// `min_tx`, microseconds (default 10 ms).
    pub min_tx: u32,
    /// `idle_tx`, microseconds (default 1 s).
    pub idle_tx: u32,
    /// `multiplier` (default 5).
    pub mult: u8,
    /// `passive`.
    pub passive: bool,
    /// `ttl` / `hoplimit`: sent, and what received packets are judged by
    /// (default 255).
    pub ttl: u8,
    /// `max_hops`: a received packet's TTL may be this much below `ttl`
    /// (default 0; 255: not checked).
    pub max_hops: i32,
    /// `multihop`: port 4784 (RFC 5883) instead of 3784.
    pub multihop: bool,
    /// Where the block starts.
    pub pos: Pos,
}

impl BfdInstance {
    /// The UDP port its packets go to and come on.
    pub fn port(&self) -> u16 {
        if self.multihop { 4784 } else { 3784 }
    }
}

/// keepalived's `read_decimal_unsigned_strvec(…, 3 decimals)`: milliseconds
/// with up to three decimals, as microseconds, within `min..=max` ms.
fn millis(v: &str, min: u32, max: u32) -> Option<u32> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if int.is_empty()
        || frac.len() > 3
        || !(int.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let us =
        int.parse::<u64>().ok()?.checked_mul(1000)? + format!("{frac:0<3}").parse::<u64>().ok()?;
    (u64::from(min) * 1000..=u64::from(max) * 1000)
        .contains(&us)
        .then(|| u32::try_from(us).ok())
        .flatten()
}

/// keepalived's `check_true_false`.
fn true_false(v: &str) -> Option<bool> {
    match v {
        "true" | "on" | "yes" => Some(true),
        "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// Every `bfd_instance` the checker runs a session for, in file order.
pub(super) fn instances(
    tree: &[Node],
    warnings: &mut Vec<String>,
) -> Result<Vec<BfdInstance>, ConfError> {
    let mut out: Vec<BfdInstance> = Vec::new();
    for n in tree.iter().filter(|n| n.key == "bfd_instance") {
        let name = value_of_block(n)?;
        if name.len() > NAME_MAX {
            warnings.push(format!(
                "{}: Configuration error: BFD instance {name} name too long (maximum length is {NAME_MAX} characters) - ignoring",
                n.pos
            ));
            continue;
        }
        // Among the instances kept: a dropped one leaves its name free.
        if out.iter().any(|o| o.name == name) {
            warnings.push(format!(
                "{}: Configuration error: BFD instance {name} already configured - ignoring",
                n.pos
            ));
            continue;
        }
        let Some(b) = instance(n, name, warnings)? else {
            continue;
        };
        let dup = out
            .iter()
            .any(|o| o.neighbor == b.neighbor && o.source == b.source && o.multihop == b.multihop);
        if dup {
            warnings.push(match b.source {
                Some(s) => format!(
                    "{}: Configuration error: BFD instance {name} has duplicate source/neighbor address {s}/{}, ignoring instance",
                    n.pos, b.neighbor
                ),
                None => format!(
                    "{}: Configuration error: BFD instance {name} has duplicate neighbor address {}, ignoring instance",
                    n.pos, b.neighbor
                ),
            });
            continue;
        }
        out.push(b);
    }
    Ok(out)
}

/// One block; `None` when keepalived drops it (said in `warnings`), or
/// when it is for keepalived's VRRP process only (`vrrp` without
/// `checker`), which rvs does not have.
fn instance(
    n: &Node,
    name: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<BfdInstance>, ConfError> {
    let mut b = BfdInstance {
        name: name.to_string(),
        neighbor: IpAddr::from([0, 0, 0, 0]),
        source: None,
        min_rx: 10_000,
        min_tx: 10_000,
        idle_tx: 1_000_000,
        mult: 5,
        passive: false,
        ttl: 0,
        max_hops: 0,
        multihop: false,
        pos: n.pos.clone(),
    };
    let mut neighbor = None;
    let mut neighbor_word = "neighbor";
    let (mut vrrp, mut checker) = (false, false);
    let bad = |c: &Node, what: &str, range: &str| {
        format!(
            "{}: Configuration error: BFD instance {name} {what} value {} is not valid (must be in range [{range}]), ignoring",
            c.pos,
            c.args.first().map_or("", String::as_str)
        )
    };
    for c in block(n)? {
        let v = || value(c);
        match c.key.as_str() {
            "neighbor_ip" | "neighbour_ip" => {
                if c.key == "neighbour_ip" {
                    neighbor_word = "neighbour";
                }
                match v()?.parse::<IpAddr>() {
                    Ok(a) => neighbor = Some(a),
                    Err(_) => {
                        warnings.push(format!(
                            "{}: Configuration error: BFD instance {name} has malformed {neighbor_word} address {}, ignoring instance",
                            c.pos,
                            v()?
                        ));
                        return Ok(None);
                    }
                }
            }
            "source_ip" => match v()?.parse::<IpAddr>() {
                Ok(a) => b.source = Some(a),
                Err(_) => warnings.push(format!(
                    "{}: Configuration error: BFD instance {name} has malformed source address {}, ignoring",
                    c.pos,
                    v()?
                )),
            },
            k @ ("min_rx" | "min_tx" | "idle_tx") => {
                let min = if k == "idle_tx" { 1000 } else { 1 };
                let max = u32::MAX / 1000;
                match millis(v()?, min, max) {
                    None => warnings.push(bad(c, k, &format!("{min}-{max}"))),
                    Some(us) => {
                        if us > 10_000_000 {
                            warnings.push(format!(
                                "{}: Configuration warning: BFD instance {name} {k} value {} is larger than max sensible (10000)",
                                c.pos,
                                v()?
                            ));
                        }
                        match k {
                            "min_rx" => b.min_rx = us,
                            "min_tx" => b.min_tx = us,
                            _ => b.idle_tx = us,
                        }
                    }
                }
            }
            "multiplier" => match v()?.parse::<u8>() {
                Ok(m @ 1..=255) => b.mult = m,
                _ => warnings.push(bad(c, "multiplier", "1-255")),
            },
            "passive" => b.passive = true,
            "ttl" | "hoplimit" => match v()?.parse::<u8>() {
                Ok(t @ 1..=255) => b.ttl = t,
                _ => warnings.push(bad(c, "ttl/hoplimit", "1-255")),
            },
            "max_hops" => match v()?.parse::<i32>() {
                Ok(h @ -1..=255) => b.max_hops = h,
                _ => warnings.push(bad(c, "max_hops", "-1-255")),
            },
            "multihop" => match c.args.first() {
                None => b.multihop = true,
                Some(a) => match true_false(a) {
                    Some(t) => b.multihop = t,
                    None => warnings.push(format!(
                        "{}: Configuration error: BFD instance {name} multihop setting not valid - {a}",
                        c.pos
                    )),
                },
            },
            // For keepalived's VRRP process: rvs has none.
            "weight" => {}
            "vrrp" => vrrp = true,
            "checker" => checker = true,
            _ => unknown(c, warnings),
        }
    }
    let Some(neighbor) = neighbor else {
        warnings.push(format!(
            "{}: Configuration error: BFD instance {name} has no {neighbor_word} address set, disabling instance",
            n.pos
        ));
        return Ok(None);
    };
    b.neighbor = neighbor;
    if let Some(s) = b.source
        && s.is_ipv4() != neighbor.is_ipv4()
    {
        warnings.push(format!(
            "{}: Configuration error: BFD instance {name} source address {s} and {neighbor_word} address {neighbor} are not of the same family, disabling instance",
            n.pos
        ));
        return Ok(None);
    }
    if b.ttl == 0 {
        b.ttl = 255;
    }
    if b.max_hops > i32::from(b.ttl) {
        warnings.push(format!(
            "{}: BFD instance {name}: max_hops exceeds ttl/hoplimit - setting to ttl/hoplimit",
            n.pos
        ));
        b.max_hops = i32::from(b.ttl);
    }
    if vrrp && !checker {
        return Ok(None);
    }
    Ok(Some(b))
}

/// A `BFD_CHECK { name NAME; alpha }` of a real server, its name checked
/// against the instances later ([`resolve`]); `None` when keepalived
/// drops it here.
pub(super) fn bfd_check(
    n: &Node,
    rs: &RealServer,
    warnings: &mut Vec<String>,
) -> Result<Option<Checker>, ConfError> {
    let mut name: Option<String> = None;
    let mut alpha = false;
    let at = format!("{}: ({})", n.pos, fmt_rs(rs));
    for c in block(n)? {
        match c.key.as_str() {
            "name" => {
                no_block(c)?;
                let [v] = c.args.as_slice() else {
                    warnings.push(format!(
                        "{at} BFD_CHECK - No or too many names specified - skipping checker"
                    ));
                    return Ok(None);
                };
                if let Some(old) = &name {
                    warnings.push(format!(
                        "{at} BFD_CHECK - BFD {v} already specified as {old}"
                    ));
                    return Ok(None);
                }
                if v.len() > NAME_MAX {
                    warnings.push(format!("{at} BFD_CHECK - BFD name {v} too long"));
                    return Ok(None);
                }
                if rs
                    .checkers
                    .iter()
                    .any(|k| matches!(&k.kind, CheckKind::Bfd { name } if name == v))
                {
                    warnings.push(format!("{at} BFD_CHECK - RS already monitoring {v}"));
                    return Ok(None);
                }
                name = Some(v.clone());
            }
            "alpha" => {
                no_block(c)?;
                match c.args.first().map(|a| (a, true_false(a))) {
                    None => alpha = true,
                    Some((_, Some(t))) => alpha = t,
                    Some((a, None)) => {
                        warnings.push(format!("{}: Invalid alpha parameter {a}", c.pos))
                    }
                }
            }
            _ => unknown(c, warnings),
        }
    }
    let Some(name) = name else {
        warnings.push(format!(
            "{at} No name has been specified for BFD_CHECKER - skipping"
        ));
        return Ok(None);
    };
    // Not scheduled: the session's changes drive it.
    Ok(Some(Checker::driven(
        CheckKind::Bfd { name },
        rs,
        alpha,
        &n.pos,
    )))
}

fn fmt_rs(rs: &RealServer) -> String {
    match rs.addr {
        IpAddr::V4(a) => format!("{a}:{}", rs.port),
        IpAddr::V6(a) => format!("[{a}]:{}", rs.port),
    }
}

/// keepalived's `bfd_name_handler`: a BFD_CHECK whose instance the checker
/// does not know is dropped, with its line.
pub(super) fn resolve(
    services: &mut [VirtualServer],
    instances: &[BfdInstance],
    warnings: &mut Vec<String>,
) {
    for rs in services.iter_mut().flat_map(|v| v.reals.iter_mut()) {
        let addr = fmt_rs(rs);
        rs.checkers.retain(|ck| {
            let CheckKind::Bfd { name } = &ck.kind else {
                return true;
            };
            let known = instances.iter().any(|b| &b.name == name);
            if !known {
                warnings.push(format!(
                    "{}: ({addr}) BFD_CHECK - BFD {name} not configured - skipping checker",
                    ck.pos
                ));
            }
            known
        });
    }
}

#[cfg(test)]
#[path = "bfd_tests.rs"]
mod tests;
