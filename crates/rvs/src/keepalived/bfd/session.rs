// SPDX-License-Identifier: GPL-2.0-or-later
//! One BFD session (RFC 5880 asynchronous mode, no echo, no
//! authentication) as a pure state machine: fed the time, received
//! packets and random numbers, it says what to send, when it next needs
//! the time, and how its state changed. No clock, no socket.
//!
//! Where the RFC leaves a choice, keepalived's BFD process is followed
//! (keepalived/bfd/bfd_scheduler.c): a session sends its first packet at
//! once (unless `passive`), a `passive` one sends nothing while Down;
//! while Up the transmit interval and the detection time are recomputed
//! only from packets with Poll or Final (so a change waits for its poll
//! sequence, as RFC 5880 §6.8.3 asks), in the other states from every
//! packet; going Up with an `idle_tx` other than `min_tx` starts a poll
//! sequence (the advertised Desired Min TX changes from one to the
//! other); a Down session forgets the remote's discriminator and state
//! after a detection time without packets. Unlike keepalived, the local
//! discriminator is kept for the session's life (RFC 5880 §6.3 only asks
//! that it be unique), and a received packet delays expiry in Init as in
//! Up (keepalived lets an Init session expire after one detection time
//! whatever it receives).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::wire::{Control, State, diag};

/// A session's configured parameters (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// `min_tx`: Desired Min TX Interval while Up.
    pub min_tx: u32,
    /// `min_rx`: Required Min RX Interval.
    pub min_rx: u32,
    /// `idle_tx`: Desired Min TX Interval while not Up (at least 1 s,
    /// RFC 5880 §6.8.3).
    pub idle_tx: u32,
    /// `multiplier`: Detect Mult.
    pub mult: u8,
    /// `passive`: send nothing until the remote has been heard.
    pub passive: bool,
}

/// A state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The state before.
    pub from: State,
    /// The state now.
    pub to: State,
    /// The local diagnostic now.
    pub diag: u8,
    /// The remote's last diagnostic.
    pub remote_diag: u8,
}

/// One session's state variables (RFC 5880 §6.8.1) and timers.
#[derive(Debug, Clone)]
pub struct Session {
    p: Params,
    /// bfd.LocalDiscr.
    pub local_discr: u32,
    state: State,
    diag: u8,
    remote_state: State,
    remote_discr: u32,
    remote_diag: u8,
    remote_min_rx: u32,
    remote_min_tx: u32,
    remote_mult: u8,
    remote_demand: bool,
    /// A poll sequence of ours is running (P on what we send).
    poll: bool,
    /// A Poll was received: the next packet, sent at once, has F.
    fin: bool,
    /// The transmit interval in use (µs, before jitter).
    tx_intv: u32,
    /// The detection time in use (µs; 0: nothing heard yet).
    detect: u64,
    last_rx: Option<Instant>,
    next_tx: Instant,
    events: VecDeque<Change>,
}

impl Session {
    /// A new session, Down, with its (non-zero, unique) discriminator; its
    /// first packet is due at `now` unless passive.
    pub fn new(p: Params, local_discr: u32, now: Instant) -> Session {
        let mut s = Session {
            p,
            local_discr,
            state: State::Down,
            diag: diag::NONE,
            remote_state: State::Down,
            remote_discr: 0,
            remote_diag: diag::NONE,
            // RFC 5880 §6.8.1: initialised to 1.
            remote_min_rx: 1,
            remote_min_tx: 0,
            remote_mult: 0,
            remote_demand: false,
            poll: false,
            fin: false,
            tx_intv: 0,
            detect: 0,
            last_rx: None,
            next_tx: now,
            events: VecDeque::new(),
        };
        s.tx_intv = s.wanted_tx_intv();
        s
    }

    /// bfd.SessionState.
    pub fn state(&self) -> State {
        self.state
    }

    /// The detection time in use (zero before the remote is heard).
    pub fn detect_time(&self) -> Duration {
        Duration::from_micros(self.detect)
    }

    /// The transmit interval in use, before jitter.
    #[cfg(test)]
    pub fn tx_interval(&self) -> Duration {
        Duration::from_micros(self.tx_intv.into())
    }

    /// Whether a poll sequence of ours runs.
    #[cfg(test)]
    pub fn polling(&self) -> bool {
        self.poll
    }

    /// The next state change, oldest first.
    pub fn poll_event(&mut self) -> Option<Change> {
        self.events.pop_front()
    }

    /// The Desired Min TX Interval this side advertises now.
    fn desired_tx(&self) -> u32 {
        if self.state == State::Up {
            self.p.min_tx
        } else {
            self.p.idle_tx
        }
    }

    /// RFC 5880 §6.8.7: never faster than the remote asks for.
    fn wanted_tx_intv(&self) -> u32 {
        self.desired_tx().max(self.remote_min_rx)
    }

    /// Whether periodic packets go out.
    fn periodic(&self) -> bool {
        match self.state {
            State::AdminDown => false,
            State::Down if self.p.passive => false,
            // §6.8.7: a Required Min RX of zero asks for no packets; §6.6:
            // in Demand mode, both Up, the remote asks for none either.
            _ => {
                self.remote_min_rx != 0
                    && !(self.remote_demand
                        && self.state == State::Up
                        && self.remote_state == State::Up)
            }
        }
    }

    fn set_state(&mut self, to: State, d: u8) {
        let from = self.state;
        self.state = to;
        self.diag = d;
        if from != to {
            self.events.push_back(Change {
                from,
                to,
                diag: d,
                remote_diag: self.remote_diag,
            });
        }
    }

    fn recompute(&mut self, now: Instant) {
        let old = self.tx_intv;
        self.tx_intv = self.wanted_tx_intv();
        self.detect =
            u64::from(self.remote_mult) * u64::from(self.p.min_rx.max(self.remote_min_tx));
        // A shorter interval takes effect at once.
        let sooner = now + Duration::from_micros(self.tx_intv.into());
        if self.tx_intv < old && self.next_tx > sooner {
            self.next_tx = sooner;
        }
    }

    /// A valid Control packet for this session (demultiplexed, its TTL
    /// judged), RFC 5880 §6.8.6 from "If bfd.SessionState is AdminDown".
    pub fn on_packet(&mut self, now: Instant, c: &Control) {
        if self.state == State::AdminDown {
            return;
        }
        self.remote_discr = c.my_discr;
        self.remote_state = c.state;
        self.remote_diag = c.diag;
        self.remote_demand = c.demand;
        self.remote_min_rx = c.min_rx;
        self.remote_min_tx = c.min_tx;
        self.remote_mult = c.mult;
        if c.fin {
            self.poll = false;
        }
        let recompute = self.state != State::Up || c.poll || c.fin;
        let before = self.state;
        if c.state == State::AdminDown {
            if self.state != State::Down {
                self.set_state(State::Down, diag::NEIGHBOR_DOWN);
            }
        } else {
            match (self.state, c.state) {
                (State::Down, State::Down) => self.set_state(State::Init, diag::NONE),
                (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                    self.set_state(State::Up, diag::NONE);
                    if self.p.idle_tx != self.p.min_tx && !self.fin {
                        self.poll = true;
                    }
                }
                (State::Up, State::Down) => self.set_state(State::Down, diag::NEIGHBOR_DOWN),
                _ => {}
            }
        }
        if recompute || before != self.state {
            self.recompute(now);
        }
        if c.poll {
            self.fin = true;
        }
        self.last_rx = Some(now);
    }

    /// The detection timer (Init, Up) and the forgetting of a silent
    /// remote (Down), if due at `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.deadline() else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.state {
            State::Init | State::Up => {
                // §6.8.1: bfd.RemoteDiscr is zeroed after a Detection Time
                // without a valid packet.
                self.remote_discr = 0;
                self.poll = false;
                self.set_state(State::Down, diag::EXPIRED);
                self.recompute(now);
            }
            State::Down => {
                self.remote_discr = 0;
                self.remote_state = State::Down;
                self.remote_demand = false;
                self.poll = false;
                self.fin = false;
                self.tx_intv = self.wanted_tx_intv();
            }
            State::AdminDown => {}
        }
        self.last_rx = None;
    }

    fn deadline(&self) -> Option<Instant> {
        let last = self.last_rx?;
        (self.detect > 0 && self.state != State::AdminDown)
            .then(|| last + Duration::from_micros(self.detect))
    }

    /// When the session next needs [`Session::on_timeout`] or
    /// [`Session::poll_transmit`].
    pub fn next_timeout(&self) -> Option<Instant> {
        let tx = if self.fin {
            Some(self.last_rx.unwrap_or(self.next_tx))
        } else {
            self.periodic().then_some(self.next_tx)
        };
        match (tx, self.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn packet(&mut self) -> Control {
        // P and F never together: a poll of ours ends there, its values
        // carried by the F (RFC 5880 §6.5 allows it), as keepalived does.
        if self.fin {
            self.poll = false;
        }
        let c = Control {
            diag: self.diag,
            state: self.state,
            poll: self.poll,
            fin: self.fin,
            cpi: false,
            demand: false,
            mult: self.p.mult,
            my_discr: self.local_discr,
            your_discr: self.remote_discr,
            min_tx: self.desired_tx(),
            min_rx: self.p.min_rx,
            min_echo_rx: 0,
        };
        self.fin = false;
        c
    }

    /// The packet to send now, if one is due: the answer to a Poll at
    /// once, else the periodic one, whose next is then due after the
    /// transmit interval less RFC 5880 §6.8.7's jitter (0-25 %, 10-25 %
    /// with a Detect Mult of 1) drawn from `rnd`.
    pub fn poll_transmit(&mut self, now: Instant, rnd: u32) -> Option<Control> {
        if self.state == State::AdminDown {
            return None;
        }
        let periodic = self.periodic() && now >= self.next_tx;
        if !self.fin && !periodic {
            return None;
        }
        if periodic {
            let i = self.tx_intv;
            let lo = if self.p.mult == 1 { i / 10 } else { 0 };
            let hi = i / 4;
            let jitter = lo + rnd % (hi - lo + 1);
            self.next_tx = now + Duration::from_micros((i - jitter).into());
        }
        Some(self.packet())
    }

    /// New parameters (a reload): while Up they are announced by a poll
    /// sequence and the intervals change when it ends; otherwise at once.
    pub fn set_params(&mut self, p: Params, now: Instant) {
        if p == self.p {
            return;
        }
        self.p = p;
        if self.state == State::Up {
            self.poll = true;
        } else {
            self.recompute(now);
        }
    }

    /// The session is being removed: AdminDown (diag 7), and the one
    /// packet that tells the remote so.
    pub fn admin_down(&mut self) -> Control {
        self.poll = false;
        self.fin = false;
        self.set_state(State::AdminDown, diag::ADMIN_DOWN);
        self.packet()
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
