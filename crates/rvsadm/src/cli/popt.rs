//! The option scanner: popt's rules (popt 1.19, as ipvsadm 1.31 is linked
//! against), reduced to what ipvsadm's option table uses.
//!
//! * A word that does not start with `-`, or is exactly `-`, is a leftover
//!   (a positional argument); options and leftovers may be interleaved.
//! * `--` alone ends option processing: every later word is a leftover.
//! * `--name` / `--name=value`: exact long-name match (no abbreviations).
//! * `-abc`: a bundle of short options. When an option takes an argument, the
//!   rest of the word is the argument (`-t10.0.0.1:80`, with one leading `=`
//!   skipped: `-s=rr`); otherwise the next word is, whatever it looks like.
//! * An optional argument (`-p`) is taken from the rest of the word, from
//!   `=value`, or from the next word unless that word starts with `-`.
//! * Errors: `unknown option`, `missing argument` (option needing an argument
//!   is the last word), `option does not take an argument` (`--numeric=1`,
//!   `-n=1`). The offending text popt reports is the whole current word.
//!
//! Not emulated: `POSIXLY_CORRECT` (stop at the first leftover), popt aliases
//! and `!#:+` argument expansion (ipvsadm configures none of them).

/// What kind of argument an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArgKind {
    /// A flag.
    None,
    /// A mandatory argument.
    Required,
    /// An optional argument (`POPT_ARGFLAG_OPTIONAL`).
    Optional,
}

/// Every option ipvsadm knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    TcpService,
    UdpService,
    SctpService,
    FwmarkService,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    Syncid,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

/// One entry of the option table.
#[derive(Debug, Clone, Copy)]
pub(super) struct OptDef {
    pub long: &'static str,
    pub short: Option<char>,
    pub arg: ArgKind,
    pub key: Key,
}

const fn def(long: &'static str, short: Option<char>, arg: ArgKind, key: Key) -> OptDef {
    OptDef {
        long,
        short,
        arg,
        key,
    }
}

use ArgKind::{None as N, Optional as O, Required as R};

/// ipvsadm's option table, in its order (the first match wins: `--list` is
/// `-L`).
pub(super) const OPTIONS: &[OptDef] = &[
    def("add-service", Some('A'), N, Key::AddService),
    def("edit-service", Some('E'), N, Key::EditService),
    def("delete-service", Some('D'), N, Key::DeleteService),
    def("clear", Some('C'), N, Key::Clear),
    def("list", Some('L'), N, Key::List),
    def("list", Some('l'), N, Key::List),
    def("zero", Some('Z'), N, Key::Zero),
    def("add-server", Some('a'), N, Key::AddServer),
    def("edit-server", Some('e'), N, Key::EditServer),
    def("delete-server", Some('d'), N, Key::DeleteServer),
    def("set", None, N, Key::Set),
    def("help", Some('h'), N, Key::Help),
    def("version", Some('v'), N, Key::Version),
    def("restore", Some('R'), N, Key::Restore),
    def("save", Some('S'), N, Key::Save),
    def("start-daemon", None, R, Key::StartDaemon),
    def("stop-daemon", None, R, Key::StopDaemon),
    def("tcp-service", Some('t'), R, Key::TcpService),
    def("udp-service", Some('u'), R, Key::UdpService),
    def("sctp-service", None, R, Key::SctpService),
    def("fwmark-service", Some('f'), R, Key::FwmarkService),
    def("scheduler", Some('s'), R, Key::Scheduler),
    def("persistent", Some('p'), O, Key::Persistent),
    def("netmask", Some('M'), R, Key::Netmask),
    def("real-server", Some('r'), R, Key::RealServer),
    def("masquerading", Some('m'), N, Key::Masquerading),
    def("ipip", Some('i'), N, Key::Ipip),
    def("gatewaying", Some('g'), N, Key::Gatewaying),
    def("weight", Some('w'), R, Key::Weight),
    def("u-threshold", Some('x'), R, Key::UThreshold),
    def("l-threshold", Some('y'), R, Key::LThreshold),
    def("numeric", Some('n'), N, Key::Numeric),
    def("connection", Some('c'), N, Key::Connection),
    def("mcast-interface", None, R, Key::McastInterface),
    def("syncid", None, R, Key::Syncid),
    def("timeout", None, N, Key::Timeout),
    def("daemon", None, N, Key::Daemon),
    def("stats", None, N, Key::Stats),
    def("rate", None, N, Key::Rate),
    def("thresholds", None, N, Key::Thresholds),
    def("persistent-conn", None, N, Key::PersistentConn),
    def("nosort", None, N, Key::NoSort),
    def("sort", None, N, Key::Sort),
    def("exact", Some('X'), N, Key::Exact),
    def("ipv6", Some('6'), N, Key::Ipv6),
    def("ops", Some('o'), N, Key::Ops),
    def("pe", None, R, Key::Pe),
    def("sched-flags", Some('b'), R, Key::SchedFlags),
    def("mcast-group", None, R, Key::McastGroup),
    def("mcast-port", None, R, Key::McastPort),
    def("mcast-ttl", None, R, Key::McastTtl),
    def("sync-maxlen", None, R, Key::SyncMaxlen),
    def("tun-info", None, N, Key::TunInfo),
    def("tun-type", None, R, Key::TunType),
    def("tun-port", None, R, Key::TunPort),
    def("tun-nocsum", None, N, Key::TunNocsum),
    def("tun-csum", None, N, Key::TunCsum),
    def("tun-remcsum", None, N, Key::TunRemcsum),
];

/// A popt error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PoptError {
    /// `POPT_ERROR_NOARG`.
    MissingArg,
    /// `POPT_ERROR_BADOPT`.
    UnknownOption,
    /// `POPT_ERROR_UNWANTEDARG`.
    UnwantedArg,
}

impl PoptError {
    /// `poptStrerror`.
    pub(super) fn text(self) -> &'static str {
        match self {
            PoptError::MissingArg => "missing argument",
            PoptError::UnknownOption => "unknown option",
            PoptError::UnwantedArg => "option does not take an argument",
        }
    }
}

/// An option found on the command line.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found<'a> {
    pub key: Key,
    pub arg: Option<&'a str>,
    /// The last word consumed (popt's `poptBadOption`), which ipvsadm quotes
    /// in `invalid option` messages.
    pub word: &'a str,
}

/// The scanner state.
#[derive(Debug)]
pub(super) struct Scanner<'a> {
    args: &'a [String],
    next: usize,
    /// The unprocessed rest of a short-option bundle.
    chars: Option<&'a str>,
    rest_leftover: bool,
    leftovers: Vec<&'a str>,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(args: &'a [String]) -> Self {
        Scanner {
            args,
            next: 0,
            chars: None,
            rest_leftover: false,
            leftovers: Vec::new(),
        }
    }

    /// The last word consumed.
    fn word(&self) -> &'a str {
        self.next
            .checked_sub(1)
            .and_then(|i| self.args.get(i))
            .map_or("", String::as_str)
    }

    /// The next option (`None` at the end), or a popt error with the word it
    /// happened in.
    pub(super) fn next_opt(&mut self) -> Option<Result<Found<'a>, (PoptError, &'a str)>> {
        let mut long_arg: Option<&'a str> = None;
        let def = loop {
            if let Some(rest) = self.chars.take() {
                let c = rest.chars().next()?;
                let after = &rest[c.len_utf8()..];
                if !after.is_empty() {
                    self.chars = Some(after);
                }
                match OPTIONS.iter().find(|o| o.short == Some(c)) {
                    Some(d) => break d,
                    None => return Some(Err((PoptError::UnknownOption, self.word()))),
                }
            }
            let word: &'a str = self.args.get(self.next)?.as_str();
            self.next += 1;
            if self.rest_leftover || !word.starts_with('-') || word == "-" {
                self.leftovers.push(word);
                continue;
            }
            if word == "--" {
                self.rest_leftover = true;
                continue;
            }
            if let Some(body) = word.strip_prefix("--") {
                let (name, value) = match body.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (body, None),
                };
                match OPTIONS.iter().find(|o| o.long == name) {
                    Some(d) => {
                        long_arg = value;
                        break d;
                    }
                    None => return Some(Err((PoptError::UnknownOption, word))),
                }
            }
            // A single dash: a bundle of short options (non-empty, as the word
            // is neither "-" nor "--").
            self.chars = Some(&word[1..]);
        };

        let arg = match def.arg {
            ArgKind::None => {
                if long_arg.is_some() || self.chars.is_some_and(|r| r.starts_with('=')) {
                    return Some(Err((PoptError::UnwantedArg, self.word())));
                }
                None
            }
            ArgKind::Required | ArgKind::Optional => {
                if long_arg.is_some() {
                    long_arg
                } else if let Some(rest) = self.chars.take() {
                    Some(rest.strip_prefix('=').unwrap_or(rest))
                } else if let Some(next) = self.args.get(self.next) {
                    if def.arg == ArgKind::Optional && next.starts_with('-') {
                        None
                    } else {
                        self.next += 1;
                        Some(next.as_str())
                    }
                } else if def.arg == ArgKind::Required {
                    return Some(Err((PoptError::MissingArg, self.word())));
                } else {
                    None
                }
            }
        };
        Some(Ok(Found {
            key: def.key,
            arg,
            word: self.word(),
        }))
    }

    /// The positional words, in order (call after the last option).
    pub(super) fn into_leftovers(self) -> Vec<&'a str> {
        self.leftovers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(line: &str) -> (Vec<String>, Vec<String>) {
        let args: Vec<String> = line.split(' ').map(str::to_string).collect();
        let mut sc = Scanner::new(&args);
        let mut out = Vec::new();
        while let Some(r) = sc.next_opt() {
            match r {
                Ok(f) => out.push(format!("{:?}={:?}@{}", f.key, f.arg, f.word)),
                Err((e, w)) => {
                    out.push(format!("{}: {}", w, e.text()));
                    break;
                }
            }
        }
        let left = sc
            .into_leftovers()
            .into_iter()
            .map(str::to_string)
            .collect();
        (out, left)
    }

    #[test]
    fn table_short_names_unique() {
        let mut seen = std::collections::HashSet::new();
        for o in OPTIONS {
            if let Some(c) = o.short {
                assert!(seen.insert(c), "duplicate -{c}");
            }
        }
    }

    #[test]
    fn bundles_and_attached_arguments() {
        let (o, _) = scan("-Lnc");
        assert_eq!(
            o,
            [
                "List=None@-Lnc",
                "Numeric=None@-Lnc",
                "Connection=None@-Lnc"
            ]
        );
        let (o, _) = scan("-At10.0.0.1:80 -s=rr");
        assert_eq!(
            o,
            [
                "AddService=None@-At10.0.0.1:80",
                "TcpService=Some(\"10.0.0.1:80\")@-At10.0.0.1:80",
                "Scheduler=Some(\"rr\")@-s=rr"
            ]
        );
        // A required argument is the next word, whatever it looks like.
        let (o, _) = scan("-s -p");
        assert_eq!(o, ["Scheduler=Some(\"-p\")@-p"]);
    }

    #[test]
    fn optional_argument() {
        assert_eq!(scan("-p 5").0, ["Persistent=Some(\"5\")@5"]);
        assert_eq!(scan("-p -n").0, ["Persistent=None@-p", "Numeric=None@-n"]);
        assert_eq!(scan("-p").0, ["Persistent=None@-p"]);
        assert_eq!(scan("-p5").0, ["Persistent=Some(\"5\")@-p5"]);
        assert_eq!(scan("-p=5").0, ["Persistent=Some(\"5\")@-p=5"]);
        assert_eq!(
            scan("--persistent=5").0,
            ["Persistent=Some(\"5\")@--persistent=5"]
        );
        assert_eq!(scan("--persistent 5").0, ["Persistent=Some(\"5\")@5"]);
        let (o, l) = scan("-p -");
        assert_eq!(o, ["Persistent=None@-p"]);
        assert_eq!(l, ["-"]);
    }

    #[test]
    fn leftovers_and_double_dash() {
        let (o, l) = scan("a -L b -- -n c");
        assert_eq!(o, ["List=None@-L"]);
        assert_eq!(l, ["a", "b", "-n", "c"]);
    }

    #[test]
    fn errors() {
        assert_eq!(scan("-L --foo").0.last().unwrap(), "--foo: unknown option");
        assert_eq!(scan("-Lq").0.last().unwrap(), "-Lq: unknown option");
        assert_eq!(scan("-L -w").0.last().unwrap(), "-w: missing argument");
        assert_eq!(
            scan("--weight").0.last().unwrap(),
            "--weight: missing argument"
        );
        assert_eq!(
            scan("--numeric=1").0.last().unwrap(),
            "--numeric=1: option does not take an argument"
        );
        assert_eq!(
            scan("-Ln=1").0.last().unwrap(),
            "-Ln=1: option does not take an argument"
        );
        assert_eq!(scan("--lis").0.last().unwrap(), "--lis: unknown option");
        assert_eq!(scan("-é").0.last().unwrap(), "-é: unknown option");
    }

    #[test]
    fn long_option_with_empty_value() {
        assert_eq!(
            scan("--scheduler=").0,
            ["Scheduler=Some(\"\")@--scheduler="]
        );
    }
}
