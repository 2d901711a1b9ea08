// SPDX-License-Identifier: GPL-2.0-or-later
//! The session state machine against another instance of itself, time
//! simulated in steps of a millisecond.

use super::*;

const MS: u32 = 1000;

fn params(min_tx_ms: u32, mult: u8) -> Params {
    Params {
        min_tx: min_tx_ms * MS,
        min_rx: min_tx_ms * MS,
        idle_tx: 1000 * MS,
        mult,
        passive: false,
    }
}

/// Two sessions and a wire between them that can be cut one way.
struct Pair {
    a: Session,
    b: Session,
    now: Instant,
    /// Deliver what b sends to a.
    b_to_a: bool,
    /// Deliver what a sends to b.
    a_to_b: bool,
    rnd: u32,
    /// Every packet a sent, with its time.
    sent_by_a: Vec<(Instant, Control)>,
    /// When a last received from b.
    b_heard: Option<Instant>,
}

impl Pair {
    fn new(pa: Params, pb: Params) -> Pair {
        let now = Instant::now();
        Pair {
            a: Session::new(pa, 0xa, now),
            b: Session::new(pb, 0xb, now),
            now,
            b_to_a: true,
            a_to_b: true,
            rnd: 12345,
            sent_by_a: Vec::new(),
            b_heard: None,
        }
    }

    fn rnd(&mut self) -> u32 {
        self.rnd ^= self.rnd << 13;
        self.rnd ^= self.rnd >> 17;
        self.rnd ^= self.rnd << 5;
        self.rnd
    }

    /// Run for `ms` milliseconds.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step();
            self.now += Duration::from_millis(1);
        }
    }

    fn step(&mut self) {
        let now = self.now;
        self.a.on_timeout(now);
        self.b.on_timeout(now);
        // Answers to polls go at once: loop until nothing is due.
        for _ in 0..4 {
            let (r1, r2) = (self.rnd(), self.rnd());
            let pa = self.a.poll_transmit(now, r1);
            let pb = self.b.poll_transmit(now, r2);
            if pa.is_none() && pb.is_none() {
                break;
            }
            if let Some(p) = pa {
                self.sent_by_a.push((now, p));
                if self.a_to_b {
                    self.b.on_packet(now, &Control::parse(&p.emit()).unwrap());
                }
            }
            if let Some(p) = pb
                && self.b_to_a
            {
                self.a.on_packet(now, &Control::parse(&p.emit()).unwrap());
                self.b_heard = Some(now);
            }
        }
    }
}

fn events(s: &mut Session) -> Vec<(State, State, u8)> {
    std::iter::from_fn(|| s.poll_event())
        .map(|c| (c.from, c.to, c.diag))
        .collect()
}

#[test]
fn three_way_handshake() {
    let mut p = Pair::new(params(100, 3), params(100, 3));
    // Both start Down and speak at once: each hears the other's Down
    // (-> Init), then each the other's Init (-> Up), one (not Up)
    // interval later: idle_tx, 1 s, less jitter.
    p.run(5);
    assert_eq!((p.a.state(), p.b.state()), (State::Init, State::Init));
    p.run(1000);
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.b.state(), State::Up);
    for s in [&mut p.a, &mut p.b] {
        assert_eq!(
            events(s),
            [(State::Down, State::Init, 0), (State::Init, State::Up, 0)]
        );
    }
    // One side first: the other goes Down -> Up on its Init.
    let mut p = Pair::new(params(100, 3), params(100, 3));
    p.b_to_a = false;
    p.run(5);
    p.b_to_a = true;
    p.run(1100);
    assert_eq!(events(&mut p.a), [(State::Down, State::Up, 0)]);
    assert_eq!(
        events(&mut p.b),
        [(State::Down, State::Init, 0), (State::Init, State::Up, 0)]
    );
    // Going Up with idle_tx != min_tx polls for the faster rate; once the
    // Final came back both send every 100 ms (less jitter) and detect in
    // 3 x 100 ms.
    p.run(3000);
    assert!(!p.a.polling() && !p.b.polling());
    assert_eq!(p.a.tx_interval(), Duration::from_millis(100));
    assert_eq!(p.a.detect_time(), Duration::from_millis(300));
    let late: Vec<_> = p
        .sent_by_a
        .windows(2)
        .filter(|w| w[0].0 > p.now - Duration::from_secs(1))
        .map(|w| w[1].0 - w[0].0)
        .collect();
    assert!(late.len() >= 9, "{late:?}");
    for gap in late {
        assert!(
            gap >= Duration::from_millis(75) && gap <= Duration::from_millis(100),
            "jittered interval {gap:?}"
        );
    }
    assert!(events(&mut p.a).is_empty() && events(&mut p.b).is_empty());
}

#[test]
fn detection_timeout() {
    let mut p = Pair::new(params(50, 3), params(50, 3));
    p.run(2000);
    assert_eq!(p.a.state(), State::Up);
    events(&mut p.a);
    events(&mut p.b);
    // b falls silent: a goes Down 3 x 50 ms after it last heard b, not
    // before.
    p.b_to_a = false;
    while p.a.state() == State::Up {
        p.run(1);
    }
    let heard = p.b_heard.unwrap();
    assert_eq!(
        p.now - heard,
        Duration::from_millis(151),
        "run(1) steps past"
    );
    assert_eq!(events(&mut p.a), [(State::Up, State::Down, diag::EXPIRED)]);
    // a now tells b: b goes Down too (neighbor signalled).
    p.run(1100);
    assert_eq!(
        events(&mut p.b)[0],
        (State::Up, State::Down, diag::NEIGHBOR_DOWN)
    );
    // Back: the session comes Up again.
    p.b_to_a = true;
    p.run(3000);
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
}

#[test]
fn remote_admin_down() {
    let mut p = Pair::new(params(50, 3), params(50, 3));
    p.run(2000);
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
    events(&mut p.a);
    let c = p.b.admin_down();
    assert_eq!((c.state, c.diag), (State::AdminDown, diag::ADMIN_DOWN));
    p.a.on_packet(p.now, &c);
    assert_eq!(
        events(&mut p.a),
        [(State::Up, State::Down, diag::NEIGHBOR_DOWN)]
    );
    // An AdminDown session sends nothing and ignores what it receives.
    p.run(2000);
    assert_eq!(p.b.state(), State::AdminDown);
    assert_eq!(p.a.state(), State::Down);
    assert_eq!(p.b.next_timeout(), None);
}

#[test]
fn parameter_change_uses_a_poll_sequence() {
    let mut p = Pair::new(params(50, 3), params(50, 3));
    p.run(2000);
    assert_eq!(p.a.tx_interval(), Duration::from_millis(50));
    assert_eq!(p.b.detect_time(), Duration::from_millis(150));
    // a slows down to 200 ms: its packets carry P and the new value, but
    // neither side's intervals change until the Final comes back.
    events(&mut p.b);
    p.a_to_b = false;
    p.b_to_a = false;
    p.a.set_params(params(200, 3), p.now);
    assert!(p.a.polling());
    p.run(60);
    let (_, last) = *p.sent_by_a.last().unwrap();
    assert!(last.poll && !last.fin);
    assert_eq!(last.min_tx, 200 * MS);
    assert_eq!(p.a.tx_interval(), Duration::from_millis(50));
    // The wire again: b answers F; then a sends every 200 ms and b
    // detects in 3 x 200 ms; the session never left Up.
    p.a_to_b = true;
    p.b_to_a = true;
    p.run(1000);
    assert!(!p.a.polling());
    assert_eq!(p.a.tx_interval(), Duration::from_millis(200));
    assert_eq!(p.b.detect_time(), Duration::from_millis(600));
    assert!(p.sent_by_a.iter().any(|(_, c)| c.poll));
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
    assert!(events(&mut p.b).iter().all(|e| e.1 == State::Up));
}

#[test]
fn passive_waits_for_the_remote() {
    let mut passive = params(50, 3);
    passive.passive = true;
    let mut p = Pair::new(passive, params(50, 3));
    p.a_to_b = true;
    p.b_to_a = false;
    p.run(3000);
    assert!(
        p.sent_by_a.is_empty(),
        "a passive session is silent while Down"
    );
    p.b_to_a = true;
    p.run(3000);
    assert!(!p.sent_by_a.is_empty());
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
}

#[test]
fn jitter_bounds() {
    // A Detect Mult of 1: 10-25 % less than the interval.
    let now = Instant::now();
    let mut s = Session::new(params(100, 1), 1, now);
    for rnd in [0, 1, u32::MAX, 12_345_678] {
        let mut s2 = s.clone();
        s2.poll_transmit(now, rnd).unwrap();
        let next = s2.next_timeout().unwrap() - now;
        // Not Up: the idle interval, 1 s.
        assert!(
            next >= Duration::from_millis(750) && next <= Duration::from_millis(900),
            "{next:?}"
        );
    }
    assert!(s.poll_transmit(now, 0).is_some());
    assert!(s.poll_transmit(now, 0).is_none());
}

#[test]
fn zero_required_min_rx_stops_periodic_packets() {
    let now = Instant::now();
    let mut s = Session::new(params(100, 3), 1, now);
    let c = Control::down(9, 0, 100 * MS, 0);
    s.on_packet(now, &c);
    assert_eq!(s.state(), State::Init);
    assert!(s.poll_transmit(now + Duration::from_secs(5), 1).is_none());
    // A Poll is still answered.
    s.on_packet(now, &Control { poll: true, ..c });
    let f = s.poll_transmit(now, 1).unwrap();
    assert!(f.fin && !f.poll);
    assert_eq!(f.your_discr, 9);
}
