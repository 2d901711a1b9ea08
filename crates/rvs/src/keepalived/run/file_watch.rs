// SPDX-License-Identifier: GPL-2.0-or-later
//! FILE_CHECK's tracked files, watched with inotify as keepalived watches
//! them (`track_file.c`): a file written, renamed over, removed or
//! re-created is read again at once, not at the next poll.
//!
//! The watch is on the file's directory, not on the file: an atomic
//! update (`mv tmp file`) replaces the inode, a watch on the old one would
//! see nothing more, and a file that does not exist yet cannot be
//! watched. The events that may change a value are the ones keepalived
//! takes (a writer closed the file, a file moved in or out, removed) and
//! a file created (a hard link, `mknod`); each is for a name in the
//! directory, matched against the tracked names. A tracked path that is a
//! symbolic link has the directory of its target watched too (writes
//! through the link), besides its own (the link replaced).
//!
//! An event does not carry the value: the FILE_CHECK is read again, by
//! the scheduler's pool as before (a read on a file system that hangs
//! holds a worker, not the scheduler), and its value goes to the state
//! machine (`World::result`, `Outcome::Value`). One read per FILE_CHECK
//! at a time: events during a read ask for one more read after it
//! ([`FileWatch::start_read`], [`FileWatch::read_done`]), so reads never
//! overtake each other and a burst of writes costs two reads, not one
//! each. keepalived sets a removed file's value to 0 without reading it;
//! reading it here gives the same 0 (a missing file reads 0), or the
//! value of a file already put back.
//!
//! Where a file cannot be watched it is read every second, as all were
//! before, and the log says why (detect it, fall back, say why):
//! inotify unavailable, the directory missing or past the watch limit
//! (`fs.inotify.max_user_watches`), a file system whose changes inotify
//! does not see (NFS, SMB, FUSE, proc, sysfs…: keepalived refuses such a
//! track_file; polling serves it), the directory removed or moved later.
//! Otherwise there is no poll: keepalived has none either.

use std::collections::HashMap;
use std::ffi::OsString;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::inotify::{self, ReadFlags, WatchFlags};
use rustix::io::Errno;

use crate::keepalived::conf::{CheckKind, Checker};

/// What is watched in a directory.
const EVENTS: WatchFlags = WatchFlags::CLOSE_WRITE
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::CREATE)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

/// File systems whose files change without inotify events (on another
/// host, or made up by the kernel when read), by `statfs` magic
/// (linux/magic.h): NFS, SMB, CIFS, SMB2, Ceph, 9p, FUSE, proc, sysfs,
/// cgroup, cgroup2, debugfs, tracefs, bpf, efivarfs, selinuxfs.
const UNWATCHABLE: [(u32, &str); 16] = [
    (0x6969, "nfs"),
    (0x517b, "smb"),
    (0xff53_4d42, "cifs"),
    (0xfe53_4d42, "smb2"),
    (0x00c3_6400, "ceph"),
    (0x0102_1997, "9p"),
    (0x6573_5546, "fuse"),
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0xcafe_4a11, "bpf"),
    (0xde5e_81e4, "efivarfs"),
    (0xf97c_ff8c, "selinuxfs"),
];

/// A FILE_CHECK's read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Idle,
    /// On the pool.
    Busy,
    /// On the pool, and asked for again since it started.
    Again,
}

/// One tracked name in a watched directory.
#[derive(Debug)]
struct Tracked {
    name: OsString,
    /// The FILE_CHECK (flat index).
    k: usize,
}

/// The tracked files' watches, and their reads.
#[derive(Debug)]
pub(super) struct FileWatch {
    /// The inotify instance, or why there is none.
    fd: Result<OwnedFd, String>,
    /// Per watch descriptor: the directory and the names tracked in it.
    dirs: HashMap<i32, (PathBuf, Vec<Tracked>)>,
    /// Per flat checker: a FILE_CHECK read every `delay_loop` (no watch).
    polled: Vec<bool>,
    reads: Vec<Read>,
    buf: Vec<MaybeUninit<u8>>,
}

impl FileWatch {
    /// An inotify instance (none: every FILE_CHECK is polled, said when
    /// there are some).
    pub(super) fn new() -> FileWatch {
        Self::with_instance(
            inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
                .map_err(|e| format!("inotify_init1: {e}")),
        )
    }

    /// With the instance `fd`, or why there is none (a sandbox that
    /// refuses inotify, the per-user instance limit reached).
    fn with_instance(fd: Result<OwnedFd, String>) -> FileWatch {
        FileWatch {
            fd,
            dirs: HashMap::new(),
            polled: Vec::new(),
            reads: Vec::new(),
            buf: vec![MaybeUninit::uninit(); 16 << 10],
        }
    }

    /// What the scheduler's epoll set watches (readable: events).
    pub(super) fn fd(&self) -> Option<BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.fd.as_ref().ok().map(|f| f.as_fd())
    }

    /// Watch the files of the FILE_CHECKs among `checkers` (the flat
    /// list; the configuration's), forgetting the watches of the previous
    /// one; each that cannot be watched is polled, and the log says why.
    pub(super) fn arm(&mut self, checkers: &[Checker], log: fn(&str)) {
        if let Ok(fd) = &self.fd {
            for wd in self.dirs.keys() {
                // Its last event (IN_IGNORED) is for a descriptor no
                // longer known: skipped.
                let _ = inotify::remove_watch(fd, *wd);
            }
        }
        self.dirs.clear();
        self.polled = vec![false; checkers.len()];
        self.reads = vec![Read::Idle; checkers.len()];
        for (k, ck) in checkers.iter().enumerate() {
            let CheckKind::File(f) = &ck.kind else {
                continue;
            };
            if let Err(why) = self.watch(Path::new(&f.path), k) {
                self.polled[k] = true;
                log(&format!(
                    "FILE_CHECK {} ({}): not watched ({why}); read every second",
                    f.name, f.path
                ));
            }
        }
    }

    /// Watch the places of `path` for FILE_CHECK `k`.
    fn watch(&mut self, path: &Path, k: usize) -> Result<(), String> {
        let fd = self.fd.as_ref().map_err(Clone::clone)?;
        for (dir, name) in places(path)? {
            if let Some((magic, fs)) = unwatchable(&dir) {
                return Err(format!(
                    "{} is on {fs} (0x{magic:x}), whose changes inotify may not see",
                    dir.display()
                ));
            }
            let wd = inotify::add_watch(fd, &dir, EVENTS).map_err(|e| match e {
                Errno::NOSPC => format!(
                    "inotify_add_watch {}: {e} (fs.inotify.max_user_watches reached)",
                    dir.display()
                ),
                e => format!("inotify_add_watch {}: {e}", dir.display()),
            })?;
            let names = &mut self.dirs.entry(wd).or_insert_with(|| (dir, Vec::new())).1;
            if !names.iter().any(|t| t.k == k && t.name == name) {
                names.push(Tracked { name, k });
            }
        }
        Ok(())
    }

    /// Whether FILE_CHECK `k` is read every `delay_loop` (false: on its
    /// file's events; after the first read).
    pub(super) fn polled(&self, k: usize) -> bool {
        self.polled.get(k).copied().unwrap_or(true)
    }

    /// A read of FILE_CHECK `k` is due: true when the caller starts it
    /// now; false when one is on the pool (one more follows it).
    pub(super) fn start_read(&mut self, k: usize) -> bool {
        let Some(r) = self.reads.get_mut(k) else {
            return true;
        };
        match r {
            Read::Idle => {
                *r = Read::Busy;
                true
            }
            Read::Busy | Read::Again => {
                *r = Read::Again;
                false
            }
        }
    }

    /// The read of FILE_CHECK `k` is over: true when the caller starts
    /// another now (events came during this one).
    pub(super) fn read_done(&mut self, k: usize) -> bool {
        let Some(r) = self.reads.get_mut(k) else {
            return false;
        };
        let again = *r == Read::Again;
        *r = if again { Read::Busy } else { Read::Idle };
        again
    }

    /// The events so far: the FILE_CHECKs to read again (each once). A
    /// watched directory removed or moved turns its FILE_CHECKs to
    /// polling (logged); a queue that overflowed (events lost) reads
    /// every watched file.
    pub(super) fn events(&mut self, checkers: &[Checker], log: fn(&str)) -> Vec<usize> {
        let Ok(fd) = &self.fd else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut gone = Vec::new();
        let mut overflow = false;
        let mut reader = inotify::Reader::new(fd, &mut self.buf);
        loop {
            let ev = match reader.next() {
                Ok(ev) => ev,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => break,
                Err(e) => {
                    log(&format!("FILE_CHECK: inotify read: {e}"));
                    break;
                }
            };
            let m = ev.events();
            if m.contains(ReadFlags::QUEUE_OVERFLOW) {
                overflow = true;
                continue;
            }
            // Not known: an event of a watch removed at a reload.
            let Some((_, names)) = self.dirs.get(&ev.wd()) else {
                continue;
            };
            if m.intersects(ReadFlags::IGNORED | ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF) {
                gone.push(ev.wd());
                continue;
            }
            if m.contains(ReadFlags::ISDIR) {
                continue;
            }
            if let Some(name) = ev.file_name() {
                let name = name.to_bytes();
                out.extend(
                    names
                        .iter()
                        .filter(|t| t.name.as_bytes() == name)
                        .map(|t| t.k),
                );
            }
        }
        for wd in gone {
            let Some((dir, names)) = self.dirs.remove(&wd) else {
                continue;
            };
            let _ = inotify::remove_watch(fd, wd);
            for t in names {
                self.polled[t.k] = true;
                out.push(t.k);
                if let Some(CheckKind::File(f)) = checkers.get(t.k).map(|c| &c.kind) {
                    log(&format!(
                        "FILE_CHECK {} ({}): its directory {} was removed or moved; \
                         read every second",
                        f.name,
                        f.path,
                        dir.display()
                    ));
                }
            }
        }
        if overflow {
            log(
                "FILE_CHECK: inotify's queue overflowed (events lost): every tracked file read again",
            );
            out.extend(self.dirs.values().flat_map(|(_, n)| n.iter().map(|t| t.k)));
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The directories to watch for `path`, and its name in each: its own
/// directory (relative: the current one) and, for a symbolic link (or a
/// path through one), its target's.
fn places(path: &Path) -> Result<Vec<(PathBuf, OsString)>, String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} names no file", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut out = vec![(dir.clone(), name.to_os_string())];
    if let Ok(real) = std::fs::canonicalize(path)
        && let (Some(rd), Some(rn)) = (real.parent(), real.file_name())
    {
        let same = std::fs::canonicalize(&dir).is_ok_and(|d| d == rd) && rn == name;
        if !same {
            out.push((rd.to_path_buf(), rn.to_os_string()));
        }
    }
    Ok(out)
}

/// The file system of `dir` when its changes may come without inotify
/// events: its magic and name.
fn unwatchable(dir: &Path) -> Option<(u32, &'static str)> {
    let st = rustix::fs::statfs(dir).ok()?;
    // f_type is a C long (or u32) holding a 32-bit magic.
    let magic = st.f_type as u32;
    UNWATCHABLE.iter().copied().find(|&(m, _)| m == magic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn quiet(_: &str) {}

    /// FILE_CHECKs of `paths` (flat, in order).
    fn checkers(paths: &[&Path]) -> Vec<Checker> {
        let mut text = String::new();
        for (i, p) in paths.iter().enumerate() {
            text += &format!("track_file t{i} {{\n file {}\n}}\n", p.display());
        }
        text += "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n";
        for i in 0..paths.len() {
            text += &format!("  FILE_CHECK {{ track_file t{i} }}\n");
        }
        text += " }\n}\n";
        let mut w = Vec::new();
        let t =
            crate::keepalived::lex::parse_text(&text, "k.conf", Path::new("/x"), &mut w).unwrap();
        let c = crate::keepalived::conf::build(&t, &mut w).unwrap();
        c.services[0].reals[0].checkers.clone()
    }

    /// The FILE_CHECKs with events within `bound`, waiting for the fd
    /// to be readable as the scheduler's epoll set does; and how long
    /// the first took.
    fn wait_events(w: &mut FileWatch, cks: &[Checker], bound: Duration) -> (Vec<usize>, Duration) {
        let t0 = Instant::now();
        loop {
            let fd = w.fd().unwrap();
            let mut p = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::IN,
            )];
            let left = bound.saturating_sub(t0.elapsed());
            let ts = rustix::event::Timespec::try_from(left).unwrap();
            let _ = rustix::event::poll(&mut p, Some(&ts));
            let got = w.events(cks, quiet);
            if !got.is_empty() || t0.elapsed() >= bound {
                return (got, t0.elapsed());
            }
        }
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-fwatch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A write, an atomic rename over the file, a removal and a
    /// re-creation are each seen at once (the poll was every second);
    /// other files of the directory are not.
    #[test]
    fn write_rename_delete_and_create_are_seen_at_once() {
        let d = tmpdir("ops");
        let (a, b) = (d.join("a"), d.join("b"));
        std::fs::write(&a, "1\n").unwrap();
        let cks = checkers(&[&a, &b]);
        let mut w = FileWatch::new();
        w.arm(&cks, quiet);
        assert!(!w.polled(0) && !w.polled(1));
        let bound = Duration::from_millis(200);
        let mut worst = Duration::ZERO;
        let mut step = |what: &str, op: &dyn Fn(), want: &[usize]| {
            // From before the change to its event read.
            let t0 = Instant::now();
            op();
            let (got, _) = wait_events(&mut w, &cks, bound);
            let took = t0.elapsed();
            assert_eq!(got, want, "{what}");
            if !want.is_empty() {
                assert!(took < bound, "{what}: {took:?}");
                eprintln!("{what}: seen after {took:?}");
                worst = worst.max(took);
            }
        };
        step("write", &|| std::fs::write(&a, "2\n").unwrap(), &[0]);
        let tmp = d.join("b.tmp");
        step(
            "rename",
            &|| {
                std::fs::write(&tmp, "5\n").unwrap();
                // The temporary file's own write is not for a tracked name.
                std::fs::rename(&tmp, &b).unwrap();
            },
            &[1],
        );
        step("delete", &|| std::fs::remove_file(&a).unwrap(), &[0]);
        step("create", &|| std::fs::write(&a, "3\n").unwrap(), &[0]);
        step(
            "other file",
            &|| std::fs::write(d.join("c"), "1").unwrap(),
            &[],
        );
        eprintln!("slowest: {worst:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A reload's watches replace the old ones: a file no longer
    /// tracked brings no read.
    #[test]
    fn a_reload_rearms_the_watches() {
        let d = tmpdir("reload");
        let (a, b) = (d.join("a"), d.join("b"));
        let mut w = FileWatch::new();
        let one = checkers(&[&a]);
        w.arm(&one, quiet);
        let two = checkers(&[&b]);
        w.arm(&two, quiet);
        std::fs::write(&a, "1").unwrap();
        assert_eq!(
            wait_events(&mut w, &two, Duration::from_millis(100)).0,
            Vec::<usize>::new()
        );
        std::fs::write(&b, "1").unwrap();
        assert_eq!(wait_events(&mut w, &two, Duration::from_millis(200)).0, [0]);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Writes through a symbolic link are seen (its target's directory
    /// is watched), and so is the link replaced.
    #[test]
    fn a_symbolic_link_and_its_target() {
        let d = tmpdir("link");
        std::fs::create_dir_all(d.join("real")).unwrap();
        let (target, link) = (d.join("real/v"), d.join("v"));
        std::fs::write(&target, "1").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let cks = checkers(&[&link]);
        let mut w = FileWatch::new();
        w.arm(&cks, quiet);
        std::fs::write(&target, "2").unwrap();
        assert_eq!(wait_events(&mut w, &cks, Duration::from_millis(200)).0, [0]);
        std::fs::remove_file(&link).unwrap();
        assert_eq!(wait_events(&mut w, &cks, Duration::from_millis(200)).0, [0]);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A file that cannot be watched is polled: its directory missing,
    /// or on a file system inotify does not see (proc); its directory
    /// removed later turns it to polling too.
    #[test]
    fn unwatchable_files_are_polled() {
        let d = tmpdir("poll");
        let cks = checkers(&[
            &d.join("missing/v"),
            Path::new("/proc/sys/net/ipv4/ip_forward"),
            &d.join("sub/v"),
        ]);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        let mut w = FileWatch::new();
        static LOG: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        fn keep(l: &str) {
            LOG.lock().unwrap().push(l.to_string());
        }
        w.arm(&cks, keep);
        assert!(w.polled(0) && w.polled(1) && !w.polled(2));
        let log = LOG.lock().unwrap().join("\n");
        assert!(log.contains("No such file"), "{log}");
        assert!(log.contains("is on proc (0x9fa0)"), "{log}");
        std::fs::remove_dir_all(d.join("sub")).unwrap();
        let (got, _) = wait_events(&mut w, &cks, Duration::from_millis(200));
        assert_eq!(got, [2]);
        assert!(w.polled(2));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Where inotify is refused (here: the instance limit, EMFILE), every
    /// FILE_CHECK is read every second, the scheduler has no descriptor
    /// to watch, and the log says why, once per file.
    #[test]
    fn without_inotify_every_file_is_polled() {
        let d = tmpdir("noinotify");
        std::fs::create_dir_all(&d).unwrap();
        let cks = checkers(&[&d.join("a"), &d.join("b")]);
        let mut w = FileWatch::with_instance(Err(format!("inotify_init1: {}", Errno::MFILE)));
        assert!(w.fd().is_none());
        static LOG: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        fn keep(l: &str) {
            LOG.lock().unwrap().push(l.to_string());
        }
        w.arm(&cks, keep);
        assert!(w.polled(0) && w.polled(1));
        let log = LOG.lock().unwrap().clone();
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(
            log.iter()
                .all(|l| l.contains("not watched (inotify_init1: ")
                    && l.contains("read every second")),
            "{log:?}"
        );
        // Nothing to read: no events, and reads still go one at a time.
        std::fs::write(d.join("a"), "1").unwrap();
        assert!(w.events(&cks, quiet).is_empty());
        assert!(w.start_read(0) && !w.start_read(0));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// One read at a time per FILE_CHECK; events during it ask for one
    /// more after it, however many.
    #[test]
    fn reads_do_not_overlap() {
        let d = tmpdir("reads");
        let cks = checkers(&[&d.join("a")]);
        let mut w = FileWatch::new();
        w.arm(&cks, quiet);
        assert!(w.start_read(0));
        assert!(!w.start_read(0));
        assert!(!w.start_read(0));
        assert!(w.read_done(0), "one more");
        assert!(!w.read_done(0));
        assert!(w.start_read(0));
        let _ = std::fs::remove_dir_all(&d);
    }
}
