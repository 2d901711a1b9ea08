//! Command-line options.

use std::ffi::OsString;
use std::path::PathBuf;

use rvs_proto::client::Endpoint;

/// Usage text for `--help`.
pub const USAGE: &str = "\
Usage: rvsd [OPTIONS]

The rvs director daemon: owns the virtual-server table of the network
namespace it runs in and serves rvsadm (the ipvsadm-compatible command line).
Runs in the foreground and logs to stderr.

Options:
  --socket PATH|@NAME   control endpoint (default: $RVS_SOCKET, else the
                        abstract socket @rvsd.ctl of this network namespace)
  --interface IF        interface to serve (repeatable; default: every
                        interface that is up, except loopback)
  --io MODE             packet I/O (needs root except `none`):
                        `auto` (default): `xdp` if the XDP classifier
                          attaches and the sockets open, else `packet`;
                        `xdp`: XDP classifier on the served interfaces,
                          service traffic through AF_XDP sockets;
                        `packet`: AF_PACKET sockets, and an nftables table
                          (`table netdev rvs`) that keeps the kernel from
                          answering what rvs claims (needs `nft`);
                        `none`: control plane only, nothing is forwarded.
                        One worker thread per RX queue.
  --rules FILE          load rules in `ipvsadm -S` format at start, all or
                        nothing; a bad file stops rvsd with exit status 2
  -h, --help            print this help
  -V, --version         print the version
";

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// `--socket` (else `RVS_SOCKET`, else the default).
    pub socket: Option<Endpoint>,
    /// `--interface`, in order given, without duplicates.
    pub interfaces: Vec<String>,
    /// `--rules`.
    pub rules: Option<PathBuf>,
    /// `--io`.
    pub io: IoMode,
}

/// The packet I/O of `--io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// Control plane only: nothing is forwarded.
    None,
    /// XDP classifier and AF_XDP sockets.
    Xdp,
    /// AF_PACKET sockets and nftables drop rules.
    Packet,
    /// `Xdp` if it opens, else `Packet`.
    #[default]
    Auto,
}

impl IoMode {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            IoMode::None => "none",
            IoMode::Xdp => "xdp",
            IoMode::Packet => "packet",
            IoMode::Auto => "auto",
        }
    }
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve.
    Run(Options),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// Parse the arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut o = Options::default();
    let text = |v: OsString, what: &str| {
        v.into_string()
            .map_err(|_| format!("{what}: not valid UTF-8"))
            .and_then(|s| {
                if s.is_empty() {
                    Err(format!("{what}: empty value"))
                } else {
                    Ok(s)
                }
            })
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("socket") => {
                let v = text(p.value().map_err(|e| e.to_string())?, "--socket")?;
                o.socket = Some(Endpoint::parse(&v));
            }
            Long("interface") => {
                let v = text(p.value().map_err(|e| e.to_string())?, "--interface")?;
                if !o.interfaces.contains(&v) {
                    o.interfaces.push(v);
                }
            }
            Long("rules") => {
                let v = p.value().map_err(|e| e.to_string())?;
                if v.is_empty() {
                    return Err("--rules: empty value".into());
                }
                o.rules = Some(PathBuf::from(v));
            }
            Long("io") => {
                let v = text(p.value().map_err(|e| e.to_string())?, "--io")?;
                o.io = match v.as_str() {
                    "none" => IoMode::None,
                    "xdp" => IoMode::Xdp,
                    "packet" => IoMode::Packet,
                    "auto" => IoMode::Auto,
                    _ => {
                        return Err(format!(
                            "--io {v}: expected `auto`, `xdp`, `packet` or `none`"
                        ));
                    }
                };
            }
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Short('v') | Long("version") => return Ok(Command::Version),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    Ok(Command::Run(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses() {
        let c = parse(args(&[
            "--socket",
            "@x",
            "--interface=eth0",
            "--interface",
            "eth1",
            "--interface",
            "eth0",
            "--rules",
            "/etc/rvs/rules",
        ]))
        .unwrap();
        assert_eq!(
            c,
            Command::Run(Options {
                socket: Some(Endpoint::Abstract("x".into())),
                interfaces: vec!["eth0".into(), "eth1".into()],
                rules: Some("/etc/rvs/rules".into()),
                io: IoMode::Auto,
            })
        );
        assert_eq!(parse(args(&["--help"])).unwrap(), Command::Help);
        assert_eq!(parse(args(&["-V"])).unwrap(), Command::Version);
        assert_eq!(parse(args(&[])).unwrap(), Command::Run(Options::default()));
        assert!(parse(args(&["--bogus"])).is_err());
        assert!(parse(args(&["--rules"])).is_err());
        assert!(parse(args(&["stray"])).is_err());
        assert!(parse(args(&["--interface", ""])).is_err());
        assert_eq!(
            parse(args(&["--io", "xdp"])).unwrap(),
            Command::Run(Options {
                io: IoMode::Xdp,
                ..Options::default()
            })
        );
        for (name, mode) in [
            ("none", IoMode::None),
            ("packet", IoMode::Packet),
            ("auto", IoMode::Auto),
        ] {
            assert_eq!(
                parse(args(&["--io", name])).unwrap(),
                Command::Run(Options {
                    io: mode,
                    ..Options::default()
                })
            );
            assert_eq!(mode.name(), name);
        }
        assert!(parse(args(&["--io", "dpdk"])).is_err());
        assert!(parse(args(&["--io"])).is_err());
    }
}
