// SPDX-License-Identifier: GPL-2.0-or-later
//! BFD_CHECK in the world: a session's state, from the BFD thread
//! (`../bfd/io.rs`), drives the checkers that follow it, as keepalived's
//! check_bfd.c `bfd_check_handle_event` does: Up puts each up, any other
//! state puts it down at once (no retry), each change logged as
//! "BFD check of [NAME] RS(…) is UP|DOWN".

use std::time::SystemTime;

use crate::keepalived::bfd::io::Event;
use crate::keepalived::bfd::wire::State;
use crate::keepalived::check::{self, Outcome};
use crate::keepalived::conf::CheckKind;

use super::{World, log, unix};

/// What `rvs health` shows of a session in its checker's last result.
pub(super) fn session_line(e: &Event) -> String {
    if e.detect.is_zero() {
        format!("session {}", e.state.name())
    } else {
        format!(
            "session {} (detection {} ms)",
            e.state.name(),
            e.detect.as_millis()
        )
    }
}

/// keepalived's line for a BFD_CHECK that changes.
pub(super) fn line(name: &str, ck: &crate::keepalived::conf::Checker, up: bool) -> String {
    format!(
        "BFD check of [{name}] RS({}) is {}",
        check::fmt_checker(ck),
        if up { "UP" } else { "DOWN" }
    )
}

impl World {
    /// A session's state: every BFD_CHECK that names it follows.
    pub fn bfd_event(&mut self, e: &Event) {
        let up = e.state == State::Up;
        let now = unix(SystemTime::now());
        for k in 0..self.index.len() {
            let (vi, ri, ci) = self.index[k];
            let ck = &self.conf.services[vi].reals[ri].checkers[ci];
            let CheckKind::Bfd { name } = &ck.kind else {
                continue;
            };
            if *name != e.name {
                continue;
            }
            let down_line = line(name, ck, false);
            let st = &self.reals[vi][ri].checkers[ci];
            // keepalived: skipped when the checker already agrees and has
            // had its first verdict; otherwise the line, and the state
            // applied (result() says the line of a change itself).
            if up != st.up || !st.has_run {
                if !up && !st.up {
                    log(&down_line);
                }
                self.result(
                    k,
                    if up {
                        Outcome::Up(None)
                    } else {
                        Outcome::Down(down_line)
                    },
                );
            }
            let st = &mut self.reals[vi][ri].checkers[ci];
            st.last_check = now;
            st.last_result = session_line(e);
            if !up {
                st.error = format!("BFD session {}", e.state.name());
            }
            self.changed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::keepalived::apply::Want;
    use crate::keepalived::{conf, lex};
    use rvs_proto::client::Endpoint;

    const CONF: &str = "bfd_instance b1 {\n neighbor_ip 10.0.0.11\n}\n\
        virtual_server 10.0.0.100 80 {\n real_server 10.0.0.11 80 {\n BFD_CHECK { name b1 }\n }\n\
        real_server 10.0.0.12 80 {\n BFD_CHECK { name b1 }\n TCP_CHECK { }\n }\n}\n";

    fn world() -> World {
        let mut w = Vec::new();
        let t = lex::parse_text(CONF, "k.conf", std::path::Path::new("/x"), &mut w).unwrap();
        let c = conf::build(&t, &mut w).unwrap();
        assert!(w.is_empty(), "{w:?}");
        World::new(c, Endpoint::Abstract("rvs-health-test-nowhere".into()))
    }

    fn ev(state: State, ms: u64) -> Event {
        Event {
            name: "b1".into(),
            state,
            detect: Duration::from_millis(ms),
        }
    }

    #[test]
    fn follows_the_session() {
        let mut w = world();
        // Down until the session is Up, whatever the other checkers say.
        assert!(!w.reals[0][0].alive && !w.reals[0][1].alive);
        assert_eq!(w.want(0, 0), Want::Out);
        // The first state is the checker's first verdict (keepalived's
        // has_run); the same again changes nothing more.
        w.bfd_event(&ev(State::Down, 0));
        assert!(w.reals[0][0].checkers[0].has_run);
        w.bfd_event(&ev(State::Init, 0));
        assert!(!w.reals[0][0].alive);
        assert_eq!(w.reals[0][0].checkers[0].last_result, "session Init");
        w.bfd_event(&ev(State::Up, 50));
        assert!(w.reals[0][0].alive && w.reals[0][1].alive);
        let st = &w.reals[0][0].checkers[0];
        assert!(st.up && st.error.is_empty());
        assert_eq!(st.last_result, "session Up (detection 50 ms)");
        assert_eq!(w.want(0, 0), Want::In(1));
        // The same state again (a new detection time): no change.
        let changed = w.reals[0][0].last_change;
        w.bfd_event(&ev(State::Up, 300));
        assert_eq!(w.reals[0][0].last_change, changed);
        // Down at once, no retry.
        w.bfd_event(&ev(State::Down, 300));
        assert!(!w.reals[0][0].alive && !w.reals[0][1].alive);
        assert_eq!(w.reals[0][0].checkers[0].error, "BFD session Down");
        // Another instance's events change nothing.
        w.bfd_event(&Event {
            name: "b2".into(),
            ..ev(State::Up, 1)
        });
        assert!(!w.reals[0][0].alive);
    }

    #[test]
    fn a_reload_keeps_the_state() {
        let mut w = world();
        w.bfd_event(&ev(State::Up, 50));
        let mut warnings = Vec::new();
        let t = lex::parse_text(CONF, "k.conf", std::path::Path::new("/x"), &mut warnings).unwrap();
        w.reload(conf::build(&t, &mut warnings).unwrap());
        assert!(w.reals[0][0].alive);
        assert!(w.reals[0][0].checkers[0].up);
    }

    #[test]
    fn the_line_is_keepalived_s() {
        let w = world();
        let ck = &w.conf.services[0].reals[0].checkers[0];
        assert_eq!(
            line("b1", ck, false),
            "BFD check of [b1] RS([10.0.0.11]:tcp:80) is DOWN"
        );
    }
}
