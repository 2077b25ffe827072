//! Access control over every route: missing credentials 401 with a challenge, wrong ones 403,
//! right ones (Bearer, `?token=`, Basic) let the request through; `/healthz` stays open,
//! `/metrics` and single streams can have their own tokens; tokens never appear in the API or
//! the log.
//!
//! The rules are tables (routes × credentials, then the routes with rules of their own, then
//! ingest), each row checked the same way and named in its failure message.

use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use mjpeg_relay::http::auth::{AccessConfig, BasicConfig, PasswordConfig};
use mjpeg_relay::secret::Secret;
use mjpeg_relay::RelayOptions;
use mjpeg_relay_tests::{make_jpeg, post, send, RelayProcess, TestRelay};

const TOKEN: &str = "relay-Token_1";
const LOBBY: &str = "lobby-token-2";
const SCRAPE: &str = "scrape-token-3";
const OWN_PUSH: &str = "push-token-4";
const SIGNING_KEY: &str = "signing-key-5-0123456789abcdef0123456789";

fn secret(s: &str) -> Secret {
    Secret::new(s).unwrap()
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A credential as a request carries it.
#[derive(Clone, Copy, Debug)]
enum Cred {
    None,
    Bearer(&'static str),
    Basic(&'static str, &'static str),
    /// `?token=` (after `&` when the path has a query already).
    Query(&'static str),
    /// An `Authorization` header as given.
    Raw(&'static str),
}

impl Cred {
    /// `path` and the headers of a request carrying this credential.
    fn apply(self, path: &str) -> (String, Vec<(&'static str, String)>) {
        let auth = |v: String| vec![("Authorization", v)];
        match self {
            Cred::None => (path.to_string(), vec![]),
            Cred::Bearer(t) => (path.to_string(), auth(format!("Bearer {t}"))),
            Cred::Basic(u, p) => (path.to_string(), auth(basic(u, p))),
            Cred::Raw(h) => (path.to_string(), auth(h.to_string())),
            Cred::Query(t) => {
                let sep = if path.contains('?') { '&' } else { '?' };
                (format!("{path}{sep}token={t}"), vec![])
            }
        }
    }
}

/// Status and `WWW-Authenticate` challenges of a GET; the body is not read (streams are
/// endless).
async fn status(
    relay: &TestRelay,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, Vec<String>)> {
    let resp = send(relay.addr, path, None, headers).await?;
    let challenges = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .collect();
    Ok((resp.status().as_u16(), challenges))
}

/// [`status`] of a GET of `route` carrying `cred`.
async fn status_with(
    relay: &TestRelay,
    route: &str,
    cred: Cred,
) -> anyhow::Result<(u16, Vec<String>)> {
    let (path, headers) = cred.apply(route);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    status(relay, &path, &headers).await
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
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            access: AccessConfig {
                token: Some(secret(TOKEN)),
                basic: Some(BasicConfig {
                    user: "ops".into(),
                    password: PasswordConfig::Plain(secret("pass word")),
                }),
                metrics_token: Some(secret(SCRAPE)),
                stream_tokens: vec![("lobby".into(), secret(LOBBY))],
                signing_key: Some(secret(SIGNING_KEY)),
                // The tables below send hundreds of wrong credentials from one address on
                // purpose; the limit has its own test.
                max_failures: 0,
                ..AccessConfig::default()
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

/// What each credential gets on every one of [`ROUTES`]: (row, credential, status).
const ROUTE_CREDENTIALS: &[(&str, Cred, u16)] = &[
    // Missing: 401 (and the challenge names both ways in, checked below).
    ("no credentials", Cred::None, 401),
    // Wrong: 403, whichever way it came.
    ("another token", Cred::Bearer("relay-Token_2"), 403),
    ("the token and more", Cred::Bearer("relay-Token_1x"), 403),
    ("a wrong password", Cred::Basic("ops", "pass words"), 403),
    ("a wrong ?token=", Cred::Query("nope"), 403),
    ("another stream's token", Cred::Bearer(LOBBY), 403),
    ("the scrape token", Cred::Bearer(SCRAPE), 403),
    // A header that is neither Bearer nor Basic is a malformed request, not a guess.
    ("a Digest header", Cred::Raw("Digest x=1"), 400),
    // Right: through, as a header, as ?token= and as Basic.
    ("the token as Bearer", Cred::Bearer(TOKEN), 200),
    ("the token as ?token=", Cred::Query(TOKEN), 200),
    ("the Basic login", Cred::Basic("ops", "pass word"), 200),
];

/// Routes with rules of their own: (route, credential, status).
const OWN_RULES: &[(&str, Cred, u16)] = &[
    // /healthz: open.
    ("/healthz", Cred::None, 200),
    // /metrics: its own token, or the relay's; not a stream's.
    ("/metrics", Cred::None, 401),
    ("/metrics", Cred::Bearer(SCRAPE), 200),
    ("/metrics", Cred::Bearer(TOKEN), 200),
    ("/metrics", Cred::Bearer(LOBBY), 403),
    // A stream's own token opens that stream (and its API entry); the relay's token opens it
    // too (that it opens nothing else is in ROUTE_CREDENTIALS).
    ("/streams/lobby.mjpg", Cred::Bearer(LOBBY), 200),
    ("/streams/lobby.mjpg", Cred::Bearer(TOKEN), 200),
    ("/streams/lobby.mjpg", Cred::None, 401),
    ("/streams/lobby.jpg", Cred::Bearer(LOBBY), 200),
    ("/streams/lobby.jpg", Cred::Bearer(TOKEN), 200),
    ("/streams/lobby.jpg", Cred::None, 401),
    ("/api/streams/lobby", Cred::Bearer(LOBBY), 200),
    ("/api/streams/lobby", Cred::Bearer(TOKEN), 200),
    ("/api/streams/lobby", Cred::None, 401),
    // A wall opens only to someone who may watch every stream on it.
    ("/streams/wall.frames?names=lobby", Cred::Bearer(LOBBY), 200),
    (
        "/streams/wall.frames?names=lobby,main",
        Cred::Bearer(LOBBY),
        403,
    ),
    (
        "/streams/wall.frames?names=lobby,main",
        Cred::Bearer(TOKEN),
        200,
    ),
    ("/streams/wall.frames?names=lobby,main", Cred::None, 401),
    // Names that do not parse: 400 whoever asks (it tells nothing about the streams, and a
    // page's mistake is not counted as a guess).
    (
        "/streams/wall.frames?names=lobby,,main",
        Cred::Bearer(LOBBY),
        400,
    ),
    ("/streams/wall.frames?names=lobby,,main", Cred::None, 400),
    // Percent-encoded, the same wall.
    (
        "/streams/w%61ll.frames?names=lobby,main",
        Cred::Bearer(LOBBY),
        403,
    ),
];

/// Ingest: (row, path, credential, status). The relay's token is the push stream's token (it
/// has none of its own); a viewer credential of another kind is refused; a push stream with its
/// own token takes only that one. Ingest on a stream that is not a push stream, or not a stream,
/// asks for credentials instead of answering with the source or the list of streams.
const INGEST: &[(&str, &str, Cred, u16)] = &[
    ("not a push stream", "/streams/main/ingest", Cred::None, 401),
    ("not a stream", "/streams/nope/ingest", Cred::None, 401),
    (
        "own token, relay's sent",
        "/streams/own/ingest",
        Cred::Bearer(TOKEN),
        403,
    ),
    (
        "own token sent",
        "/streams/own/ingest",
        Cred::Bearer(OWN_PUSH),
        200,
    ),
    ("no credentials", "/streams/cam/ingest", Cred::None, 401),
    (
        "a stream's token",
        "/streams/cam/ingest",
        Cred::Bearer(LOBBY),
        403,
    ),
    (
        "the relay's token",
        "/streams/cam/ingest",
        Cred::Bearer(TOKEN),
        200,
    ),
    // Ingest reads credentials by the same rules as every route (docs/api.md).
    (
        "own token in ?token=",
        "/streams/own/ingest",
        Cred::Query(OWN_PUSH),
        200,
    ),
    (
        "scheme in capitals",
        "/streams/own/ingest",
        Cred::Raw("BEARER push-token-4"),
        200,
    ),
    (
        "a wrong header does not hide a right ?token=",
        "/streams/own/ingest?token=push-token-4",
        Cred::Bearer("nope"),
        200,
    ),
    (
        "Basic credentials are not a push token",
        "/streams/own/ingest",
        Cred::Basic("ops", "pass word"),
        403,
    ),
    (
        "a header that is neither Bearer nor Basic",
        "/streams/own/ingest",
        Cred::Raw("Digest x=1"),
        400,
    ),
];

#[tokio::test]
async fn every_route_needs_the_token_and_healthz_stays_open() -> anyhow::Result<()> {
    let relay = protected_relay().await?;
    for route in ROUTES {
        for (row, cred, expect) in ROUTE_CREDENTIALS {
            let (code, challenges) = status_with(&relay, route, *cred).await?;
            assert_eq!(code, *expect, "{route} with {row} ({cred:?})");
            if code == 401 {
                assert!(
                    challenges.iter().any(|c| c.starts_with("Bearer realm="))
                        && challenges.iter().any(|c| c.starts_with("Basic realm=")),
                    "{route} with {row}: {challenges:?}"
                );
            }
        }
    }
    for (route, cred, expect) in OWN_RULES {
        let (code, _) = status_with(&relay, route, *cred).await?;
        assert_eq!(code, *expect, "{route} with {cred:?}");
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
    let head =
        mjpeg_relay_tests::request(relay.addr, "HEAD", "/streams/main.mjpg", &[], Vec::new())
            .await?;
    assert_eq!(head.status, 401);

    // The 401 body says what to send.
    let body = relay.get("/streams/main.jpg").await?.text();
    assert!(
        body.contains("Bearer") && body.contains("?token="),
        "{body}"
    );

    let jpeg = make_jpeg(160, 120, 90);
    for (row, path, cred, expect) in INGEST {
        let (path, headers) = cred.apply(path);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = post(relay.addr, &path, &headers, jpeg.clone()).await?;
        let body = reply.text();
        assert_eq!(reply.status, *expect, "{row}: POST {path}: {body}");
        if *expect == 401 {
            assert!(
                reply.headers.contains_key("www-authenticate"),
                "{row}: POST {path}: no challenge"
            );
            assert!(
                !body.contains("lobby") && !body.contains("test?"),
                "{row}: POST {path}: {body}"
            );
        }
    }

    // The API shows no secret (the raw text, on purpose: no field may hold one).
    let list = relay.get(&format!("/api/streams?token={TOKEN}")).await?;
    let one = relay
        .get(&format!("/api/streams/own?token={TOKEN}"))
        .await?;
    let list = format!("{}{}", list.text(), one.text());
    assert!(list.contains("push?"), "{list}");
    for secret in [TOKEN, LOBBY, SCRAPE, "pass word", OWN_PUSH] {
        assert!(!list.contains(secret), "the API shows {secret:?}: {list}");
    }
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_viewer_report_takes_what_opens_its_streams_api_entry() -> anyhow::Result<()> {
    let relay = protected_relay().await?;
    // (stream, credential, status); each taken report from a viewer of its own, so that none
    // is refused as too soon after another.
    let rows = [
        ("lobby", Cred::Bearer(LOBBY), 204),
        ("lobby", Cred::Bearer(TOKEN), 204),
        ("lobby", Cred::Query(LOBBY), 204),
        ("lobby", Cred::Basic("ops", "pass word"), 204),
        ("lobby", Cred::None, 401),
        ("lobby", Cred::Bearer("wrong-token-0"), 403),
        ("main", Cred::Bearer(LOBBY), 403),
        ("main", Cred::Bearer(SCRAPE), 403),
        ("main", Cred::Bearer(TOKEN), 204),
    ];
    for (i, (stream, cred, expect)) in rows.into_iter().enumerate() {
        let (path, mut headers) = cred.apply(&format!("/api/streams/{stream}/report"));
        headers.push(("Content-Type", "application/json".into()));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = serde_json::json!({
            "viewer": format!("viewer{i}"), "transport": "fetch", "fps": 30.0,
            "skipped_relay": 0, "skipped_browser": 0,
        });
        let reply = post(relay.addr, &path, &headers, serde_json::to_vec(&body)?).await?;
        assert_eq!(
            reply.status.as_u16(),
            expect,
            "{stream} with {cred:?}: {:?}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    // Only the taken ones were kept: four on lobby, one on main.
    let kept = |name: &'static str| {
        let relay = &relay;
        async move {
            let reply = mjpeg_relay_tests::request(
                relay.addr,
                "GET",
                &format!("/api/streams/{name}"),
                &[("Authorization", &format!("Bearer {TOKEN}"))],
                bytes::Bytes::new(),
            )
            .await?;
            anyhow::ensure!(reply.status == 200, "{name}: {}", reply.text());
            let info: mjpeg_shared::api::StreamInfo = reply.json()?;
            anyhow::Ok(info.viewer_reports.len())
        }
    };
    assert_eq!((kept("lobby").await?, kept("main").await?), (4, 1));
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_wall_needs_each_streams_own_token_on_a_relay_without_its_own() -> anyhow::Result<()> {
    // Only per-stream tokens: a wall that were taken for a stream called "wall" would be open.
    let relay = TestRelay::start_with(
        &["a=test?size=160x120&fps=30", "b=test?size=160x120&fps=30"],
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            access: AccessConfig {
                stream_tokens: vec![
                    ("a".into(), secret("token-a")),
                    ("b".into(), secret("token-b")),
                ],
                max_failures: 0,
                ..AccessConfig::default()
            },
            ..RelayOptions::default()
        },
    )
    .await?;
    let bearer_a = [("Authorization", "Bearer token-a")];
    for (path, headers, want) in [
        ("/streams/wall.frames?names=a", &[][..], 401),
        ("/streams/w%61ll.frames?names=a", &[][..], 401),
        ("/streams/wall.frames?names=a", &bearer_a[..], 200),
        ("/streams/wall.frames?names=a,b", &bearer_a[..], 403),
        ("/streams/wall.frames?names=a,b&token=token-b", &[][..], 403),
        // One credential for each stream: both open.
        (
            "/streams/wall.frames?names=a,b&token=token-b",
            &bearer_a[..],
            200,
        ),
    ] {
        assert_eq!(
            status(&relay, path, headers).await?.0,
            want,
            "{path} {headers:?}"
        );
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
    let info = relay.relay.site.stream("main")?.info();
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
    for (path, headers, expect) in [
        (
            "/api/streams".to_string(),
            vec![("Authorization", bearer.as_str())],
            200,
        ),
        (format!("/api/time?token={TOKEN}x"), vec![], 403),
        (
            "/metrics".to_string(),
            vec![("Authorization", "Bearer scrape-token-3")],
            200,
        ),
    ] {
        let reply = mjpeg_relay_tests::request(addr, "GET", &path, &headers, Vec::new()).await?;
        assert_eq!(reply.status, expect, "GET {path}");
    }
    let pushed = post(
        addr,
        "/streams/cam/ingest",
        &[("Authorization", &bearer)],
        make_jpeg(160, 120, 1),
    )
    .await?;
    assert_eq!(pushed.status, 200, "{}", pushed.text());
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
        assert_eq!(health.status, 200);
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
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
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
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
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
    assert_eq!(origin.relay.site.stream("main")?.info().viewers, 1);
    // The edge's token does not open the origin.
    assert_eq!(status(&origin, &path, &[]).await?.0, 403);
    // And the API shows no credential of the origin.
    let info = edge
        .get(&format!("/api/streams/main?token={TOKEN}"))
        .await?
        .text();
    assert!(!info.contains("origin-secret"), "{info}");
    drop(viewer);
    edge.stop().await?;
    origin.stop().await?;
    Ok(())
}

fn unix_now() -> u64 {
    mjpeg_relay_tests::now_micros() / 1_000_000
}

/// Signed embed URLs: `exp=...&sig=...` opens its stream's `.mjpg`, `.frames` and `.jpg` until
/// it expires, nothing else; changing any part of it (the stream, the expiry, the fps cap)
/// breaks it; `POST /api/sign` and `mjpeg-relay sign` make ones the relay accepts.
#[tokio::test]
async fn signed_urls_open_one_stream_until_they_expire() -> anyhow::Result<()> {
    use mjpeg_relay::signed::{Grant, SigningKey};
    use mjpeg_relay_tests::request;
    let relay = protected_relay().await?;
    let key = SigningKey::new(secret(SIGNING_KEY)).unwrap();
    let other_key = SigningKey::new(secret("another-key-0123456789abcdef012345")).unwrap();
    let now = unix_now();
    let sign = |key: &SigningKey, stream: &str, expires: u64, fps: Option<u32>| {
        key.sign(&Grant {
            stream: stream.into(),
            expires,
            fps,
        })
    };
    let main = sign(&key, "main", now + 60, None);
    let capped = sign(&key, "main", now + 60, Some(2));
    let rows: Vec<(&str, String, u16, &str)> = vec![
        ("the stream", format!("/streams/main.mjpg?{main}"), 200, ""),
        (
            "fetch-readable",
            format!("/streams/main.frames?{main}"),
            200,
            "",
        ),
        ("a snapshot", format!("/streams/main.jpg?{main}"), 200, ""),
        (
            "beside a cache buster",
            format!("/streams/main.jpg?t=1&{main}"),
            200,
            "",
        ),
        (
            "with its fps cap",
            format!("/streams/main.frames?{capped}"),
            200,
            "",
        ),
        (
            "on another stream",
            format!("/streams/lobby.mjpg?{main}"),
            403,
            "not valid for this stream",
        ),
        (
            "on the API entry",
            format!("/api/streams/main?{main}"),
            401,
            "",
        ),
        ("on the list", format!("/api/streams?{main}"), 401, ""),
        (
            "expired",
            format!("/streams/main.jpg?{}", sign(&key, "main", now - 5, None)),
            403,
            "expired",
        ),
        (
            "its fps cap raised",
            format!("/streams/main.jpg?{}", capped.replace("fps=2", "fps=30")),
            403,
            "not valid",
        ),
        (
            "its expiry moved",
            format!(
                "/streams/main.jpg?{}",
                main.replace(&format!("exp={}", now + 60), &format!("exp={}", now + 6000))
            ),
            403,
            "not valid",
        ),
        (
            "signed with another key",
            format!(
                "/streams/main.jpg?{}",
                sign(&other_key, "main", now + 60, None)
            ),
            403,
            "not valid",
        ),
        (
            "a sig that is not hex",
            "/streams/main.jpg?exp=1&sig=zz".into(),
            403,
            "malformed",
        ),
    ];
    for (row, path, want, says) in rows {
        if want == 200 {
            let (code, _) = status(&relay, &path, &[]).await?;
            assert_eq!(code, want, "signed URL {row}: {path}");
        } else {
            let r = request(relay.addr, "GET", &path, &[], Vec::new()).await?;
            assert_eq!(
                r.status.as_u16(),
                want,
                "signed URL {row}: {path}: {}",
                r.text()
            );
            assert!(r.text().contains(says), "signed URL {row}: {}", r.text());
        }
    }
    // The signed fps is the viewer's cap: capture times two frames apart are half a second.
    let resp = send(
        relay.addr,
        &format!("/streams/main.frames?{capped}"),
        None,
        &[],
    )
    .await?;
    let mut viewer = mjpeg_relay_tests::StreamReader::from_response("capped", resp).await?;
    let mut stamps = Vec::new();
    for _ in 0..3 {
        let part = viewer.next_part(Duration::from_secs(10)).await?;
        stamps.push(part.timestamp_micros().unwrap_or_default());
    }
    assert!(
        stamps
            .windows(2)
            .all(|w| w[1].saturating_sub(w[0]) >= 400_000),
        "a 2 fps cap on a 30 fps stream: {stamps:?}"
    );

    // POST /api/sign, with the relay's credentials.
    let bearer = format!("Bearer {TOKEN}");
    let json = [
        ("Content-Type", "application/json"),
        ("Authorization", bearer.as_str()),
    ];
    let lobby_bearer = format!("Bearer {LOBBY}");
    let lobby_json = [
        ("Content-Type", "application/json"),
        ("Authorization", lobby_bearer.as_str()),
    ];
    let r = post(
        relay.addr,
        "/api/sign",
        &json,
        br#"{"stream": "main", "ttl_seconds": 60}"#.to_vec(),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let signed: mjpeg_shared::api::SignedUrl = r.json()?;
    assert!((now + 59..=now + 62).contains(&signed.expires));
    let (code, _) = status(&relay, &format!("/streams/main.jpg?{}", signed.query), &[]).await?;
    assert_eq!(code, 200, "the dashboard's signed URL");
    for (row, headers, body, want) in [
        (
            "no credentials",
            &json[..1],
            r#"{"stream": "main", "ttl_seconds": 60}"#,
            401,
        ),
        (
            "no such stream",
            &json[..],
            r#"{"stream": "nope", "ttl_seconds": 60}"#,
            404,
        ),
        ("no ttl", &json[..], r#"{"stream": "main"}"#, 400),
        (
            "a stream's own token, for its stream",
            &lobby_json[..],
            r#"{"stream": "lobby", "ttl_seconds": 60}"#,
            403,
        ),
        (
            "an fps over the viewers' limit",
            &json[..],
            r#"{"stream": "main", "ttl_seconds": 60, "fps": 5000}"#,
            400,
        ),
        (
            "a ttl of 0",
            &json[..],
            r#"{"stream": "main", "ttl_seconds": 0}"#,
            400,
        ),
    ] {
        let r = post(relay.addr, "/api/sign", headers, body.as_bytes().to_vec()).await?;
        assert_eq!(
            r.status.as_u16(),
            want,
            "POST /api/sign with {row}: {}",
            r.text()
        );
    }

    // A relay whose only credentials are a stream's own token signs nothing over HTTP: anyone
    // could otherwise sign a URL for that stream.
    let open = TestRelay::start_with(
        &["lobby=test?size=160x120&fps=30"],
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            access: AccessConfig {
                stream_tokens: vec![("lobby".into(), secret(LOBBY))],
                signing_key: Some(secret(SIGNING_KEY)),
                ..AccessConfig::default()
            },
            ..RelayOptions::default()
        },
    )
    .await?;
    let r = post(
        open.addr,
        "/api/sign",
        &json[..1],
        br#"{"stream": "lobby", "ttl_seconds": 60}"#.to_vec(),
    )
    .await?;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("mjpeg-relay sign"), "{}", r.text());
    open.stop().await?;

    // `mjpeg-relay sign`, with the same key.
    let out = relay_cmd()
        .env("MJPEG_RELAY_SIGNING_KEY", SIGNING_KEY)
        .args(["sign", "--stream", "main", "--ttl", "10m", "--fps", "5"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let query = String::from_utf8(out.stdout)?;
    assert!(query.starts_with("fps=5&exp="), "{query}");
    let (code, _) = status(&relay, &format!("/streams/main.jpg?{}", query.trim()), &[]).await?;
    assert_eq!(code, 200, "the command's signed URL");
    for (args, says) in [
        (
            &["sign", "--stream", "main", "--ttl", "10m"][..],
            "signing key",
        ),
        (
            &[
                "--signing-key",
                "short",
                "sign",
                "--stream",
                "main",
                "--ttl",
                "1h",
            ][..],
            "32",
        ),
        (
            &[
                "--signing-key",
                SIGNING_KEY,
                "sign",
                "--stream",
                "main",
                "--ttl",
                "600",
            ][..],
            "unit",
        ),
    ] {
        let out = relay_cmd()
            .env_remove("MJPEG_RELAY_SIGNING_KEY")
            .args(args)
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    relay.stop().await?;
    Ok(())
}
