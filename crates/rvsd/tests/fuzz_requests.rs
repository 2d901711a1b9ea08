//! A fuzz harness on stable Rust for the control requests: arbitrary and
//! mutated request lines through `decode_request` and, when they decode,
//! through the handler with a privileged peer, with every reply encodable.
//! Deterministic (a seeded xorshift): a failure reproduces from its seed.
//! `RVS_FUZZ_ITERS` lines (default 100 000), `RVS_FUZZ_SEED`.

use rvs_core::{Engine, EngineConfig, Instant};
use rvs_proto::{Envelope, PROTOCOL_VERSION, Request, encode};
use rvsd::auth::Peer;
use rvsd::handler::{State, decode_request};

use rvs_testsupport::FuzzRng as Rng;

/// Valid request lines: every kind, from rvsadm's own grammar where it
/// has one.
fn corpus() -> Vec<Vec<u8>> {
    let mut lines: Vec<Request> = vec![
        Request::Info,
        Request::ListServices,
        Request::GetTimeouts,
        Request::ListDaemons,
        Request::ListConns,
        Request::ListConnsPacked,
        Request::GlobalStats,
        Request::DataPlaneStats,
        Request::FwmarkList,
        Request::FwmarkHost,
        Request::FwmarkFlush,
        Request::GetSysctls,
        Request::SetSysctls(vec![("net.ipv4.vs.sloppy_tcp".into(), "1".into())]),
    ];
    for args in [
        "-A -t 10.0.0.1:80 -s rr",
        "-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 3",
        "-E -t 10.0.0.1:80 -s mh -b mh-port",
        "-A -u [2001:db8::1]:53 -s wlc -p 60",
        "-A -f 7 -s sh -p 300 -M 255.255.255.0",
        "-e -t 10.0.0.1:80 -r 192.168.1.10:8080 -g -x 100 -y 50",
        "-d -t 10.0.0.1:80 -r 192.168.1.10:8080",
        "-D -t 10.0.0.1:80",
        "--set 900 120 300",
        "-Z",
        "-C",
        "--start-daemon master --mcast-interface lo",
    ] {
        let argv: Vec<String> = args.split_whitespace().map(String::from).collect();
        if let Ok(rvsadm::cli::Command::Apply(op)) = rvsadm::cli::parse_args("ipvsadm", &argv) {
            lines.push(Request::Apply(op));
        }
    }
    let mut out: Vec<Vec<u8>> = lines
        .into_iter()
        .map(|request| {
            let mut l = encode(&Envelope {
                version: PROTOCOL_VERSION,
                request,
            });
            l.pop();
            l
        })
        .collect();
    out.push(b"{}".to_vec());
    out.push(b"[1,2,3]".to_vec());
    out
}

#[test]
fn requests_never_panic() {
    let (iters, seed) = rvs_testsupport::fuzz_env(100_000, 0x5eed_0000_1234_5678);
    let corpus = corpus();
    assert!(corpus.len() > 15, "rvsadm's grammar gave too few ops");
    let mut rng = Rng(seed);
    let mut state = State::new(Engine::new(EngineConfig::default()), |_| Some(1500));
    let root = Peer {
        uid: 0,
        pid: 1,
        privileged: true,
    };
    let (mut decoded, mut ok) = (0u64, 0u64);
    for i in 0..iters {
        let mut l = corpus[rng.below(corpus.len())].clone();
        match rng.below(6) {
            0 => l = (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
            1 => l.truncate(rng.below(l.len() + 1)),
            2 => {
                let g = &corpus[rng.below(corpus.len())];
                let at = rng.below(l.len().min(g.len()) + 1);
                l.truncate(at);
                l.extend_from_slice(&g[at.min(g.len())..]);
            }
            _ => {
                for _ in 0..1 + rng.below(3) {
                    if !l.is_empty() {
                        let j = rng.below(l.len());
                        l[j] = match rng.below(4) {
                            0 => b"0123456789"[rng.below(10)],
                            1 => b"{}[]\":,-"[rng.below(8)],
                            2 => rng.next() as u8,
                            _ => l[j] ^ 1,
                        };
                    }
                }
            }
        }
        if let Ok(req) = decode_request(&l) {
            decoded += 1;
            let reply = state.handle(&root, req, Instant::from_secs(i / 1000));
            let bytes = encode(&reply);
            assert!(bytes.ends_with(b"\n"), "seed {seed} iteration {i}");
            if matches!(reply, rvs_proto::Reply::Ok) {
                ok += 1;
            }
        }
    }
    eprintln!("{iters} request lines (seed {seed:#x}): {decoded} decoded, {ok} applied");
    assert!(decoded > 0);
}
