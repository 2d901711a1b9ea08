// SPDX-License-Identifier: GPL-2.0-or-later
//! The scripts' tests: their users (`user`, `script_user`, the default),
//! keepalived's script security, and the scripts disabled at load.

use super::tests::{default_user_warning, parse};
use super::*;

fn misc(text: &str) -> Result<(Option<RunAs>, Vec<String>), ConfError> {
    let (c, w) = parse(text)?;
    let user = c.services[0].reals[0]
        .checkers
        .iter()
        .find_map(|ck| match &ck.kind {
            CheckKind::Misc { user, .. } => Some(user.clone()),
            _ => None,
        });
    Ok((user, w))
}

const SECURE: &str = "global_defs {\n enable_script_security\n}\n";

/// keepalived's warning when scripts that exist run without
/// enable_script_security.
const VIOLATION: &str = "SECURITY VIOLATION - check scripts are being executed but \
    script_security not enabled (global_defs' enable_script_security).";

fn misc_user_conf(global: &str, user: &str) -> String {
    format!(
        "{global}virtual_server 10.0.0.1 80 {{\n real_server 10.0.0.2 80 {{\n  \
         TCP_CHECK {{ }}\n  MISC_CHECK {{\n   misc_path \"/bin/echo check arg\"\n   {user}\n  }}\n }}\n}}\n"
    )
}

#[test]
fn misc_check_user_and_group() {
    let nobody = RunAs::resolve("nobody", None, false).unwrap();
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("group nogroup")
        .gid
        .as_raw();
    let (u, w) = misc(&misc_user_conf(SECURE, "user nobody")).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(u.as_ref(), Some(&nobody));
    assert!(
        nobody.groups.is_empty(),
        "keepalived sets no supplementary groups"
    );
    let (u, w) = misc(&misc_user_conf(SECURE, "user nobody nogroup")).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let u = u.unwrap();
    assert_eq!(
        (u.name.as_str(), u.uid, u.gid),
        ("nobody", nobody.uid, nogroup)
    );
    // `:GROUP` (or `:` alone, the user's own group) sets the user's
    // supplementary groups too; so does set_supplementary_groups.
    let (u, _) = misc(&misc_user_conf(SECURE, "user nobody :nogroup")).unwrap();
    let u = u.unwrap();
    assert_eq!(u.gid, nogroup);
    assert!(u.groups.contains(&nobody.gid), "{u:?}");
    let (u2, _) = misc(&misc_user_conf(SECURE, "user nobody :")).unwrap();
    assert_eq!(u2.unwrap().groups, u.groups);
    let (u3, _) = misc(&misc_user_conf(
        "global_defs {\n set_supplementary_groups\n enable_script_security\n}\n",
        "user nobody",
    ))
    .unwrap();
    assert_eq!(u3.unwrap().groups, u.groups);
}

/// keepalived removes a MISC_CHECK whose user or group does not resolve
/// (never runs it as root), with its file and line.
#[test]
fn misc_check_unknown_user_or_group_removes_it() {
    let (c, w) = parse(&misc_user_conf(SECURE, "user rvs-no-such-user")).unwrap();
    assert_eq!(
        w,
        [
            "k.conf:9: Script user 'rvs-no-such-user' does not exist; failed to set the \
          uid/gid of misc checker script /bin/echo check arg - removing the MISC_CHECK"
        ]
    );
    let cks = &c.services[0].reals[0].checkers;
    assert_eq!(cks.len(), 1);
    assert_eq!(cks[0].kind, CheckKind::Tcp);
    let (u, w) = misc(&misc_user_conf(SECURE, "user nobody rvs-no-such-group")).unwrap();
    assert_eq!(u, None);
    assert_eq!(w.len(), 1);
    assert!(
        w[0].starts_with("k.conf:9: Script group 'rvs-no-such-group' does not exist;"),
        "{w:?}"
    );
    // A bare `user` is a bad line: the file is refused.
    let e = parse(&misc_user_conf(SECURE, "user")).unwrap_err();
    assert_eq!(e.to_string(), "k.conf:9: 'user' needs a user name");
}

/// script_user: every script without a user of its own; without it
/// keepalived_script if it exists, else rvs's own user (said once).
#[test]
fn script_user_and_the_default() {
    let nobody = RunAs::resolve("nobody", None, false).unwrap();
    let conf = |global: &str| {
        format!(
            "{global}virtual_server 10.0.0.1 80 {{\n quorum_up /bin/true\n \
             real_server 10.0.0.2 80 {{\n  notify_up \"/bin/echo n up\"\n  \
             notify_down /bin/true root\n  MISC_CHECK {{ misc_path /bin/false }}\n }}\n}}\n"
        )
    };
    let users = |c: &Config| {
        let vs = &c.services[0];
        let rs = &vs.reals[0];
        let CheckKind::Misc { user, .. } = &rs.checkers[0].kind else {
            panic!()
        };
        [
            vs.quorum_up.as_ref().map(|n| n.user.name.clone()),
            rs.notify_up.as_ref().map(|n| n.user.name.clone()),
            rs.notify_down.as_ref().map(|n| n.user.name.clone()),
            Some(user.name.clone()),
        ]
    };
    let (c, w) = parse(&conf(
        "global_defs {\n router_id X\n script_user nobody\n}\n",
    ))
    .unwrap();
    // notify_down runs as root: keepalived's warning without
    // enable_script_security.
    assert_eq!(w, [VIOLATION], "{w:?}");
    let n = Some(nobody.name.clone());
    assert_eq!(users(&c), [n.clone(), n.clone(), Some("root".into()), n]);

    // No script_user: keepalived's default, one warning for all the
    // scripts (where keepalived_script does not exist).
    let (c, w) = parse(&conf("")).unwrap();
    let (violation, w) = w.split_last().unwrap();
    assert_eq!(violation, VIOLATION);
    assert_eq!(w, default_user_warning());
    let d = if w.is_empty() {
        "keepalived_script".to_string()
    } else {
        RunAs::ourselves().name
    };
    assert_eq!(
        users(&c),
        [
            Some(d.clone()),
            Some(d.clone()),
            Some("root".into()),
            Some(d)
        ]
    );
    // No scripts: no warning.
    let (_, w) = parse(
        &misc_user_conf("", "")
            .replace("MISC_CHECK", "TCP_CHECK")
            .replace("misc_path \"/bin/echo check arg\"", ""),
    )
    .unwrap();
    assert!(w.is_empty(), "{w:?}");

    // A script_user that does not resolve: the scripts without a user of
    // their own are disabled (keepalived: "Error setting global script
    // uid/gid").
    let (c, w) = parse(&conf("global_defs {\n script_user rvs-no-such-user\n}\n")).unwrap();
    let vs = &c.services[0];
    assert!(vs.quorum_up.is_none() && vs.reals[0].notify_up.is_none());
    assert!(vs.reals[0].checkers.is_empty());
    assert_eq!(vs.reals[0].notify_down.as_ref().unwrap().user.name, "root");
    assert_eq!(w.len(), 5, "{w:?}");
    assert_eq!(w[4], VIOLATION);
    assert!(w[0].starts_with("k.conf:2: Script user 'rvs-no-such-user' does not exist;"));
    assert!(w[1].starts_with("k.conf:5: no default script user; invalid user/group for quorum_up"));
    assert!(w[3].contains("removing the MISC_CHECK"), "{w:?}");

    // With enable_script_security there is no falling back to root.
    if RunAs::resolve("keepalived_script", None, false).is_err() {
        let (c, w) = parse(&conf(SECURE)).unwrap();
        let rs = &c.services[0].reals[0];
        assert!(rs.checkers.is_empty() && rs.notify_up.is_none());
        assert!(rs.notify_down.is_some(), "its own user");
        assert!(
            w[0].starts_with(
                "Script user 'keepalived_script' does not exist: unable to set the default user"
            ),
            "{w:?}"
        );
        assert_eq!(w.len(), 4, "{w:?}");
    }

    // A notify line's words after the script are its user and group, as
    // in keepalived: an unquoted script with arguments names a user.
    let (c, w) = parse(
        "global_defs {\n script_user nobody\n}\nvirtual_server 10.0.0.1 80 {\n \
         quorum_up /bin/echo up\n}\n",
    )
    .unwrap();
    assert!(c.services[0].quorum_up.is_none());
    assert_eq!(
        w,
        [
            "k.conf:5: Script user 'up' does not exist; invalid user/group for quorum_up \
          script /bin/echo - ignoring it"
        ]
    );
}

/// enable_script_security: a script run as root that another user could
/// change is disabled; without it, only warned about.
#[test]
fn script_security() {
    let dir = std::env::temp_dir().join(format!("rvs-ka-security-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("check.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A directory anyone may write to (no sticky bit): the script could be
    // replaced.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let s = script.display().to_string();
    let conf = |global: &str, user: &str| {
        parse(&misc_user_conf(global, user).replace("/bin/echo check arg", &s)).unwrap()
    };
    let unsafe_line = |w: &str, line: usize| {
        w.starts_with(&format!(
            "k.conf:{line}: Unsafe permissions found for script '{s}' run as root (0:0): "
        ))
    };
    // As root, with enable_script_security: disabled.
    let (c, w) = conf(SECURE, "user root");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        unsafe_line(&w[0], 7) && w[0].ends_with(" - disabling"),
        "{w:?}"
    );
    if rustix::process::geteuid().is_root() {
        assert!(
            w[0].contains(&format!("{} is writable by others", dir.display())),
            "{w:?}"
        );
    }
    assert_eq!(
        c.services[0].reals[0].checkers.len(),
        1,
        "only TCP_CHECK left"
    );
    // Without it: kept, warned, and keepalived's SECURITY VIOLATION.
    let (c, w) = conf("", "user root");
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        unsafe_line(&w[0], 4) && w[0].ends_with("(enable_script_security would disable it)"),
        "{w:?}"
    );
    assert_eq!(
        w[1],
        "SECURITY VIOLATION - check scripts are being executed but script_security not \
         enabled (global_defs' enable_script_security). There are insecure scripts."
    );
    assert_eq!(c.services[0].reals[0].checkers.len(), 2);
    // As nobody it cannot do more than nobody can: not judged.
    let (c, w) = conf(SECURE, "user nobody");
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.services[0].reals[0].checkers.len(), 2);
    // gid 0 counts as root too.
    let (_, w) = conf(SECURE, "user nobody root");
    assert!(
        w[0].contains("run as nobody (65534:0)") && w[0].ends_with(" - disabling"),
        "{w:?}"
    );
    // A root-owned script in root-owned directories is safe, found in PATH
    // too; without enable_script_security, the SECURITY VIOLATION alone.
    let text = misc_user_conf(SECURE, "user root").replace("/bin/echo check arg", "true");
    let (c, w) = parse(&text).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.services[0].reals[0].checkers.len(), 2);
    let (_, w) = parse(&text.replace(SECURE, "")).unwrap();
    assert_eq!(
        w,
        [
            "SECURITY VIOLATION - check scripts are being executed but script_security not \
          enabled (global_defs' enable_script_security)."
        ]
    );
    // A sticky world-writable directory (as /tmp) is safe when root owns
    // it and the file.
    if rustix::process::geteuid().is_root() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let (_, w) = conf(SECURE, "user root");
        assert!(w.is_empty(), "{w:?}");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o757)).unwrap();
        let (_, w) = conf(SECURE, "user root");
        assert!(
            w[0].ends_with(&format!("{s} is writable by others - disabling")),
            "{w:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// keepalived's check_script_secure at load: a script that cannot be
/// found (a bare name not in PATH, a path that is not there) or that its
/// user cannot execute is disabled, with its line: a MISC_CHECK is
/// removed (its real server no longer waits for it), a notify script
/// dropped; `</path` (a file's readability) is not a program and stays.
#[test]
fn scripts_not_found_or_not_executable_are_disabled_at_load() {
    let dir = std::env::temp_dir().join(format!("rvs-noexec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let owner_only = dir.join("owner-only");
    std::fs::write(&owner_only, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        &owner_only,
        std::os::unix::fs::PermissionsExt::from_mode(0o744),
    )
    .unwrap();
    let (c, w) = parse(&format!(
        "global_defs {{\n script_user nobody\n enable_script_security\n}}\n\
         virtual_server 10.0.0.1 80 {{\n quorum_up rvs-no-such-program\n \
         quorum_down \"</etc/hostname\"\n \
         real_server 10.0.0.2 80 {{\n  notify_up /nonexistent/up\n  notify_down /bin/true\n  \
         TCP_CHECK {{ }}\n  MISC_CHECK {{ misc_path \"/nonexistent/check arg\" }}\n  \
         MISC_CHECK {{ misc_path {} }}\n  MISC_CHECK {{ misc_path /bin/true }}\n }}\n}}\n",
        owner_only.display()
    ))
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let vs = &c.services[0];
    let rs = &vs.reals[0];
    assert!(vs.quorum_up.is_none());
    assert_eq!(vs.quorum_down.as_ref().unwrap().cmd, "</etc/hostname");
    assert!(rs.notify_up.is_none());
    assert_eq!(rs.notify_down.as_ref().unwrap().cmd, "/bin/true");
    let kinds: Vec<String> = rs
        .checkers
        .iter()
        .map(|ck| match &ck.kind {
            CheckKind::Misc { path, .. } => path.clone(),
            k => format!("{k:?}"),
        })
        .collect();
    assert_eq!(kinds, ["Tcp", "/bin/true"]);
    let nobody = RunAs::resolve("nobody", None, false).unwrap();
    assert_eq!(
        w,
        [
            "k.conf:6: Cannot find script rvs-no-such-program in path - disabling".to_string(),
            "k.conf:9: Script /nonexistent/up cannot be accessed - No such file or directory \
             (os error 2)"
                .to_string(),
            "k.conf:12: Script /nonexistent/check cannot be accessed - No such file or directory \
             (os error 2); Disabling misc script /nonexistent/check arg since not \
             found/accessible"
                .to_string(),
            format!(
                "k.conf:13: WARNING - script '{}' is not executable for uid:gid {}:{} - disabling.",
                owner_only.display(),
                nobody.uid,
                nobody.gid
            ),
        ]
    );
}
