//! What the kernel knows about one TCP connection (`getsockopt(TCP_INFO)`, Linux): how many
//! bytes wait unsent, how many are on the way, how many the peer has acknowledged, and how much
//! room the peer's receive buffer advertises. The relay paces slow viewers with it
//! (`server/src/fanout/pace.rs`).
//!
//! A crate of its own because the call needs `unsafe` (a C struct filled by the kernel), which
//! the relay itself forbids; no crate of the field wraps it without code generation at build
//! time (tcp-info-sys runs bindgen, needing libclang), and `libc` already describes the struct.

use std::io;
use std::os::fd::RawFd;

/// A connection's state, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// Written by the application, not yet sent (`tcpi_notsent_bytes`).
    pub notsent: u64,
    /// Sent, not yet acknowledged (sent minus retransmitted minus acknowledged).
    pub in_flight: u64,
    /// Acknowledged by the peer since the connection opened (`tcpi_bytes_acked`).
    pub acked: u64,
    /// The receive window the peer advertised last (`tcpi_snd_wnd`, kernel 5.4 and later);
    /// `None` on older kernels.
    pub peer_window: Option<u64>,
    /// The smallest round-trip time seen, microseconds: the path without its queues
    /// (`tcpi_min_rtt`).
    pub min_rtt_us: u32,
    /// The kernel's latest delivery-rate sample, bytes per second (`tcpi_delivery_rate`).
    pub delivery_rate: u64,
    /// Milliseconds since the last acknowledgement arrived (`tcpi_last_ack_recv`): how old
    /// `acked` and `peer_window` are.
    pub since_ack_ms: u32,
}

/// Reads `TCP_INFO` of the socket `fd`.
///
/// Any descriptor is safe to pass: the kernel only writes into the struct given to it, and a
/// descriptor that is not a TCP socket is an error. The caller makes sure `fd` is still the
/// socket it means (a closed number may have been reused).
#[cfg(target_os = "linux")]
pub fn read(fd: RawFd) -> io::Result<TcpInfo> {
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a valid, writable tcp_info of `len` bytes; the kernel writes at most
    // `len` bytes into it and sets `len` to what it wrote.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // An older kernel fills less of the struct; fields past `len` stay zero, and the window,
    // which zero would misread as "full", is then unknown.
    let wnd_end = std::mem::offset_of!(libc::tcp_info, tcpi_snd_wnd) + 4;
    let sent = info
        .tcpi_bytes_sent
        .saturating_sub(info.tcpi_bytes_retrans)
        .saturating_sub(info.tcpi_bytes_acked);
    Ok(TcpInfo {
        notsent: u64::from(info.tcpi_notsent_bytes),
        in_flight: sent,
        acked: info.tcpi_bytes_acked,
        peer_window: (len as usize >= wnd_end).then_some(u64::from(info.tcpi_snd_wnd)),
        min_rtt_us: info.tcpi_min_rtt,
        since_ack_ms: info.tcpi_last_ack_recv,
        delivery_rate: info.tcpi_delivery_rate,
    })
}

/// Not Linux: unknown.
#[cfg(not(target_os = "linux"))]
pub fn read(_fd: RawFd) -> io::Result<TcpInfo> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "TCP_INFO is Linux only",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn counts_what_the_peer_acknowledged_and_what_it_has_room_for() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(&[7u8; 10_000]).unwrap();
        let mut got = vec![0u8; 10_000];
        client.read_exact(&mut got).unwrap();
        // The acknowledgement may trail the read by a moment on a loaded machine.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let info = loop {
            let info = read(server.as_raw_fd()).unwrap();
            if info.acked >= 10_000 || std::time::Instant::now() > deadline {
                break info;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(info.acked, 10_000, "{info:?}");
        assert_eq!(info.notsent + info.in_flight, 0, "{info:?}");
        assert!(info.peer_window.is_some_and(|w| w > 0), "{info:?}");
    }

    #[test]
    fn a_descriptor_that_is_no_tcp_socket_is_an_error() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(read(file.as_raw_fd()).is_err());
    }
}
