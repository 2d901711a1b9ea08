//! `iptables-save -t mangle` text (iptables-nft and iptables-legacy, IPv4
//! and IPv6) read into the mangle PREROUTING [`Chain`].

use super::{
    Action, Chain, Family, IPTABLES_MANGLE_PRIORITY, Match, Origin, PortsError, Rule, finish_ports,
    parse_prefix, push_range, set_proto,
};

/// The mangle PREROUTING chain of `iptables-save` text (of family
/// `family`), or `None` when the text has no mangle table.
pub fn parse_iptables_save(text: &str, family: Family) -> Option<Chain> {
    let mut in_mangle = false;
    let mut seen = false;
    let mut rules = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(t) = line.strip_prefix('*') {
            in_mangle = t == "mangle";
            seen |= in_mangle;
            continue;
        }
        if !in_mangle {
            continue;
        }
        // Counters (`iptables-save -c`): `[p:b] -A …`.
        let line = match line.strip_prefix('[') {
            Some(r) => r.split_once(']').map_or(line, |(_, rest)| rest.trim()),
            None => line,
        };
        let words = split_words(line);
        if words.first().map(String::as_str) != Some("-A")
            || words.get(1).map(String::as_str) != Some("PREROUTING")
        {
            continue;
        }
        rules.push(parse_iptables_rule(line, &words[2..], family));
    }
    seen.then_some(Chain {
        priority: IPTABLES_MANGLE_PRIORITY,
        rules,
    })
}

/// Words of a line, `"…"` quoting as iptables-save writes it.
fn split_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut has = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                has = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// Options that start a new top-level part of an iptables rule.
fn top_level(w: &str) -> bool {
    matches!(
        w,
        "!" | "-s"
            | "--source"
            | "-d"
            | "--destination"
            | "-p"
            | "--protocol"
            | "-i"
            | "--in-interface"
            | "-o"
            | "--out-interface"
            | "-m"
            | "--match"
            | "-j"
            | "--jump"
            | "-g"
            | "--goto"
            | "-f"
            | "--fragment"
    )
}

fn parse_iptables_rule(text: &str, words: &[String], family: Family) -> Rule {
    let mut m = Match::default();
    let mut problems = Vec::new();
    let mut action = Action::Nothing;
    let mut negate = false;
    let mut i = 0;
    let mut target: Option<String> = None;
    let mut mark: Option<(u32, u32)> = None;
    while i < words.len() {
        let w = words[i].as_str();
        let val = words.get(i + 1).map(String::as_str).unwrap_or("");
        i += 1;
        if w == "!" {
            negate = true;
            continue;
        }
        let neg = std::mem::take(&mut negate);
        let mut consumed = true;
        match w {
            "-s" | "--source" => {
                if !is_any(val) {
                    problems.push(format!("source address match ({w} {val})"));
                }
            }
            "-d" | "--destination" => match parse_prefix(val) {
                Some(p) if !neg => m.dst = Some(p),
                Some(_) => problems.push(format!("negated destination (! {w} {val})")),
                None => problems.push(format!("destination '{val}'")),
            },
            "-p" | "--protocol" => {
                if neg {
                    problems.push(format!("negated protocol (! -p {val})"));
                } else {
                    set_proto(&mut m, val);
                }
            }
            "-i" | "--in-interface" => {
                if neg {
                    problems.push(format!("negated interface (! -i {val})"));
                } else if val.ends_with('+') {
                    problems.push(format!("interface wildcard (-i {val})"));
                } else {
                    m.iif = Some(val.to_string());
                }
            }
            "--dport" | "--dports" | "--destination-port" | "--destination-ports" => {
                if neg {
                    problems.push(format!("negated port (! {w} {val})"));
                } else {
                    match parse_port_list(val, ',', ':') {
                        Ok(p) => m.dports = Some(p),
                        Err(e) => problems.push(e.to_string()),
                    }
                }
            }
            "--sport" | "--sports" | "--source-port" | "--source-ports" => {
                problems.push(format!("source port match ({w} {val})"));
            }
            "-m" | "--match" => match val {
                "tcp" | "udp" | "sctp" | "multiport" | "comment" => {}
                other => {
                    problems.push(format!("match -m {other}"));
                    // Its options, whatever they are, up to the next part.
                    i += 1;
                    while i < words.len() && !top_level(&words[i]) {
                        i += 1;
                    }
                    continue;
                }
            },
            "--comment" => {}
            "-j" | "--jump" => target = Some(val.to_string()),
            "-g" | "--goto" => target = Some(format!("goto {val}")),
            "--set-xmark" | "--set-mark" => {
                let (v, mask) = match val.split_once('/') {
                    Some((v, mk)) => (parse_u32(v), parse_u32(mk)),
                    None => (parse_u32(val), Some(u32::MAX)),
                };
                match (v, mask) {
                    (Some(v), Some(mk)) if w == "--set-xmark" => mark = Some((mk, v)),
                    (Some(v), Some(mk)) => mark = Some((mk | v, v)),
                    _ => problems.push(format!("mark '{val}'")),
                }
            }
            "--and-mark" => mark = parse_u32(val).map(|a| (!a, 0)),
            "--or-mark" => mark = parse_u32(val).map(|o| (o, o)),
            "--xor-mark" => mark = parse_u32(val).map(|x| (0, x)),
            "-f" | "--fragment" => {
                consumed = false;
                problems.push("fragment match (-f)".into());
            }
            "--tcp-flags" => {
                let flags = words.get(i + 1).map_or("", String::as_str);
                problems.push(format!("match --tcp-flags {val} {flags}"));
                i += 1;
            }
            "--syn" => {
                consumed = false;
                problems.push("--syn".into());
            }
            other => problems.push(format!("option {other} {val}")),
        }
        if consumed {
            i += 1;
        }
    }
    match target.as_deref() {
        Some("MARK") => match mark {
            Some((mask, value)) => action = Action::Mark { mask, value },
            None => {
                problems.push("MARK without a mark".into());
                action = Action::Other("MARK".into());
            }
        },
        None => {}
        Some(
            "LOG" | "NFLOG" | "TRACE" | "TCPMSS" | "TOS" | "DSCP" | "TTL" | "HL" | "CHECKSUM"
            | "CLASSIFY" | "ECN" | "TEE",
        ) => {}
        Some(t @ ("ACCEPT" | "RETURN")) => action = Action::Ends(t.to_string()),
        Some(t) => action = Action::Other(t.to_string()),
    }
    Rule {
        origin: Origin::Iptables,
        text: text.to_string(),
        family,
        m,
        action,
        problems,
    }
}

fn is_any(v: &str) -> bool {
    matches!(v, "0.0.0.0/0" | "::/0")
}

fn parse_u32(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `P[,P|A:B…]` expanded, sorted, unique; [`MAX_HOST_PORTS`] at most.
fn parse_port_list(s: &str, sep: char, range: char) -> Result<Vec<u16>, PortsError> {
    let mut out = Vec::new();
    for part in s.split(sep) {
        let (a, b) = match part.split_once(range) {
            Some((a, b)) => (a.parse::<u16>(), b.parse::<u16>()),
            None => (part.parse::<u16>(), part.parse::<u16>()),
        };
        let (Ok(a), Ok(b)) = (a, b) else {
            return Err(PortsError::Port(part.to_string()));
        };
        push_range(&mut out, a, b)?;
    }
    finish_ports(out)
}
