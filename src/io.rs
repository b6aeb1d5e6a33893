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
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::write(path, e));
    }
    Ok(())
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
        .map_err(|e| Error::write(path, e))
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
            assert_eq!(a.parent(), p.parent());
            assert!(names[i + 1..].iter().all(|b| b != a), "{names:?}");
        }
    }
}
