//! The HTTP surface: errors that say what is wrong, the headers streams need, snapshots, the
//! JSON API, the page at `/`, and a source that runs only while someone watches.

use std::time::Duration;

use mjpeg_relay_tests::{decode_jpeg, eventually, now_micros, send, TestRelay};
use mjpeg_shared::api::{Health, ServerTime};

const T: Duration = Duration::from_secs(5);

/// The status and message of an error answer, which must be an `ErrorBody` in JSON.
async fn error_of(relay: &TestRelay, path: &str) -> anyhow::Result<(u16, String)> {
    let reply = relay.get(path).await?;
    assert_eq!(
        reply.headers["content-type"], "application/json; charset=utf-8",
        "{path}"
    );
    Ok((reply.status.as_u16(), reply.error()?))
}

#[tokio::test]
async fn bad_requests_say_what_is_wrong() -> anyhow::Result<()> {
    let relay = TestRelay::start(&[
        "main=test?size=320x240&fps=5",
        "side=test?size=160x120&fps=5",
    ])
    .await?;
    let (status, msg) = error_of(&relay, "/streams/nope.mjpg").await?;
    assert_eq!(status, 404);
    assert!(
        msg.contains("\"nope\"") && msg.contains("main, side"),
        "{msg}"
    );
    let (status, msg) = error_of(&relay, "/api/streams/nope").await?;
    assert_eq!((status, msg.contains("main, side")), (404, true), "{msg}");
    let (status, msg) = error_of(&relay, "/streams/main.gif").await?;
    assert_eq!(status, 404);
    assert!(
        msg.contains(".mjpg") && msg.contains(".frames") && msg.contains(".jpg"),
        "{msg}"
    );

    for (path, expect) in [
        ("/streams/main.mjpg?fps=0", "from 0.01 to 1000"),
        ("/streams/main.mjpg?fps=fast", "fps \"fast\""),
        ("/streams/main.frames?fps=-3", "from 0.01 to 1000"),
        ("/streams/main.frames?fps=1e-20", "from 0.01 to 1000"),
        (
            "/streams/main.mjpg?layout=fancy",
            "advance (default, for browsers), strict",
        ),
        (
            "/streams/main.frames?layout=strict",
            "layout applies to .mjpg only",
        ),
        ("/streams/main.mjpg?size=big", "WIDTHxHEIGHT"),
        (
            "/streams/main.jpg?size=640x480",
            "the source, which is 320x240",
        ),
        ("/streams/main.mjpg?fps", "fps \"\""),
        ("/streams/main.mjpg?layout=%73trict&fps=%7A", "fps \"z\""),
    ] {
        let (status, msg) = error_of(&relay, path).await?;
        assert_eq!(status, 400, "{path}: {msg}");
        assert!(
            msg.contains(expect),
            "{path}: {msg:?} should mention {expect:?}"
        );
    }
    // What is not ours to judge (a legacy page's cache buster) is ignored, not refused; values
    // are percent-decoded and the layout name is not case-sensitive.
    for path in [
        "/streams/main.mjpg?t=12345&fps=5",
        "/streams/main.mjpg?1700000000",
        "/streams/main.mjpg?layout=Strict&fps=%35",
        "/streams/main.jpg?_=1",
    ] {
        let reply = relay.get_head(path).await?;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    // Unknown routes and methods answer JSON too.
    let (status, msg) = error_of(&relay, "/nothing/here").await?;
    assert_eq!(status, 404);
    assert!(msg.contains("/api/streams"), "{msg}");
    let (status, msg) = error_of(&relay, "/streams/main.png?t").await?;
    assert_eq!(
        status, 404,
        "a bad extension is a 404 whatever the query: {msg}"
    );
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn stream_responses_are_uncached_unbuffered_and_never_compressed() -> anyhow::Result<()> {
    let relay = TestRelay::start(&["main=test?size=320x240&fps=10"]).await?;
    for path in ["/streams/main.mjpg", "/streams/main.frames"] {
        let resp = send(
            relay.addr,
            path,
            None,
            &[("Accept-Encoding", "gzip, deflate, br")],
        )
        .await?;
        let h = resp.headers();
        assert_eq!(
            h["cache-control"], "no-cache, no-store, must-revalidate",
            "{path}"
        );
        assert_eq!(h["x-accel-buffering"], "no", "{path}");
        assert!(
            h.get("content-encoding").is_none(),
            "{path} must not be compressed"
        );
        assert!(h.get("content-length").is_none(), "{path} is endless");
    }
    let resp = send(relay.addr, "/streams/main.frames", None, &[]).await?;
    let ct = resp.headers()["content-type"].to_str()?;
    assert!(
        !ct.starts_with("multipart/"),
        "fetch variant must not be multipart/x-mixed-replace (WebKit)"
    );
    assert!(ct.contains("boundary=mjpegrelayframe"), "{ct}");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_source_runs_only_while_someone_watches() -> anyhow::Result<()> {
    let relay = TestRelay::start(&["main=test?size=320x240&fps=30"]).await?;
    // Deliberately idle for 300 ms (9 frame periods): a source that ran without viewers would
    // have produced frames by now. Nothing is awaited here, so there is nothing to poll for.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = relay.info("main").await?;
    assert_eq!(info.frames_produced, 0, "no viewer, no capture");
    assert!(!info.active);

    let mut viewer = relay.open("/streams/main.mjpg").await?;
    viewer.next_part(T).await?;
    let info = relay.info("main").await?;
    assert_eq!(info.viewers, 1);
    assert!(info.active);
    drop(viewer);

    // Once the viewer has gone, production stops: two readings 200 ms apart agree (the sleep
    // is the span over which the count must not move).
    let produced = eventually(T, || async {
        let a = relay.info("main").await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b = relay.info("main").await?;
        let idle = b.viewers == 0 && !b.active && a.frames_produced == b.frames_produced;
        Ok(idle.then_some(b.frames_produced))
    })
    .await?;
    assert!(produced > 0);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn snapshots_are_fresh_even_when_the_stream_was_idle() -> anyhow::Result<()> {
    let relay = TestRelay::start(&["main=test?size=320x240&fps=30"]).await?;
    for _ in 0..2 {
        let before = now_micros();
        let reply = relay.get("/streams/main.jpg").await?;
        let (status, headers, body) = (reply.status, reply.headers, reply.body);
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "image/jpeg");
        assert_eq!(
            headers["cache-control"],
            "no-cache, no-store, must-revalidate"
        );
        let ts = mjpeg_shared::wire::parse_timestamp(headers["x-timestamp"].to_str()?).unwrap();
        assert!(
            ts >= before,
            "a snapshot of an idle stream is captured after the request, not cached"
        );
        let img = decode_jpeg(&body)?;
        assert_eq!((img.width, img.height), (320, 240));
        // Deliberately idle for 300 ms (9 frame periods at 30 fps): a source left running
        // after the snapshot would add frames to the count checked below.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Each snapshot of the idle stream cost exactly one frame: the source went back to sleep.
    let info = eventually(T, || async {
        let info = relay.info("main").await?;
        Ok((!info.active).then_some(info))
    })
    .await?;
    assert_eq!(info.frames_produced, 2);
    // While someone watches, a snapshot is the newest frame the viewers get.
    let mut viewer = relay.open("/streams/main.frames").await?;
    viewer.next_part(T).await?;
    let headers = relay.get("/streams/main.jpg").await?.headers;
    let seq: u64 = headers["x-sequence"].to_str()?.parse()?;
    let latest = relay
        .info("main")
        .await?
        .last_seq
        .expect("last_seq once frames exist");
    assert!(latest - seq <= 1, "snapshot seq {seq}, newest {latest}");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn api_reports_streams_viewers_and_counters() -> anyhow::Result<()> {
    let relay =
        TestRelay::start(&["main=test?size=320x240&fps=20", "b=test?size=160x120&fps=5"]).await?;
    let mut v1 = relay.open("/streams/main.mjpg").await?;
    let mut v2 = relay.open("/streams/main.frames?fps=2").await?;
    for _ in 0..6 {
        v1.next_part(T).await?;
    }
    v2.next_part(T).await?;
    v2.next_part(T).await?;

    let list = relay.list().await?.streams;
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["main", "b"]);
    let main = &list[0];
    assert_eq!(main.viewers, 2);
    assert_eq!(main.source, "test?size=320x240&fps=20");
    assert_eq!(main.kind, "test");
    assert_eq!((main.width, main.height), (Some(320), Some(240)));
    assert_eq!(main.source_fps, 20.0);
    assert!(main.frames_sent >= 8);
    assert!(main.frames_skipped >= 1, "the 2 fps viewer skipped frames");
    assert!(main.bytes_sent > 0);
    assert_eq!(main.endpoints.frames, "/streams/main.frames");
    assert_eq!(list[1].viewers, 0);

    let before = now_micros();
    let server = relay.json::<ServerTime>("/api/time").await?.unix_micros;
    assert!(
        server >= before && server <= now_micros(),
        "server clock is this machine's clock"
    );

    let health = relay.json::<Health>("/healthz").await?;
    assert_eq!(health.status, "ok");
    assert_eq!(health.streams, 2);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn root_serves_the_dashboard_when_built_and_a_builtin_page_otherwise() -> anyhow::Result<()> {
    let relay = TestRelay::start(&["cam=test?size=160x120&fps=5"]).await?;
    let reply = relay.get("/").await?;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["content-type"]
        .to_str()?
        .starts_with("text/html"));
    let page = String::from_utf8(reply.body.to_vec())?;
    assert!(
        page.contains("<img id=\"stream\" src=\"/streams/cam.mjpg\""),
        "{page}"
    );
    assert!(
        page.contains("trunk build"),
        "says how to build the dashboard"
    );
    relay.stop().await?;

    let dist = tempfile::tempdir()?;
    std::fs::write(
        dist.path().join("index.html"),
        "<html>dashboard build</html>",
    )?;
    std::fs::write(dist.path().join("app.js"), "console.log(1)")?;
    let relay = TestRelay::start_with_dashboard(
        &["cam=test?size=160x120&fps=5"],
        dist.path().to_path_buf(),
    )
    .await?;
    assert_eq!(
        &relay.get("/").await?.body[..],
        b"<html>dashboard build</html>"
    );
    assert_eq!(relay.get("/app.js").await?.status, 200);
    // The API and streams still win over the static files.
    assert_eq!(relay.json::<Health>("/healthz").await?.status, "ok");
    assert_eq!(relay.get("/streams/cam.jpg").await?.status, 200);
    relay.stop().await?;
    Ok(())
}
