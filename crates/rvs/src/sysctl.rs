//! `rvs sysctl`: rvsd's IPVS sysctls under the kernel's names, as
//! `sysctl net.ipv4.vs.NAME` shows and sets them for kernel IPVS.

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{Reply, Request, SysctlValue};

/// Help of `rvs sysctl`.
pub const USAGE: &str = "\
Usage: rvs sysctl [-a]                     every IPVS sysctl with its value
       rvs sysctl NAME...                  those
       rvs sysctl -w NAME=VALUE...         set them, all or none
       rvs sysctl -p FILE|-                set them from a sysctl.conf file
                                           (lines 'net.ipv4.vs.NAME = VALUE';
                                           '#'/';' comments; other keys are
                                           an error), all or none

NAME is net.ipv4.vs.NAME (or just NAME), as under /proc/sys/net/ipv4/vs/.
rvs applies conn_reuse_mode, expire_nodest_conn, expire_quiescent_template,
sloppy_sctp and sloppy_tcp; the others show the kernel's default, and only
that default may be set (so a kernel director's file loads).
";

/// One `rvs sysctl` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Show these (all when empty).
    Show(Vec<String>),
    /// Set these.
    Set(Vec<(String, String)>),
    /// `-h`.
    Help,
}

/// `NAME=VALUE` (spaces around `=` allowed, as in sysctl.conf).
fn pair(s: &str, what: &str) -> Result<(String, String), String> {
    let (n, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{what}: '{s}' is not NAME=VALUE"))?;
    let (n, v) = (n.trim(), v.trim());
    if n.is_empty() {
        return Err(format!("{what}: '{s}' has no name"));
    }
    Ok((n.to_string(), v.to_string()))
}

/// The settings of a sysctl.conf text (line numbers in errors).
pub fn parse_conf(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        // sysctl.conf's "-name = value": ignore failures; not for us.
        let l = l.strip_prefix('-').unwrap_or(l);
        out.push(pair(l, &format!("line {}", i + 1))?);
    }
    Ok(out)
}

/// Parse the arguments after `rvs sysctl`; `read` reads `-p`'s file.
pub fn parse(
    args: &[String],
    read: impl Fn(&str) -> Result<String, String>,
) -> Result<Command, String> {
    match args.first().map(String::as_str) {
        None | Some("-a") | Some("--all") if args.len() <= 1 => Ok(Command::Show(Vec::new())),
        Some("-h") | Some("--help") => Ok(Command::Help),
        Some("-w") | Some("--write") => {
            if args.len() < 2 {
                return Err("sysctl -w needs NAME=VALUE".into());
            }
            args[1..]
                .iter()
                .map(|a| pair(a, "sysctl -w"))
                .collect::<Result<_, _>>()
                .map(Command::Set)
        }
        Some("-p") | Some("--load") => {
            let [_, file] = args else {
                return Err("sysctl -p needs one FILE (or - for standard input)".into());
            };
            let text = read(file)?;
            parse_conf(&text)
                .map(Command::Set)
                .map_err(|e| format!("{file}: {e}"))
        }
        Some(a) if a.starts_with('-') => Err(format!("sysctl: unknown option '{a}'\n{USAGE}")),
        _ => Ok(Command::Show(args.to_vec())),
    }
}

/// `sysctl`'s output: `name = value` lines.
pub fn format(values: &[SysctlValue], names: &[String]) -> Result<String, String> {
    if names.is_empty() {
        return Ok(values
            .iter()
            .map(|v| format!("{} = {}\n", v.name, v.value))
            .collect());
    }
    let mut out = String::new();
    for n in names {
        let short = rvs_core::sysctl::short_name(n);
        let v = values
            .iter()
            .find(|v| v.name.strip_prefix(rvs_core::sysctl::PREFIX) == Some(short))
            .ok_or_else(|| format!("{n}: no such IPVS sysctl"))?;
        out.push_str(&format!("{} = {}\n", v.name, v.value));
    }
    Ok(out)
}

/// Run `rvs sysctl ARGS` against rvsd: what to print.
pub fn run(args: &[String]) -> Result<String, String> {
    let read = |f: &str| -> Result<String, String> {
        if f == "-" {
            std::io::read_to_string(std::io::stdin()).map_err(|e| format!("standard input: {e}"))
        } else {
            std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))
        }
    };
    let cmd = parse(args, read)?;
    let ep = Endpoint::from_env();
    let connect = || {
        Client::connect(&ep)
            .map_err(|e| format!("no rvsd answers on {ep} ({e}); start it with `rvsd &`"))
    };
    match cmd {
        Command::Help => Ok(USAGE.to_string()),
        Command::Show(names) => match connect()?.call(Request::GetSysctls)? {
            Reply::Sysctls(v) => format(&v, &names),
            Reply::Error(e) => Err(format!("rvsd: {}", e.message)),
            other => Err(format!("unexpected reply from rvsd: {other:?}")),
        },
        Command::Set(pairs) => {
            let shown: Vec<String> = pairs.iter().map(|(n, _)| n.clone()).collect();
            let mut c = connect()?;
            match c.call(Request::SetSysctls(pairs))? {
                Reply::Ok => {}
                Reply::Error(e) => return Err(format!("rvsd: {} (nothing was set)", e.message)),
                other => return Err(format!("unexpected reply from rvsd: {other:?}")),
            }
            // As sysctl -w: print what is now in force.
            match c.call(Request::GetSysctls)? {
                Reply::Sysctls(v) => format(&v, &shown),
                _ => Ok(String::new()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn no_file(f: &str) -> Result<String, String> {
        Err(format!("{f}: not read in tests"))
    }

    #[test]
    fn commands() {
        assert_eq!(parse(&[], no_file), Ok(Command::Show(vec![])));
        assert_eq!(parse(&args("-a"), no_file), Ok(Command::Show(vec![])));
        assert_eq!(
            parse(&args("sloppy_tcp net.ipv4.vs.sloppy_sctp"), no_file),
            Ok(Command::Show(args("sloppy_tcp net.ipv4.vs.sloppy_sctp")))
        );
        assert_eq!(
            parse(
                &args("-w net.ipv4.vs.sloppy_tcp=1 conn_reuse_mode=0"),
                no_file
            ),
            Ok(Command::Set(vec![
                ("net.ipv4.vs.sloppy_tcp".into(), "1".into()),
                ("conn_reuse_mode".into(), "0".into())
            ]))
        );
        let conf =
            "# director\nnet.ipv4.vs.expire_nodest_conn = 1\n\n; x\nnet.ipv4.vs.drop_entry=0\n";
        assert_eq!(
            parse(&args("-p f"), |_| Ok(conf.to_string())),
            Ok(Command::Set(vec![
                ("net.ipv4.vs.expire_nodest_conn".into(), "1".into()),
                ("net.ipv4.vs.drop_entry".into(), "0".into())
            ]))
        );
    }

    #[test]
    fn bad_input() {
        for (a, want) in [
            ("-w", "needs NAME=VALUE"),
            ("-w sloppy_tcp", "not NAME=VALUE"),
            ("-w =1", "has no name"),
            ("-p", "needs one FILE"),
            ("-p f", "not read in tests"),
            ("-x", "unknown option"),
        ] {
            let e = parse(&args(a), no_file).unwrap_err();
            assert!(e.contains(want), "{a}: {e}");
        }
        let e = parse(&args("-p f"), |_| Ok("a = 1\nbogus line\n".into())).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn output() {
        let v = vec![
            SysctlValue {
                name: "net.ipv4.vs.sloppy_tcp".into(),
                value: "1".into(),
                applies: true,
                note: String::new(),
            },
            SysctlValue {
                name: "net.ipv4.vs.drop_entry".into(),
                value: "0".into(),
                applies: false,
                note: "n".into(),
            },
        ];
        assert_eq!(
            format(&v, &[]).unwrap(),
            "net.ipv4.vs.sloppy_tcp = 1\nnet.ipv4.vs.drop_entry = 0\n"
        );
        assert_eq!(
            format(&v, &args("drop_entry")).unwrap(),
            "net.ipv4.vs.drop_entry = 0\n"
        );
        assert!(format(&v, &args("nope")).is_err());
    }
}
