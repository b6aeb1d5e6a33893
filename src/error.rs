//! The library's error type.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in `ddsp`, with the file or option concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value or file is invalid; the message names the option.
    #[error("{0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing an output (a cache, a run's files, a render) failed: a full disk, a read-only
    /// or missing folder. Always fatal: the output would be incomplete.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or folder being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An input folder or file list cannot be used (missing, empty, nothing usable in it).
    #[error("{path}: {reason}")]
    Input {
        /// The folder or file concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Audio could not be resampled.
    #[error("resampling: {0}")]
    Resample(String),
    /// Output could not be encoded (before it is written).
    #[error("encoding: {0}")]
    Encode(String),
    /// An audio file cannot be used.
    #[error("{path}: {reason}")]
    Audio {
        /// The file concerned.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A feature cache is missing, corrupt or made with another configuration.
    #[error("cache {path}: {reason}")]
    Cache {
        /// The cache directory or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint is missing, corrupt or does not match the model.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A requested compute device is not available in this build or on this machine.
    #[error("device: {0}")]
    Device(String),
    /// Training could not go on (for example repeated non-finite losses).
    #[error("training: {0}")]
    Training(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A failure to write `path` ([`Error::Write`]).
    pub fn write(path: &Path, source: std::io::Error) -> Self {
        Error::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
