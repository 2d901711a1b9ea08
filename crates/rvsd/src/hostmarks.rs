//! The host's firewall-mark rules, translated into rvs fwmark rules (pure:
//! text and JSON in, rules out; the commands are run by
//! [`crate::hostwatch`]).
//!
//! rvs classifies packets in XDP, before netfilter's PREROUTING hooks run,
//! so the marks `iptables -t mangle -A PREROUTING … -j MARK` would set are
//! computed by rvs itself: the host's MARK rules are read from
//! `iptables-save -t mangle` text (iptables-nft and iptables-legacy, IPv4
//! and IPv6) and from `nft -j list ruleset` (native nftables chains on the
//! `prerouting` hook), and turned into the rules `rvs fwmark add` makes.
//!
//! # Semantics
//!
//! * Order: the chains run by hook priority, lowest first (iptables' mangle
//!   PREROUTING is priority -150, for iptables-nft and iptables-legacy
//!   alike; a native chain at `priority mangle` is -150 too); at equal
//!   priority iptables-nft, then iptables-legacy, then the nft chains in
//!   the order `nft list ruleset` prints them. Within a chain, rule order.
//!   rvs's own rules (`rvs fwmark add`) run after all of them.
//! * A packet enters PREROUTING with mark 0. Every target is the kernel's
//!   `MARK --set-xmark VALUE/MASK`: `mark = (mark & ~MASK) ^ VALUE`
//!   (`--set-mark V` is V/0xffffffff, `--set-mark V/M` is V/(M|V),
//!   `--and-mark A` is 0/~A, `--or-mark O` is O/O, `--xor-mark X` is X/0;
//!   nft's `meta mark set` forms likewise). A rule with a full mask sets the
//!   mark outright: the last matching such rule wins, which is how rvs's
//!   rules work. A partial mask is translated when no earlier rule can have
//!   marked the same packets (the mark it starts from is then 0, and the
//!   result is VALUE); otherwise the rule is left to the kernel.
//! * Matches rvs can express: destination address/prefix, protocol
//!   (tcp, udp, sctp), destination ports (lists and ranges, 128 ports at
//!   most, one rvs rule per 16) and the input interface. Anything else
//!   (source address or port, negation, `-m conntrack`, `-m string`, `-m mark`, named sets,
//!   interface wildcards, …) makes the rule unsupported: it is reported
//!   with its text and reason, and the flows it would mark stay the
//!   kernel's. Because that rule may change the mark of packets that
//!   earlier rules marked, every supported rule that can match the same
//!   packets (judged by the matches that are understood) is left to the
//!   kernel too. Non-MARK targets that end or change the chain's walk
//!   (`ACCEPT`, `RETURN`, `DROP`, jumps, `CONNMARK`, …) likewise hold back
//!   the rules they can overlap; `LOG`, `counter` and the like are
//!   ignored.
//! * Which marks are claimed is decided as for `rvs fwmark add`: a rule
//!   is claimed only when its mark has a fwmark service of its family.

use std::net::IpAddr;

use rvs_proto::Proto;
use rvs_proto::fwmark::{FwmarkSpec, HostRule, IgnoredRule, MAX_PORTS};
use serde_json::Value;

/// Most destination ports one host rule may list (or span): it becomes
/// one rvs rule per 16 ports, and the classifier holds 8 matchers of 16
/// ports per prefix.
pub const MAX_HOST_PORTS: usize = 8 * MAX_PORTS;

/// iptables' mangle table hooks PREROUTING at this priority.
pub const IPTABLES_MANGLE_PRIORITY: i32 = -150;

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `iptables-save` text (nf_tables or legacy backend).
    Iptables,
    /// `nft -j list ruleset`.
    Nft,
}

impl Origin {
    /// As `rvs fwmark list` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Iptables => "iptables",
            Origin::Nft => "nft",
        }
    }
}

/// Address family of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
    /// Both (nft's `inet`).
    Both,
}

/// The matches of a rule that rvs understands. `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// Destination prefix.
    pub dst: Option<(IpAddr, u8)>,
    /// Protocol; `Some(None)`-like "other protocol" is `other_proto`.
    pub proto: Option<Proto>,
    /// A protocol rvs does not serve (icmp, …): the rule never marks a
    /// packet rvs could claim.
    pub other_proto: Option<String>,
    /// Destination ports.
    pub dports: Option<Vec<u16>>,
    /// Input interface.
    pub iif: Option<String>,
    /// Only IPv4 / IPv6 packets (nft's `meta nfproto`, inet chains).
    pub v6: Option<bool>,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `mark = (mark & !mask) ^ value`.
    Mark {
        /// Bits replaced.
        mask: u32,
        /// Value xor-ed in.
        value: u32,
    },
    /// Nothing to the mark or the chain's walk (LOG, counter, …).
    Nothing,
    /// Ends the walk for the packets it matches (ACCEPT, RETURN).
    Ends(String),
    /// Anything else: can change the mark or the walk (jumps, DROP,
    /// CONNMARK, …).
    Other(String),
}

/// One rule as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Where it comes from.
    pub origin: Origin,
    /// Its text.
    pub text: String,
    /// Family of its chain.
    pub family: Family,
    /// The understood matches (a superset of the packets it matches when
    /// `problems` is not empty).
    pub m: Match,
    /// What it does.
    pub action: Action,
    /// Why rvs cannot express it (empty: it can).
    pub problems: Vec<String>,
}

/// One base chain on the PREROUTING hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Hook priority.
    pub priority: i32,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// The result of a translation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translation {
    /// The rules rvs applies, in order.
    pub rules: Vec<HostRule>,
    /// The rules left to the kernel.
    pub ignored: Vec<IgnoredRule>,
}

// ----- iptables-save -------------------------------------------------------------

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
                        Err(e) => problems.push(e),
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

fn set_proto(m: &mut Match, v: &str) {
    match v.to_ascii_lowercase().as_str() {
        "tcp" | "6" => m.proto = Some(Proto::Tcp),
        "udp" | "17" => m.proto = Some(Proto::Udp),
        "sctp" | "132" => m.proto = Some(Proto::Sctp),
        "all" | "0" => {}
        other => m.other_proto = Some(other.to_string()),
    }
}

fn parse_u32(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `ADDR[/LEN]` (no dotted masks).
fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().ok()?;
    let max = if addr.is_ipv6() { 128 } else { 32 };
    let len = match l {
        None => max,
        Some(l) => l.parse::<u8>().ok().filter(|&n| n <= max)?,
    };
    Some((addr, len))
}

/// `P[,P|A:B…]` expanded, sorted, unique; [`MAX_HOST_PORTS`] at most.
fn parse_port_list(s: &str, sep: char, range: char) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for part in s.split(sep) {
        let (a, b) = match part.split_once(range) {
            Some((a, b)) => (a.parse::<u16>(), b.parse::<u16>()),
            None => (part.parse::<u16>(), part.parse::<u16>()),
        };
        let (Ok(a), Ok(b)) = (a, b) else {
            return Err(format!("port '{part}'"));
        };
        push_range(&mut out, a, b)?;
    }
    finish_ports(out)
}

fn push_range(out: &mut Vec<u16>, a: u16, b: u16) -> Result<(), String> {
    if a == 0 || b < a || usize::from(b - a) >= MAX_HOST_PORTS {
        return Err(format!(
            "destination ports {a}:{b} (rvs matches at most {MAX_HOST_PORTS} ports, not 0)"
        ));
    }
    out.extend(a..=b);
    Ok(())
}

fn finish_ports(mut out: Vec<u16>) -> Result<Vec<u16>, String> {
    out.sort_unstable();
    out.dedup();
    if out.len() > MAX_HOST_PORTS {
        return Err(format!(
            "{} destination ports (rvs matches at most {MAX_HOST_PORTS})",
            out.len()
        ));
    }
    Ok(out)
}

// ----- nft -j list ruleset ----------------------------------------------------------

/// The base chains on the `prerouting` hook of `nft -j list ruleset`
/// output (families ip, ip6 and inet; the ip/ip6 tables named `mangle` are
/// iptables-nft's and are read from `iptables-save` instead).
///
/// # Errors
///
/// Output that is not the JSON `nft -j` prints.
pub fn parse_nft_json(json: &str) -> Result<Vec<Chain>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("nft -j output: {e}"))?;
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("nft -j output: no \"nftables\" array")?;
    // (family, table, chain) -> index in `chains`.
    let mut keys: Vec<(String, String, String)> = Vec::new();
    let mut chains: Vec<Chain> = Vec::new();
    let mut families: Vec<Family> = Vec::new();
    for item in items {
        if let Some(c) = item.get("chain") {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let (fam, table) = (s("family"), s("table"));
            let family = match fam.as_str() {
                "ip" => Family::V4,
                "ip6" => Family::V6,
                "inet" => Family::Both,
                _ => continue,
            };
            if s("hook") != "prerouting" || (table == "mangle" && fam != "inet") {
                continue;
            }
            let priority = c
                .get("prio")
                .and_then(Value::as_i64)
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0);
            keys.push((fam, table, s("name")));
            chains.push(Chain {
                priority,
                rules: Vec::new(),
            });
            families.push(family);
        } else if let Some(r) = item.get("rule") {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let key = (s("family"), s("table"), s("chain"));
            if let Some(i) = keys.iter().position(|k| *k == key) {
                let rule = parse_nft_rule(r, families[i]);
                chains[i].rules.push(rule);
            }
        }
    }
    Ok(chains)
}

fn parse_nft_rule(r: &Value, family: Family) -> Rule {
    let exprs: &[Value] = r.get("expr").and_then(Value::as_array).map_or(&[], |v| v);
    let mut m = Match::default();
    if family == Family::V4 {
        m.v6 = Some(false);
    } else if family == Family::V6 {
        m.v6 = Some(true);
    }
    let mut problems = Vec::new();
    let mut action = Action::Nothing;
    let mut text = Vec::new();
    for e in exprs {
        text.push(nft_text(e));
        let Some((kind, body)) = e.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        match kind.as_str() {
            "match" => nft_match(body, &mut m, &mut problems),
            "mangle" => {
                let key = body.get("key");
                if key.and_then(|k| k.get("meta")).and_then(|k| k.get("key"))
                    == Some(&Value::from("mark"))
                {
                    match body.get("value").and_then(nft_mark_op) {
                        Some((mask, value)) => action = Action::Mark { mask, value },
                        None => {
                            problems.push(format!("mark value {}", nft_text(&body["value"])));
                            action = Action::Other("meta mark set".into());
                        }
                    }
                }
            }
            "counter" | "log" | "comment" => {}
            "accept" => action = Action::Ends("accept".into()),
            "return" => action = Action::Ends("return".into()),
            "continue" => {}
            "drop" | "jump" | "goto" | "reject" | "queue" => {
                action = Action::Other(nft_text(e));
            }
            _ => problems.push(format!("expression {}", nft_text(e))),
        }
    }
    let head = format!(
        "{} {} {} handle {}:",
        r.get("family").and_then(Value::as_str).unwrap_or(""),
        r.get("table").and_then(Value::as_str).unwrap_or(""),
        r.get("chain").and_then(Value::as_str).unwrap_or(""),
        r.get("handle").map(Value::to_string).unwrap_or_default()
    );
    Rule {
        origin: Origin::Nft,
        text: format!("{head} {}", text.join(" ")),
        family,
        m,
        action,
        problems,
    }
}

fn nft_match(body: &Value, m: &mut Match, problems: &mut Vec<String>) {
    let op = body.get("op").and_then(Value::as_str).unwrap_or("==");
    let left = body.get("left").unwrap_or(&Value::Null);
    let right = body.get("right").unwrap_or(&Value::Null);
    let what = if op == "==" || op == "in" {
        format!("{} {}", nft_text(left), nft_text(right))
    } else {
        format!("{} {op} {}", nft_text(left), nft_text(right))
    };
    if op != "==" && op != "in" {
        problems.push(format!("match {what}"));
        return;
    }
    let payload = left.get("payload");
    let proto = payload
        .and_then(|p| p.get("protocol"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if proto == "ip" || proto == "ip6" {
        m.v6 = Some(proto == "ip6");
    }
    if right.as_str().is_some_and(|s| s.starts_with('@')) {
        problems.push(format!("named set {what}"));
        return;
    }
    if let Some(p) = payload {
        let field = p.get("field").and_then(Value::as_str).unwrap_or("");
        match (proto, field) {
            ("ip" | "ip6", "daddr") => match nft_prefix(right) {
                Some(d) => m.dst = Some(d),
                None => problems.push(format!("destination {what}")),
            },
            ("ip" | "ip6", "saddr") => problems.push(format!("source address match {what}")),
            ("ip", "protocol") | ("ip6", "nexthdr") => match right.as_str() {
                Some(s) => set_proto(m, s),
                None => match right.as_u64() {
                    Some(n) => set_proto(m, &n.to_string()),
                    None => problems.push(format!("protocol {what}")),
                },
            },
            ("tcp" | "udp" | "sctp" | "th", "dport") => {
                if proto != "th" {
                    set_proto(m, proto);
                }
                match nft_ports(right) {
                    Ok(p) => m.dports = Some(p),
                    Err(e) => problems.push(e),
                }
            }
            (_, "sport") => problems.push(format!("source port match {what}")),
            _ => problems.push(format!("match {what}")),
        }
        return;
    }
    if let Some(k) = left
        .get("meta")
        .and_then(|x| x.get("key"))
        .and_then(Value::as_str)
    {
        match (k, right) {
            ("l4proto", Value::String(s)) => set_proto(m, s),
            ("l4proto", Value::Number(n)) => set_proto(m, &n.to_string()),
            ("iifname" | "iif", Value::String(s)) if !s.contains('*') => {
                m.iif = Some(s.clone());
            }
            ("nfproto", Value::String(s)) if s == "ipv4" || s == "ipv6" => {
                m.v6 = Some(s == "ipv6");
            }
            _ => problems.push(format!("match {what}")),
        }
        return;
    }
    problems.push(format!("match {what}"));
}

/// An address or `{"prefix": …}`.
fn nft_prefix(v: &Value) -> Option<(IpAddr, u8)> {
    if let Some(s) = v.as_str() {
        return parse_prefix(s);
    }
    let p = v.get("prefix")?;
    let addr: IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
    let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
    (len <= if addr.is_ipv6() { 128 } else { 32 }).then_some((addr, len))
}

/// A port, a range or an anonymous set of them.
fn nft_ports(v: &Value) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    let items: Vec<&Value> = match v.get("set").and_then(Value::as_array) {
        Some(a) => a.iter().collect(),
        None => vec![v],
    };
    for it in items {
        let port = |x: &Value| x.as_u64().and_then(|n| u16::try_from(n).ok());
        if let Some(p) = port(it) {
            push_range(&mut out, p, p)?;
        } else if let Some([a, b]) = it.get("range").and_then(Value::as_array).map(Vec::as_slice) {
            match (port(a), port(b)) {
                (Some(a), Some(b)) => push_range(&mut out, a, b)?,
                _ => return Err(format!("ports {}", nft_text(it))),
            }
        } else {
            return Err(format!("ports {}", nft_text(it)));
        }
    }
    finish_ports(out)
}

/// `meta mark set …` as (mask, value): a number, or `meta mark` combined
/// with `&`, `|`, `^` and numbers.
fn nft_mark_op(v: &Value) -> Option<(u32, u32)> {
    let num = |x: &Value| x.as_u64().and_then(|n| u32::try_from(n).ok());
    if let Some(n) = num(v) {
        return Some((u32::MAX, n));
    }
    let is_mark = |x: &Value| {
        x.get("meta")
            .and_then(|k| k.get("key"))
            .and_then(Value::as_str)
            == Some("mark")
    };
    let bin = |x: &Value, op: &str| -> Option<(Value, u32)> {
        let a = x.get(op)?.as_array()?;
        match a.as_slice() {
            [l, r] => Some((l.clone(), num(r)?)),
            _ => None,
        }
    };
    // (m & a) op b, or m op b.
    let inner = |l: &Value| -> Option<u32> {
        if is_mark(l) {
            Some(u32::MAX)
        } else {
            let (m, a) = bin(l, "&")?;
            is_mark(&m).then_some(a)
        }
    };
    if let Some((l, b)) = bin(v, "|") {
        let a = inner(&l)?;
        // (m & a) | b = (m & (a & !b)) ^ b.
        return Some((!(a & !b), b));
    }
    if let Some((l, b)) = bin(v, "^") {
        let a = inner(&l)?;
        return Some((!a, b));
    }
    if let Some((l, a)) = bin(v, "&") {
        return is_mark(&l).then_some((!a, 0));
    }
    None
}

/// An nft JSON expression written back roughly as `nft` prints it.
fn nft_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        Value::Object(o) => {
            let Some((k, b)) = o.iter().next() else {
                return "{}".into();
            };
            let s = |x: &str| b.get(x).map(nft_text).unwrap_or_default();
            match k.as_str() {
                "match" => {
                    let op = b.get("op").and_then(Value::as_str).unwrap_or("==");
                    if op == "==" || op == "in" {
                        format!("{} {}", s("left"), s("right"))
                    } else {
                        format!("{} {op} {}", s("left"), s("right"))
                    }
                }
                "payload" => format!("{} {}", s("protocol"), s("field")),
                "meta" => format!("meta {}", s("key")),
                "ct" => format!("ct {}", s("key")),
                "prefix" => format!("{}/{}", s("addr"), s("len")),
                "range" => match b.as_array().map(Vec::as_slice) {
                    Some([a, c]) => format!("{}-{}", nft_text(a), nft_text(c)),
                    _ => b.to_string(),
                },
                "set" => match b.as_array() {
                    Some(a) => format!(
                        "{{ {} }}",
                        a.iter().map(nft_text).collect::<Vec<_>>().join(", ")
                    ),
                    None => b.to_string(),
                },
                "mangle" => format!("{} set {}", s("key"), s("value")),
                "&" | "|" | "^" => match b.as_array().map(Vec::as_slice) {
                    Some([a, c]) => format!("{} {k} {}", nft_text(a), nft_text(c)),
                    _ => b.to_string(),
                },
                "counter" => "counter".into(),
                "accept" | "drop" | "return" | "continue" => k.clone(),
                "jump" | "goto" => format!("{k} {}", s("target")),
                "xt" => format!("xt {} {}", s("type"), s("name")),
                _ => v.to_string(),
            }
        }
        other => other.to_string(),
    }
}

// ----- translation ---------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "\
# Generated by iptables-nft-save v1.8.9 (nf_tables) on Sun Dec  6 18:34:24 2026
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
-A PREROUTING -d 10.0.0.1/32 -i eth0 -p tcp -m tcp --dport 443 -j MARK --set-xmark 0xa/0xffffffff
-A PREROUTING -d 10.0.0.1/32 -i eth0 -p tcp -m tcp --dport 80 -j MARK --set-xmark 0xa/0xffffffff
COMMIT
*filter
-A PREROUTING -d 10.9.9.9/32 -j MARK --set-xmark 0x1/0xffffffff
COMMIT
";

    fn specs(t: &Translation) -> Vec<String> {
        t.rules
            .iter()
            .map(|r| format!("{} {}", r.origin, r.spec))
            .collect()
    }

    fn ipt(text: &str) -> Translation {
        let body = format!("*mangle\n{text}\nCOMMIT\n");
        translate(&[parse_iptables_save(&body, Family::V4).unwrap()])
    }

    #[test]
    fn seed_rules_from_iptables_save() {
        let c = parse_iptables_save(SEED, Family::V4).unwrap();
        assert_eq!(c.priority, -150);
        assert_eq!(c.rules.len(), 2, "only mangle PREROUTING");
        let t = translate(&[c]);
        assert_eq!(
            specs(&t),
            [
                "iptables -d 10.0.0.1/32 -p tcp --dport 443 -i eth0 --set-mark 10",
                "iptables -d 10.0.0.1/32 -p tcp --dport 80 -i eth0 --set-mark 10"
            ]
        );
        assert!(t.ignored.is_empty());
        assert!(t.rules[0].text.starts_with("-A PREROUTING -d 10.0.0.1/32"));
        assert_eq!(parse_iptables_save("*filter\nCOMMIT\n", Family::V4), None);
    }

    #[test]
    fn mark_forms_and_ranges() {
        let t = ipt(
            "-A PREROUTING -d 10.0.0.0/8 -p udp -m multiport --dports 53,1000:1003 -j MARK --set-mark 0x10\n\
             -A PREROUTING -d 10.1.0.0/16 -p tcp -j MARK --or-mark 0x3\n\
             -A PREROUTING -d 192.168.0.1 -j MARK --set-xmark 0x5/0xf\n\
             -A PREROUTING -d 192.168.0.2 -j MARK --set-mark 7/0xff\n\
             -A PREROUTING -d 192.168.0.3 -j MARK --and-mark 0xff",
        );
        assert_eq!(
            specs(&t),
            [
                "iptables -d 10.0.0.0/8 -p udp --dport 53,1000,1001,1002,1003 --set-mark 16",
                "iptables -d 10.1.0.0/16 -p tcp --set-mark 3",
                "iptables -d 192.168.0.1/32 --set-mark 5",
                "iptables -d 192.168.0.2/32 --set-mark 7",
            ]
        );
        assert_eq!(t.ignored.len(), 1, "{:?}", t.ignored);
        assert!(t.ignored[0].reason.contains("mark 0"), "{:?}", t.ignored);
    }

    #[test]
    fn wide_port_ranges_become_rules_of_16_ports() {
        let t = ipt("-A PREROUTING -d 10.0.0.1 -p tcp --dport 8000:8019 -j MARK --set-mark 5");
        assert_eq!(
            specs(&t),
            [
                "iptables -d 10.0.0.1/32 -p tcp --dport 8000,8001,8002,8003,8004,8005,8006,8007,\
                 8008,8009,8010,8011,8012,8013,8014,8015 --set-mark 5",
                "iptables -d 10.0.0.1/32 -p tcp --dport 8016,8017,8018,8019 --set-mark 5",
            ]
        );
        let t = ipt("-A PREROUTING -d 10.0.0.1 -p tcp --dport 8000:8128 -j MARK --set-mark 5");
        assert!(t.rules.is_empty());
        assert!(
            t.ignored[0].reason.contains("at most 128"),
            "{:?}",
            t.ignored
        );
    }

    #[test]
    fn partial_mask_after_an_overlapping_rule_holds_both_back() {
        let t = ipt("-A PREROUTING -d 10.0.0.0/8 -p tcp -j MARK --set-mark 1\n\
             -A PREROUTING -d 10.1.0.0/16 -j MARK --or-mark 0x2\n\
             -A PREROUTING -d 11.0.0.1 -j MARK --set-mark 3");
        assert_eq!(specs(&t), ["iptables -d 11.0.0.1/32 --set-mark 3"]);
        assert_eq!(t.ignored.len(), 2);
        assert!(t.ignored[1].reason.contains("overlaps"), "{:?}", t.ignored);
        assert!(
            t.ignored[1].text.contains("--set-xmark") || t.ignored[1].text.contains("--set-mark 1")
        );
    }

    #[test]
    fn unsupported_matches_are_reported_with_their_text() {
        let t = ipt(
            "-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 443 -j MARK --set-xmark 0xa/0xffffffff\n\
             -A PREROUTING -d 10.0.0.2/32 -m conntrack --ctstate NEW -j MARK --set-xmark 0xb/0xffffffff\n\
             -A PREROUTING -s 10.1.0.0/16 -d 10.0.0.3 -j MARK --set-mark 12\n\
             -A PREROUTING ! -d 10.0.0.4/32 -j MARK --set-mark 13\n\
             -A PREROUTING -d 10.0.0.5 -m string --string \"GET /\" --algo bm -j MARK --set-mark 14\n\
             -A PREROUTING -d 10.0.0.6 -p tcp --sport 1000 -j MARK --set-mark 15\n\
             -A PREROUTING -d 10.0.0.7 -p icmp -j MARK --set-mark 16\n\
             -A PREROUTING -d 10.0.0.8 -p tcp --dport 1000:2000 -j MARK --set-mark 17\n\
             -A PREROUTING -d 10.0.0.9 -i eth+ -j MARK --set-mark 18\n\
             -A PREROUTING -d 10.0.0.10 -p tcp -m tcp --tcp-flags SYN,RST SYN -j MARK --set-mark 19",
        );
        // The negated rule may match 10.0.0.1: the first rule is held back.
        let want = [
            "-m conntrack",
            "source address",
            "negated destination",
            "-m string",
            "source port",
            "protocol icmp",
            "1000:2000",
            "interface wildcard",
            "--tcp-flags SYN,RST SYN",
            "overlaps",
        ];
        assert!(t.rules.is_empty(), "{:?}", specs(&t));
        assert_eq!(t.ignored.len(), want.len(), "{:?}", t.ignored);
        for (i, w) in t.ignored.iter().zip(want) {
            assert!(i.reason.contains(w), "{w}: {i:?}");
            assert_eq!(i.origin, "iptables");
        }
        assert!(t.ignored[0].text.contains("--ctstate NEW"));
        assert!(t.ignored[3].text.contains("\"GET /\""));
    }

    #[test]
    fn control_flow_targets_hold_back_what_they_overlap() {
        let t = ipt("-A PREROUTING -d 10.0.0.1 -p tcp -j ACCEPT\n\
             -A PREROUTING -d 10.0.0.1 -p tcp --dport 443 -j MARK --set-mark 1\n\
             -A PREROUTING -d 10.0.0.2 -p tcp --dport 443 -j MARK --set-mark 2\n\
             -A PREROUTING -d 10.0.0.2 -j LOG\n\
             -A PREROUTING -d 10.0.0.3 -j MARK --set-mark 3\n\
             -A PREROUTING -d 10.0.0.3 -j CONNMARK --restore-mark\n\
             -A PREROUTING -d 10.0.0.4 -j DSCP --set-dscp 1");
        assert_eq!(
            specs(&t),
            ["iptables -d 10.0.0.2/32 -p tcp --dport 443 --set-mark 2"]
        );
        assert_eq!(t.ignored.len(), 4, "{:?}", t.ignored);
    }

    #[test]
    fn xmark_semantics_later_full_set_wins() {
        // A set after a conntrack rule overrides it: kept. The earlier one
        // it cannot see past is held back.
        let t = ipt("-A PREROUTING -d 10.0.0.1 -j MARK --set-mark 1\n\
             -A PREROUTING -d 10.0.0.1 -m conntrack --ctstate NEW -j MARK --set-mark 2\n\
             -A PREROUTING -d 10.0.0.1 -p tcp -j MARK --set-mark 3");
        assert_eq!(specs(&t), ["iptables -d 10.0.0.1/32 -p tcp --set-mark 3"]);
    }

    const NFT: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
 {"table": {"family": "ip", "name": "mangle", "handle": 1}},
 {"chain": {"family": "ip", "table": "mangle", "name": "PREROUTING", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -150, "policy": "accept"}},
 {"rule": {"family": "ip", "table": "mangle", "chain": "PREROUTING", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.9"}}, {"xt": {"type": "target", "name": "MARK"}}]}},
 {"table": {"family": "inet", "name": "lb", "handle": 3}},
 {"chain": {"family": "inet", "table": "lb", "name": "pre", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -150, "policy": "accept"}},
 {"chain": {"family": "inet", "table": "lb", "name": "other", "handle": 2}},
 {"rule": {"family": "inet", "table": "lb", "chain": "pre", "handle": 3, "expr": [
   {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}},
   {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.1"}},
   {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [80, 443]}}},
   {"counter": {"packets": 0, "bytes": 0}},
   {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 10}}]}},
 {"rule": {"family": "inet", "table": "lb", "chain": "pre", "handle": 4, "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": {"prefix": {"addr": "2001:db8::", "len": 64}}}},
   {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}},
   {"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"|": [{"&": [{"meta": {"key": "mark"}}, 4294967040]}, 17]}}}]}},
 {"rule": {"family": "inet", "table": "lb", "chain": "pre", "handle": 5, "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@vips"}},
   {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 12}}]}},
 {"rule": {"family": "inet", "table": "lb", "chain": "pre", "handle": 6, "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"range": [8000, 8003]}}},
   {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.7"}},
   {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 13}}]}},
 {"rule": {"family": "inet", "table": "lb", "chain": "other", "handle": 7, "expr": [
   {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 99}}]}},
 {"table": {"family": "ip", "name": "early", "handle": 4}},
 {"chain": {"family": "ip", "table": "early", "name": "pre", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
 {"rule": {"family": "ip", "table": "early", "chain": "pre", "handle": 2, "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.7"}},
   {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 20}}]}}
]}"#;

    #[test]
    fn nft_json_chains_in_priority_order() {
        let chains = parse_nft_json(NFT).unwrap();
        assert_eq!(chains.len(), 2, "iptables-nft's ip mangle is skipped");
        let t = translate(&parse_nft_json(&NFT.replace("@vips", "10.0.0.99")).unwrap());
        assert_eq!(
            specs(&t),
            [
                "nft -d 10.0.0.7/32 --set-mark 20",
                "nft -d 10.0.0.1/32 -p tcp --dport 80,443 -i eth0 --set-mark 10",
                "nft -d 2001:db8::/64 -p udp --set-mark 17",
                "nft -d 10.0.0.99/32 --set-mark 12",
                "nft -d 10.0.0.7/32 -p tcp --dport 8000,8001,8002,8003 --set-mark 13",
            ]
        );
        assert!(t.ignored.is_empty(), "{:?}", t.ignored);
        assert!(
            t.rules[1].text.contains("meta mark set 10"),
            "{}",
            t.rules[1].text
        );
        // A named set may hold any IPv4 address: the IPv4 rules before it
        // are left to the kernel, the IPv6 one and the later one stay.
        let t = translate(&chains);
        assert_eq!(
            specs(&t),
            [
                "nft -d 2001:db8::/64 -p udp --set-mark 17",
                "nft -d 10.0.0.7/32 -p tcp --dport 8000,8001,8002,8003 --set-mark 13",
            ]
        );
        assert_eq!(t.ignored.len(), 3, "{:?}", t.ignored);
        assert!(t.ignored[0].reason.contains("named set"), "{:?}", t.ignored);
        assert!(t.ignored[0].text.contains("@vips"), "{:?}", t.ignored);
        assert!(t.ignored[1].reason.contains("@vips"), "{:?}", t.ignored);
        assert!(parse_nft_json("nope").is_err());
    }

    #[test]
    fn nft_mark_expressions() {
        let v = |s: &str| nft_mark_op(&serde_json::from_str(s).unwrap());
        assert_eq!(v("7"), Some((u32::MAX, 7)));
        assert_eq!(v(r#"{"|": [{"meta": {"key": "mark"}}, 3]}"#), Some((3, 3)));
        assert_eq!(
            v(r#"{"&": [{"meta": {"key": "mark"}}, 255]}"#),
            Some((!255, 0))
        );
        assert_eq!(v(r#"{"^": [{"meta": {"key": "mark"}}, 4]}"#), Some((0, 4)));
        assert_eq!(v(r#"{"ct": {"key": "mark"}}"#), None);
        // (m & a) | b behaves as iptables' xmark with mask !(a & !b).
        let (mask, value) = v(r#"{"|": [{"&": [{"meta": {"key": "mark"}}, 240]}, 5]}"#).unwrap();
        for m in [0u32, 0xff, 0x1234_5678] {
            assert_eq!((m & !mask) ^ value, (m & 240) | 5);
        }
    }

    #[test]
    fn nft_unsupported_rule_text() {
        let json = r#"{"nftables": [
 {"chain": {"family": "inet", "table": "lb", "name": "pre", "type": "filter", "hook": "prerouting", "prio": -200}},
 {"rule": {"family": "inet", "table": "lb", "chain": "pre", "handle": 3, "expr": [
   {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}},
   {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.4"}},
   {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 13}}]}}]}"#;
        let t = translate(&parse_nft_json(json).unwrap());
        assert!(t.rules.is_empty());
        assert_eq!(
            t.ignored[0].text,
            "inet lb pre handle 3: ct state new ip daddr 10.0.0.4 meta mark set 13"
        );
        assert_eq!(t.ignored[0].reason, "unsupported: match ct state new");
    }

    #[test]
    fn inet_rule_without_address_is_both_families() {
        let json = r#"{"nftables": [
 {"chain": {"family": "inet", "table": "t", "name": "p", "type": "filter", "hook": "prerouting", "prio": 0}},
 {"rule": {"family": "inet", "table": "t", "chain": "p", "handle": 2, "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 443}},
   {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 10}}]}}]}"#;
        let t = translate(&parse_nft_json(json).unwrap());
        assert_eq!(
            specs(&t),
            [
                "nft -d 0.0.0.0/0 -p tcp --dport 443 --set-mark 10",
                "nft -d ::/0 -p tcp --dport 443 --set-mark 10"
            ]
        );
    }
}
