//! Opening device files: errors that say what to do.

use std::io;
use std::path::Path;

use crate::reader::{ReaderError, ReaderErrorKind};

/// The name of the group that owns `path` (from /etc/group), if it can be found.
pub fn owning_group(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(path).ok()?.gid();
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let id: u32 = f.next()?.parse().ok()?;
        (id == gid).then(|| name.to_string())
    })
}

/// A reader error for a device that could not be opened: a missing path is `no_reader`, a
/// refused one is `permission` and names the group to join.
pub fn open_error(path: &Path, what: &str, e: &io::Error) -> ReaderError {
    match e.kind() {
        io::ErrorKind::NotFound => ReaderError::new(
            ReaderErrorKind::NoReader,
            format!("{what}: {} does not exist", path.display()),
        ),
        io::ErrorKind::PermissionDenied => {
            let hint = match owning_group(path) {
                Some(g) => format!("add the user to the group `{g}` (usermod -aG {g} USER)"),
                None => "check the device's owner and mode".into(),
            };
            ReaderError::new(
                ReaderErrorKind::Permission,
                format!("{what}: permission denied on {}: {hint}", path.display()),
            )
        }
        _ => ReaderError::new(
            ReaderErrorKind::NoReader,
            format!("{what}: cannot open {}: {e}", path.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_no_reader() {
        let e = open_error(
            Path::new("/dev/ttyKASSA9"),
            "PN532",
            &io::Error::from(io::ErrorKind::NotFound),
        );
        assert_eq!(e.kind, ReaderErrorKind::NoReader);
        assert!(e.detail.contains("/dev/ttyKASSA9 does not exist"));
    }

    #[test]
    fn refused_device_names_its_group() {
        // /etc/passwd belongs to root:root on every Linux system.
        let e = open_error(
            Path::new("/etc/passwd"),
            "PN532",
            &io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.kind, ReaderErrorKind::Permission);
        assert!(e.detail.contains("group `root`"), "{}", e.detail);
    }
}
