//! Reading a file the agent is told to read (a config source, a certificate, a key, a CA
//! bundle, a registration) with a size bound: a device that never ends or a file far larger
//! than its format needs is an error naming the limit, not a node that runs out of memory.

use std::io::Read;
use std::path::Path;

/// The most bytes read of a PEM file (certificates, keys, CA bundles).
pub const MAX_PEM_BYTES: usize = 1024 * 1024;

/// The bytes of `reader`, at most `cap`; more is an `io::ErrorKind::FileTooLarge` error.
pub fn read_capped_from(reader: impl Read, cap: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than {cap} bytes (the size limit for this file)"),
        ));
    }
    Ok(bytes)
}

/// The bytes of the file at `path`, at most `cap`.
pub fn read_capped(path: &Path, cap: usize) -> std::io::Result<Vec<u8>> {
    read_capped_from(std::fs::File::open(path)?, cap)
}

/// The text of the file at `path`, at most `cap` bytes of UTF-8.
pub fn read_to_string_capped(path: &Path, cap: usize) -> std::io::Result<String> {
    utf8(read_capped(path, cap)?)
}

/// Bytes as UTF-8 text; otherwise an `InvalidData` error naming the first bad offset.
pub fn utf8(bytes: Vec<u8>) -> std::io::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_capped(&p, 5).unwrap(), b"12345");
        let err = read_capped(&p, 4).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(err.to_string().contains("larger than 4 bytes"), "{err}");
        let zero = read_capped(Path::new("/dev/zero"), 1024).unwrap_err();
        assert_eq!(zero.kind(), std::io::ErrorKind::FileTooLarge);
        std::fs::write(&p, b"ab\xffc").unwrap();
        let err = read_to_string_capped(&p, 16).unwrap_err();
        assert!(err.to_string().contains("offset 2"), "{err}");
    }
}
