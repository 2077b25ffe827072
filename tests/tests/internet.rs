//! Facing the internet: hostile and careless clients against the real relay. Silent sockets do
//! not stall TLS handshakes; 1500 viewers connect under a soft descriptor limit of 1024 and a
//! connection cap refuses the rest at once; source URLs never show their secrets (API, snapshot
//! errors, the log, startup errors); a foreign `Host` gets 421; a burst of wrong credentials gets
//! 429 for that address only; every response carries the security headers; the binary serves the
//! dashboard built into it from an empty directory.

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use mjpeg_relay::http::auth::AccessConfig;
use mjpeg_relay::secret::Secret;
use mjpeg_relay::RelayOptions;
use mjpeg_relay_tests::tls::{connect, ReadGate, TestCert};
use mjpeg_relay_tests::{
    eventually, respond, send, RelayProcess, Reply, Socket, StreamReader, TestRelay,
};

const T: Duration = Duration::from_secs(10);

fn relay_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mjpeg-relay-under-test"));
    cmd.stdin(Stdio::null());
    cmd
}

/// GET with extra headers from a given local address; the whole answer.
async fn get_from(
    addr: SocketAddr,
    from: Option<IpAddr>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply> {
    let socket = Socket { rcvbuf: None, from };
    let resp = respond(addr, socket, "GET", path, headers, Bytes::new()).await?;
    Reply::read(path, resp).await
}

#[tokio::test]
async fn silent_sockets_do_not_stall_a_tls_handshake() -> Result<()> {
    let cert = TestCert::new()?;
    let relay = TestRelay::start_with(
        &["main=test?size=160x120&fps=10"],
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            tls: Some(cert.server_config()?),
            ..RelayOptions::default()
        },
    )
    .await?;
    // More silent connections than there are handshake slots (32), as a scanner or a
    // slow-loris client leaves them: connected, sending nothing.
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(tokio::net::TcpStream::connect(relay.addr).await?);
    }
    // The relay accepts in order: these 40 before the real client below.
    let started = Instant::now();
    let (_tls, alpn) = connect(
        relay.addr,
        &cert.der,
        &[b"http/1.1"],
        None,
        std::sync::Arc::new(ReadGate::default()),
    )
    .await?;
    let took = started.elapsed();
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(
        took < Duration::from_secs(1),
        "a real client's handshake took {took:?} beside 40 silent sockets (before the fix: 9.5 s)"
    );
    drop(silent);
    relay.stop().await?;
    Ok(())
}

/// Raises this test process's own descriptor limit, which 1500 client sockets need too.
fn raise_own_limit(need: u64) -> Result<()> {
    let now = rlimit::increase_nofile_limit(u64::MAX)?;
    if now < need {
        bail!("this machine's hard descriptor limit is {now}; the test needs {need}");
    }
    Ok(())
}

#[tokio::test]
async fn fifteen_hundred_viewers_connect_under_a_soft_limit_of_1024() -> Result<()> {
    raise_own_limit(2000)?;
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    let log = tempfile::NamedTempFile::new()?;
    // The relay starts as systemd starts a service without LimitNOFILE: soft limit 1024.
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile=1024:{hard}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_mjpeg-relay-under-test"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--stream",
            "main=test?size=160x120&fps=5",
        ])
        .stdin(Stdio::null());
    let relay = RelayProcess::spawn_with_stderr(cmd, log.reopen()?.into())?;
    let mut viewers = Vec::new();
    for chunk in 0..15 {
        let opened = futures_util::future::try_join_all(
            (0..100).map(|_| StreamReader::open(relay.addr, "/streams/main.mjpg", None)),
        )
        .await
        .with_context(|| format!("viewers {}..{}", chunk * 100, chunk * 100 + 100))?;
        viewers.extend(opened);
    }
    // Every one of them gets frames.
    futures_util::future::try_join_all(viewers.iter_mut().map(|v| v.next_part(T))).await?;
    let info: mjpeg_shared::api::StreamInfo = get_from(relay.addr, None, "/api/streams/main", &[])
        .await?
        .json()?;
    assert_eq!(info.viewers, 1500);
    let said = std::fs::read_to_string(log.path())?;
    assert!(
        said.contains("open file limit") && said.contains("before=1024"),
        "the relay logs the limit it raised: {said}"
    );
    Ok(())
}

#[tokio::test]
async fn beyond_max_connections_new_ones_are_refused_and_viewers_keep_watching() -> Result<()> {
    let mut cmd = relay_cmd();
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--max-connections",
        "20",
        "--stream",
        "main=test?size=160x120&fps=10",
    ]);
    let relay = RelayProcess::spawn(cmd)?;
    let mut viewers = Vec::new();
    for _ in 0..20 {
        viewers.push(StreamReader::open(relay.addr, "/streams/main.mjpg", None).await?);
    }
    let refused = get_from(relay.addr, None, "/healthz", &[]).await?;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.error()?.contains("maximum of open connections"));
    assert_eq!(refused.headers["retry-after"], "5");
    for v in &mut viewers {
        v.next_part(T).await?;
        v.next_part(T).await?;
    }
    // A place freed is a place taken.
    drop(viewers.pop());
    eventually(T, || async {
        let r = get_from(relay.addr, None, "/healthz", &[]).await;
        Ok(r.ok().filter(|r| r.status == 200).map(|_| ()))
    })
    .await?;
    Ok(())
}

const SECRETS: &[&str] = &["S3cret", "pa%2Fss", "pa/ss", "T0ken", "admin"];

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows {s:?}: {text}");
    }
}

#[tokio::test]
async fn secrets_in_source_urls_never_show() -> Result<()> {
    let log = tempfile::NamedTempFile::new()?;
    // Port 9: nothing listens, so every source fails and says why.
    let mut cmd = relay_cmd();
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--log",
        "debug",
        "--stream",
        "cam=http://127.0.0.1:9/v.cgi?user=admin&pwd=S3cret&res=1",
        "--stream",
        "cam2=http://admin:pa%2Fss@127.0.0.1:9/x",
        "--stream",
        "rtsp=ffmpeg:rtsp://admin:S3cret@127.0.0.1:9/live?Token=T0ken#linger=0",
    ]);
    let relay = RelayProcess::spawn_with_stderr(cmd, log.reopen()?.into())?;
    for name in ["cam", "cam2", "rtsp"] {
        // A snapshot of a failing source: the NO SIGNAL picture once the source has had its
        // patience, else 504 naming why; either way without the secrets.
        let snap = get_from(relay.addr, None, &format!("/streams/{name}.jpg"), &[]).await?;
        match snap.status.as_u16() {
            200 => {
                mjpeg_relay_tests::decode_jpeg(&snap.body)?;
            }
            504 => assert_no_secret(&format!("{name}'s snapshot error"), &snap.text()),
            other => bail!("{name}'s snapshot: {other}: {}", snap.text()),
        }
        // Viewers see NO SIGNAL, drawn from the same error text as the API's last_error.
        let info = eventually(T, || async {
            let r = get_from(relay.addr, None, &format!("/api/streams/{name}"), &[]).await?;
            let info: mjpeg_shared::api::StreamInfo = r.json()?;
            Ok(info.last_error.is_some().then_some(r))
        })
        .await?;
        assert_no_secret(&format!("{name}'s API entry"), &info.text());
    }
    let list = get_from(relay.addr, None, "/api/streams", &[])
        .await?
        .text();
    assert_no_secret("/api/streams", &list);
    assert!(
        list.contains("pwd=***") && list.contains("http://***@127.0.0.1:9/x"),
        "shown redacted: {list}"
    );
    let said = std::fs::read_to_string(log.path())?;
    assert!(said.contains("source unavailable"), "{said}");
    assert_no_secret("the log", &said);

    // A password that a '/' would cut is refused at startup, without quoting it.
    let out = relay_cmd()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--stream",
            "cam=http://admin:pa/ss@127.0.0.1:9/x",
        ])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("%2F"), "{err}");
    assert_no_secret("the startup error", &err);
    Ok(())
}

#[tokio::test]
async fn a_foreign_host_gets_421_on_a_loopback_bind() -> Result<()> {
    let relay = TestRelay::start_with(
        &["main=test?size=160x120&fps=10"],
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            allow_hosts: vec!["cams.example.com".into()],
            ..RelayOptions::default()
        },
    )
    .await?;
    let port = relay.addr.port();
    for (host, want) in [
        ("evil.example".to_string(), 421),
        (format!("evil.example:{port}"), 421),
        (format!("127.0.0.2:{port}"), 421),
        (format!("localhost:{port}"), 200),
        (format!("LOCALHOST:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
        (format!("[::1]:{port}"), 200),
        ("cams.example.com".to_string(), 200),
        ("cams.example.com:8443".to_string(), 200),
    ] {
        for path in ["/api/streams", "/streams/main.jpg", "/"] {
            let r = get_from(relay.addr, None, path, &[("Host", &host)]).await?;
            assert_eq!(r.status, want, "{path} with Host {host}: {}", r.text());
            if want == 421 {
                assert!(r.error()?.contains("--allow-host"), "{}", r.text());
            }
        }
    }
    relay.stop().await?;

    // Bound beyond loopback without --allow-host: any Host (credentials are the defence).
    let relay = TestRelay::start_on(
        &["main=test?size=160x120&fps=10"],
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            ..RelayOptions::default()
        },
        SocketAddr::from(([0, 0, 0, 0], 0)),
    )
    .await?;
    let addr = SocketAddr::from(([127, 0, 0, 1], relay.addr.port()));
    let r = get_from(addr, None, "/api/streams", &[("Host", "cams.example.com")]).await?;
    assert_eq!(r.status, 200);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_burst_of_wrong_credentials_gets_429_for_that_address_only() -> Result<()> {
    let relay = TestRelay::start_with(
        &["main=test?size=160x120&fps=10"],
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            access: AccessConfig {
                token: Some(Secret::new("right-token").unwrap()),
                ..AccessConfig::default()
            },
            ..RelayOptions::default()
        },
    )
    .await?;
    let right = [("Authorization", "Bearer right-token")];
    let wrong = [("Authorization", "Bearer wrong-token")];
    // A viewer already watching from the address that will misbehave.
    let watching = send(relay.addr, "/streams/main.mjpg", None, &right).await?;
    let mut watching = StreamReader::from_response("/streams/main.mjpg", watching).await?;
    // Successes are never counted.
    for _ in 0..50 {
        assert_eq!(
            get_from(relay.addr, None, "/api/streams", &right)
                .await?
                .status,
            200
        );
    }
    // A page's malformed wall is a 400, not a guess: not counted.
    for _ in 0..25 {
        let r = get_from(relay.addr, None, "/streams/wall.frames?names=main,", &wrong).await?;
        assert_eq!(r.status, 400, "{}", r.text());
    }
    for i in 0..20 {
        let r = get_from(relay.addr, None, "/api/streams", &wrong).await?;
        assert_eq!(r.status, 403, "wrong token {i}");
    }
    let r = get_from(relay.addr, None, "/api/streams", &wrong).await?;
    assert_eq!(r.status, 429, "{}", r.text());
    let wait: u64 = r.headers["retry-after"].to_str()?.parse()?;
    assert!((50..=60).contains(&wait), "Retry-After {wait}");
    // Blocked means not checked: the right token from that address waits too.
    let r = get_from(relay.addr, None, "/api/streams", &right).await?;
    assert_eq!(r.status, 429);
    // Requests needing no credentials, other addresses and open streams are unaffected.
    assert_eq!(
        get_from(relay.addr, None, "/healthz", &[]).await?.status,
        200
    );
    let other: IpAddr = "127.0.0.2".parse()?;
    let r = get_from(relay.addr, Some(other), "/api/streams", &right).await?;
    assert_eq!(r.status, 200, "another address");
    let r = get_from(relay.addr, Some(other), "/api/streams", &wrong).await?;
    assert_eq!(r.status, 403, "another address's first failure");
    for _ in 0..3 {
        watching.next_part(T).await?;
    }
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn every_response_carries_the_security_headers() -> Result<()> {
    let relay = TestRelay::start_with(
        &["main=test?size=160x120&fps=10"],
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            frame_ancestors: "'self' https://ha.example.com".into(),
            ..RelayOptions::default()
        },
    )
    .await?;
    for path in [
        "/",
        "/api/streams",
        "/api/streams/nope",
        "/streams/main.jpg",
        "/healthz",
    ] {
        let r = relay.get(path).await?;
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers["referrer-policy"], "no-referrer", "{path}");
        let csp = r.headers["content-security-policy"].to_str()?;
        assert!(
            csp.contains("frame-ancestors 'self' https://ha.example.com")
                && csp.contains("default-src 'self'")
                && csp.contains("object-src 'none'"),
            "{path}: {csp}"
        );
    }
    let stream = relay.get_head("/streams/main.mjpg").await?;
    assert_eq!(stream.headers["x-content-type-options"], "nosniff");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_binary_serves_its_built_in_dashboard_from_an_empty_directory() -> Result<()> {
    let empty = tempfile::tempdir()?;
    let mut cmd = relay_cmd();
    cmd.current_dir(empty.path())
        .args(["--listen", "127.0.0.1:0"]);
    let relay = RelayProcess::spawn(cmd)?;
    let index = get_from(relay.addr, None, "/", &[]).await?;
    assert_eq!(index.status, 200);
    let html = index.text();
    assert!(
        html.contains("mjpeg-frontend") && html.contains("<script type=\"module\">"),
        "the Trunk-built dashboard (build it first: trunk build --release), not the built-in \
         page: {html}"
    );
    // Its inline scripts are allowed by hash, and nothing else inline.
    let csp = index.headers["content-security-policy"].to_str()?;
    assert!(
        csp.contains("'sha256-") && !csp.contains("'unsafe-eval'"),
        "{csp}"
    );
    let wasm = html
        .split('"')
        .find(|s| s.starts_with('/') && s.ends_with(".wasm"))
        .context("index.html names its .wasm")?
        .to_string();
    let module = get_from(relay.addr, None, &wasm, &[]).await?;
    assert_eq!(module.status, 200);
    assert_eq!(module.headers["content-type"], "application/wasm");
    assert!(module.body.starts_with(b"\0asm"));
    assert!(module.headers["cache-control"]
        .to_str()?
        .contains("immutable"));
    // --dashboard DIR still overrides it (an empty folder: the built-in page).
    let mut cmd = relay_cmd();
    cmd.current_dir(empty.path())
        .args(["--listen", "127.0.0.1:0", "--dashboard", "."]);
    let relay = RelayProcess::spawn(cmd)?;
    let page = get_from(relay.addr, None, "/", &[]).await?.text();
    assert!(page.contains("This is the built-in page"), "{page}");
    Ok(())
}
