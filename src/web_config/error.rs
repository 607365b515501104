//! What goes wrong with `--web.config.file`, naming the flag and the file.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("--web.config.file: reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--web.config.file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}
