// SPDX-License-Identifier: GPL-2.0-or-later
//! Checker blocks (`TCP_CHECK`, `HTTP_GET` … `FILE_CHECK`) and the
//! `track_file` blocks FILE_CHECK follows.

use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::keepalived::lex::{ConfError, Node, err_at};

/// `track_file NAME { file PATH; weight N [reverse]; init_file [V] [overwrite] }`.
pub(super) fn track_file(n: &Node, warnings: &mut Vec<String>) -> Result<TrackFile, ConfError> {
    let mut path = None;
    let mut weight = None;
    let mut reverse = false;
    let mut init = None;
    for c in block(n)? {
        match c.key.as_str() {
            "file" => {
                if path.is_some() {
                    return Err(err_at(&c.pos, "track_file: 'file' is set twice"));
                }
                path = Some(value(c)?.to_string());
            }
            "weight" => {
                if weight.is_some() {
                    return Err(err_at(&c.pos, "track_file: 'weight' is set twice"));
                }
                let (w, r) = track_weight(c, 254)?;
                (weight, reverse) = (Some(w), r);
            }
            "init_file" => {
                no_block(c)?;
                let mut value = 0i64;
                let mut overwrite = false;
                for a in &c.args {
                    if a == "overwrite" {
                        overwrite = true;
                        continue;
                    }
                    value = a
                        .parse::<i32>()
                        .map_err(|_| err_at(&c.pos, format!("init_file: invalid value '{a}'")))?
                        .into();
                    if !(-254..=254).contains(&value) {
                        warnings.push(format!(
                            "{}: track_file init value {value} is outside the sensible range [-254, 254]",
                            c.pos
                        ));
                    }
                }
                init = Some((value, overwrite));
            }
            _ => unknown(c, warnings),
        }
    }
    Ok(TrackFile {
        path: path.ok_or_else(|| err_at(&n.pos, "track_file needs a 'file'"))?,
        weight: weight.unwrap_or(1),
        reverse,
        init,
    })
}

/// `weight N [reverse|noreverse]` of a track_file (|N| <= `max`) or a
/// FILE_CHECK.
pub(super) fn track_weight(c: &Node, max: i32) -> Result<(i32, bool), ConfError> {
    no_block(c)?;
    let Some((w, opts)) = c.args.split_first() else {
        return Err(err_at(&c.pos, "'weight' needs a value"));
    };
    let w = w
        .parse::<i32>()
        .ok()
        .filter(|w| (-max..=max).contains(w))
        .ok_or_else(|| {
            err_at(
                &c.pos,
                format!("'weight': invalid number '{w}' (expected -{max}..={max})"),
            )
        })?;
    let reverse = match opts {
        [] => false,
        [r] if r == "reverse" => true,
        [r] if r == "noreverse" => false,
        _ => {
            return Err(err_at(
                &c.pos,
                format!("'weight': unknown option '{}' (reverse)", opts.join(" ")),
            ));
        }
    };
    Ok((w, reverse))
}

/// `FILE_CHECK { track_file NAME; weight N [reverse] }` of a real server.
pub(super) fn file_check(
    n: &Node,
    rs: &RealServer,
    tracks: &std::collections::HashMap<String, TrackFile>,
    warnings: &mut Vec<String>,
) -> Result<Checker, ConfError> {
    let mut name = None;
    let mut weight = (0, false);
    for c in block(n)? {
        match c.key.as_str() {
            "track_file" => name = Some((value(c)?.to_string(), c.pos.clone())),
            "weight" => weight = track_weight(c, i32::MAX)?,
            _ => unknown(c, warnings),
        }
    }
    let (name, pos) = name.ok_or_else(|| err_at(&n.pos, "FILE_CHECK needs a track_file"))?;
    let t = tracks
        .get(&name)
        .ok_or_else(|| err_at(&pos, format!("track_file '{name}' is not defined")))?;
    // keepalived: a FILE_CHECK weight of 0 takes the track_file's (and its
    // reverse).
    let (weight, reverse) = if weight.0 == 0 {
        (t.weight, t.reverse)
    } else {
        weight
    };
    // Read at the start, then at its file's inotify events
    // (run/file_watch.rs); every second only where the file cannot be
    // watched. No retries, no alpha: the value is known at the start.
    let kind = CheckKind::File(FileCheck {
        name,
        path: t.path.clone(),
        weight,
        reverse,
        init: t.init,
    });
    Ok(Checker::driven(kind, rs, false, &n.pos))
}

/// A script line (`notify_up "/path arg"` or unquoted words).
pub(super) fn script(n: &Node) -> Result<String, ConfError> {
    no_block(n)?;
    if n.args.is_empty() {
        return Err(err_at(&n.pos, format!("'{}' needs a script", n.key)));
    }
    Ok(n.args.join(" "))
}

/// The connection options every checker but MISC_CHECK takes (keepalived's
/// `install_checker_common_keywords`), also those of an SMTP `host` block.
#[derive(Debug, Clone, Default)]
pub(super) struct ConnOpts {
    connect_ip: Option<IpAddr>,
    connect_port: Option<u16>,
    bindto: Option<IpAddr>,
    bind_port: Option<u16>,
    bind_if: Option<String>,
    fwmark: Option<u32>,
    connect_timeout: Option<Duration>,
}

impl ConnOpts {
    /// Take a connection keyword; false if `c` is not one.
    fn take(&mut self, c: &Node, warnings: &mut Vec<String>) -> Result<bool, ConfError> {
        match c.key.as_str() {
            "connect_ip" => self.connect_ip = Some(ip(&c.pos, value(c)?)?),
            "connect_port" => self.connect_port = Some(port(&c.pos, value(c)?)?),
            "bindto" => self.bindto = Some(ip(&c.pos, value(c)?)?),
            "bind_port" => self.bind_port = Some(port(&c.pos, value(c)?)?),
            "fwmark" => self.fwmark = Some(number(c, 0, u32::MAX.into())? as u32),
            "connect_timeout" => self.connect_timeout = Some(duration(c)?),
            "bind_if" => {
                let name = value(c)?;
                // IFNAMSIZ less its NUL; keepalived ignores a longer one.
                if name.len() > 15 {
                    warnings.push(format!(
                        "{}: Interface name {name} is too long - ignoring",
                        c.pos
                    ));
                } else {
                    self.bind_if = Some(name.to_string());
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn over(self, parent: ConnOpts) -> ConnOpts {
        ConnOpts {
            connect_ip: self.connect_ip.or(parent.connect_ip),
            connect_port: self.connect_port.or(parent.connect_port),
            bindto: self.bindto.or(parent.bindto),
            bind_port: self.bind_port.or(parent.bind_port),
            bind_if: self.bind_if.or(parent.bind_if),
            fwmark: self.fwmark.or(parent.fwmark),
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
        }
    }
}

/// keepalived's hex strings (`read_hex_str`, UDP_CHECK `payload` and
/// `require_reply`): words of hex digits, two digits an octet, a digit
/// alone before a blank or the end an octet of its own ("7" is 0x07);
/// with `wildcard`, `x` is a nibble that matches anything. The octets and
/// their mask (bits set: wildcard; empty when there is none).
pub(super) fn hex_str(n: &Node, wildcard: bool) -> Result<(Vec<u8>, Vec<u8>), ConfError> {
    no_block(n)?;
    let text = n.args.join(" ");
    let bad = || err_at(&n.pos, format!("invalid hex string for '{}'", n.key));
    let nibble = |c: char| -> Result<(u8, u8), ConfError> {
        match c.to_digit(16) {
            Some(d) => Ok((d as u8, 0)),
            None if wildcard && c.eq_ignore_ascii_case(&'x') => Ok((0, 0x0f)),
            None => Err(bad()),
        }
    };
    let (mut data, mut mask) = (Vec::new(), Vec::new());
    let mut it = text.chars().peekable();
    loop {
        while it.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let Some(c) = it.next() else { break };
        let (mut v, mut m) = nibble(c)?;
        if let Some(c2) = it.next_if(|c| *c != ' ' && *c != '\t') {
            let (v2, m2) = nibble(c2)?;
            (v, m) = (v << 4 | v2, m << 4 | m2);
        }
        data.push(v);
        mask.push(m);
    }
    if data.is_empty() {
        return Err(bad());
    }
    if mask.iter().all(|&m| m == 0) {
        mask.clear();
    }
    Ok((data, mask))
}

/// One checker block: one checker, or one per `host` of an SMTP_CHECK.
pub(super) fn checker(
    n: &Node,
    rs: &RealServer,
    parent: Inherit,
    vs_virtualhost: Option<&str>,
    scripts: &mut Scripts,
    warnings: &mut Vec<String>,
) -> Result<Vec<Checker>, ConfError> {
    let body = block(n)?;
    let mut inh = Inherit::default();
    let mut co = ConnOpts::default();
    let mut urls = Vec::new();
    let mut virtualhost = None;
    let mut http_protocol = "1.0".to_string();
    let mut sni = false;
    let mut sni_name = None;
    let mut tls_compliant = false;
    let mut misc_path = None;
    let mut misc_timeout = None;
    let mut misc_dynamic = false;
    let mut misc_user = None;
    let mut dns_type = 6;
    let mut dns_name = ".".to_string();
    let mut helo = SMTP_DEFAULT_HELO.to_string();
    let mut hosts = Vec::new();
    let mut payload = Vec::new();
    let mut require_reply = None;
    let mut reply_mask = Vec::new();
    let mut min_len = 0u16;
    let mut max_len = 255u16;
    let kind = n.key.as_str();
    let is_misc = kind == "MISC_CHECK";
    for c in body {
        if !is_misc && c.key != "connect_timeout" && co.take(c, warnings)? {
            continue;
        }
        if inh.take(c)? {
            continue;
        }
        match (kind, c.key.as_str()) {
            (_, "log_all_failures") => {
                flag(c)?;
            }
            ("HTTP_GET" | "SSL_GET", "url") => urls.push(url(c, kind == "SSL_GET", warnings)?),
            ("HTTP_GET" | "SSL_GET", "virtualhost") => virtualhost = Some(value(c)?.to_string()),
            ("HTTP_GET" | "SSL_GET", "http_protocol") => {
                http_protocol = match value(c)? {
                    v @ ("1.0" | "1.0C" | "1.1") => v.to_string(),
                    v => return Err(err_at(&c.pos, format!("unknown http_protocol '{v}'"))),
                }
            }
            // keepalived takes these two in HTTP_GET too, where they
            // change nothing.
            ("HTTP_GET" | "SSL_GET", "enable_sni") => sni = flag(c)?,
            ("HTTP_GET" | "SSL_GET", "sni_name") => sni_name = Some(value(c)?.to_string()),
            ("SSL_GET", "tls_compliant") => tls_compliant = flag(c)?,
            // rvs checks all of a checker's urls in each attempt, one
            // after the other without a delay: fast_recovery's pace,
            // with or without it.
            ("HTTP_GET" | "SSL_GET", "fast_recovery") => {
                flag(c)?;
            }
            ("MISC_CHECK", "misc_path") => misc_path = Some(script(c)?),
            ("MISC_CHECK", "misc_timeout") => misc_timeout = Some(duration(c)?),
            ("MISC_CHECK", "misc_dynamic") => misc_dynamic = flag(c)?,
            ("MISC_CHECK", "user") => {
                no_block(c)?;
                match c.args.len() {
                    0 => return Err(err_at(&c.pos, "'user' needs a user name")),
                    1 | 2 => misc_user = Some(c),
                    _ => return Err(err_at(&c.pos, "'user' takes a user and a group")),
                }
            }
            // keepalived reports a bad type or name and ignores it.
            ("DNS_CHECK", "type") => {
                let v = value(c)?;
                match DNS_TYPES.iter().find(|(t, _)| t.eq_ignore_ascii_case(v)) {
                    Some(&(_, n)) => dns_type = n,
                    None => warnings.push(format!(
                        "{}: Unknown DNS check type {v} - ignoring (A NS CNAME SOA MX TXT AAAA)",
                        c.pos
                    )),
                }
            }
            ("DNS_CHECK", "name") => {
                let v = value(c)?;
                let labels_ok = v == "."
                    || v.trim_end_matches('.')
                        .split('.')
                        .all(|l| !l.is_empty() && l.len() <= 63);
                if labels_ok && v.len() <= 253 {
                    dns_name = v.to_string();
                } else {
                    warnings.push(format!(
                        "{}: DNS_CHECK name '{v}' has an empty or over-long label - ignoring",
                        c.pos
                    ));
                }
            }
            ("SMTP_CHECK", "helo_name") => helo = value(c)?.to_string(),
            ("SMTP_CHECK", "host") => {
                let mut h = ConnOpts::default();
                for hc in block(c)? {
                    if !h.take(hc, warnings)? {
                        unknown(hc, warnings);
                    }
                }
                hosts.push(h);
                warnings.push(format!(
                    "{}: The SMTP_CHECK host block is deprecated. Please define additional checkers.",
                    c.pos
                ));
            }
            ("UDP_CHECK", "payload") => payload = hex_str(c, false)?.0,
            ("UDP_CHECK", "require_reply") => {
                if c.args.is_empty() {
                    no_block(c)?;
                    require_reply = Some(Vec::new());
                } else {
                    let (d, m) = hex_str(c, true)?;
                    require_reply = Some(d);
                    reply_mask = m;
                }
            }
            ("UDP_CHECK", "min_reply_length") => min_len = number(c, 0, 65535)? as u16,
            ("UDP_CHECK", "max_reply_length") => max_len = number(c, 0, 65535)? as u16,
            _ => unknown(c, warnings),
        }
    }
    if kind == "UDP_CHECK" && min_len > max_len {
        warnings.push(format!(
            "{}: UDP_CHECK min_reply_length {min_len} > max_reply_length {max_len} - will always fail",
            n.pos
        ));
    }
    let inh = inh.over(parent);
    let delay_loop = inh.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
    let timing = Timing {
        delay_loop,
        connect_timeout: inh.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        retry: inh.retry.unwrap_or(match kind {
            "MISC_CHECK" => 0,
            // check_dns.h: DNS_DEFAULT_RETRY.
            "DNS_CHECK" => 3,
            _ => 1,
        }),
        delay_before_retry: inh.delay_before_retry.unwrap_or(match kind {
            "HTTP_GET" | "SSL_GET" => Duration::from_secs(3),
            // check_dns.c: default_delay_before_retry 0, "will default to
            // delay_loop".
            "DNS_CHECK" => delay_loop,
            _ => Duration::from_secs(1),
        }),
        warmup: inh.warmup,
    };
    let kind = match kind {
        "TCP_CHECK" => CheckKind::Tcp,
        "MISC_CHECK" => {
            let path = misc_path.ok_or_else(|| err_at(&n.pos, "MISC_CHECK needs misc_path"))?;
            // keepalived removes a MISC_CHECK whose user is unknown.
            let Some(user) = scripts.misc_user(n, &path, misc_user, warnings) else {
                return Ok(Vec::new());
            };
            CheckKind::Misc {
                path,
                timeout: misc_timeout.unwrap_or(delay_loop),
                dynamic: misc_dynamic,
                user,
            }
        }
        "DNS_CHECK" => CheckKind::Dns {
            qtype: dns_type,
            name: dns_name,
        },
        "SMTP_CHECK" => CheckKind::Smtp { helo },
        "UDP_CHECK" => CheckKind::Udp {
            payload,
            require_reply,
            reply_mask,
            min_len,
            max_len,
        },
        "PING_CHECK" => CheckKind::Ping,
        _ => {
            if urls.is_empty() {
                return Err(err_at(&n.pos, format!("{} needs a url block", n.key)));
            }
            CheckKind::Http {
                tls: n.key == "SSL_GET",
                sni,
                sni_name,
                tls_compliant,
                urls,
                virtualhost: virtualhost.or(vs_virtualhost.map(str::to_string)),
                http_protocol,
                // The SSL block's, set once the whole file is read.
                client: None,
            }
        }
    };
    // An SMTP_CHECK with `host` blocks checks each host (keepalived 2.x makes
    // them separate checkers); unset options come from the checker's own.
    if hosts.is_empty() {
        hosts.push(ConnOpts::default());
    }
    let mut checkers = Vec::new();
    for h in hosts {
        let h = h.over(co.clone());
        let connect_ip = h.connect_ip.unwrap_or(rs.addr);
        // keepalived's check_conn_opts: a link-local target is reached
        // through one interface, which only bind_if names; the checker
        // is dropped, with this line.
        if let IpAddr::V6(a) = connect_ip
            && !is_misc
            && a.is_unicast_link_local()
            && h.bind_if.is_none()
        {
            warnings.push(format!(
                "{}: Checker link local address {a} requires a bind_if; the checker is ignored",
                n.pos
            ));
            continue;
        }
        checkers.push(Checker {
            kind: kind.clone(),
            connect_ip,
            connect_port: h.connect_port.unwrap_or(rs.port),
            bindto: h.bindto,
            bind_port: h.bind_port,
            bind_if: h.bind_if,
            fwmark: h.fwmark,
            timing: Timing {
                connect_timeout: h.connect_timeout.unwrap_or(timing.connect_timeout),
                ..timing
            },
            alpha: inh.alpha.unwrap_or(false),
            pos: n.pos.clone(),
        });
    }
    Ok(checkers)
}

/// `regex_options caseless multiline …` into `o`: keepalived's PCRE2
/// options. Those that change what a pattern matches are applied; those
/// that only tune PCRE2 (its optimisations, callouts, capture groups) or
/// forbid constructs change nothing here and are taken silently; the
/// rest, which change PCRE2's syntax in ways rvs's engine does not have,
/// are warned about and ignored, as an unknown one is.
fn regex_options(
    n: &Node,
    o: &mut RegexOptions,
    warnings: &mut Vec<String>,
) -> Result<(), ConfError> {
    no_block(n)?;
    for a in &n.args {
        match a.as_str() {
            "caseless" => o.caseless = true,
            "multiline" => o.multiline = true,
            "dotall" => o.dotall = true,
            "extended" => o.extended = true,
            "ungreedy" => o.ungreedy = true,
            "utf" | "ucp" => o.unicode = true,
            "firstline" => o.firstline = true,
            "dollar_endonly" => o.dollar_endonly = true,
            "auto_callout" | "dupnames" | "never_backslash_c" | "never_ucp" | "never_utf"
            | "no_auto_capture" | "no_auto_possess" | "no_dotstar_anchor" | "no_start_optimize"
            | "use_offset_limit" => {}
            "alt_bsux" => o.alt_bsux = true,
            "allow_empty_class" => o.allow_empty_class = true,
            // With `multiline`, `^` after a newline that ends the body:
            // what the regex crate's `^` does anyway.
            "alt_circumflex" => {}
            "match_unset_backref" => o.match_unset_backref = true,
            "alt_verbnames" => warnings.push(format!(
                "{}: regex option '{a}' is not supported by rvs; ignored",
                n.pos
            )),
            _ => warnings.push(format!("{}: unknown regex option '{a}' - ignoring", n.pos)),
        }
    }
    Ok(())
}

/// `status_code 200 301-302 …`.
pub(super) fn status_codes(n: &Node) -> Result<Vec<(u16, u16)>, ConfError> {
    no_block(n)?;
    if n.args.is_empty() {
        return Err(err_at(&n.pos, "'status_code' needs a value"));
    }
    let code = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(|| err_at(&n.pos, format!("invalid status_code '{s}'")))
    };
    n.args
        .iter()
        .map(|a| match a.split_once('-') {
            Some((x, y)) => {
                let (x, y) = (code(x)?, code(y)?);
                if x > y {
                    return Err(err_at(&n.pos, format!("invalid status_code range '{a}'")));
                }
                Ok((x, y))
            }
            None => code(a).map(|c| (c, c)),
        })
        .collect()
}

/// A `url` block of an HTTP_GET, or an SSL_GET's (`tls`).
pub(super) fn url(n: &Node, tls: bool, warnings: &mut Vec<String>) -> Result<Url, ConfError> {
    let mut u = Url {
        path: String::new(),
        digest: None,
        status: Vec::new(),
        virtualhost: None,
        regex: None,
        regex_no_match: false,
        regex_options: RegexOptions::default(),
        tls_compliant: false,
    };
    let mut regex_pos = None;
    // A regex option or offset given, and where (for the line when there
    // is no regex).
    let mut regex_extra = None;
    for c in block(n)? {
        match c.key.as_str() {
            "path" => u.path = value(c)?.to_string(),
            "digest" => {
                let d = value(c)?;
                if d.len() != 32 || !d.chars().all(|x| x.is_ascii_hexdigit()) {
                    return Err(err_at(&c.pos, format!("invalid MD5 digest '{d}'")));
                }
                u.digest = Some(d.to_ascii_lowercase());
            }
            "status_code" => u.status.extend(status_codes(c)?),
            "virtualhost" => u.virtualhost = Some(value(c)?.to_string()),
            "regex" => {
                u.regex = Some(value(c)?.to_string());
                regex_pos = Some(c.pos.clone());
            }
            "regex_no_match" => u.regex_no_match = flag(c)?,
            "regex_options" => {
                regex_options(c, &mut u.regex_options, warnings)?;
                regex_extra = Some(c.pos.clone());
            }
            // The size of PCRE2's JIT stack: rvs's regex engine (finite
            // automata) needs none. Checked as keepalived checks it.
            "regex_stack" => {
                no_block(c)?;
                let [start, max] = c.args.as_slice() else {
                    return Err(err_at(&c.pos, "regex_stack needs a start and a max size"));
                };
                let size = |v: &str| {
                    v.parse::<u64>()
                        .map_err(|_| err_at(&c.pos, format!("regex_stack: invalid size '{v}'")))
                };
                if size(start)? > size(max)? {
                    return Err(err_at(&c.pos, "regex_stack: the start exceeds the max"));
                }
                regex_extra = Some(c.pos.clone());
            }
            "regex_min_offset" => {
                u.regex_options.min_offset = number(c, 0, u32::MAX.into())? as usize;
                regex_extra = Some(c.pos.clone());
            }
            "regex_max_offset" => {
                u.regex_options.max_offset = Some(number(c, 0, u32::MAX.into())? as usize);
                regex_extra = Some(c.pos.clone());
            }
            "tls_compliant" if tls => u.tls_compliant = flag(c)?,
            _ => unknown(c, warnings),
        }
    }
    if let Some(max) = u.regex_options.max_offset
        && u.regex_options.min_offset > max
    {
        warnings.push(format!(
            "{}: regex_min_offset {} > regex_max_offset {max} - ignoring both",
            n.pos, u.regex_options.min_offset
        ));
        u.regex_options.min_offset = 0;
        u.regex_options.max_offset = None;
    }
    match (&u.regex, regex_extra) {
        (Some(r), _) => {
            crate::keepalived::check::pattern::build(r, &u.regex_options).map_err(|e| {
                err_at(
                    regex_pos.as_ref().unwrap_or(&n.pos),
                    format!("invalid regex '{r}': {e}"),
                )
            })?;
        }
        (None, Some(pos)) => {
            warnings.push(format!(
                "{pos}: regex parameters specified without regex - ignoring"
            ));
            u.regex_options = RegexOptions::default();
        }
        (None, None) => {}
    }
    if u.path.is_empty() {
        return Err(err_at(&n.pos, "url needs a path"));
    }
    if u.regex_no_match && u.regex.is_none() {
        return Err(err_at(&n.pos, "regex_no_match needs a regex"));
    }
    Ok(u)
}
