//! Unit tests of the control API's encoding.

use super::*;

#[test]
fn round_trip() {
    let req = Envelope {
        version: PROTOCOL_VERSION,
        request: Request::Batch(vec![BatchLine {
            line: 3,
            op: Op::AddDest {
                service: ServiceId::Fwmark { v6: false, mark: 7 },
                dest: DestSpec {
                    addr: "10.0.0.1".parse().unwrap(),
                    port: 80,
                    fwd: Fwd::Tunnel,
                    weight: 3,
                    u_threshold: 0,
                    l_threshold: 0,
                    tunnel: TunnelSpec {
                        kind: TunKind::Gue,
                        port: 6080,
                        flags: TUN_F_CSUM,
                    },
                },
            },
        }]),
    };
    let bytes = encode(&req);
    assert_eq!(*bytes.last().unwrap(), b'\n');
    let back: Envelope = decode(&bytes[..bytes.len() - 1]).unwrap();
    assert_eq!(back, req);
    assert!(decode::<Envelope>(b"{nope").is_err());
}

/// Data-plane replies of older daemons (no fast-path counters) decode
/// as without them; newer ones round-trip; a partial set of fast-path
/// counters (a newer or older daemon's) takes defaults for the rest.
#[test]
fn data_plane_stats_compatible() {
    let old = br#"{"DataPlaneStats":{"mode":"xdp","workers":[],"classifier":null}}"#;
    assert_eq!(
        decode::<Reply>(old).unwrap(),
        Reply::DataPlaneStats {
            mode: "xdp".into(),
            workers: Vec::new(),
            classifier: None,
            fast_path: None,
            engine: None,
            filter_out_of_step: None,
            io_why: None,
        }
    );
    let new = Reply::DataPlaneStats {
        mode: "xdp".into(),
        workers: vec![DataPlaneWorker::default()],
        classifier: Some(ClassifierCounters::default()),
        fast_path: Some(FastPathCounters {
            mode: "on".into(),
            egress: vec!["eth0".into()],
            why: vec!["eth0: on: its xdp_xmit counters moved".into()],
            entries: 3,
            hits: 9,
            ..FastPathCounters::default()
        }),
        engine: Some(Box::new(EngineCounters {
            conns: 5,
            drop_table_full: 2,
            ..EngineCounters::default()
        })),
        filter_out_of_step: Some("the service map: full".into()),
        io_why: Some("--io auto: the XDP classifier attached".into()),
    };
    let bytes = encode(&new);
    assert_eq!(decode::<Reply>(&bytes[..bytes.len() - 1]).unwrap(), new);
    let partial = br#"{"DataPlaneStats":{"mode":"xdp","workers":[],"classifier":null,
            "fast_path":{"entries":2,"future_field":1}}}"#;
    match decode::<Reply>(partial).unwrap() {
        Reply::DataPlaneStats {
            fast_path: Some(f), ..
        } => assert_eq!(
            f,
            FastPathCounters {
                entries: 2,
                ..FastPathCounters::default()
            }
        ),
        r => panic!("{r:?}"),
    }
}
