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

use super::{World, unix};

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
            let st = &mut self.reals[vi][ri].checkers[ci];
            if st.up != up {
                // result() logs the line of the change and applies it.
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
