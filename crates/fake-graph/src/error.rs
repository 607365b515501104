//! Why a fake could not start.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    #[error("invalid fake Graph options: {0}")]
    InvalidOptions(&'static str),
    #[error("generating the fake {what}")]
    Cert {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("building the fake server's TLS config")]
    Tls(#[source] rustls::Error),
    #[error("binding the fake server to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the fake server's bound address")]
    LocalAddr(#[source] std::io::Error),
}
