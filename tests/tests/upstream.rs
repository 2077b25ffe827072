//! Relaying: a relay reading another server's MJPEG stream over HTTP, once for all its viewers,
//! through upstream restarts, garbage and refusals.

use std::net::SocketAddr;
use std::time::Duration;

use mjpeg_relay_tests::{decode_jpeg, eventually, now_micros, TestRelay};
use mjpeg_shared::api::Health;
use mjpeg_shared::stamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a test waits for a particular kind of part.
const WITHIN: Duration = Duration::from_secs(15);
const T: Duration = Duration::from_secs(10);

fn stamp_of(jpeg: &[u8]) -> Option<stamp::Stamp> {
    let img = decode_jpeg(jpeg).ok()?;
    stamp::decode(&img.rgb, img.width, img.height, 3)
}

#[tokio::test]
async fn a_relay_relays_another_relay_keeping_capture_times() -> anyhow::Result<()> {
    let origin = TestRelay::start(&["main=test?size=320x240&fps=20"]).await?;
    let frames_url = format!("up=http://{}/streams/main.frames", origin.addr);
    let classic_url = format!("classic=http://{}/streams/main.mjpg", origin.addr);
    let edge = TestRelay::start(&[&frames_url, &classic_url]).await?;

    let mut viewer = edge.open("/streams/up.frames").await?;
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let part = viewer.next_part(T).await?;
        let ts = part.timestamp_micros().unwrap();
        latencies.push(now_micros().saturating_sub(ts));
        // The capture time is the origin's: the same as painted into the picture there.
        let s = stamp_of(&part.body).expect("the origin's picture");
        assert_eq!(s.capture_micros, ts, "upstream timestamps are kept");
    }
    latencies.sort_unstable();
    let median_ms = latencies[latencies.len() / 2] / 1000;
    assert!(
        median_ms < 50,
        "two hops on loopback add {median_ms} ms (median)"
    );

    // A classic upstream (no Content-Length, next headers in advance) relays too.
    let mut classic = edge.open("/streams/classic.frames").await?;
    for _ in 0..3 {
        assert!(stamp_of(&classic.next_part(T).await?.body).is_some());
    }
    // However many viewers the edge has, the origin sees one connection per upstream stream.
    let mut more = [
        edge.open("/streams/up.mjpg").await?,
        edge.open("/streams/up.frames").await?,
    ];
    // Each has a frame in hand: whatever upstream connection it would cause is open by now.
    for v in &mut more {
        v.next_part(T).await?;
    }
    assert_eq!(
        origin.info("main").await?.viewers,
        2,
        "one for `up`, one for `classic`"
    );
    edge.stop().await?;
    origin.stop().await?;
    Ok(())
}

#[tokio::test]
async fn an_upstream_restart_shows_no_signal_then_resumes_for_connected_viewers(
) -> anyhow::Result<()> {
    let origin = TestRelay::start(&["main=test?size=320x240&fps=20"]).await?;
    let addr = origin.addr;
    let edge = TestRelay::start(&[&format!("up=http://{addr}/streams/main.frames")]).await?;
    let mut viewer = edge.open("/streams/up.frames").await?;
    let before = stamp_of(&viewer.next_part(T).await?.body)
        .expect("live first")
        .seq;

    origin.stop().await?;
    let part = viewer
        .next_where(WITHIN, |jpeg| stamp_of(jpeg).is_none())
        .await?;
    decode_jpeg(&part.body)?;
    let info = edge.info("up").await?;
    let err = info.last_error.as_deref().unwrap_or_default();
    assert!(
        err.contains(&addr.to_string()),
        "NO SIGNAL names the upstream: {info:?}"
    );

    let origin = TestRelay::start_at(&["main=test?size=320x240&fps=20"], addr).await?;
    let back = viewer
        .next_where(WITHIN, |jpeg| stamp_of(jpeg).is_some())
        .await?;
    // The restarted origin counts from 1 again: any live stamp is a new picture.
    let _ = before;
    assert!(stamp_of(&back.body).is_some());
    let info = edge.info("up").await?;
    assert!(info.last_error.is_none(), "{info:?}");
    edge.stop().await?;
    origin.stop().await?;
    Ok(())
}

/// A hand-written upstream: answers every connection with `respond(n)` for the n-th connection.
async fn fake_upstream<F>(respond: F) -> anyhow::Result<SocketAddr>
where
    F: Fn(usize, String) -> Vec<Vec<u8>> + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut head = vec![0u8; 4096];
            let len = sock.read(&mut head).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&head[..len]).into_owned();
            let writes = respond(n, request);
            n += 1;
            tokio::spawn(async move {
                for w in writes {
                    if sock.write_all(&w).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // Keep the connection open a while, as a stalled camera would.
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    Ok(addr)
}

const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=cam\r\nConnection: close\r\n\r\n";

fn part(jpeg: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "--cam\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    )
    .into_bytes();
    out.extend_from_slice(jpeg);
    out.extend_from_slice(b"\r\n");
    out
}

fn stamped_jpeg(seq: u32) -> Vec<u8> {
    let (w, h) = (160usize, 120usize);
    let mut rgb = vec![90u8; w * h * 3];
    stamp::draw_rgb(
        stamp::Stamp {
            seq,
            capture_micros: 1,
        },
        &mut rgb,
        w,
        h,
    );
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 85)
        .encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

#[tokio::test]
async fn garbage_bad_parts_and_refusals_are_survived_and_reported() -> anyhow::Result<()> {
    // Connection 0: garbage, a non-JPEG part, an endless part; 1: a 503; 2 and later: good frames.
    let upstream = fake_upstream(|n, _| match n {
        0 => {
            let mut endless = b"--cam\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff".to_vec();
            endless.extend(std::iter::repeat_n(0x55u8, 200_000));
            vec![
                HEAD.to_vec(),
                b"\x00\x01garbage without any boundary\r\n".to_vec(),
                part(b"not a jpeg at all"),
                endless,
            ]
        }
        1 => vec![b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec()],
        _ => {
            let mut writes = vec![HEAD.to_vec()];
            writes.extend((1..200).map(|i| part(&stamped_jpeg(i))));
            writes
        }
    })
    .await?;
    let edge = TestRelay::start(&[&format!("up=http://{upstream}/cam#max_bytes=65536")]).await?;
    let mut viewer = edge.open("/streams/up.frames").await?;
    // NO SIGNAL first (nothing usable arrives), then live frames from the good connection.
    let first = viewer.next_part(T).await?;
    assert!(
        stamp_of(&first.body).is_none(),
        "NO SIGNAL while the upstream sends nothing usable"
    );
    viewer
        .next_where(WITHIN, |jpeg| stamp_of(jpeg).is_some())
        .await?;
    let info = edge.info("up").await?;
    assert!(
        info.dropped_parts.is_some_and(|n| n >= 2),
        "the non-JPEG and the oversized part were dropped: {info:?}"
    );
    assert_eq!(edge.json::<Health>("/healthz").await?.status, "ok");
    edge.stop().await?;
    Ok(())
}

#[tokio::test]
async fn credentials_in_the_url_go_upstream_and_nowhere_else() -> anyhow::Result<()> {
    let upstream = fake_upstream(|_, request| {
        // "user:p@ss" in Basic auth.
        if request
            .to_ascii_lowercase()
            .contains("authorization: basic dxnlcjpwqhnz")
        {
            let mut writes = vec![HEAD.to_vec()];
            writes.extend((1..100).map(|i| part(&stamped_jpeg(i))));
            writes
        } else {
            vec![b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec()]
        }
    })
    .await?;
    let edge = TestRelay::start(&[&format!("up=http://user:p%40ss@{upstream}/cam")]).await?;
    let mut viewer = edge.open("/streams/up.frames").await?;
    viewer
        .next_where(WITHIN, |jpeg| stamp_of(jpeg).is_some())
        .await?;
    // The raw text, on purpose: no field at all may hold the credentials.
    let text = edge.get("/api/streams/up").await?.text();
    assert!(
        !text.contains("p%40ss") && !text.contains("p@ss") && !text.contains("user:"),
        "{text}"
    );
    let source = edge.info("up").await?.source;
    assert!(
        source.starts_with(&format!("http://***@{upstream}/cam")),
        "{source}"
    );
    edge.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_refusing_upstream_is_named_on_no_signal() -> anyhow::Result<()> {
    let upstream = fake_upstream(|_, _| {
        vec![b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec()]
    })
    .await?;
    let edge = TestRelay::start(&[&format!("up=http://{upstream}/cam")]).await?;
    let mut viewer = edge.open("/streams/up.frames").await?;
    let part = viewer.next_part(T).await?;
    assert!(stamp_of(&part.body).is_none());
    let err = eventually(T, || async { Ok(edge.info("up").await?.last_error) }).await?;
    assert!(err.contains("answered 503"), "{err}");
    edge.stop().await?;
    Ok(())
}

#[tokio::test]
async fn an_https_upstream_is_read_with_its_own_certificate_authority_and_refused_without(
) -> anyhow::Result<()> {
    use std::sync::Arc;
    // A camera-like HTTPS upstream with a self-signed certificate for "localhost".
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("camera-ca.pem");
    std::fs::write(&ca, certified.cert.pem())?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut head = vec![0u8; 4096];
                let _ = tls.read(&mut head).await;
                let _ = tls.write_all(HEAD).await;
                for i in 1..200 {
                    if tls.write_all(&part(&stamped_jpeg(i))).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
    });

    let trusted = format!("up=https://localhost:{port}/cam#ca={}", ca.display());
    let untrusted = format!("bad=https://localhost:{port}/cam");
    let edge = TestRelay::start(&[&trusted, &untrusted]).await?;
    let mut viewer = edge.open("/streams/up.frames").await?;
    viewer
        .next_where(WITHIN, |jpeg| stamp_of(jpeg).is_some())
        .await?;

    let mut refused = edge.open("/streams/bad.frames").await?;
    assert!(
        stamp_of(&refused.next_part(T).await?.body).is_none(),
        "an unknown certificate is not trusted"
    );
    let err = edge.info("bad").await?.last_error.unwrap_or_default();
    assert!(
        err.contains("TLS") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    edge.stop().await?;
    Ok(())
}

#[tokio::test]
async fn linger_zero_still_connects_and_passwords_keep_their_plus_signs() -> anyhow::Result<()> {
    // "user:a+b": a form decoder would turn the '+' into a space and fail the login.
    let upstream = fake_upstream(|_, request| {
        if request
            .to_ascii_lowercase()
            .contains("authorization: basic dxnlcjphk2i=")
        {
            let mut writes = vec![HEAD.to_vec()];
            writes.extend((1..100).map(|i| part(&stamped_jpeg(i))));
            writes
        } else {
            vec![b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec()]
        }
    })
    .await?;
    let edge = TestRelay::start(&[&format!("up=http://user:a+b@{upstream}/cam#linger=0")]).await?;
    let mut viewer = edge.open("/streams/up.frames").await?;
    viewer
        .next_where(WITHIN, |jpeg| stamp_of(jpeg).is_some())
        .await?;
    edge.stop().await?;
    Ok(())
}
