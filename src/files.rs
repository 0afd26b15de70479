//! Reading a file locksmith is pointed at (a web configuration, a fleet or peers file, a
//! password file): a regular file only, at most a cap, opened without blocking. A FIFO in
//! its place would hang the reader (serve ignored SIGTERM behind one), and `/dev/zero`
//! would never end.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The most a configuration file may hold.
pub const CONFIG_CAP: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file (a pipe or a device could block or never end)")]
    NotRegular,
    #[error("larger than {} KiB", .0 >> 10)]
    TooLarge(u64),
    #[error("not UTF-8 text")]
    NotText,
}

/// The bytes of the regular file at `path`, at most `cap` of them.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    // O_NONBLOCK: opening a FIFO nobody writes returns at once instead of waiting.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(FileError::NotRegular);
    }
    let mut out = Vec::new();
    f.take(cap + 1).read_to_end(&mut out)?;
    if out.len() as u64 > cap {
        return Err(FileError::TooLarge(cap));
    }
    Ok(out)
}

/// [`read_regular`] as text, capped at [`CONFIG_CAP`].
pub fn read_config(path: &Path) -> Result<String, FileError> {
    String::from_utf8(read_regular(path, CONFIG_CAP)?).map_err(|_| FileError::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_a_device_and_a_large_file_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        assert!(matches!(read_config(&fifo), Err(FileError::NotRegular)));
        assert!(matches!(
            read_config(Path::new("/dev/zero")),
            Err(FileError::NotRegular)
        ));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; CONFIG_CAP as usize + 1]).unwrap();
        assert!(matches!(read_config(&big), Err(FileError::TooLarge(_))));
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "x = 1\n").unwrap();
        assert_eq!(read_config(&ok).unwrap(), "x = 1\n");
    }
}
