//! The library's one error type.
//!
//! Every failure a user can cause (a missing or corrupt data file, a bad config value, an
//! unwritable run folder, a NaN loss) becomes an [`Error`] whose message names the file or
//! field and what was expected. The binary prints it on one line and exits non-zero; nothing
//! in the library panics on bad input.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in ddmlab, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A data or checkpoint file exists but its contents are not what was expected.
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    /// A configuration value or option is out of its valid range (`field` names it: a config
    /// field such as `train.blr` or an option field such as `sample.cfg`, which the binary
    /// prints as the flag that sets it).
    #[error("invalid value for `{field}`: {msg}")]
    Config { field: String, msg: String },
    /// Training diverged.
    #[error("{0}")]
    Diverged(String),
    /// An external program (apt-get, npm, dpkg-deb) failed.
    #[error("{0}")]
    Command(String),
    /// Anything else, with a message that explains it.
    #[error("{0}")]
    Other(String),
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }

    /// A file whose contents are malformed.
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Format { path: path.as_ref().to_path_buf(), msg: msg.into() }
    }

    /// A config value out of range.
    pub fn config(field: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config { field: field.into(), msg: msg.into() }
    }
}

/// Attach a path to `std::io` results.
pub trait IoContext<T> {
    /// Turn an `io::Error` into [`Error::Io`] naming `path`.
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
