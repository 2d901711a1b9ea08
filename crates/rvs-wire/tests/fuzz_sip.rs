//! The SIP Call-ID search (`rvs_wire::sip::call_id`), the parser that reads
//! the payload of every datagram to a `--pe sip` service: mutated SIP
//! messages and random bytes must never panic, and what it returns must be
//! what IPVS keys a template with — a non-empty slice of the payload, at
//! most 255 bytes, of word characters (and one `@`), followed by CR or LF.
//!
//! Deterministic (a seeded xorshift, as `fuzz_sync.rs`): a failure
//! reproduces from `RVS_FUZZ_SEED` and its iteration. `RVS_FUZZ_ITERS`
//! datagrams (default 1 000 000: about 1 s in a debug build).

use rvs_testsupport::FuzzRng as Rng;
use rvs_wire::sip::{CALL_ID_MAX, call_id};

const CORPUS: &[&[u8]] = &[
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.atlanta.example.com\r\n\
      Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\nCSeq: 314159 INVITE\r\n\r\n",
    b"BYE sip:alice@pc33.atlanta.example.com SIP/2.0\r\ni: 1234@x\r\n\r\n",
    b"SIP/2.0 200 OK\ncall-id :\r\n  \t7g@h\nl: 0\n\n",
    b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCall-ID: ;\r\nCall-ID: zz\r\n",
];

fn mutate(rng: &mut Rng, mut m: Vec<u8>) -> Vec<u8> {
    const POKES: &[u8] = b"\r\n \t:@iI;-Call-ID\xe9\xd7";
    for _ in 0..rng.below(4) + 1 {
        let at = rng.below(m.len() + 1);
        match rng.below(5) {
            0 if !m.is_empty() => {
                let i = at.min(m.len() - 1);
                m[i] = POKES[rng.below(POKES.len())];
            }
            1 => m.truncate(at),
            2 => m.insert(at, POKES[rng.below(POKES.len())]),
            3 if !m.is_empty() => {
                let i = at.min(m.len() - 1);
                m[i] = rng.next() as u8;
            }
            _ => m.extend_from_slice(b"\r\nCall-ID: w\r\n"),
        }
    }
    m
}

#[test]
fn call_id_search_never_panics_and_returns_a_key() {
    let iters: u64 = std::env::var("RVS_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = std::env::var("RVS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5151_7e57);
    let mut rng = Rng(seed | 1);
    let started = std::time::Instant::now();
    let mut found = 0u64;
    for i in 0..iters {
        let m = if rng.below(10) == 0 {
            {
                let n = rng.below(200);
                rng.bytes(n)
            }
        } else {
            let base = CORPUS[rng.below(CORPUS.len())].to_vec();
            mutate(&mut rng, base)
        };
        let skip = [0, 8, 28, 48, rng.below(300)][rng.below(5)];
        let Some(id) = call_id(&m, skip) else {
            continue;
        };
        found += 1;
        let off = id.as_ptr() as usize - m.as_ptr() as usize;
        assert!(
            !id.is_empty() && id.len() <= CALL_ID_MAX,
            "seed {seed} iteration {i}: {m:?}"
        );
        assert!(
            matches!(m.get(off + id.len()), Some(b'\r' | b'\n')),
            "seed {seed} iteration {i}: {m:?}"
        );
        assert!(
            id.iter().filter(|&&c| c == b'@').count() <= 1
                && !id.iter().any(|c| b" \t\r\n;@".contains(c) && *c != b'@'),
            "seed {seed} iteration {i}: {id:?}"
        );
    }
    eprintln!(
        "{iters} datagrams (seed {seed:#x}) in {:?}: {found} Call-IDs found, 0 panics",
        started.elapsed()
    );
    // The corpus keeps the search busy: most mutants still carry a key.
    assert!(found > iters / 10, "{found} of {iters}");
}
