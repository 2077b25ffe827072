//! HTTPS and HTTP/2 (`--tls-cert`/`--tls-key`): many streams share one connection at full rate,
//! a viewer whose link stalls resumes on a current frame (h2's send buffer is the gate), HTTP/1.1
//! over TLS still works, and Chromium paints ten `<img>` streams from one relay over h2 where
//! plain HTTP/1.1 stops at six.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mjpeg_relay::RelayOptions;
use mjpeg_relay_tests::browser::{exclusive, Browser};
use mjpeg_relay_tests::tls::{connect, H2Client, ReadGate, TestCert};
use mjpeg_relay_tests::{eventually, now_micros, StreamReader, TestRelay};

const T: Duration = Duration::from_secs(10);

async fn tls_relay(
    specs: &[&str],
    cert: &TestCert,
    dashboard: &std::path::Path,
) -> anyhow::Result<TestRelay> {
    TestRelay::start_with(
        specs,
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::choose(Some(
                dashboard.to_path_buf(),
            )),
            tls: Some(cert.server_config()?),
            ..RelayOptions::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_streams_share_one_h2_connection_at_full_rate() -> anyhow::Result<()> {
    let cert = TestCert::new()?;
    let relay = tls_relay(
        &["a=test?size=320x240&fps=30", "b=test?size=320x240&fps=30"],
        &cert,
        "/nonexistent".as_ref(),
    )
    .await?;
    let mut client = H2Client::connect(relay.addr, &cert.der, None, Arc::default()).await?;
    let mut viewers = Vec::new();
    for i in 0..10 {
        let path = if i % 2 == 0 {
            "/streams/a.frames"
        } else {
            "/streams/b.frames"
        };
        let resp = client.get(path).await?;
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        viewers.push(StreamReader::from_response(path, resp).await?);
    }
    // Every viewer reads for 2 s at once: all ten at the source's rate.
    let counts = futures_util::future::try_join_all(viewers.iter_mut().map(|v| async move {
        v.next_part(T).await?;
        let until = Instant::now() + Duration::from_secs(2);
        let mut n = 0u32;
        while Instant::now() < until {
            v.next_part(T).await?;
            n += 1;
        }
        anyhow::Ok(n)
    }))
    .await?;
    for (i, n) in counts.iter().enumerate() {
        assert!(
            (51..=69).contains(n),
            "viewer {i} got {n} frames in 2 s at 30 fps: {counts:?}"
        );
    }
    let viewers_now = relay.viewers();
    assert_eq!(viewers_now, 10);
    drop(viewers);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn http1_over_tls_still_serves_the_classic_stream() -> anyhow::Result<()> {
    let cert = TestCert::new()?;
    let relay = tls_relay(
        &["main=test?size=320x240&fps=30"],
        &cert,
        "/nonexistent".as_ref(),
    )
    .await?;
    let (tls, alpn) = connect(relay.addr, &cert.der, &[b"http/1.1"], None, Arc::default()).await?;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = tokio::time::timeout(
        T,
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)),
    )
    .await??;
    tokio::spawn(conn);
    let req = hyper::Request::get("/streams/main.mjpg?layout=strict")
        .header("Host", relay.addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let resp = tokio::time::timeout(T, sender.send_request(req)).await??;
    assert_eq!(resp.version(), hyper::Version::HTTP_11);
    let mut v = StreamReader::from_response("/streams/main.mjpg", resp).await?;
    for _ in 0..10 {
        let part = v.next_part(T).await?;
        assert!(part.body.starts_with(&[0xFF, 0xD8]));
    }
    // Plain HTTP on the TLS port is refused, not served.
    let plain = mjpeg_relay_tests::get(relay.addr, "/healthz").await;
    assert!(plain.is_err(), "plain HTTP was answered on the TLS port");
    relay.stop().await?;
    Ok(())
}

/// A viewer over h2 whose link stops taking data for 3 s: meanwhile a viewer on another
/// connection keeps the full rate; when the link resumes, the stalled viewer is handed a current
/// frame after a short backlog, instead of replaying the 90 frames it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_h2_viewer_resumes_on_a_current_frame() -> anyhow::Result<()> {
    let cert = TestCert::new()?;
    let relay = tls_relay(
        &["main=test?size=640x480&fps=30"],
        &cert,
        "/nonexistent".as_ref(),
    )
    .await?;
    let gate = Arc::new(ReadGate::default());
    let mut slow_client =
        H2Client::connect(relay.addr, &cert.der, Some(32 * 1024), gate.clone()).await?;
    let mut slow = StreamReader::from_response(
        "/streams/main.frames",
        slow_client.get("/streams/main.frames").await?,
    )
    .await?;
    let mut other_client = H2Client::connect(relay.addr, &cert.der, None, Arc::default()).await?;
    let mut other = StreamReader::from_response(
        "/streams/main.frames",
        other_client.get("/streams/main.frames").await?,
    )
    .await?;
    for _ in 0..10 {
        slow.next_part(T).await?;
        other.next_part(T).await?;
    }
    let frame_bytes = slow.next_part(T).await?.body.len();

    gate.pause();
    let stalled_at = Instant::now();
    let mut other_frames = 0;
    while stalled_at.elapsed() < Duration::from_secs(3) {
        other.next_part(T).await?;
        other_frames += 1;
    }
    assert!(
        other_frames >= 75,
        "the other viewer got {other_frames} frames in 3 s"
    );
    gate.resume();

    // Frames captured before the stall ended are the backlog; count them until a current one.
    let resumed_micros = now_micros();
    let mut backlog = 0;
    let current = loop {
        let part = slow.next_part(T).await?;
        let captured = part.timestamp_micros().expect("X-Timestamp");
        if captured >= resumed_micros.saturating_sub(100_000) {
            break part;
        }
        backlog += 1;
        assert!(
            backlog <= 8,
            "more than 8 stale frames ({frame_bytes} bytes each) after the stall: queued, not skipped"
        );
    };
    let age_ms = now_micros().saturating_sub(current.timestamp_micros().unwrap()) / 1000;
    assert!(age_ms < 250, "first current frame {age_ms} ms old");
    eprintln!(
        "stalled h2 viewer: {backlog} stale frames of {frame_bytes} bytes before a current one"
    );
    // And it skipped what it could not take: the sequence jumped.
    let info = relay.relay.site.stream("main")?.info();
    assert!(info.frames_skipped >= 60, "{info:?}");
    relay.stop().await?;
    Ok(())
}

/// A page of ten `<img>`s, each its own request for the same stream (distinct URLs, or Chrome
/// would load the image once).
fn ten_img_page() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let imgs: String = (0..10)
        .map(|i| format!("<img id=i{i} src=\"/streams/main.mjpg?n={i}\" width=320 height=240>\n"))
        .collect();
    std::fs::write(
        dir.path().join("index.html"),
        format!("<!doctype html><html><body>\n{imgs}</body></html>\n"),
    )?;
    Ok(dir)
}

async fn painting(browser: &Browser) -> anyhow::Result<Vec<Option<u32>>> {
    let mut out = Vec::new();
    for i in 0..10 {
        out.push(browser.stamp(&format!("#i{i}")).await?.map(|s| s.seq));
    }
    Ok(out)
}

#[tokio::test]
async fn chromium_over_h2_paints_ten_img_streams_from_one_relay() -> anyhow::Result<()> {
    let _one = exclusive().await;
    let page = ten_img_page()?;
    let cert = TestCert::new()?;
    let relay = tls_relay(&["main=test?size=320x240&fps=15"], &cert, page.path()).await?;
    let browser = Browser::start_eager(&["--ignore-certificate-errors"]).await?;
    browser
        .client
        .goto(&format!("https://127.0.0.1:{}/", relay.addr.port()))
        .await?;
    let protocol = browser
        .client
        .execute(
            "return performance.getEntriesByType('navigation')[0].nextHopProtocol",
            vec![],
        )
        .await?;
    assert_eq!(protocol, "h2");
    let first = eventually(Duration::from_secs(20), || async {
        let shown = painting(&browser).await?;
        Ok(shown.iter().all(Option::is_some).then_some(shown))
    })
    .await?;
    // All ten are live: each moves on to a later frame.
    let later = eventually(Duration::from_secs(10), || async {
        let shown = painting(&browser).await?;
        let moved = shown.iter().zip(&first).all(|(now, then)| now > then);
        Ok(moved.then_some(shown))
    })
    .await?;
    assert_eq!(
        relay.relay.site.stream("main")?.info().viewers,
        10,
        "{first:?} {later:?}"
    );
    browser.close().await?;
    relay.stop().await?;

    // The same page over plain HTTP/1.1: Chromium opens six connections per host and no more,
    // so four images never start (the limit the h2 path lifts).
    let relay = TestRelay::start_with_dashboard(
        &["main=test?size=320x240&fps=15"],
        page.path().to_path_buf(),
    )
    .await?;
    let browser = Browser::start_eager(&[]).await?;
    browser
        .client
        .goto(&format!("http://{}/", relay.addr))
        .await?;
    eventually(Duration::from_secs(20), || async {
        let shown = painting(&browser).await?;
        Ok((shown.iter().filter(|s| s.is_some()).count() == 6).then_some(()))
    })
    .await?;
    // Six play; the others stay blank while they do (observed for 2 s).
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let shown = painting(&browser).await?;
        assert_eq!(shown.iter().filter(|s| s.is_some()).count(), 6, "{shown:?}");
        assert_eq!(relay.info("main").await?.viewers, 6);
        // Deliberately watched over time: the other four must not start at any point.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    browser.close().await?;
    relay.stop().await?;
    Ok(())
}

#[test]
fn tls_files_that_do_not_hold_stop_startup_naming_the_file() -> anyhow::Result<()> {
    use std::process::{Command, Stdio};
    let cert = TestCert::new()?;
    let other = TestCert::new()?;
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mjpeg-relay-under-test"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
    };
    let cert_path = cert.cert_path();
    let cert_path = cert_path.to_str().unwrap();
    let key_path = cert.key_path();
    let key_path = key_path.to_str().unwrap();
    let wrong_key = other.key_path();
    for (args, code, expect) in [
        (vec!["--tls-cert", cert_path], 2, "--tls-key"),
        (
            vec!["--tls-cert", "/nonexistent/cert.pem", "--tls-key", key_path],
            1,
            "/nonexistent/cert.pem",
        ),
        (
            vec!["--tls-cert", key_path, "--tls-key", key_path],
            1,
            "no PEM certificate",
        ),
        (
            vec!["--tls-cert", cert_path, "--tls-key", cert_path],
            1,
            "private key",
        ),
        (
            vec![
                "--tls-cert",
                cert_path,
                "--tls-key",
                wrong_key.to_str().unwrap(),
            ],
            1,
            "do not go together",
        ),
    ] {
        let out = run(&args)?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(
            err.contains(expect),
            "{args:?}: {err:?} should mention {expect:?}"
        );
    }
    Ok(())
}

/// The dashboard over HTTPS: it sees HTTP/2, lifts its connection budget from 4 to 32, and
/// plays six streams at once, each through fetch, where over HTTP/1.1 two of them would pause.
#[tokio::test]
async fn the_dashboard_over_h2_plays_six_streams_at_once() -> anyhow::Result<()> {
    let _one = exclusive().await;
    let cert = TestCert::new()?;
    let specs: Vec<String> = (1..=6)
        .map(|i| format!("s{i}=test?size=320x240&fps=10"))
        .collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let relay = tls_relay(&specs, &cert, &mjpeg_relay_tests::browser::dist()?).await?;
    let browser = Browser::start(&["--ignore-certificate-errors"]).await?;
    browser
        .client
        .goto(&format!("https://127.0.0.1:{}/", relay.addr.port()))
        .await?;
    let budget = eventually(Duration::from_secs(15), || async {
        let v = browser
            .client
            .execute(
                "const b = document.querySelector('.budget'); return b ? [b.dataset.slots, b.dataset.used] : null",
                vec![],
            )
            .await?;
        Ok((v[1] == "6").then_some(v))
    })
    .await?;
    assert_eq!(budget[0], "32");
    for i in 1..=6 {
        let name = format!("s{i}");
        mjpeg_relay_tests::browser::wait_playing(&browser, &name).await?;
    }
    let viewers = relay.viewers();
    assert_eq!(viewers, 6);
    assert_eq!(browser.errors().await?, Vec::<String>::new());
    browser.close().await?;
    relay.stop().await?;
    Ok(())
}

/// An HTTP/2 connection that never sends a request is closed after the request timeout (10 s),
/// as an idle HTTP/1 connection is: idle connections cannot pile up over TLS either.
#[tokio::test]
async fn an_idle_h2_connection_is_closed() -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let cert = TestCert::new()?;
    let relay = tls_relay(
        &["main=test?size=160x120&fps=30"],
        &cert,
        "/nonexistent".as_ref(),
    )
    .await?;
    let (mut tls, alpn) = connect(relay.addr, &cert.der, &[b"h2"], None, Arc::default()).await?;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let started = Instant::now();
    // The server's SETTINGS (and, at the end, GOAWAY) arrive; then the end of the stream.
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after 20 s");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(9),
        "closed after {after:?}, before the timeout"
    );
    relay.stop().await?;
    Ok(())
}
