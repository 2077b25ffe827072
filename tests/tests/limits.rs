//! Viewer caps: beyond `--max-viewers-per-stream` or `--max-viewers` a stream request gets 503
//! with `Retry-After` and a message naming the cap; admitted viewers do not notice.

use std::time::{Duration, Instant};

use mjpeg_relay::fanout::Limits;
use mjpeg_relay::RelayOptions;
use mjpeg_relay_tests::TestRelay;

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn viewers_beyond_the_caps_get_503_and_admitted_viewers_keep_their_rate() -> anyhow::Result<()>
{
    let relay = TestRelay::start_with(
        &["a=test?size=160x120&fps=30", "b=test?size=160x120&fps=30"],
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            limits: Limits {
                max_viewers: Some(3),
                max_viewers_per_stream: Some(2),
                ..Limits::default()
            },
            ..RelayOptions::default()
        },
    )
    .await?;
    let mut a1 = relay.open("/streams/a.frames").await?;
    let a2 = relay.open("/streams/a.mjpg").await?;
    a1.next_part(T).await?;

    // A third viewer of a: the per-stream cap.
    let refused = relay.get_head("/streams/a.frames").await?;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.headers["retry-after"], "5");
    let msg = refused.error()?;
    assert!(
        msg.contains("stream \"a\"") && msg.contains("2 viewers"),
        "{msg}"
    );

    // b has room, the relay has one place left.
    let mut b1 = relay.open("/streams/b.frames").await?;
    b1.next_part(T).await?;
    let refused = relay.get_head("/streams/b.mjpg").await?;
    assert_eq!(refused.status, 503);
    let msg = refused.error()?;
    assert!(
        msg.contains("the relay") && msg.contains("3 viewers"),
        "{msg}"
    );
    // The API, snapshots and health are not viewers.
    assert_eq!(relay.get("/streams/a.jpg").await?.status, 200);
    assert_eq!(relay.info("a").await?.viewers, 2);

    // 300 refused requests while a1 watches: a1's frames keep coming at 30 fps.
    let addr = relay.addr;
    let burst = tokio::spawn(async move {
        let mut refused = 0;
        for _ in 0..300 {
            // The status only; the response (were it admitted) is dropped at once.
            let resp = mjpeg_relay_tests::send(addr, "/streams/a.frames", None, &[]).await;
            if let Ok(resp) = resp {
                refused += u32::from(resp.status() == 503);
            }
        }
        refused
    });
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut last = Instant::now();
    let mut frames = 0;
    while !burst.is_finished() || frames < 30 {
        a1.next_part(T).await?;
        worst = worst.max(last.elapsed());
        last = Instant::now();
        frames += 1;
        if started.elapsed() > Duration::from_secs(20) {
            anyhow::bail!("the burst did not finish in 20 s");
        }
    }
    assert_eq!(burst.await?, 300, "every extra viewer was refused");
    assert!(
        worst < Duration::from_millis(200),
        "an admitted viewer waited {worst:?} for a frame during the burst"
    );

    // A viewer leaving frees its place.
    drop(a2);
    mjpeg_relay_tests::eventually(T, || async {
        let status = relay.get_head("/streams/a.mjpg").await?.status;
        Ok((status == 200).then_some(()))
    })
    .await?;
    relay.stop().await?;
    Ok(())
}

/// Reads until the server closes the connection; returns what it sent and how long that took.
async fn until_closed(
    tcp: &mut tokio::net::TcpStream,
    within: Duration,
) -> anyhow::Result<(Vec<u8>, Duration)> {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(within.saturating_sub(started.elapsed()), tcp.read(&mut buf))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok((got, started.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => anyhow::bail!("still open after {within:?}"),
        }
    }
}

#[tokio::test]
async fn idle_and_slow_loris_connections_are_closed_and_huge_heads_refused() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let relay = TestRelay::start(&["a=test?size=160x120&fps=30"]).await?;
    let mut viewer = relay.open("/streams/a.frames").await?;

    // A connection that never sends a request, and one that sends its head a byte every second.
    let mut idle = tokio::net::TcpStream::connect(relay.addr).await?;
    let mut loris = tokio::net::TcpStream::connect(relay.addr).await?;
    let drip = tokio::spawn(async move {
        for b in b"GET /streams/a.frames HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
            .take(30)
        {
            if loris.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        loris
    });
    let limit = mjpeg_relay::net::conn::HEADER_TIMEOUT + Duration::from_secs(3);
    let (_, idle_for) = until_closed(&mut idle, limit).await?;
    assert!(
        idle_for >= mjpeg_relay::net::conn::HEADER_TIMEOUT - Duration::from_secs(1),
        "{idle_for:?}"
    );
    let mut loris = drip.await?;
    let (_, _) = until_closed(&mut loris, Duration::from_secs(3)).await?;

    // A request head over the limit: 431, connection closed.
    let mut big = tokio::net::TcpStream::connect(relay.addr).await?;
    // Well over the buffer limit (hyper may read up to about twice it before checking).
    let filler = "x".repeat(mjpeg_relay::net::conn::MAX_HEAD_BYTES * 4);
    let _ = big
        .write_all(
            format!("GET /api/time HTTP/1.1\r\nHost: x\r\nX-Big: {filler}\r\n\r\n").as_bytes(),
        )
        .await;
    let (answer, _) = until_closed(&mut big, Duration::from_secs(5)).await?;
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // The viewer watching all along was not disturbed.
    for _ in 0..10 {
        viewer.next_part(T).await?;
    }
    relay.stop().await?;
    Ok(())
}
