//! `nft -j list ruleset` JSON read into the base [`Chain`]s on the
//! `prerouting` hook (native nftables chains of families ip, ip6 and inet).

use std::net::IpAddr;

use serde_json::Value;

use super::{
    Action, Chain, Family, Match, Origin, PortsError, Rule, finish_ports, parse_prefix, push_range,
    set_proto,
};

/// Output that is not what `nft -j list ruleset` prints.
#[derive(Debug, thiserror::Error)]
pub enum NftJsonError {
    /// Not JSON.
    #[error("nft -j output: {0}")]
    Json(#[source] serde_json::Error),
    /// JSON without the `nftables` array.
    #[error("nft -j output: no \"nftables\" array")]
    NoArray,
}

/// The base chains on the `prerouting` hook of `nft -j list ruleset`
/// output (families ip, ip6 and inet; the ip/ip6 tables named `mangle` are
/// iptables-nft's and are read from `iptables-save` instead).
///
/// # Errors
///
/// Output that is not the JSON `nft -j` prints.
pub fn parse_nft_json(json: &str) -> Result<Vec<Chain>, NftJsonError> {
    let v: Value = serde_json::from_str(json).map_err(NftJsonError::Json)?;
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or(NftJsonError::NoArray)?;
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
                    Err(e) => problems.push(e.to_string()),
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
fn nft_ports(v: &Value) -> Result<Vec<u16>, PortsError> {
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
                _ => return Err(PortsError::NftItem(nft_text(it))),
            }
        } else {
            return Err(PortsError::NftItem(nft_text(it)));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
