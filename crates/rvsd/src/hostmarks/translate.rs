//! The translation: chains run in hook-priority order, each MARK rule's
//! effect on the mark, and the overlap analysis that leaves to the kernel
//! every rule an unsupported or control-flow rule can interfere with (see
//! the semantics in the [parent module](super)).

use std::net::IpAddr;

use rvs_proto::fwmark::{FwmarkSpec, HostRule, IgnoredRule, MAX_PORTS};

use super::{Action, Chain, Match, Rule, Translation};

/// Whether two matches can match one packet.
fn overlaps(a: &Match, b: &Match) -> bool {
    if let (Some(x), Some(y)) = (a.v6, b.v6)
        && x != y
    {
        return false;
    }
    if let (Some((aa, al)), Some((ba, bl))) = (a.dst, b.dst) {
        let len = al.min(bl);
        if aa.is_ipv6() != ba.is_ipv6()
            || rvs_core::fwmark::network(aa, len) != rvs_core::fwmark::network(ba, len)
        {
            return false;
        }
    }
    let fam_a = a.dst.map(|(x, _)| x.is_ipv6()).or(a.v6);
    let fam_b = b.dst.map(|(x, _)| x.is_ipv6()).or(b.v6);
    if let (Some(x), Some(y)) = (fam_a, fam_b)
        && x != y
    {
        return false;
    }
    if let (Some(x), Some(y)) = (a.proto, b.proto)
        && x != y
    {
        return false;
    }
    if a.other_proto.is_some() && b.proto.is_some() || b.other_proto.is_some() && a.proto.is_some()
    {
        return false;
    }
    if let (Some(x), Some(y)) = (&a.dports, &b.dports)
        && !x.iter().any(|p| y.contains(p))
    {
        return false;
    }
    if let (Some(x), Some(y)) = (&a.iif, &b.iif)
        && x != y
    {
        return false;
    }
    true
}

/// How a rule that rvs does not apply holds back the rules it overlaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    /// Earlier rules (it may change the mark they set).
    Earlier,
    /// Later rules (it may keep packets from reaching them).
    Later,
    /// Both.
    Both,
}

/// The rules of `chains` (run in priority order, see the module docs)
/// as rvs rules, and those left to the kernel.
pub fn translate(chains: &[Chain]) -> Translation {
    let mut order: Vec<&Chain> = chains.iter().collect();
    order.sort_by_key(|c| c.priority);
    let rules: Vec<&Rule> = order.iter().flat_map(|c| c.rules.iter()).collect();
    // Index, matches, mark of each rule rvs applies.
    let mut applied: Vec<(usize, Match, u32)> = Vec::new();
    let mut holders: Vec<(usize, Match, Holds)> = Vec::new();
    let mut out = Translation::default();
    let ignore = |out: &mut Translation, r: &Rule, reason: String| {
        out.ignored.push(IgnoredRule {
            origin: r.origin.name().into(),
            text: r.text.clone(),
            reason,
        });
    };
    for (i, r) in rules.iter().enumerate() {
        let earlier_marks = |m: &Match| {
            applied.iter().any(|(_, a, _)| overlaps(a, m))
                || holders
                    .iter()
                    .any(|(_, h, k)| *k != Holds::Later && overlaps(h, m))
        };
        match &r.action {
            Action::Nothing => {}
            Action::Ends(t) => {
                ignore(
                    &mut out,
                    r,
                    format!(
                        "target {t}: the rules after it that can match the same packets are left to the kernel"
                    ),
                );
                holders.push((i, r.m.clone(), Holds::Later));
            }
            Action::Other(t) => {
                ignore(
                    &mut out,
                    r,
                    format!(
                        "target {t}: the MARK rules that can match the same packets are left to the kernel"
                    ),
                );
                holders.push((i, r.m.clone(), Holds::Both));
            }
            Action::Mark { mask, value } => {
                if let Some(p) = &r.m.other_proto {
                    ignore(
                        &mut out,
                        r,
                        format!("protocol {p}: rvs serves tcp, udp and sctp"),
                    );
                    continue;
                }
                if !r.problems.is_empty() {
                    ignore(
                        &mut out,
                        r,
                        format!("unsupported: {}", r.problems.join("; ")),
                    );
                    holders.push((i, r.m.clone(), Holds::Earlier));
                    continue;
                }
                let mark = if *mask == u32::MAX {
                    *value
                } else if earlier_marks(&r.m) {
                    ignore(
                        &mut out,
                        r,
                        format!(
                            "unsupported: mask 0x{mask:x} applied to a mark an earlier rule may have set"
                        ),
                    );
                    holders.push((i, r.m.clone(), Holds::Earlier));
                    continue;
                } else {
                    *value
                };
                if mark == 0 {
                    if earlier_marks(&r.m) {
                        ignore(
                            &mut out,
                            r,
                            "clears the mark earlier rules set: those rules are left to the kernel where they overlap it".into(),
                        );
                        holders.push((i, r.m.clone(), Holds::Earlier));
                    } else {
                        ignore(
                            &mut out,
                            r,
                            "sets mark 0 (no mark): nothing to claim".into(),
                        );
                    }
                    continue;
                }
                applied.push((i, r.m.clone(), mark));
            }
        }
    }
    for (i, m, mark) in applied {
        let r = rules[i];
        let held = holders.iter().find(|(h, hm, k)| {
            let after = *h > i;
            let applies = match k {
                Holds::Both => true,
                Holds::Earlier => after,
                Holds::Later => !after,
            };
            applies && overlaps(hm, &m)
        });
        if let Some((h, _, _)) = held {
            ignore(
                &mut out,
                r,
                format!(
                    "left to the kernel: it overlaps a rule rvs does not apply ({})",
                    rules[*h].text
                ),
            );
            continue;
        }
        let fams: Vec<bool> = match (m.dst, m.v6) {
            (Some((a, _)), _) => vec![a.is_ipv6()],
            (None, Some(v6)) => vec![v6],
            (None, None) => vec![false, true],
        };
        // One rvs rule per 16 ports (rules of one mark and prefix share the
        // classifier's matchers).
        let chunks: Vec<Vec<u16>> = match &m.dports {
            Some(p) => p.chunks(MAX_PORTS).map(<[u16]>::to_vec).collect(),
            None => vec![Vec::new()],
        };
        for v6 in fams {
            let (addr, prefix_len) = m.dst.unwrap_or(if v6 {
                (IpAddr::from([0u16; 8]), 0)
            } else {
                (IpAddr::from([0u8; 4]), 0)
            });
            for dports in &chunks {
                out.rules.push(HostRule {
                    origin: r.origin.name().into(),
                    text: r.text.clone(),
                    spec: FwmarkSpec {
                        addr: rvs_core::fwmark::network(addr, prefix_len),
                        prefix_len,
                        proto: m.proto,
                        dports: dports.clone(),
                        iif: m.iif.clone(),
                        mark,
                    },
                });
            }
        }
    }
    // Keep the reports in rule order.
    out
}
