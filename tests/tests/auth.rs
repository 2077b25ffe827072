//! Access control over every route: missing credentials 401 with a challenge, wrong ones 403,
//! right ones (Bearer, `?token=`, Basic) let the request through; `/healthz` stays open,
//! `/metrics` and single streams can have their own tokens; tokens never appear in the API or
//! the log.

use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use http_body_util::BodyExt;
use mjpeg_relay::auth::{AccessConfig, BasicConfig, PasswordConfig};
use mjpeg_relay::source::push::Secret;
use mjpeg_relay::RelayOptions;
use mjpeg_relay_tests::{make_jpeg, post, send, RelayProcess, TestRelay};

const TOKEN: &str = "relay-Token_1";
const LOBBY: &str = "lobby-token-2";
const SCRAPE: &str = "scrape-token-3";

fn secret(s: &str) -> Secret {
    Secret::new(s).unwrap()
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Status and `WWW-Authenticate` challenges of a GET; the body is read only when it ends.
async fn status(
    relay: &TestRelay,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, Vec<String>)> {
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        send(relay.addr, path, None, headers),
    )
    .await??;
    let challenges = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .collect();
    Ok((resp.status().as_u16(), challenges))
}

async fn protected_relay() -> anyhow::Result<TestRelay> {
    TestRelay::start_with(
        &[
            "main=test?size=160x120&fps=30",
            "lobby=test?size=160x120&fps=30",
            "cam=push",
            "own=push?token=push-token-4",
        ],
        RelayOptions {
            dashboard: "/nonexistent".into(),
            access: AccessConfig {
                token: Some(secret(TOKEN)),
                basic: Some(BasicConfig {
                    user: "ops".into(),
                    password: PasswordConfig::Plain(secret("pass word")),
                }),
                metrics_token: Some(secret(SCRAPE)),
                stream_tokens: vec![("lobby".into(), secret(LOBBY))],
            },
            ..RelayOptions::default()
        },
    )
    .await
}

/// Every route the relay serves, as a viewer, a page or a scraper would call it.
const ROUTES: &[&str] = &[
    "/streams/main.mjpg",
    "/streams/main.frames",
    "/streams/main.jpg",
    "/streams/ma%69n.mjpg",
    "/api/streams",
    "/api/streams/main",
    "/api/time",
];

#[tokio::test]
async fn every_route_needs_the_token_and_healthz_stays_open() -> anyhow::Result<()> {
    let relay = protected_relay().await?;
    let bearer = format!("Bearer {TOKEN}");
    let basic_ok = basic("ops", "pass word");
    for route in ROUTES {
        // Missing: 401, and the challenge names both ways in.
        let (code, challenges) = status(&relay, route, &[]).await?;
        assert_eq!(code, 401, "{route} without credentials");
        assert!(
            challenges.iter().any(|c| c.starts_with("Bearer realm="))
                && challenges.iter().any(|c| c.starts_with("Basic realm=")),
            "{route}: {challenges:?}"
        );
        // Wrong: 403, whichever way it came.
        for headers in [
            vec![("Authorization", "Bearer relay-Token_2")],
            vec![("Authorization", "Bearer relay-Token_1x")],
        ] {
            assert_eq!(
                status(&relay, route, &headers).await?.0,
                403,
                "{route} {headers:?}"
            );
        }
        let wrong_basic = basic("ops", "pass words");
        assert_eq!(
            status(&relay, route, &[("Authorization", &wrong_basic)])
                .await?
                .0,
            403,
            "{route} wrong password"
        );
        assert_eq!(
            status(&relay, &format!("{route}?token=nope"), &[]).await?.0,
            403,
            "{route}?token=nope"
        );
        // Right: through, as a header, as ?token= and as Basic.
        assert_eq!(
            status(&relay, route, &[("Authorization", &bearer)])
                .await?
                .0,
            200,
            "{route} bearer"
        );
        assert_eq!(
            status(&relay, &format!("{route}?token={TOKEN}"), &[])
                .await?
                .0,
            200,
            "{route}?token="
        );
        assert_eq!(
            status(&relay, route, &[("Authorization", &basic_ok)])
                .await?
                .0,
            200,
            "{route} basic"
        );
    }
    // Paths the router does not serve as streams get no stream, with or without credentials;
    // HEAD is checked like GET.
    for path in [
        "//streams/main.mjpg",
        "/streams/main.mjpg/",
        "/streams/main.mjpg%2Fingest",
        "/api/streams/main/",
    ] {
        let resp = send(relay.addr, path, None, &[]).await?;
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        assert!(
            matches!(resp.status().as_u16(), 401 | 404),
            "{path} answered {} ({ct}) without credentials",
            resp.status()
        );
    }
    let head = mjpeg_relay_tests::request(relay.addr, "HEAD", "/streams/main.mjpg", &[]).await?;
    assert_eq!(head, 401);

    // A header that is neither Bearer nor Basic is a malformed request, not a guess.
    let (code, _) = status(&relay, "/api/time", &[("Authorization", "Digest x=1")]).await?;
    assert_eq!(code, 400);

    // /healthz: open.
    assert_eq!(status(&relay, "/healthz", &[]).await?.0, 200);

    // /metrics: its own token, or the relay's; not a stream's.
    assert_eq!(status(&relay, "/metrics", &[]).await?.0, 401);
    let scrape = format!("Bearer {SCRAPE}");
    assert_eq!(
        status(&relay, "/metrics", &[("Authorization", &scrape)])
            .await?
            .0,
        200
    );
    assert_eq!(
        status(&relay, "/metrics", &[("Authorization", &bearer)])
            .await?
            .0,
        200
    );
    let lobby = format!("Bearer {LOBBY}");
    assert_eq!(
        status(&relay, "/metrics", &[("Authorization", &lobby)])
            .await?
            .0,
        403
    );
    // ... and the scrape token opens nothing else.
    assert_eq!(
        status(&relay, "/streams/main.jpg", &[("Authorization", &scrape)])
            .await?
            .0,
        403
    );

    // A stream's own token opens that stream (and its API entry), nothing else; the relay's
    // token opens it too.
    for route in [
        "/streams/lobby.mjpg",
        "/streams/lobby.jpg",
        "/api/streams/lobby",
    ] {
        assert_eq!(
            status(&relay, route, &[("Authorization", &lobby)]).await?.0,
            200,
            "{route}"
        );
        assert_eq!(
            status(&relay, route, &[("Authorization", &bearer)])
                .await?
                .0,
            200,
            "{route}"
        );
        assert_eq!(status(&relay, route, &[]).await?.0, 401, "{route}");
    }
    for route in ["/streams/main.mjpg", "/api/streams", "/api/time"] {
        assert_eq!(
            status(&relay, route, &[("Authorization", &lobby)]).await?.0,
            403,
            "{route}"
        );
    }

    // The 401 body says what to send.
    let resp = send(relay.addr, "/streams/main.jpg", None, &[]).await?;
    let body = resp.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("Bearer") && body.contains("?token="),
        "{body}"
    );

    // Ingest: the relay's token is the push stream's token (it has none of its own); a viewer
    // credential of another kind is refused.
    let jpeg = make_jpeg(160, 120, 90);
    // Ingest on a stream that is not a push stream, or not a stream, asks for credentials
    // instead of answering with the source or the list of streams.
    for path in ["/streams/main/ingest", "/streams/nope/ingest"] {
        let (code, _, body) = post(relay.addr, path, &[], jpeg.clone()).await?;
        assert_eq!(code, 401, "{path}: {body}");
        assert!(
            !body.contains("lobby") && !body.contains("test?"),
            "{path}: {body}"
        );
    }
    // A push stream with its own token takes only that one.
    let (code, _, _) = post(
        relay.addr,
        "/streams/own/ingest",
        &[("Authorization", &bearer)],
        jpeg.clone(),
    )
    .await?;
    assert_eq!(code, 403);
    let (code, _, body) = post(
        relay.addr,
        "/streams/own/ingest",
        &[("Authorization", "Bearer push-token-4")],
        jpeg.clone(),
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    let (code, headers, _) = post(relay.addr, "/streams/cam/ingest", &[], jpeg.clone()).await?;
    assert_eq!(code, 401);
    assert!(headers.contains_key("www-authenticate"));
    let (code, _, _) = post(
        relay.addr,
        "/streams/cam/ingest",
        &[("Authorization", &lobby)],
        jpeg.clone(),
    )
    .await?;
    assert_eq!(code, 403);
    let (code, _, body) = post(
        relay.addr,
        "/streams/cam/ingest",
        &[("Authorization", &bearer)],
        jpeg,
    )
    .await?;
    assert_eq!(code, 200, "{body}");

    // The API shows no secret.
    let (_, _, list) = relay.get(&format!("/api/streams?token={TOKEN}")).await?;
    let list = String::from_utf8_lossy(&list);
    let (_, _, one) = relay
        .get(&format!("/api/streams/own?token={TOKEN}"))
        .await?;
    let list = format!("{list}{}", String::from_utf8_lossy(&one));
    assert!(list.contains("push?"), "{list}");
    for secret in [TOKEN, LOBBY, SCRAPE, "pass word", "push-token-4"] {
        assert!(!list.contains(secret), "the API shows {secret:?}: {list}");
    }
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_stream_refused_for_credentials_wakes_no_source() -> anyhow::Result<()> {
    let relay = protected_relay().await?;
    for _ in 0..20 {
        assert_eq!(status(&relay, "/streams/main.mjpg", &[]).await?.0, 401);
    }
    let info = relay.relay.stream("main")?.info();
    assert_eq!(info.frames_produced, 0, "a refused request woke the source");
    relay.stop().await?;
    Ok(())
}

fn relay_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mjpeg-relay-under-test"));
    cmd.stdin(Stdio::null());
    cmd
}

#[tokio::test]
async fn tokens_never_reach_the_log_even_at_trace_level() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log_path = dir.path().join("relay.log");
    let mut cmd = relay_cmd();
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--log",
        "trace",
        "--stream",
        "main=test?size=160x120&fps=30",
        "--stream",
        "cam=push",
    ])
    .env("MJPEG_RELAY_AUTH_TOKEN", TOKEN)
    .env("MJPEG_RELAY_METRICS_TOKEN", SCRAPE)
    .env_remove("RUST_LOG");
    let process =
        RelayProcess::spawn_with_stderr(cmd, Stdio::from(std::fs::File::create(&log_path)?))?;
    let addr = process.addr;
    let bearer = format!("Bearer {TOKEN}");
    // Right and wrong, header and query, stream and API and ingest.
    let mut v = mjpeg_relay_tests::StreamReader::open(
        addr,
        &format!("/streams/main.frames?token={TOKEN}"),
        None,
    )
    .await?;
    v.next_part(Duration::from_secs(5)).await?;
    drop(v);
    for (path, headers) in [
        (
            "/api/streams".to_string(),
            vec![("Authorization", bearer.as_str())],
        ),
        (format!("/api/time?token={TOKEN}x"), vec![]),
        (
            "/metrics".to_string(),
            vec![("Authorization", "Bearer scrape-token-3")],
        ),
    ] {
        let resp = send(addr, &path, None, &headers).await?;
        resp.into_body().collect().await?;
    }
    post(
        addr,
        "/streams/cam/ingest",
        &[("Authorization", &bearer)],
        make_jpeg(160, 120, 1),
    )
    .await?;
    drop(process);
    let log = std::fs::read_to_string(&log_path)?;
    assert!(log.lines().count() > 5, "expected a trace log, got {log:?}");
    for secret in [TOKEN, SCRAPE] {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
    Ok(())
}

#[tokio::test]
async fn binding_beyond_loopback_without_auth_warns() -> anyhow::Result<()> {
    // No auth; the relay's token; only one stream's own token (the rest stay open).
    for (case, warns) in [("none", true), ("token", false), ("stream-token", true)] {
        let dir = tempfile::tempdir()?;
        let log_path = dir.path().join("relay.log");
        let config = dir.path().join("relay.toml");
        std::fs::write(
            &config,
            "[[stream]]\nname = \"a\"\nsource = \"test\"\nauth_token = \"a-token\"\n\n\
             [[stream]]\nname = \"b\"\nsource = \"test\"\n",
        )?;
        let mut cmd = relay_cmd();
        cmd.args(["--listen", "0.0.0.0:0"])
            .env_remove("RUST_LOG")
            .env_remove("MJPEG_RELAY_AUTH_TOKEN");
        match case {
            "token" => {
                cmd.env("MJPEG_RELAY_AUTH_TOKEN", TOKEN)
                    .args(["--stream", "main=test"]);
            }
            "stream-token" => {
                cmd.args(["--config", config.to_str().unwrap()]);
            }
            _ => {
                cmd.args(["--stream", "main=test"]);
            }
        }
        let process =
            RelayProcess::spawn_with_stderr(cmd, Stdio::from(std::fs::File::create(&log_path)?))?;
        // The warning is written right after the address line; /healthz answering means startup
        // is complete.
        let health = mjpeg_relay_tests::get(
            std::net::SocketAddr::from(([127, 0, 0, 1], process.addr.port())),
            "/healthz",
        )
        .await?;
        assert_eq!(health.0, 200);
        drop(process);
        let log = std::fs::read_to_string(&log_path)?;
        assert_eq!(
            log.contains("anyone who can reach it can watch"),
            warns,
            "{case}: {log:?}"
        );
    }
    Ok(())
}

#[test]
fn hash_password_prints_a_hash_the_relay_accepts() -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = relay_cmd()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child.stdin.take().unwrap().write_all(b"correct horse\n")?;
    let out = child.wait_with_output()?;
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout)?.trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));

    // The hash in a config file: the relay starts, and Basic with the password opens a route.
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nbasic_user = \"ops\"\nbasic_password_hash = \"{hash}\"\n\n\
             [[stream]]\nname = \"main\"\nsource = \"test?size=160x120\"\n"
        ),
    )?;
    let mut cmd = relay_cmd();
    cmd.args(["--config", config.to_str().unwrap()]);
    let process = RelayProcess::spawn(cmd)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let ok = basic("ops", "correct horse");
        let resp = send(process.addr, "/api/time", None, &[("Authorization", &ok)]).await?;
        assert_eq!(resp.status(), 200);
        let bad = basic("ops", "correct horse ");
        let resp = send(process.addr, "/api/time", None, &[("Authorization", &bad)]).await?;
        assert_eq!(resp.status(), 403);
        anyhow::Ok(())
    })?;
    Ok(())
}

#[test]
fn a_config_error_never_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    // A misspelt key and an unquoted value: both errors, neither may echo its line.
    for text in [
        "basic_user = \"ops\"\nbasic_pasword = \"hunter2-secret\"\n",
        "auth_token = hunter2-secret\n",
    ] {
        std::fs::write(&path, text).unwrap();
        let out = relay_cmd()
            .args(["--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("line "), "{err}");
        assert!(
            !err.contains("hunter2"),
            "the error shows the secret: {err}"
        );
    }
}

/// An edge relay reads a protected origin with Basic credentials in its upstream URL, and
/// serves its own viewers with its own token: viewers never hold the origin's credentials.
#[tokio::test]
async fn an_edge_reads_a_protected_origin_with_credentials_in_its_upstream_url(
) -> anyhow::Result<()> {
    let origin = TestRelay::start_with(
        &["main=test?size=160x120&fps=30"],
        RelayOptions {
            dashboard: "/nonexistent".into(),
            access: AccessConfig {
                basic: Some(
                    BasicConfig::new("edge", PasswordConfig::Plain(secret("origin-secret")))
                        .map_err(anyhow::Error::msg)?,
                ),
                ..AccessConfig::default()
            },
            ..RelayOptions::default()
        },
    )
    .await?;
    let upstream = format!(
        "main=http://edge:origin-secret@{}/streams/main.frames",
        origin.addr
    );
    let edge = TestRelay::start_with(
        &[upstream.as_str()],
        RelayOptions {
            dashboard: "/nonexistent".into(),
            access: AccessConfig {
                token: Some(secret(TOKEN)),
                ..AccessConfig::default()
            },
            ..RelayOptions::default()
        },
    )
    .await?;
    let path = format!("/streams/main.frames?token={TOKEN}");
    let mut viewer = mjpeg_relay_tests::StreamReader::open(edge.addr, &path, None).await?;
    for _ in 0..5 {
        let part = viewer.next_part(Duration::from_secs(10)).await?;
        assert!(part.body.starts_with(&[0xFF, 0xD8]));
    }
    assert_eq!(origin.relay.stream("main")?.info().viewers, 1);
    // The edge's token does not open the origin.
    assert_eq!(status(&origin, &path, &[]).await?.0, 403);
    // And the API shows no credential of the origin.
    let (_, _, info) = edge
        .get(&format!("/api/streams/main?token={TOKEN}"))
        .await?;
    assert!(!String::from_utf8_lossy(&info).contains("origin-secret"));
    drop(viewer);
    edge.stop().await?;
    origin.stop().await?;
    Ok(())
}
