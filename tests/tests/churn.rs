//! 10 000 connections that end abruptly (reset, no goodbye) at every stage: before a request,
//! halfway through its head, and while a stream is being sent. The relay, a real process here,
//! must give everything back: open file descriptors return to where they were, resident memory
//! grows by less than 5 MB, no viewer is left counted, and a new viewer still gets frames.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mjpeg_relay_tests::{eventually, RelayProcess, StreamReader};
use mjpeg_shared::api::StreamInfo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 10_000;
const WARM_UP: usize = 1_000;
const AT_ONCE: usize = 64;

fn fds(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// One connection that ends with a reset at stage `kind`.
async fn abrupt(addr: std::net::SocketAddr, kind: usize) -> Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO))?;
    let host = format!("Host: {addr}\r\n");
    match kind % 4 {
        // Connected, nothing sent.
        0 => {}
        // Half a request head.
        1 => {
            s.write_all(b"GET /streams/main.mjpg HTTP/1.1\r\nHo")
                .await?
        }
        // A classic stream: gone once the response has started.
        2 => {
            s.write_all(format!("GET /streams/main.mjpg HTTP/1.1\r\n{host}\r\n").as_bytes())
                .await?;
            let mut buf = [0u8; 512];
            tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await??;
        }
        // A fetch-readable stream: gone in the middle of a frame.
        _ => {
            s.write_all(format!("GET /streams/main.frames HTTP/1.1\r\n{host}\r\n").as_bytes())
                .await?;
            let mut buf = vec![0u8; 16 * 1024];
            let mut got = 0;
            while got < 4096 {
                let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await??;
                anyhow::ensure!(n > 0, "stream closed");
                got += n;
            }
        }
    }
    drop(s); // SO_LINGER 0: the close sends RST.
    Ok(())
}

async fn churn(addr: std::net::SocketAddr, n: usize) -> Result<()> {
    use futures_util::StreamExt;
    let results: Vec<Result<()>> = futures_util::stream::iter(0..n)
        .map(|i| abrupt(addr, i))
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {n} connections failed: {:?}",
        results.into_iter().find(|r| r.is_err())
    );
    Ok(())
}

async fn viewers(addr: std::net::SocketAddr) -> Result<u64> {
    let info: StreamInfo = mjpeg_relay_tests::get(addr, "/api/streams/main")
        .await?
        .json()?;
    Ok(info.viewers)
}

/// Waits until no viewer is counted and the descriptor count is back to `target` (or below);
/// without a target, until it reads the same twice 100 ms apart (closing sockets have closed).
async fn settled(addr: std::net::SocketAddr, pid: u32, target: Option<usize>) -> Result<usize> {
    eventually(Duration::from_secs(20), || async {
        let before = fds(pid)?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = fds(pid)?;
        let steady = target.map_or(now == before, |t| now <= t);
        let ok = viewers(addr).await? == 0 && steady;
        Ok(ok.then_some(now))
    })
    .await
}

#[tokio::test]
async fn ten_thousand_abrupt_disconnects_leave_no_fds_no_viewers_and_little_memory() -> Result<()> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mjpeg-relay-under-test"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--stream",
        "main=test?size=320x240&fps=30",
    ])
    .stdin(std::process::Stdio::null());
    let relay = RelayProcess::spawn(cmd)?;
    let (addr, pid) = (relay.addr, relay.child.id());

    // Warm up: the allocator's pools, the runtime's threads and buffers reach their working size.
    churn(addr, WARM_UP).await?;
    let fds_before = settled(addr, pid, None).await?;
    let rss_before = rss_kib(pid)?;

    let started = Instant::now();
    churn(addr, CONNECTIONS).await?;
    let took = started.elapsed();
    let fds_after = settled(addr, pid, Some(fds_before)).await?;
    let rss_after = rss_kib(pid)?;
    let growth_kib = rss_after.saturating_sub(rss_before);
    eprintln!(
        "{CONNECTIONS} abrupt connections in {took:.1?}: fds {fds_before} -> {fds_after}, \
         RSS {rss_before} -> {rss_after} KiB (+{growth_kib} KiB)"
    );
    assert!(fds_after <= fds_before, "fds {fds_before} -> {fds_after}");
    // Generous (a few seconds is usual), but a relay this slow to turn connections away would
    // be noticed by anyone reconnecting to it.
    assert!(
        took < Duration::from_secs(120),
        "{CONNECTIONS} connections took {took:.1?}"
    );
    assert!(growth_kib < 5 * 1024, "RSS grew {growth_kib} KiB");

    // Still serving.
    let mut v = StreamReader::open(addr, "/streams/main.frames", None).await?;
    v.next_part(Duration::from_secs(5)).await?;
    Ok(())
}
