//! The one place where an `io::Error` becomes the errno a FUSE reply carries.

use std::io::{self, ErrorKind};

use fuser::Errno;

/// The errno for `e`: its OS error code if it has one (the file operations and the namespace
/// raise those), else one chosen by its kind. The address space reports a full device as
/// `StorageFull` (`ENOSPC`), a request it cannot serve as `InvalidInput` (`EINVAL`).
pub fn of(e: &io::Error) -> Errno {
    if let Some(code) = e.raw_os_error() {
        return Errno::from_i32(code);
    }
    match e.kind() {
        ErrorKind::StorageFull => Errno::ENOSPC,
        ErrorKind::FileTooLarge => Errno::EFBIG,
        ErrorKind::InvalidInput | ErrorKind::UnexpectedEof => Errno::EINVAL,
        ErrorKind::NotFound => Errno::ENOENT,
        ErrorKind::PermissionDenied => Errno::EACCES,
        ErrorKind::ReadOnlyFilesystem => Errno::EROFS,
        ErrorKind::AlreadyExists => Errno::EEXIST,
        ErrorKind::DirectoryNotEmpty => Errno::ENOTEMPTY,
        ErrorKind::IsADirectory => Errno::EISDIR,
        ErrorKind::NotADirectory => Errno::ENOTDIR,
        ErrorKind::Unsupported => Errno::EOPNOTSUPP,
        ErrorKind::OutOfMemory => Errno::ENOMEM,
        _ => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::of;
    use fuser::Errno;
    use std::io::{Error, ErrorKind};

    #[test]
    fn the_space_s_errors_map_to_their_errno() {
        assert_eq!(
            of(&Error::new(ErrorKind::StorageFull, "device full")),
            Errno::ENOSPC
        );
        assert_eq!(
            of(&Error::new(ErrorKind::FileTooLarge, "too big")),
            Errno::EFBIG
        );
        assert_eq!(
            of(&Error::new(ErrorKind::InvalidInput, "bad offset")),
            Errno::EINVAL
        );
        assert_eq!(
            of(&Error::from_raw_os_error(libc::EOPNOTSUPP)),
            Errno::EOPNOTSUPP
        );
        assert_eq!(of(&Error::other("store failed")), Errno::EIO);
    }
}
