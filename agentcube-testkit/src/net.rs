//! Loopback ports: one that refuses every connection for as long as a test holds it, and one
//! that is free for a server about to bind it.
//!
//! Both panic when the machine gives no loopback port: a test that needs one cannot run.

#![allow(
    clippy::expect_used,
    reason = "test support: a test without a loopback port cannot run, and says so"
)]

use std::net::{Ipv4Addr, SocketAddr};

/// A loopback port nothing listens on, for as long as this value lives (or until [`listen`](Self::listen)).
///
/// Its socket is bound but never listens, so a connection to it is refused, and no other
/// socket can be given the port meanwhile: neither a server binding port 0 nor one binding it
/// by number with `SO_REUSEADDR` (as tokio's listeners do). A port that was bound and then
/// released, as [`free_port`] gives, can be handed to a server another test starts before this
/// test connects, which then answers in place of the refusal the test expects.
///
/// ```
/// let closed = agentcube_testkit::net::ClosedPort::bind();
/// let refused = std::net::TcpStream::connect(closed.addr()).unwrap_err();
/// assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
/// ```
#[derive(Debug)]
pub struct ClosedPort {
    addr: SocketAddr,
    // Held: dropping it frees the port.
    socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    /// Binds a new loopback port without listening on it.
    pub fn bind() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        // Not SO_REUSEADDR: on Linux, two sockets that both set it may share a port none of
        // them listens on.
        socket.set_reuseaddr(false).expect("SO_REUSEADDR off");
        socket
            .bind((Ipv4Addr::LOCALHOST, 0).into())
            .expect("a loopback port");
        Self {
            addr: socket.local_addr().expect("the bound address"),
            socket,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts listening on the port: a server that was down comes up at the same address, with
    /// no moment in between where another socket could take the port. Must run inside a tokio
    /// runtime.
    pub fn listen(self) -> tokio::net::TcpListener {
        self.socket.listen(64).expect("listening on a bound port")
    }
}

/// A loopback port that is free now: bound, then released, for a server the test starts on it
/// (another test could take it in between, which is rare). A test that only needs a refused
/// connection holds a [`ClosedPort`] instead.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a loopback port")
        .port()
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[tokio::test]
    async fn a_closed_port_refuses_connections_and_is_not_handed_out_while_held() {
        let closed = ClosedPort::bind();
        let refused = tokio::net::TcpStream::connect(closed.addr())
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        // A server binding the port by number, with SO_REUSEADDR as tokio's listeners do.
        let taken = tokio::net::TcpListener::bind(closed.addr())
            .await
            .unwrap_err();
        assert_eq!(taken.kind(), io::ErrorKind::AddrInUse);
        let addr = closed.addr();
        drop(closed);
        tokio::net::TcpListener::bind(addr)
            .await
            .expect("free once dropped");
    }

    #[tokio::test]
    async fn a_closed_port_comes_up_at_the_same_address() {
        let closed = ClosedPort::bind();
        let addr = closed.addr();
        let listener = closed.listen();
        assert_eq!(listener.local_addr().unwrap(), addr);
        let (connected, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        connected.unwrap();
        accepted.unwrap();
    }

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port();
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }
}
