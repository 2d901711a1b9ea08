//! `--rules FILE`: a table in `ipvsadm -S` format, loaded at start.
//!
//! The file is parsed with rvsadm's grammar (`rvsadm::cli::parse_restore`,
//! exactly what `rvsadm -R` accepts), then applied as one atomic batch, the
//! same path a `Request::Batch` takes: either every line is applied or rvsd
//! refuses to start. Like `ipvsadm-restore`, lines whose first word starts
//! with `#` are comments (rvsadm's parser skips them).

use std::path::Path;

use rvs_core::Instant;
use rvs_proto::{BatchLine, Reply, Request};

use crate::auth::Peer;
use crate::handler::State;

/// Program name rvsadm's messages are rendered with.
const ARGV0: &str = "rvsadm";

/// Parse rules text: the batch, or the 1-based line and reason of the first bad line.
pub fn parse(text: &str) -> Result<Vec<BatchLine>, (usize, String)> {
    rvsadm::cli::parse_restore(ARGV0, text)
        .map_err(|(line, e)| (line, e.render(ARGV0).trim_end().to_string()))
}

/// Load `path` into `state`, all or nothing. On error, the message to print
/// after `rvsd: ` (`FILE line N: reason`). On success, the number of lines applied.
pub fn load(state: &mut State, path: &Path, now: Instant) -> Result<usize, String> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let text = String::from_utf8(text).map_err(|_| format!("{shown}: not valid UTF-8"))?;
    let lines = parse(&text).map_err(|(line, reason)| format!("{shown} line {line}: {reason}"))?;
    let n = lines.len();
    match state.handle(&Peer::internal(), Request::Batch(lines), now) {
        Reply::Ok => Ok(n),
        Reply::Error(e) => {
            let reason = rvsadm::strerror::for_reply(&e);
            Err(match e.line {
                Some(line) => format!("{shown} line {line}: {reason}"),
                None => format!("{shown}: {reason}"),
            })
        }
        other => Err(format!("{shown}: unexpected reply {other:?}")),
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
        assert_eq!(load(&mut s, &p, Instant::ZERO), Ok(7));
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
        let e = load(&mut s, &p, Instant::ZERO).unwrap_err();
        assert!(e.starts_with(&format!("{} line 2: ", p.display())), "{e}");
        let p2 = write("dup", "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s rr\n");
        let e = load(&mut s, &p2, Instant::ZERO).unwrap_err();
        assert_eq!(
            e,
            format!("{} line 2: Service already exists", p2.display())
        );
        assert!(s.services().is_empty(), "nothing applied");
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(&p2);
    }
}
