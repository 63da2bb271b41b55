//! Loopback ports for the end-to-end tests: one that refuses every connection for as long as
//! a test holds it, and one that is free for a service about to bind it.

#![allow(
    dead_code,
    clippy::unwrap_used,
    reason = "test support: each test binary uses part of it, and failing loudly is the point"
)]

use std::net::{Ipv4Addr, SocketAddr};

/// A loopback port nothing listens on, for as long as this value lives.
///
/// Its socket is bound but never listens, so a connection to it is refused, and no other test
/// or service (each binds port 0, or a port it was handed) can be given it meanwhile. A port
/// that was bound and then released, as [`free_port`] gives, can be handed to a server another
/// test starts before this test connects, which then answers in place of the refusal.
pub(crate) struct ClosedPort {
    addr: SocketAddr,
    // Held, not read: dropping it frees the port.
    _socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    pub(crate) fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        // No SO_REUSEADDR: with it on both sockets, Linux would let another bind share the port.
        socket.set_reuseaddr(false).unwrap();
        socket.bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        let addr = socket.local_addr().unwrap();
        Self {
            addr,
            _socket: socket,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A loopback port that is free now: bound, then released, for a service started with it.
/// Tests that only need a refused connection use [`ClosedPort`] instead.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
