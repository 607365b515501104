//! Binding `--web.listen-address`: `:PORT` is every interface, IPv6 and IPv4 on one dual-stack
//! socket, falling back to IPv4 only where the host has no IPv6.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tracing::warn;

use crate::config::{ListenAddress, ListenTarget};

/// Pending connections the kernel queues before `accept()`, as Go and tokio use.
const BACKLOG: i32 = 1024;

#[derive(Debug, thiserror::Error)]
#[error("--web.listen-address {address}: {source}")]
pub struct ListenError {
    pub address: String,
    #[source]
    pub source: io::Error,
}

/// Binds one listen address. Must run inside the tokio runtime.
pub fn bind(address: &ListenAddress) -> Result<TcpListener, ListenError> {
    let error = |source| ListenError {
        address: address.flag_value.clone(),
        source,
    };
    match address.target {
        ListenTarget::Socket(addr) => bind_socket(addr, false).map_err(error),
        ListenTarget::AllInterfaces(port) => {
            match bind_socket(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)), true) {
                Ok(listener) => Ok(listener),
                Err(err) if ipv6_unavailable(&err) => {
                    warn!(
                        address = %address.flag_value,
                        error = %err,
                        "IPv6 is not available on this host; listening on 0.0.0.0 (IPv4 only)"
                    );
                    bind_socket(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), false)
                        .map_err(error)
                }
                Err(err) => Err(error(err)),
            }
        }
    }
}

/// Errors of an IPv6 socket that mean the host has no IPv6, rather than a busy port.
fn ipv6_unavailable(err: &io::Error) -> bool {
    // EAFNOSUPPORT (97), EADDRNOTAVAIL (99), EPROTONOSUPPORT (93).
    matches!(err.raw_os_error(), Some(97 | 99 | 93))
}

fn bind_socket(addr: SocketAddr, dual_stack: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    // Restarting while old connections linger in TIME_WAIT must not fail with "in use".
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str, target: ListenTarget) -> ListenAddress {
        ListenAddress {
            flag_value: text.to_owned(),
            target,
        }
    }

    #[tokio::test]
    async fn a_port_in_use_names_the_flag() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind(&address(&addr.to_string(), ListenTarget::Socket(addr))).unwrap_err();
        let text = crate::errors::error_chain(&err);
        assert!(
            text.starts_with(&format!("--web.listen-address {addr}: ")),
            "{text}"
        );
        assert_eq!(err.source.kind(), io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn all_interfaces_is_one_dual_stack_socket() {
        let listener = bind(&address(":0", ListenTarget::AllInterfaces(0))).unwrap();
        let local = listener.local_addr().unwrap();
        if local.is_ipv4() {
            eprintln!("SKIPPED: no IPv6 on this host; the IPv4 fallback was used");
            return;
        }
        // Reached over IPv4 loopback and IPv6 loopback alike.
        for ip in ["127.0.0.1", "::1"] {
            let target = SocketAddr::new(ip.parse().unwrap(), local.port());
            let (client, accepted) =
                tokio::join!(tokio::net::TcpStream::connect(target), listener.accept());
            client.unwrap();
            accepted.unwrap();
        }
    }
}
