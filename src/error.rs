//! `Error`: what stops a capture source from being used at all. Damage
//! found part way through a file is not an error here: the source reports
//! it in [`InputInfo`](crate::source::InputInfo) and the frames before it
//! still count.

use std::fmt;
use std::io;

/// Why an input could not be read. Every variant names the input.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or read.
    Io {
        /// Path as given by the user (`-` for stdin).
        path: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The bytes are not a pcap or pcapng capture.
    NotCapture {
        /// Path as given by the user.
        path: String,
        /// What was found instead.
        detail: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::NotCapture { path, detail } => write!(f, "{path}: not a pcap or pcapng capture ({detail})"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::NotCapture { .. } => None,
        }
    }
}
