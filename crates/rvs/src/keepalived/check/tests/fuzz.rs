// SPDX-License-Identifier: GPL-2.0-or-later
//! A fuzz harness on stable Rust for what the checkers parse of what real
//! servers (or anyone on their path) send back: HTTP responses as they
//! stream in (`response.rs`, with digests, regexes and their options and
//! offsets, chunked bodies), SMTP replies (`smtp_reply`), DNS replies
//! (`dns_judge`), ICMP echo replies (`echo_reply`) and UDP replies
//! (`udp_reply_ok`). Mutated and random inputs must never panic; a
//! response must get the same verdict whatever pieces it comes in; the
//! memory a response holds stays bounded.
//!
//! Deterministic, as the other harnesses (README, "Fuzzing"): a seeded
//! xorshift; a failure reproduces from `RVS_FUZZ_SEED` and its iteration.
//! `cargo test -p rvs --bin rvs fuzz_checker_parsers` runs
//! `RVS_FUZZ_ITERS` inputs (default 10 000: about 3 s in a debug build).

use super::super::pattern;
use super::super::response::{Fed, Response};
use super::super::smtp::smtp_reply;
use super::*;
use crate::keepalived::conf::RegexOptions;

use rvs_testsupport::FuzzRng as Rng;

/// Well-formed and nearly well-formed responses to start from.
fn http_corpus() -> Vec<Vec<u8>> {
    let mut c: Vec<Vec<u8>> = [
        &b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 503 Busy\r\n\r\nlater",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\na\r\nff\r\n",
        b"HTTP/1.0 301 Moved\r\nLocation: /x\r\n\r\n",
        b"HTTP/1.1 200\r\n\r\nstatus: up\nOK\n",
        b"\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    // A long chunked body.
    let mut long = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for i in 0..50 {
        long.extend_from_slice(format!("{:x}\r\n", i + 1).as_bytes());
        long.extend(std::iter::repeat_n(b'x', i + 1));
        long.extend_from_slice(b"\r\n");
    }
    long.extend_from_slice(b"0\r\n\r\n");
    c.push(long);
    c
}

/// One mutation of `b`.
fn mutate(r: &mut Rng, b: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    const TOKENS: [&[u8]; 8] = [
        b"\r\n",
        b"\r\n\r\n",
        b"0\r\n",
        b"ffffffffffffffffff\r\n",
        b";",
        b" ",
        b"HTTP/1.1 ",
        b"-",
    ];
    match r.below(7) {
        0 if !b.is_empty() => {
            let i = r.below(b.len());
            b[i] ^= 1 << r.below(8);
        }
        1 => b.truncate(r.below(b.len() + 1)),
        2 => {
            let n = r.below(64);
            let extra = r.bytes(n);
            b.extend(extra);
        }
        3 => {
            let o = &corpus[r.below(corpus.len())];
            let (at, from) = (r.below(b.len() + 1), r.below(o.len() + 1));
            b.truncate(at);
            b.extend_from_slice(&o[from..]);
        }
        4 => {
            let t = TOKENS[r.below(TOKENS.len())];
            let at = r.below(b.len() + 1);
            b.splice(at..at, t.iter().copied());
        }
        5 if !b.is_empty() => {
            let i = r.below(b.len());
            b[i] = b"0123456789abcdefABCDEF\r\n;"[r.below(25)];
        }
        _ => {
            let n = r.below(200);
            *b = r.bytes(n);
        }
    }
}

/// A url whose checks read the body: a digest, a regex with random
/// options and offsets, or neither.
fn url(r: &mut Rng) -> Url {
    let patterns = [
        "^OK$",
        "status: (up|down)",
        "x{3,}",
        r"\bup\b",
        "(?i)ok",
        "",
        // PCRE beyond the regex crate: the backtracking VM.
        r"(?<=: )(?!down)\w+",
        r"(\w)\1$",
        r"^(?>a+|b)*+c",
        // alt_bsux and allow_empty_class, translated.
        r"\u0041[]x\U[^]",
    ];
    let regex = (r.below(3) > 0).then(|| patterns[r.below(patterns.len())].to_string());
    let o = RegexOptions {
        caseless: r.below(2) == 0,
        multiline: r.below(2) == 0,
        dotall: r.below(2) == 0,
        extended: false,
        ungreedy: r.below(2) == 0,
        unicode: r.below(2) == 0,
        firstline: r.below(4) == 0,
        dollar_endonly: r.below(4) == 0,
        // The pattern written for them needs them to build.
        alt_bsux: r.below(4) == 0 || regex.as_deref().is_some_and(|p| p.contains("\\U")),
        allow_empty_class: r.below(4) == 0 || regex.as_deref().is_some_and(|p| p.contains("[]")),
        match_unset_backref: r.below(4) == 0,
        min_offset: r.below(3) * r.below(300),
        max_offset: (r.below(2) == 0).then(|| r.below(400)),
    };
    Url {
        path: "/".into(),
        digest: (r.below(2) == 0).then(|| "900150983cd24fb0d6963f7d28e17f72".into()),
        status: if r.below(2) == 0 {
            vec![]
        } else {
            vec![(200, 299), (503, 503)]
        },
        virtualhost: None,
        regex_no_match: regex.is_some() && r.below(2) == 0,
        regex,
        regex_options: o,
        tls_compliant: false,
    }
}

/// The verdict on `resp` fed in pieces cut at random, and what it held.
fn pieces(r: &mut Rng, u: &Url, resp: &[u8]) -> (Result<(), String>, usize) {
    let mut x = Response::new(u);
    let mut at = 0;
    while at < resp.len() {
        let n = 1 + r.below(resp.len() - at);
        let fed = x.feed(u, &resp[at..at + n]);
        at += n;
        if fed == Fed::Enough {
            break;
        }
    }
    let held = x.buffered();
    (x.finish("t", u), held)
}

#[test]
fn fuzz_checker_parsers() {
    let (iters, seed) = rvs_testsupport::fuzz_env(10_000, 0x5eed_c4ed);
    let mut r = Rng(seed);
    let corpus = http_corpus();
    let t0 = std::time::Instant::now();
    let (mut up, mut smtp_codes, mut dns, mut echoes) = (0usize, 0usize, 0usize, 0usize);
    for i in 0..iters {
        let ctx = format!("RVS_FUZZ_SEED={seed} iteration {i}");
        // HTTP: in one piece and in random pieces, the same verdict.
        let mut resp = corpus[r.below(corpus.len())].clone();
        for _ in 0..=r.below(4) {
            mutate(&mut r, &mut resp, &corpus);
        }
        let u = url(&mut r);
        let whole = super::super::response::judge("t", &u, &resp);
        let (split, held) = pieces(&mut r, &u, &resp);
        assert_eq!(whole, split, "{ctx}: {resp:?}");
        assert!(
            held <= 2 * resp.len() + 64,
            "{ctx}: held {held} of {}",
            resp.len()
        );
        up += usize::from(whole.is_ok());
        // The regex window on bodies of any length.
        if let Some(p) = &u.regex {
            let re = pattern::build(p, &u.regex_options).expect("the corpus's patterns build");
            let _ = pattern::matches(&re, p, &u.regex_options, &resp);
        }
        // SMTP replies: taken from the front, never more than there is.
        let mut pending = resp.clone();
        if r.below(2) == 0 {
            pending = b"220-a\r\n220 b\r\n250 ok\r\n".to_vec();
            mutate(&mut r, &mut pending, &corpus);
        }
        let before = pending.len();
        if let Some(Some(_)) = smtp_reply(&mut pending) {
            smtp_codes += 1;
        }
        assert!(pending.len() <= before, "{ctx}");
        // DNS, ICMP and UDP replies: any bytes.
        let mut dgram = dns_query(0x1234, 6, ".");
        if r.below(2) == 0 {
            dgram[2] |= 0x80;
        }
        mutate(&mut r, &mut dgram, &corpus);
        dns += usize::from(dns_judge(0x1234, &dgram).is_some());
        let v6 = r.below(2) == 0;
        let mut echo = echo_request(7, 9, v6);
        echo[0] = if v6 { 129 } else { 0 };
        if r.below(2) == 0 {
            let mut ip = vec![0x45u8];
            ip.extend(r.bytes(19));
            ip.extend(echo);
            echo = ip;
        }
        mutate(&mut r, &mut echo, &corpus);
        echoes += usize::from(echo_reply(&echo, 7, 9, r.below(2) == 0, v6));
        let _ = udp_reply_ok(
            &dgram,
            &resp,
            &echo,
            (r.below(10) as u16, r.below(300) as u16),
        );
    }
    eprintln!(
        "{iters} inputs in {:.1} s: {up} responses judged up, {smtp_codes} SMTP replies with a \
         code, {dns} DNS replies taken, {echoes} echo replies matched, 0 panics",
        t0.elapsed().as_secs_f64()
    );
}
