//! `--rules FILE`: a table in `ipvsadm -S` format, loaded at start.
//!
//! The file is parsed with rvsadm's grammar (`rvsadm::cli::parse_restore`,
//! exactly what `rvsadm -R` accepts), then applied as one atomic batch, the
//! same path a `Request::Batch` takes: either every line is applied or rvsd
//! refuses to start. Like `ipvsadm-restore`, lines whose first word starts
//! with `#` are comments (rvsadm's parser skips them).
//!
//! Lines of the form `rvs fwmark add …` (what `rvs fwmark save` prints) are
//! firewall-mark rules; they are applied in the same batch, before the
//! ipvsadm lines, so `{ rvs fwmark save; rvsadm -S; } > FILE` round-trips.

use std::io;
use std::path::{Path, PathBuf};

use rvs_core::Instant;
use rvs_proto::fwmark::FwmarkSpec;
use rvs_proto::{BatchLine, Reply};

use crate::handler::State;

/// Program name rvsadm's messages are rendered with.
const ARGV0: &str = "rvsadm";

/// A parsed rules file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// `rvs fwmark add` lines: line number and rule.
    pub fwmark: Vec<(usize, FwmarkSpec)>,
    /// The ipvsadm lines.
    pub batch: Vec<BatchLine>,
}

/// Parse rules text: the fwmark rules and the batch, or the 1-based line
/// and reason of the first bad line.
pub fn parse(text: &str) -> Result<Rules, (usize, String)> {
    let mut fwmark = Vec::new();
    // The ipvsadm part keeps its line numbers: fwmark lines become blank.
    let mut ipvs = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"rvs") {
            match words.get(1..3) {
                Some(["fwmark", "add"]) => {
                    let spec = rvs_proto::fwmark::parse_args(&words[3..])
                        .map_err(|e| (i + 1, format!("rvs fwmark add: {e}")))?;
                    fwmark.push((i + 1, spec));
                }
                _ => {
                    return Err((
                        i + 1,
                        "only 'rvs fwmark add' lines and ipvsadm lines are accepted".into(),
                    ));
                }
            }
            ipvs.push('\n');
        } else {
            ipvs.push_str(line);
            ipvs.push('\n');
        }
    }
    let batch = rvsadm::cli::parse_restore(ARGV0, &ipvs)
        .map_err(|(line, e)| (line, e.render(ARGV0).trim_end().to_string()))?;
    Ok(Rules { fwmark, batch })
}

/// Why a rules file was not loaded; its text is the message to print
/// after `rvsd: ` (`FILE line N: reason`).
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not UTF-8.
    #[error("{}: not valid UTF-8", .path.display())]
    Utf8 {
        /// The file.
        path: PathBuf,
    },
    /// A line is bad, or was refused when applied.
    #[error("{} line {line}: {reason}", .path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
    /// The batch was refused, at no line in particular.
    #[error("{}: {reason}", .path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The engine answered with something other than OK or an error.
    #[error("{}: unexpected reply {reply:?}", .path.display())]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The reply.
        reply: Box<Reply>,
    },
}

/// Load `path` into `state`, all or nothing. On success, the number of
/// lines applied.
pub fn load(state: &mut State, path: &Path, now: Instant) -> Result<usize, RulesError> {
    let text = std::fs::read(path).map_err(|source| RulesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(text).map_err(|_| RulesError::Utf8 {
        path: path.to_path_buf(),
    })?;
    let rules = parse(&text).map_err(|(line, reason)| RulesError::Line {
        path: path.to_path_buf(),
        line,
        reason,
    })?;
    let n = rules.fwmark.len() + rules.batch.len();
    match state.load_rules(&rules.fwmark, &rules.batch, now) {
        Reply::Ok => Ok(n),
        Reply::Error(e) => {
            let reason = if e.op.is_none() {
                // A fwmark rule: rvsd's own message.
                e.message.clone()
            } else {
                rvsadm::strerror::for_reply(&e)
            };
            let path = path.to_path_buf();
            Err(match e.line {
                Some(line) => RulesError::Line { path, line, reason },
                None => RulesError::Refused { path, reason },
            })
        }
        other => Err(RulesError::Unexpected {
            path: path.to_path_buf(),
            reply: Box::new(other),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::{Engine, EngineConfig};
    use rvs_proto::{Fwd, SVC_F_HASHED, SVC_F_PERSISTENT, TunKind};

    /// The `-S -n` example of the reference (§2.11).
    const SAVED: &str = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 192.168.1.10:80 -m -w 1
-a -t 10.0.0.1:80 -r 192.168.1.11:80 -g -w 2
-A -u 10.0.0.1:53 -s wlc -p 360 -M 255.255.255.0
-A -u [2001:db8::1]:5060 -s rr -p 360 --pe sip -o
-A -f 1 -s sh -p 360 -b sh-fallback,sh-port
-a -f 1 -r 192.168.1.12:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum
";

    fn state() -> State {
        State::new(Engine::new(EngineConfig::default()), |_| None)
    }

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("rvsd-rules-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn loads_a_saved_table() {
        let mut s = state();
        let p = write("good", &format!("# saved\n\n{SAVED}"));
        assert_eq!(load(&mut s, &p, Instant::ZERO).unwrap(), 7);
        let _ = std::fs::remove_file(&p);
        let l = s.services();
        assert_eq!(l.len(), 4);
        // Address services newest first, then fwmark services.
        let fwm = &l[3];
        assert_eq!(fwm.spec.scheduler, "sh");
        assert_eq!(fwm.spec.flags, SVC_F_PERSISTENT | SVC_F_HASHED | 0x8 | 0x10);
        assert_eq!(fwm.dests[0].spec.fwd, Fwd::Tunnel);
        assert_eq!(fwm.dests[0].spec.tunnel.kind, TunKind::Gue);
        assert_eq!(fwm.dests[0].spec.tunnel.port, 6080);
        assert_eq!(l[0].spec.pe.as_deref(), Some("sip"));
        assert_eq!(l[1].spec.netmask, 0xffff_ff00);
        assert_eq!(l[2].dests.len(), 2);
        assert_eq!(l[2].dests[0].spec.weight, 2);
        assert_eq!(l[2].dests[1].spec.fwd, Fwd::Masq);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let mut s = state();
        let p = write(
            "badsyntax",
            "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.2:80 -w\n",
        );
        let e = load(&mut s, &p, Instant::ZERO).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{} line 2: ", p.display())), "{e}");
        let p2 = write("dup", "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s rr\n");
        let e = load(&mut s, &p2, Instant::ZERO).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{} line 2: Service already exists", p2.display())
        );
        assert!(s.services().is_empty(), "nothing applied");
        let p3 = write("utf8", "-A -t 10.0.0.1:80 -s rr\n");
        std::fs::write(&p3, b"\xff\n").unwrap();
        let e = load(&mut s, &p3, Instant::ZERO).unwrap_err().to_string();
        assert_eq!(e, format!("{}: not valid UTF-8", p3.display()));
        let _ = std::fs::remove_file(&p3);
        let e = load(&mut s, &p3, Instant::ZERO).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: cannot read: ", p3.display())),
            "{e}"
        );
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(&p2);
    }

    #[test]
    fn fwmark_lines_load_with_the_table_all_or_nothing() {
        let mut s = state();
        s.set_ifindex_of(|n| (n == "eth0").then_some(2));
        let text = "\
rvs fwmark add -d 122.161.1.100/32 -p tcp --dport 80,443 -i eth0 --set-mark 10
-A -f 10 -s rr -p 3600
-a -f 10 -r 192.168.1.11:0 -g -w 1
rvs fwmark add -d 2001:db8::/64 --set-mark 11
";
        let p = write("fwmark", text);
        assert_eq!(load(&mut s, &p, Instant::ZERO).unwrap(), 4);
        let rules = s.fwmark_rules();
        let shown: Vec<String> = rules.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "-d 122.161.1.100/32 -p tcp --dport 80,443 -i eth0 --set-mark 10",
                "-d 2001:db8::/64 --set-mark 11"
            ]
        );
        assert_eq!(s.services().len(), 1);
        let _ = std::fs::remove_file(&p);

        // A bad rule, an unknown interface, a bad ipvsadm line: nothing applied.
        for (name, text, line, want) in [
            (
                "badmark",
                "-A -f 10 -s rr\nrvs fwmark add -d 10.0.0.1 --set-mark 0\n",
                2,
                "bad mark",
            ),
            (
                "noif",
                "-A -f 10 -s rr\nrvs fwmark add -d 10.0.0.1 -i nope0 --set-mark 10\n",
                2,
                "no such interface 'nope0'",
            ),
            (
                "dup",
                "rvs fwmark add -d 10.0.0.1 --set-mark 10\nrvs fwmark add -d 10.0.0.1/32 --set-mark 10\n",
                2,
                "already exists",
            ),
            (
                "badline",
                "rvs fwmark add -d 10.0.0.1 --set-mark 10\n-A -f 10 -s nosuch\n",
                2,
                "",
            ),
            ("other", "rvs lab nat\n", 1, "only 'rvs fwmark add'"),
        ] {
            let mut s = state();
            s.set_ifindex_of(|n| (n == "eth0").then_some(2));
            let p = write(name, text);
            let e = load(&mut s, &p, Instant::ZERO).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("{} line {line}: ", p.display())) && e.contains(want),
                "{name}: {e}"
            );
            assert!(s.fwmark_rules().is_empty(), "{name}");
            assert!(s.services().is_empty(), "{name}");
            let _ = std::fs::remove_file(&p);
        }
    }
}
