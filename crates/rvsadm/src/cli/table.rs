//! The command × option legality table (`commands_v_options`) and the
//! tunnel-type × option table (`tunnel_types_v_options`), with ipvsadm's
//! checks over them.

/// Option slots, in table order (ipvsadm's `OPTC_*`).
pub(super) mod optc {
    pub const NUMERIC: usize = 0;
    pub const CONNECTION: usize = 1;
    pub const SERVICE: usize = 2;
    pub const SCHEDULER: usize = 3;
    pub const PERSISTENT: usize = 4;
    pub const NETMASK: usize = 5;
    pub const SERVER: usize = 6;
    pub const FORWARD: usize = 7;
    pub const WEIGHT: usize = 8;
    pub const UTHRESHOLD: usize = 9;
    pub const LTHRESHOLD: usize = 10;
    pub const MCAST: usize = 11;
    pub const TIMEOUT: usize = 12;
    pub const DAEMON: usize = 13;
    pub const STATS: usize = 14;
    pub const RATE: usize = 15;
    pub const THRESHOLDS: usize = 16;
    pub const PERSISTENTCONN: usize = 17;
    pub const NOSORT: usize = 18;
    pub const SYNCID: usize = 19;
    pub const EXACT: usize = 20;
    pub const ONEPACKET: usize = 21;
    pub const PE: usize = 22;
    pub const SCHED_FLAGS: usize = 23;
    pub const MCAST_GROUP: usize = 24;
    pub const MCAST_PORT: usize = 25;
    pub const MCAST_TTL: usize = 26;
    pub const SYNC_MAXLEN: usize = 27;
    pub const TUN_INFO: usize = 28;
    pub const TUN_TYPE: usize = 29;
    pub const TUN_PORT: usize = 30;
    pub const TUN_NOCSUM: usize = 31;
    pub const TUN_CSUM: usize = 32;
    pub const TUN_REMCSUM: usize = 33;
}

/// Number of option slots.
pub(super) const NUMBER_OF_OPT: usize = 34;

/// Option names used in messages, by slot.
pub(super) const OPTNAMES: [&str; NUMBER_OF_OPT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// Commands, in ipvsadm's internal order (`CMD_ADD` … `CMD_ZERO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    /// Name used in messages (`cmdnames`).
    pub(super) fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }

    /// The row of the legality table: `+` required, `x` illegal, `1` at most
    /// one of the `1`s, `.` optional; one character per option slot.
    fn row(self) -> &'static [u8; NUMBER_OF_OPT] {
        //                    n c svc s p M r fwd w x y mc tot dmn st rt thr pc srt sid ex ops pe b grp port ttl size tinf type tprt nocs csum remc
        const ADD: &[u8; NUMBER_OF_OPT] = b"xx+...xxxxxxxxxxxxxxx...xxxxxxxxxx";
        const DEL: &[u8; NUMBER_OF_OPT] = b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        const NONE: &[u8; NUMBER_OF_OPT] = b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        const LIST: &[u8; NUMBER_OF_OPT] = b".11xxxxxxxxx11.......xxxxxxx.xxxxx";
        const ADDDEST: &[u8; NUMBER_OF_OPT] = b"xx+xxx+....xxxxxxxxxxxxxxxxxx.....";
        const DELDEST: &[u8; NUMBER_OF_OPT] = b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx";
        const STARTD: &[u8; NUMBER_OF_OPT] = b"xxxxxxxxxxx.xxxxxxx.xxxx....xxxxxx";
        const STOPD: &[u8; NUMBER_OF_OPT] = b"xxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxx";
        const SAVE: &[u8; NUMBER_OF_OPT] = b".xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        const ZERO: &[u8; NUMBER_OF_OPT] = b"xx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        match self {
            Cmd::Add | Cmd::Edit => ADD,
            Cmd::Del => DEL,
            Cmd::Flush | Cmd::Timeout | Cmd::Restore => NONE,
            Cmd::List => LIST,
            Cmd::AddDest | Cmd::EditDest => ADDDEST,
            Cmd::DelDest => DELDEST,
            Cmd::StartDaemon => STARTD,
            Cmd::StopDaemon => STOPD,
            Cmd::Save => SAVE,
            Cmd::Zero => ZERO,
        }
    }
}

/// Whether option slot `j` is in the set `options`.
pub(super) fn has(options: u64, j: usize) -> bool {
    options & (1 << j) != 0
}

/// ipvsadm's `generic_opt_check`: walk the options in table order and report
/// the first violation.
pub(super) fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), String> {
    let row = cmd.row();
    let mut first_one: Option<usize> = None;
    for (j, &rule) in row.iter().enumerate() {
        if !has(options, j) {
            if rule == b'+' {
                return Err(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPTNAMES[j],
                    cmd.name()
                ));
            }
            continue;
        }
        match rule {
            b'x' => {
                return Err(format!(
                    "Illegal '{}' option with the '{}' command",
                    OPTNAMES[j],
                    cmd.name()
                ));
            }
            b'1' => match first_one {
                None => first_one = Some(j),
                Some(last) => {
                    return Err(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        OPTNAMES[j],
                        OPTNAMES[last],
                        cmd.name()
                    ));
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// ipvsadm's `tunnel_opt_check` for tunnel type `tun_type` (0 ipip, 1 gue,
/// 2 gre).
pub(super) fn tunnel_opt_check(tun_type: usize, options: u64) -> Result<(), String> {
    const TUNNAMES: [&str; 3] = ["ipip", "gue", "gre"];
    const TUNOPTS: [usize; 4] = [
        optc::TUN_PORT,
        optc::TUN_NOCSUM,
        optc::TUN_CSUM,
        optc::TUN_REMCSUM,
    ];
    //                                 tprt nocs csum remc
    const TABLE: [&[u8; 4]; 3] = [b"xxxx", b"+111", b"x11x"];
    let name = TUNNAMES[tun_type];
    let mut first_one: Option<usize> = None;
    for (&k, &rule) in TUNOPTS.iter().zip(TABLE[tun_type].iter()) {
        if !has(options, k) {
            if rule == b'+' {
                return Err(format!(
                    "You need to supply the '{}' option for the '{name}' tunnel type",
                    OPTNAMES[k]
                ));
            }
            continue;
        }
        match rule {
            b'x' => {
                return Err(format!(
                    "Illegal '{}' option with the '{name}' tunnel type",
                    OPTNAMES[k]
                ));
            }
            b'1' => match first_one {
                None => first_one = Some(k),
                Some(last) => {
                    return Err(format!(
                        "The option '{}' conflicts with the '{}' option in the '{name}' tunnel type",
                        OPTNAMES[k], OPTNAMES[last]
                    ));
                }
            },
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Cmd; 14] = [
        Cmd::Add,
        Cmd::Edit,
        Cmd::Del,
        Cmd::Flush,
        Cmd::List,
        Cmd::AddDest,
        Cmd::DelDest,
        Cmd::EditDest,
        Cmd::Timeout,
        Cmd::StartDaemon,
        Cmd::StopDaemon,
        Cmd::Restore,
        Cmd::Save,
        Cmd::Zero,
    ];

    #[test]
    fn rows_use_only_known_rules() {
        for c in ALL {
            assert!(c.row().iter().all(|r| b"x+1.".contains(r)), "{c:?}");
        }
    }

    /// Spot checks against the reference table (§1.4), column by column.
    #[test]
    fn table_matches_reference() {
        let cell = |c: Cmd, j: usize| c.row()[j] as char;
        assert_eq!(cell(Cmd::List, optc::SYNCID), '.');
        assert_eq!(cell(Cmd::StartDaemon, optc::SYNCID), '.');
        assert_eq!(cell(Cmd::StopDaemon, optc::SYNCID), '.');
        assert_eq!(cell(Cmd::StopDaemon, optc::MCAST), 'x');
        assert_eq!(cell(Cmd::List, optc::TUN_INFO), '.');
        assert_eq!(cell(Cmd::AddDest, optc::TUN_INFO), 'x');
        assert_eq!(cell(Cmd::AddDest, optc::TUN_REMCSUM), '.');
        assert_eq!(cell(Cmd::Save, optc::NUMERIC), '.');
        assert_eq!(cell(Cmd::Zero, optc::SERVICE), '.');
        assert_eq!(cell(Cmd::Add, optc::SCHED_FLAGS), '.');
        assert_eq!(cell(Cmd::Add, optc::MCAST_GROUP), 'x');
        for j in [optc::CONNECTION, optc::SERVICE, optc::TIMEOUT, optc::DAEMON] {
            assert_eq!(cell(Cmd::List, j), '1');
        }
        for j in [
            optc::MCAST,
            optc::MCAST_GROUP,
            optc::MCAST_PORT,
            optc::MCAST_TTL,
            optc::SYNC_MAXLEN,
        ] {
            assert_eq!(cell(Cmd::StartDaemon, j), '.');
        }
        // Required options.
        let required: Vec<(Cmd, usize)> = ALL
            .iter()
            .flat_map(|&c| (0..NUMBER_OF_OPT).map(move |j| (c, j)))
            .filter(|&(c, j)| cell(c, j) == '+')
            .collect();
        assert_eq!(
            required,
            [
                (Cmd::Add, optc::SERVICE),
                (Cmd::Edit, optc::SERVICE),
                (Cmd::Del, optc::SERVICE),
                (Cmd::AddDest, optc::SERVICE),
                (Cmd::AddDest, optc::SERVER),
                (Cmd::DelDest, optc::SERVICE),
                (Cmd::DelDest, optc::SERVER),
                (Cmd::EditDest, optc::SERVICE),
                (Cmd::EditDest, optc::SERVER),
            ]
        );
        // Optional cells per command (count).
        let optional = |c: Cmd| c.row().iter().filter(|&&r| r == b'.').count();
        assert_eq!(optional(Cmd::Add), 6);
        assert_eq!(optional(Cmd::List), 9);
        assert_eq!(optional(Cmd::AddDest), 9);
        assert_eq!(optional(Cmd::StartDaemon), 6);
    }
}
