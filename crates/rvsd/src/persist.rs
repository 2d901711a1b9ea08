//! `rvsd --save FILE`: the rules written back after every change, so that
//! a `kill -9` (or a crash, or a power cut once the disk has it) loses no
//! rule. The text is what `rvsd --rules` loads: `rvs fwmark add` lines,
//! then `ipvsadm -S -n` lines (`{ rvs fwmark save; ipvsadm -S -n; }`).
//!
//! Each save writes a temporary file beside FILE, `fsync`s it, renames it
//! over FILE and `fsync`s the directory: FILE is always either the old
//! rules or the new ones, whole. A change is acknowledged to rvsadm only
//! after its save (a failed save is logged, and the change stands: the
//! table in memory is what forwards).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rvs_proto::ServiceInfo;
use rvs_proto::fwmark::FwmarkSpec;

/// The rules text of a table.
pub fn rules_text(fwmark: &[FwmarkSpec], services: &[ServiceInfo]) -> String {
    let mut out: String = fwmark
        .iter()
        .map(|r| format!("rvs fwmark add {r}\n"))
        .collect();
    out.push_str(&rvsadm::format::save(
        services,
        true,
        &rvsadm::format::Numeric,
    ));
    out
}

/// Write `text` to `path` atomically and durably (see the module docs).
///
/// # Errors
///
/// Any step failing; `path` is then unchanged (a temporary file may be
/// left, and is overwritten by the next save).
pub fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".rvsd-tmp");
    let tmp = dir.join(tmp_name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    File::open(&dir)?.sync_all()
}

/// Where and what was last saved.
#[derive(Debug)]
pub struct Saver {
    path: PathBuf,
    /// The text last written (a change that leaves it equal writes nothing).
    last: Mutex<Option<String>>,
}

impl Saver {
    /// Save to `path`.
    pub fn new(path: PathBuf) -> Saver {
        Saver {
            path,
            last: Mutex::new(None),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write `text` unless it is what the file already holds; log a failure.
    pub fn save(&self, text: String) {
        self.save_from(|| text);
    }

    /// Take the text from `snapshot` and write it, one save at a time: a
    /// snapshot taken later is never overwritten by an earlier one.
    pub fn save_from(&self, snapshot: impl FnOnce() -> String) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let text = snapshot();
        if last.as_deref() == Some(text.as_str()) {
            return;
        }
        match write_atomic(&self.path, &text) {
            Ok(()) => *last = Some(text),
            Err(e) => tracing::error!(
                "cannot save the rules to {}: {e} (the table in memory is unchanged)",
                self.path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole() {
        let dir = std::env::temp_dir().join(format!("rvsd-persist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("rules");
        write_atomic(&p, "-A -t 10.0.0.1:80 -s rr\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "-A -t 10.0.0.1:80 -s rr\n"
        );
        let s = Saver::new(p.clone());
        s.save("".into());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1);
        // A directory that does not exist: an error, logged by save().
        assert!(write_atomic(&dir.join("no/such/dir/rules"), "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
