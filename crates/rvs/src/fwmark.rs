//! `rvs fwmark …`: rvsd's firewall-mark rules, rvs's own
//! `iptables -t mangle -A PREROUTING … -j MARK --set-mark N`.
//!
//! rvs forwards packets before netfilter sees them, so fwmark services
//! (`rvsadm -A -f N`) are reached through these rules instead of iptables
//! marks. Like non-terminating `MARK` targets, every rule is tried in order
//! and the last one that matches sets the mark.
//!
//! rvsd also follows the host's own MARK rules (`rvsd --fwmark-source
//! host`, the default): `list` shows them first, with their origin
//! (`iptables`, `nft`), then rvs's own (`rvs`), then the host's rules rvsd
//! leaves to the kernel and why. `save`, `del` and `flush` touch rvs's own
//! rules only.

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::fwmark::{FwmarkSpec, HostMarks, parse_args};
use rvs_proto::{Reply, Request};

/// errno: the rule exists.
const EEXIST: i32 = 17;
/// errno: no such rule.
const ENOENT: i32 = 2;

/// Help of `rvs fwmark`.
pub const USAGE: &str = "\
Usage: rvs fwmark add -d ADDR[/LEN] [-p tcp|udp|sctp] [--dport PORT[,PORT...]]
                      [-i IF] --set-mark N
       rvs fwmark del <the same options>
       rvs fwmark list     the rules, numbered, in the add syntax, with their
                           origin: the host's firewall (iptables, nft) or rvs;
                           then the host's MARK rules left to the kernel, and why
       rvs fwmark flush    remove every rvs rule (the host's stay)
       rvs fwmark save     'rvs fwmark add' lines that restore the rvs rules

  -d, --destination ADDR[/LEN]   destination address or prefix (default /32, /128)
  -p, --protocol P               tcp, udp or sctp (default: all three)
  --dport, --dports P[,P...]     destination ports, at most 16 (default: all)
  -i, --in-interface IF          ingress interface (default: any)
  --set-mark N                   the mark, 1..4294967295 (decimal or 0x hex)
iptables spellings are accepted: -m multiport, -j MARK (no-ops).
The last matching rule sets the mark; rvsadm -A -f N serves mark N.
rvsd also applies the host's mangle PREROUTING MARK rules (iptables,
iptables-legacy, nft `meta mark set`), read every second, before the rvs
rules, unless it runs with --fwmark-source rvs.
";

/// One `rvs fwmark` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `add`.
    Add(FwmarkSpec),
    /// `del`.
    Del(FwmarkSpec),
    /// `list`.
    List,
    /// `flush`.
    Flush,
    /// `save`.
    Save,
    /// `-h`.
    Help,
}

/// Parse the arguments after `rvs fwmark`.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((what, rest)) = args.split_first() else {
        return Err(format!("fwmark needs an action\n{USAGE}"));
    };
    let no_more = |name: &str| {
        if rest.is_empty() {
            Ok(())
        } else {
            Err(format!("fwmark {name} takes no arguments"))
        }
    };
    match what.as_str() {
        "add" | "-A" => parse_args(rest)
            .map(Command::Add)
            .map_err(|e| format!("fwmark add: {e}")),
        "del" | "delete" | "-D" => parse_args(rest)
            .map(Command::Del)
            .map_err(|e| format!("fwmark del: {e}")),
        "list" | "-L" => no_more("list").map(|()| Command::List),
        "flush" | "-F" => no_more("flush").map(|()| Command::Flush),
        "save" | "-S" => no_more("save").map(|()| Command::Save),
        "-h" | "--help" | "help" => Ok(Command::Help),
        other => Err(format!(
            "unknown fwmark action '{other}': add, del, list, flush or save"
        )),
    }
}

/// The numbered listing (`list`): the host's rules (when rvsd reports
/// them), then rvs's, each with its origin; then the host's rules left to
/// the kernel.
pub fn format_list(rules: &[FwmarkSpec], host: Option<&HostMarks>) -> String {
    let mut out = String::new();
    let host_rules = host.map_or(&[][..], |h| &h.rules[..]);
    let all = host_rules
        .iter()
        .map(|r| (r.origin.as_str(), &r.spec))
        .chain(rules.iter().map(|r| ("rvs", r)));
    for (i, (origin, r)) in all.enumerate() {
        out.push_str(&format!("{:<4} {origin:<8} {r}\n", i + 1));
    }
    if let Some(h) = host {
        if h.source == "rvs" {
            out.push_str("# the host's MARK rules are not followed (rvsd --fwmark-source rvs)\n");
        }
        if !h.ignored.is_empty() {
            out.push_str("Host rules left to the kernel:\n");
            for r in &h.ignored {
                out.push_str(&format!("     {:<8} {}\n", r.origin, r.text));
                out.push_str(&format!("              why: {}\n", r.reason));
            }
        }
    }
    out
}

/// `rvs fwmark add` lines (`save`).
pub fn format_save(rules: &[FwmarkSpec]) -> String {
    rules
        .iter()
        .map(|r| format!("rvs fwmark add {r}\n"))
        .collect()
}

/// Run `rvs fwmark ARGS` against rvsd: what to print.
pub fn run(args: &[String]) -> Result<String, String> {
    let cmd = parse(args)?;
    let req = match &cmd {
        Command::Help => return Ok(USAGE.to_string()),
        Command::Add(s) => Request::FwmarkAdd(s.clone()),
        Command::Del(s) => Request::FwmarkDel(s.clone()),
        Command::Flush => Request::FwmarkFlush,
        Command::List | Command::Save => Request::FwmarkList,
    };
    let ep = Endpoint::from_env();
    let mut c = Client::connect(&ep)
        .map_err(|e| format!("no rvsd answers on {ep} ({e}); start it with `rvsd &`"))?;
    match (c.call(req)?, &cmd) {
        (Reply::Error(e), Command::Add(s)) if e.errno == EEXIST => {
            Err(format!("rvsd: the rule already exists: {s}"))
        }
        (Reply::Error(e), Command::Del(s)) if e.errno == ENOENT => {
            Err(format!("rvsd: no such rule: {s}"))
        }
        (Reply::Error(e), _) => Err(format!("rvsd: {}", e.message)),
        (Reply::Ok, Command::Add(_) | Command::Del(_) | Command::Flush) => Ok(String::new()),
        (Reply::FwmarkRules(r), Command::List) => {
            // An older rvsd does not know the request: its rules only.
            let host = match c.call(Request::FwmarkHost) {
                Ok(Reply::FwmarkHost(h)) => Some(h),
                _ => None,
            };
            Ok(format_list(&r, host.as_ref()))
        }
        (Reply::FwmarkRules(r), Command::Save) => Ok(format_save(&r)),
        (other, _) => Err(format!("unexpected reply from rvsd: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn actions() {
        let Command::Add(r) = parse(&args(
            "add -d 122.161.1.100 -p tcp --dport 80,443 --set-mark 10",
        ))
        .unwrap() else {
            panic!("not an add");
        };
        assert_eq!(
            format_save(std::slice::from_ref(&r)),
            "rvs fwmark add -d 122.161.1.100/32 -p tcp --dport 80,443 --set-mark 10\n"
        );
        assert_eq!(
            format_list(&[r.clone(), r.clone()], None),
            "1    rvs      -d 122.161.1.100/32 -p tcp --dport 80,443 --set-mark 10\n\
             2    rvs      -d 122.161.1.100/32 -p tcp --dport 80,443 --set-mark 10\n"
        );
        let host = HostMarks {
            source: "host".into(),
            rules: vec![rvs_proto::fwmark::HostRule {
                origin: "iptables".into(),
                text: "-A PREROUTING -d 122.161.1.100/32 -j MARK --set-xmark 0xa/0xffffffff".into(),
                spec: r.clone(),
            }],
            ignored: vec![rvs_proto::fwmark::IgnoredRule {
                origin: "nft".into(),
                text: "inet t pre handle 4: ct state new meta mark set 11".into(),
                reason: "unsupported: match ct state new".into(),
            }],
        };
        assert_eq!(
            format_list(std::slice::from_ref(&r), Some(&host)),
            "1    iptables -d 122.161.1.100/32 -p tcp --dport 80,443 --set-mark 10\n\
             2    rvs      -d 122.161.1.100/32 -p tcp --dport 80,443 --set-mark 10\n\
             Host rules left to the kernel:\n     \
             nft      inet t pre handle 4: ct state new meta mark set 11\n              \
             why: unsupported: match ct state new\n"
        );
        assert_eq!(parse(&args("list")), Ok(Command::List));
        assert_eq!(parse(&args("flush")), Ok(Command::Flush));
        assert_eq!(parse(&args("save")), Ok(Command::Save));
        assert!(matches!(
            parse(&args("del -d 10.0.0.1 --set-mark 3")),
            Ok(Command::Del(_))
        ));
    }

    #[test]
    fn bad_input() {
        for (a, want) in [
            ("", "needs an action"),
            ("frob", "unknown fwmark action"),
            ("list -x", "takes no arguments"),
            ("add -d 10.0.0.1", "missing --set-mark"),
            ("add -d nope --set-mark 1", "bad destination address"),
            ("del -d 10.0.0.1 --set-mark 1 --bogus", "unknown option"),
        ] {
            let e = parse(&args(a)).unwrap_err();
            assert!(e.contains(want), "{a}: {e}");
        }
    }
}
