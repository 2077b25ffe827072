//! The wall: `/streams/wall.frames?names=a,b,c`, several streams in one response, each part
//! naming its stream (`X-Stream`), so that a page of many cameras costs one connection. Each
//! stream on it counts one viewer, under the same caps; the query asks the same of every stream.

use std::collections::HashMap;
use std::time::Duration;

use mjpeg_relay::fanout::Limits;
use mjpeg_relay::RelayOptions;
use mjpeg_relay_tests::{decode_jpeg, eventually, TestRelay};

const T: Duration = Duration::from_secs(10);

async fn relay(limits: Limits) -> anyhow::Result<TestRelay> {
    TestRelay::start_with(
        &[
            "a=test?size=320x240&fps=30",
            "b=test?size=320x240&fps=15",
            "c=test?size=160x120&fps=30",
        ],
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            limits,
            ..RelayOptions::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_wall_carries_every_named_stream_at_its_own_rate_and_counts_its_viewers(
) -> anyhow::Result<()> {
    let relay = relay(Limits::default()).await?;
    let mut wall = relay.open("/streams/wall.frames?names=a,b&fps=30").await?;
    assert_eq!(
        wall.headers["content-type"],
        "application/octet-stream; boundary=mjpegrelayframe"
    );
    // Two seconds of parts: both streams, each in order, at its own rate, whole JPEGs.
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut count: HashMap<String, u32> = HashMap::new();
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let part = wall.next_part(T).await?;
        let name = part
            .stream()
            .expect("every part names its stream")
            .to_string();
        assert!(name == "a" || name == "b", "{name}");
        let seq = part.sequence().expect("X-Sequence");
        if let Some(prev) = last.insert(name.clone(), seq) {
            assert!(seq > prev, "{name}: {seq} after {prev}");
        }
        assert!(part.timestamp_micros().is_some());
        let img = decode_jpeg(&part.body)?;
        assert_eq!((img.width, img.height), (320, 240), "{name}");
        *count.entry(name).or_default() += 1;
    }
    // Loose bounds: on a loaded 2-core machine a 30 fps test pattern delivered 15 parts in these
    // 2 s. Each stream plays, neither beyond its rate, and the faster one faster.
    let (a, b) = (count["a"], count["b"]);
    assert!((8..=75).contains(&a), "a at 30 fps: {a} parts in 2 s");
    assert!((4..=40).contains(&b), "b at 15 fps: {b} parts in 2 s");
    assert!(a > b, "a (30 fps) {a} parts, b (15 fps) {b}");

    // One viewer of each stream on the wall, none of the one not on it.
    for (name, want) in [("a", 1), ("b", 1), ("c", 0)] {
        assert_eq!(relay.info(name).await?.viewers, want, "{name}");
    }
    drop(wall);
    eventually(T, || async { Ok((relay.viewers() == 0).then_some(())) }).await?;
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_wall_of_renditions_names_each_part_and_its_size() -> anyhow::Result<()> {
    let relay = relay(Limits::default()).await?;
    let mut wall = relay
        .open("/streams/wall.frames?names=c,a&width=80")
        .await?;
    let mut seen = HashMap::new();
    tokio::time::timeout(T, async {
        while seen.len() < 2 {
            let part = wall.next_part(T).await?;
            let img = decode_jpeg(&part.body)?;
            let size = (img.width, img.height);
            let named = part.rendition().map(|r| (r.width, r.height));
            assert_eq!(named, Some((80, 60)));
            assert_eq!(size, (80, 60));
            seen.insert(part.stream().unwrap().to_string(), size);
        }
        anyhow::Ok(())
    })
    .await
    .map_err(|_| anyhow::anyhow!("both streams within {T:?}; seen {seen:?}"))??;
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn bad_walls_get_4xx_saying_what_is_wrong() -> anyhow::Result<()> {
    let relay = relay(Limits::default()).await?;
    for (query, status, says) in [
        ("", 400, "names=A,B"),
        ("?names=", 400, "empty name"),
        ("?names=a,,b", 400, "empty name"),
        ("?names=a,b,a", 400, "\"a\" twice"),
        ("?names=a&names=b", 400, "given once"),
        ("?names=a,nope", 404, "nope"),
        ("?names=a&meta=1", 400, "meta applies to one stream"),
        ("?names=a&adapt=1", 400, "adapt applies to one stream"),
        ("?names=a&overlay=1", 400, "overlay applies to one stream"),
        (
            "?names=a&layout=strict",
            400,
            "layout applies to one stream",
        ),
        // Checked against each stream's size, and the error names the stream.
        ("?names=a,c&width=200", 400, "stream \"c\""),
        ("?names=a&fps=0", 400, "fps"),
    ] {
        let reply = relay
            .get_head(&format!("/streams/wall.frames{query}"))
            .await?;
        assert_eq!(reply.status, status, "{query}: {}", reply.text());
        let msg = reply.error()?;
        assert!(msg.contains(says), "{query}: {msg}");
    }
    let many: Vec<String> = (0..33).map(|i| format!("s{i}")).collect();
    let reply = relay
        .get_head(&format!("/streams/wall.frames?names={}", many.join(",")))
        .await?;
    assert_eq!(reply.status, 400);
    assert!(reply.error()?.contains("at most 32"));
    // The wall is a .frames response only.
    assert_eq!(relay.get_head("/streams/wall.mjpg").await?.status, 404);
    // Nothing was left counted.
    assert_eq!(relay.viewers(), 0);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_wall_is_admitted_whole_or_not_at_all() -> anyhow::Result<()> {
    let relay = relay(Limits {
        max_viewers_per_stream: Some(1),
        ..Limits::default()
    })
    .await?;
    let mut b = relay.open("/streams/b.frames").await?;
    b.next_part(T).await?;
    // a has room, b has none: 503 naming b, and a is not left counted.
    let refused = relay.get_head("/streams/wall.frames?names=a,b").await?;
    assert_eq!(refused.status, 503);
    assert!(refused.error()?.contains("stream \"b\""));
    let a = relay.info("a").await?;
    assert_eq!(a.viewers, 0);
    assert_eq!(a.frames_produced, 0, "the refused wall woke a's source");
    drop(b);
    eventually(T, || async {
        Ok((relay.info("b").await?.viewers == 0).then_some(()))
    })
    .await?;
    let mut wall = relay.open("/streams/wall.frames?names=a,b").await?;
    wall.next_part(T).await?;
    relay.stop().await?;
    Ok(())
}
