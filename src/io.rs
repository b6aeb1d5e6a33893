//! Small file helpers shared by every layer that writes user data.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The temporary sibling used while `path` is written: `NAME.tmp<pid>-<n>`, unique to this
/// process and this call, so writers of the same file (two workers given identical inputs,
/// two processes) never write into each other's temporary file.
pub fn temp_path(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}-{n}", std::process::id()));
    path.with_file_name(name)
}

/// Whether `name` is a temporary file name of [`temp_path`] (`NAME.tmp<pid>-<n>`, maybe
/// followed by an extension, as plots add `.png`).
pub fn is_temp_name(name: &str) -> bool {
    name.rsplit_once(".tmp").is_some_and(|(_, tail)| {
        let tail = tail.split_once('.').map_or(tail, |(t, _)| t);
        tail.split_once('-').is_some_and(|(pid, n)| {
            [pid, n]
                .iter()
                .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        })
    })
}

/// Remove the temporary files ([`is_temp_name`]) a killed writer left in folder `dir` (not
/// below it). Nothing reads them; this only tidies.
pub fn remove_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if is_temp_name(&entry.file_name().to_string_lossy())
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Create folder `path` and its parents. A failure is an [`Error::Write`]; when something on
/// the way is a file, it says which ("X is a file, not a directory") instead of the OS's
/// "File exists".
pub fn create_dir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| {
        let file = path
            .ancestors()
            .find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir()));
        match file {
            Some(file) => Error::write(
                path,
                std::io::Error::other(format!("{} is a file, not a directory", file.display())),
            ),
            None => Error::write(path, e),
        }
    })
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk,
/// then renamed over `path`. A reader sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        // In two halves, so a kill test can stop the process with half a file written.
        let (head, tail) = bytes.split_at(bytes.len() / 2);
        file.write_all(head)?;
        kill_point("write-partial", Some(path));
        file.write_all(tail)?;
        file.sync_all()?;
        kill_point("write-synced", Some(path));
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::write(path, e));
    }
    kill_point("write-renamed", Some(path));
    Ok(())
}

/// The environment variable naming the [`kill_point`] at which the process kills itself.
pub const KILL_AT_VAR: &str = "DDSP_KILL_AT";

/// A test-only crash point, for the kill tests (`tests/kill.rs`): with the environment
/// variable `DDSP_KILL_AT=LABEL:N` set, the `N`th call (counting from 1) whose label starts
/// with `LABEL` kills the process with `SIGKILL` (an abort where there are no signals),
/// leaving whatever it had written as it was. A point's label is `stage`, or `stage/FILE`
/// with the file name of `path` (`write-partial/manifest.json`, `checkpoint-swapping/latest`).
///
/// Without the variable (it is read once) a point does nothing. The stages:
/// `write-partial`, `write-synced`, `write-renamed` ([`write_atomic`]: half the temporary file
/// written; all of it, before the rename; after the rename), `csv-appended` ([`append_csv_row`]),
/// `checkpoint-begin`, `checkpoint-written`, `checkpoint-swapping` (between the checkpoint
/// swap's two renames) and `checkpoint-swapped` (`train::RunDir::save_checkpoint`).
pub fn kill_point(stage: &str, path: Option<&Path>) {
    static KILL_AT: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    static HITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Some((want, n)) = KILL_AT
        .get_or_init(|| {
            let text = std::env::var(KILL_AT_VAR).ok()?;
            let (label, n) = text.rsplit_once(':')?;
            Some((label.to_string(), n.parse().ok()?))
        })
        .as_ref()
    else {
        return;
    };
    let label = match path.and_then(Path::file_name) {
        Some(name) => format!("{stage}/{}", name.to_string_lossy()),
        None => stage.to_string(),
    };
    if label.starts_with(want.as_str())
        && HITS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == *n
    {
        #[cfg(unix)]
        // SAFETY: kill(2) on this process's own id; it does not return.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

/// Append one line to a CSV file, writing `header` first when the file is new. A line is
/// written with a single `write_all`, so a reader never sees half of one.
pub fn append_csv_row(path: &Path, header: &[&str], row: &[String]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::write(path, e))?;
    let mut text = String::new();
    if new {
        text.push_str(&header.join(","));
        text.push('\n');
    }
    text.push_str(&row.join(","));
    text.push('\n');
    file.write_all(text.as_bytes())
        .map_err(|e| Error::write(path, e))?;
    kill_point("csv-appended", Some(path));
    Ok(())
}

/// Open `path` for reading only if it is a regular file: a folder, a device (`/dev/zero`
/// never ends), a FIFO (blocks for ever) or a socket is an error saying which. Returns the file
/// and its length, which bounds whatever is read from it.
pub fn open_regular(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    fn check(meta: &std::fs::Metadata) -> std::io::Result<u64> {
        if meta.is_file() {
            Ok(meta.len())
        } else if meta.is_dir() {
            Err(std::io::Error::other("a folder, not a file"))
        } else {
            Err(std::io::Error::other(
                "not a regular file (a device, FIFO or socket)",
            ))
        }
    }
    // Checked before opening (opening a FIFO blocks) and again on the file opened.
    check(&std::fs::metadata(path)?)?;
    let file = std::fs::File::open(path)?;
    let len = check(&file.metadata()?)?;
    Ok((file, len))
}

/// Read a whole regular file ([`open_regular`]): never more than the length it had when
/// opened.
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Whether `name` is a plain file or folder name: not empty, not `.` or `..`, no path
/// separator or NUL, at most 255 bytes. Joined to a folder, it stays inside that folder.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && !name.contains(['/', '\\', '\0'])
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of bytes, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15, defect 5: two writers of the same file get different temporary files.
    #[test]
    fn temporary_names_are_unique_per_writer() {
        let p = Path::new("/cache/chunks-a.safetensors");
        let names: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(|| temp_path(p))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let pid = format!(".tmp{}-", std::process::id());
        for (i, a) in names.iter().enumerate() {
            assert!(a.to_string_lossy().contains(&pid), "{a:?}");
            assert!(is_temp_name(&a.file_name().unwrap().to_string_lossy()));
            assert_eq!(a.parent(), p.parent());
            assert!(names[i + 1..].iter().all(|b| b != a), "{names:?}");
        }
        for name in [
            "a.tmp",
            "a.tmp1-",
            "a.tmp-1",
            "a.tmpx-1",
            ".latest.tmp",
            "a.csv",
        ] {
            assert!(!is_temp_name(name), "{name}");
        }
    }
}
