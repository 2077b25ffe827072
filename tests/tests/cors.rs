//! CORS: without `--allow-origin` only the relay's own pages may read from script; with it, the
//! listed origins may (streams included, and preflights answered), others are refused, and the
//! relay's own pages are never refused.

use std::time::Duration;

use http_body_util::BodyExt;
use mjpeg_relay::RelayOptions;
use mjpeg_relay_tests::{send, TestRelay};
use mjpeg_shared::multipart::MultipartParser;

const ACAO: &str = "access-control-allow-origin";

async fn relay(origins: &[&str]) -> anyhow::Result<TestRelay> {
    TestRelay::start_with(
        &["main=test?size=160x120&fps=30"],
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            allow_origins: origins.iter().map(|o| o.to_string()).collect(),
            ..RelayOptions::default()
        },
    )
    .await
}

#[tokio::test]
async fn without_allow_origin_no_page_elsewhere_may_read() -> anyhow::Result<()> {
    let relay = relay(&[]).await?;
    let resp = send(
        relay.addr,
        "/api/time",
        None,
        &[("Origin", "http://other.example")],
    )
    .await?;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get(ACAO).is_none(), "{:?}", resp.headers());
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn listed_origins_may_read_streams_and_others_are_refused() -> anyhow::Result<()> {
    let relay = relay(&["http://ops.example"]).await?;
    let ops = [("Origin", "http://ops.example")];

    let resp = send(relay.addr, "/api/streams", None, &ops).await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[ACAO], "http://ops.example");

    // The fetch-readable stream: allowed, and it streams.
    let resp = send(relay.addr, "/streams/main.frames", None, &ops).await?;
    assert_eq!(resp.headers()[ACAO], "http://ops.example");
    let mut parser = MultipartParser::from_content_type(resp.headers()["content-type"].to_str()?)?;
    let mut body = resp.into_body();
    let part = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let frame = body.frame().await.expect("stream ended")?;
            if let Some(data) = frame.data_ref() {
                parser.push(data);
            }
            if let Some(part) = parser.next_part()? {
                return anyhow::Ok(part);
            }
        }
    })
    .await??;
    assert!(part.sequence().is_some());

    // Another origin: refused, in JSON.
    let resp = send(
        relay.addr,
        "/api/streams",
        None,
        &[("Origin", "http://evil.example")],
    )
    .await?;
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get(ACAO).is_none());

    // A page of the relay's own origin (browsers send Origin on POST) is never refused.
    let own = format!("http://{}", relay.addr);
    let resp = send(relay.addr, "/api/time", None, &[("Origin", own.as_str())]).await?;
    assert_eq!(resp.status(), 200);

    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn preflights_are_answered_and_star_allows_any_origin() -> anyhow::Result<()> {
    let relay = relay(&["*"]).await?;
    let addr = relay.addr;
    // An OPTIONS preflight for a POST with a token.
    let resp = mjpeg_relay_tests::request(
        addr,
        "OPTIONS",
        "/streams/main/ingest",
        &[
            ("Origin", "http://anywhere.example"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        Vec::new(),
    )
    .await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers[ACAO], "http://anywhere.example");
    let methods = resp.headers["access-control-allow-methods"]
        .to_str()?
        .to_ascii_uppercase();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );

    let resp = send(
        addr,
        "/api/time",
        None,
        &[("Origin", "http://anywhere.example")],
    )
    .await?;
    assert_eq!(resp.headers()[ACAO], "http://anywhere.example");
    relay.stop().await?;
    Ok(())
}
