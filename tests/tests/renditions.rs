//! Renditions (`?width=`, `?size=`, `?quality=`): a smaller or lighter picture per viewer, each
//! made once per frame for all its viewers, only while someone watches it, capped per stream;
//! on `.mjpg`, `.frames` and `.jpg`, named by `X-Rendition`; the API and `/metrics` list them.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use mjpeg_relay::fanout::Limits;
use mjpeg_relay::RelayOptions;
use mjpeg_relay_tests::{decode_jpeg, eventually, StreamReader, TestRelay};
use mjpeg_shared::wire::Rendition;

const T: Duration = Duration::from_secs(10);

async fn relay(max_renditions: Option<usize>) -> anyhow::Result<TestRelay> {
    TestRelay::start_with(
        &["main=test?size=640x480&fps=30"],
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            limits: Limits {
                max_renditions,
                ..Limits::default()
            },
            ..RelayOptions::default()
        },
    )
    .await
}

fn rendition(width: u32, height: u32, quality: u8) -> Rendition {
    Rendition {
        width,
        height,
        quality,
        overlay: false,
    }
}

#[tokio::test]
async fn each_endpoint_serves_the_size_and_quality_asked_and_says_which() -> anyhow::Result<()> {
    let relay = relay(None).await?;

    // Snapshots: the size asked (height from the aspect ratio), named in X-Rendition.
    let full = relay.get("/streams/main.jpg").await?;
    assert!(
        full.headers.get("x-rendition").is_none(),
        "the source's own frame"
    );
    for (query, (w, h), q) in [
        ("width=320", (320, 240), 85),
        ("size=160x120&quality=30", (160, 120), 30),
        ("width=200", (200, 150), 85),
        ("quality=40", (640, 480), 40),
    ] {
        let snap = relay.get(&format!("/streams/main.jpg?{query}")).await?;
        assert_eq!(snap.status, 200, "{query}: {}", snap.text());
        let img = decode_jpeg(&snap.body)?;
        assert_eq!((img.width, img.height), (w as usize, h as usize), "{query}");
        assert_eq!(
            snap.headers["x-rendition"].to_str()?.parse(),
            Ok(rendition(w, h, q)),
            "{query}"
        );
        assert!(
            snap.body.len() < full.body.len(),
            "{query}: smaller than the source"
        );
    }

    // .frames: every part is the rendition, and says so (read by the shared parser).
    let mut frames = relay
        .open("/streams/main.frames?width=320&quality=50")
        .await?;
    for _ in 0..5 {
        let part = frames.next_part(T).await?;
        assert_eq!(part.rendition(), Some(rendition(320, 240, 50)));
        let img = decode_jpeg(&part.body)?;
        assert_eq!((img.width, img.height), (320, 240));
    }
    // .mjpg, for <img>: the pictures are the rendition's.
    let mut mjpg = relay.open("/streams/main.mjpg?size=320x180").await?;
    for _ in 0..5 {
        let part = mjpg.next_part(T).await?;
        let img = decode_jpeg(&part.body)?;
        assert_eq!((img.width, img.height), (320, 180));
    }
    // The source's own size is the source's own frame.
    let mut same = relay.open("/streams/main.frames?width=640").await?;
    let part = same.next_part(T).await?;
    assert_eq!(part.rendition(), None);

    // Mistakes answer 400 saying what is wrong.
    for (query, says) in [
        ("width=1280", "which is 640x480"),
        ("size=640x960", "which is 640x480"),
        ("width=8", "width \"8\""),
        ("size=big", "WIDTHxHEIGHT"),
        ("quality=5", "from 10 to 95"),
        ("quality=high", "quality \"high\""),
    ] {
        for ext in ["mjpg", "frames", "jpg"] {
            let reply = relay
                .get_head(&format!("/streams/main.{ext}?{query}"))
                .await?;
            assert_eq!(reply.status, 400, "{ext}?{query}");
            let text = reply.error()?;
            assert!(text.contains(says), "{ext}?{query}: {text}");
        }
    }
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn one_rendition_is_made_once_per_frame_for_all_its_viewers_and_only_while_watched(
) -> anyhow::Result<()> {
    let relay = relay(None).await?;
    let path = "/streams/main.frames?width=160";
    let mut a = relay.open(path).await?;
    let mut b = relay.open(path).await?;
    // Counted from one reading of both, so frames made before it do not count against it.
    let start = relay.info("main").await?;
    let before = start.frames_produced;
    let made_before = start.renditions.first().map_or(0, |r| r.frames_made);
    // Both viewers get byte-identical parts for the same frame.
    let mut seen_a = HashMap::new();
    for _ in 0..30 {
        let part = a.next_part(T).await?;
        seen_a.insert(part.sequence().unwrap(), part.body);
    }
    let mut same = 0;
    for _ in 0..30 {
        let part = b.next_part(T).await?;
        if let Some(body) = seen_a.get(&part.sequence().unwrap()) {
            assert_eq!(*body, part.body, "frame {:?}", part.sequence());
            same += 1;
        }
    }
    assert!(same >= 10, "the two viewers shared {same} frames");
    let info = relay.info("main").await?;
    let live = &info.renditions;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].asked, "width=160");
    assert_eq!(live[0].made.as_deref(), Some("160x120;q=85"));
    assert_eq!(live[0].viewers, 2);
    // Made once per frame: never more often than the source produced frames since.
    let produced = info.frames_produced - before;
    let made = live[0].frames_made - made_before;
    assert!(
        made <= produced + 2,
        "{made} made for {produced} frames produced: once per frame, not per viewer"
    );
    assert!(
        live[0].frames_made >= 30 && live[0].cpu_seconds > 0.0,
        "{live:?}"
    );
    let metrics = relay.get("/metrics").await?.text();
    assert!(
        metrics.contains(r#"mjpeg_relay_rendition_viewers{stream="main",rendition="width=160"} 2"#),
        "{metrics}"
    );

    // Nobody watching: the rendition is gone, and nothing more is made of it.
    drop((a, b));
    eventually(T, || async {
        Ok(relay
            .info("main")
            .await?
            .renditions
            .is_empty()
            .then_some(()))
    })
    .await?;
    let metrics = relay.get("/metrics").await?.text();
    assert!(!metrics.contains("rendition=\"width=160\""), "{metrics}");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn beyond_max_renditions_a_new_one_is_refused_and_the_live_ones_stay_open(
) -> anyhow::Result<()> {
    let relay = relay(Some(2)).await?;
    let mut small = relay.open("/streams/main.frames?width=160").await?;
    let _light = relay.open("/streams/main.mjpg?quality=30").await?;
    let refused = relay.get_head("/streams/main.frames?width=320").await?;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.headers["retry-after"], "5");
    let text = refused.error()?;
    assert!(
        text.contains("2 renditions") && text.contains("max_renditions"),
        "{text}"
    );
    assert_eq!(relay.get("/streams/main.jpg?width=320").await?.status, 503);
    // One of those already made, and the source's own frames, are open to anyone.
    let mut another = relay.open("/streams/main.frames?width=160").await?;
    assert_eq!(
        another.next_part(T).await?.rendition(),
        Some(rendition(160, 120, 85))
    );
    assert_eq!(relay.get("/streams/main.jpg").await?.status, 200);
    small.next_part(T).await?;
    // A rendition whose viewers left frees its place.
    drop((small, another));
    eventually(T, || async {
        let r = relay.get("/streams/main.jpg?width=320").await?;
        Ok((r.status == 200).then_some(()))
    })
    .await?;
    relay.stop().await?;
    Ok(())
}

/// `?adapt=1` on `.frames`: a viewer whose link carries 40 KB/s (full frames of this stream are
/// about 20 KB: one would take half a second to cross) is sent a lighter rendition, named by
/// `X-Rendition`, and the source's own frames again once its link is fast.
#[tokio::test]
async fn an_adaptive_viewer_steps_down_on_a_slow_link_and_back_up_when_it_clears(
) -> anyhow::Result<()> {
    let relay = relay(None).await?;
    let mut viewer =
        StreamReader::open(relay.addr, "/streams/main.frames?adapt=1", Some(65536)).await?;
    let rate = 40_000.0; // bytes per second
    let stepped_down = async {
        loop {
            let (n, parts) = viewer.read_chunk(T).await?;
            anyhow::ensure!(n > 0, "the stream ended");
            if let Some(r) = parts.iter().find_map(|p| p.rendition()) {
                return anyhow::Ok(r);
            }
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate)).await;
        }
    };
    let lighter = tokio::time::timeout(Duration::from_secs(20), stepped_down)
        .await
        .context("a throttled adaptive viewer got no lighter rendition within 20 s")??;
    assert!(
        lighter.quality < 85 || lighter.width < 640,
        "lighter than the source: {lighter}"
    );
    // The API lists what it is watching while it watches it.
    let info = relay.info("main").await?;
    assert!(!info.renditions.is_empty(), "{:?}", info.renditions);

    // The throttle lifts: it reads as fast as it can, and is sent the source's frames again.
    let back_up = async {
        loop {
            let part = viewer.next_part(T).await?;
            if part.rendition().is_none() {
                let picture = decode_jpeg(&part.body)?;
                return anyhow::Ok((picture.width, picture.height));
            }
        }
    };
    let size = tokio::time::timeout(Duration::from_secs(20), back_up)
        .await
        .context("a fast adaptive viewer did not get the source's frames again within 20 s")??;
    assert_eq!(size, (640, 480));
    Ok(())
}
