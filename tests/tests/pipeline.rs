//! Pipelines: metadata and stage times pushed with frames (`docs/metadata.md`) arrive with the
//! right frame on `.frames?meta=1`, for viewers from the start and viewers joining mid-stream;
//! single requests carry them by header or `multipart/mixed`; bad metadata is a 400 for a
//! single frame and dropped and counted in a long stream, the frame kept; the newest metadata is
//! in the API; stage times survive a relay-to-relay hop.

use std::time::Duration;

use bytes::Bytes;
use mjpeg_relay::http::auth::AccessConfig;
use mjpeg_relay::RelayOptions;
use mjpeg_relay_tests::{long_push, make_jpeg, post, StreamReader, TestRelay};
use mjpeg_shared::api::StreamMeta;
use mjpeg_shared::multipart::Part;

const T: Duration = Duration::from_secs(10);
/// Capture times of the pushed frames: frame i was captured at BASE + i ms.
const BASE: u64 = 1_763_700_000_000_000;

async fn relay(specs: &[&str]) -> anyhow::Result<TestRelay> {
    TestRelay::start_with(
        specs,
        RelayOptions {
            dashboard: mjpeg_relay::http::dashboard::Dashboard::Page,
            access: AccessConfig {
                ingest_token: Some(mjpeg_relay::secret::Secret::new("push").unwrap()),
                ..AccessConfig::default()
            },
            ..RelayOptions::default()
        },
    )
    .await
}

fn ts(micros: u64) -> String {
    mjpeg_shared::wire::format_timestamp(micros)
}

/// Frame `i` of a long push: its JPEG part (capture time and an `inferred` stage 3 ms later)
/// followed, in the same write, by its metadata naming `i`.
fn frame_with_meta(jpeg: &[u8], i: u64, meta: Option<&str>) -> Bytes {
    let captured = BASE + i * 1000;
    let mut out = format!(
        "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}\r\n\
         X-Stage-Inferred: {}\r\n\r\n",
        jpeg.len(),
        ts(captured),
        ts(captured + 3000)
    )
    .into_bytes();
    out.extend_from_slice(jpeg);
    out.extend_from_slice(b"\r\n");
    if let Some(meta) = meta {
        out.extend_from_slice(
            format!(
                "--frame\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{meta}\r\n",
                meta.len()
            )
            .as_bytes(),
        );
    }
    Bytes::from(out)
}

/// Reads `.frames?meta=1` parts until frame `last` came; checks every metadata part names the
/// frame right after it (same `X-Sequence`, and the index its capture time encodes), and that
/// each frame carries the pusher's stage and one `received` per relay it passed (`hops`), in
/// order. Returns how many frames came and how many had metadata (a viewer may skip frames:
/// the newest wins).
async fn read_checked(
    viewer: &mut StreamReader,
    last: u64,
    hops: usize,
) -> anyhow::Result<(usize, usize)> {
    let mut pending: Option<Part> = None;
    let (mut frames, mut with_meta) = (0, 0);
    loop {
        let part = viewer.next_part(T).await?;
        if part.content_type().as_deref() == Some("application/json") {
            anyhow::ensure!(pending.is_none(), "two metadata parts in a row");
            pending = Some(part);
            continue;
        }
        frames += 1;
        let i = (part.timestamp_micros().unwrap() - BASE) / 1000;
        let stages = part.stages();
        let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
        let mut want = vec!["inferred"];
        want.extend(std::iter::repeat_n("received", hops));
        assert_eq!(
            names, want,
            "frame {i}: the pusher's stage, then each relay's receipt"
        );
        assert_eq!(
            stages[0].1,
            BASE + i * 1000 + 3000,
            "frame {i}'s stage time"
        );
        assert!(
            stages[1..].windows(2).all(|w| w[0].1 <= w[1].1),
            "frame {i}: received by each relay in turn: {stages:?}"
        );
        if let Some(meta) = pending.take() {
            assert_eq!(
                meta.sequence(),
                part.sequence(),
                "frame {i}: same X-Sequence"
            );
            let json: serde_json::Value = serde_json::from_slice(&meta.body)?;
            assert_eq!(json["frame"], i, "frame {i} carries its own metadata");
            assert_eq!(
                json["extra"]["kept"], true,
                "unknown fields passed on untouched"
            );
            with_meta += 1;
        } else {
            assert_eq!(
                i % 3,
                0,
                "frame {i} was pushed with metadata and came without"
            );
        }
        if i == last {
            return Ok((frames, with_meta));
        }
    }
}

#[tokio::test]
async fn metadata_arrives_with_its_own_frame_for_every_viewer() -> anyhow::Result<()> {
    let relay = relay(&["cam=push"]).await?;
    let jpeg = make_jpeg(160, 120, 90);
    let first = relay.open("/streams/cam.frames?meta=1").await?;
    let plain = relay.open("/streams/cam.frames").await?;
    let (tx, push) = long_push(&relay, "/streams/cam/ingest", "push").await?;
    let reading = tokio::spawn(async move {
        let mut first = first;
        read_checked(&mut first, 299, 1).await
    });
    // Without meta=1 the wire is as before: no JSON part, stages still there.
    let plain = tokio::spawn(async move {
        let mut plain = plain;
        loop {
            let part = plain.next_part(T).await?;
            assert_eq!(part.content_type().as_deref(), Some("image/jpeg"));
            assert_eq!(part.stages().len(), 2);
            if part.timestamp_micros() == Some(BASE + 299_000) {
                return anyhow::Ok(());
            }
        }
    });
    let mut late = None;
    for i in 0..300u64 {
        // Every third frame without metadata: a frame never borrows another's.
        let meta = (i % 3 != 0).then(|| format!(r#"{{"frame":{i},"extra":{{"kept":true}}}}"#));
        tx.send(frame_with_meta(&jpeg, i, meta.as_deref())).await?;
        if i == 100 {
            let mut viewer = relay.open("/streams/cam.frames?meta=1").await?;
            late = Some(tokio::spawn(async move {
                read_checked(&mut viewer, 299, 1).await
            }));
        }
        // A pusher at about 100 fps: viewers keep up and every frame is seen.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (frames, with_meta) = reading.await??;
    assert!(
        frames >= 150,
        "a viewer from the start saw {frames} of 300 frames"
    );
    assert!(
        with_meta * 3 >= frames * 2 - 3,
        "{with_meta} of {frames} with metadata"
    );
    let (frames, _) = late.unwrap().await??;
    assert!(frames >= 100, "a viewer from frame 100 saw {frames}");
    plain.await??;
    drop(tx);
    assert_eq!(push.await??, 200);
    let newest: StreamMeta = relay.json("/api/streams/cam/meta").await?;
    assert_eq!(newest.meta["frame"], 299);
    assert_eq!(newest.captured_micros, BASE + 299 * 1000);
    assert_eq!(relay.info("cam").await?.meta_dropped, Some(0));
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn single_frames_carry_metadata_by_header_or_multipart_and_bad_metadata_is_refused(
) -> anyhow::Result<()> {
    let relay = relay(&["cam=push?max_meta=2048"]).await?;
    let jpeg = make_jpeg(160, 120, 40);
    let auth = ("Authorization", "Bearer push");
    let none = relay.get("/api/streams/cam/meta").await?;
    assert_eq!(none.status, 404, "{}", none.text());

    // X-Frame-Meta, with stage times from the request's headers.
    let stage = ts(BASE + 5000);
    let r = post(
        relay.addr,
        "/streams/cam/ingest",
        &[
            auth,
            ("Content-Type", "image/jpeg"),
            (
                "X-Frame-Meta",
                r#"{"boxes":[{"x":0.1,"y":0.2,"w":0.3,"h":0.4,"label":"cat"}]}"#,
            ),
            ("X-Timestamp", &ts(BASE)),
            ("X-Stage-Inferred", &stage),
        ],
        jpeg.clone(),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let newest: StreamMeta = relay.json("/api/streams/cam/meta").await?;
    assert_eq!(newest.meta["boxes"][0]["label"], "cat");
    assert_eq!(newest.captured_micros, BASE);
    // Non-ASCII text in the header is JSON like any other.
    let r = post(
        relay.addr,
        "/streams/cam/ingest",
        &[
            auth,
            ("Content-Type", "image/jpeg"),
            ("X-Frame-Meta", r#"{"text":["café"]}"#),
        ],
        jpeg.clone(),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let newest: StreamMeta = relay.json("/api/streams/cam/meta").await?;
    assert_eq!(newest.meta["text"][0], "café");

    // multipart/mixed: the JPEG, then its JSON.
    let mut body = format!(
        "--b\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    )
    .into_bytes();
    body.extend_from_slice(&jpeg);
    body.extend_from_slice(
        b"\r\n--b\r\nContent-Type: application/json\r\n\r\n{\"frame\":7}\r\n--b--\r\n",
    );
    let mixed = [auth, ("Content-Type", "multipart/mixed; boundary=b")];
    let r = post(relay.addr, "/streams/cam/ingest", &mixed, body.clone()).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let newest: StreamMeta = relay.json("/api/streams/cam/meta").await?;
    assert_eq!(newest.meta["frame"], 7);

    // Refused, saying which: not JSON; over the stream's limit; a header over 8 KB.
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4000));
    let huge_header = format!(r#"{{"pad":"{}"}}"#, "x".repeat(9000));
    for (row, headers, body, says) in [
        (
            "X-Frame-Meta that is not JSON",
            vec![
                auth,
                ("Content-Type", "image/jpeg"),
                ("X-Frame-Meta", "{boxes"),
            ],
            jpeg.clone(),
            "not JSON",
        ),
        (
            "X-Frame-Meta over 8 KB",
            vec![
                auth,
                ("Content-Type", "image/jpeg"),
                ("X-Frame-Meta", huge_header.as_str()),
            ],
            jpeg.clone(),
            "8192",
        ),
        (
            "a JSON part over the stream's max_meta",
            mixed.to_vec(),
            String::from_utf8_lossy(&body)
                .replace("{\"frame\":7}", &big)
                .into_bytes(),
            "limit of 2048",
        ),
        (
            "two frames in one multipart/mixed",
            mixed.to_vec(),
            String::from_utf8_lossy(&body)
                .replacen(
                    "--b--",
                    &format!(
                        "--b\r\nContent-Type: image/jpeg\r\n\r\n{}\r\n--b--",
                        String::from_utf8_lossy(&jpeg)
                    ),
                    1,
                )
                .into_bytes(),
            "one frame",
        ),
        (
            "a JSON part that is not JSON",
            mixed.to_vec(),
            String::from_utf8_lossy(&body)
                .replace("{\"frame\":7}", "frame 7")
                .into_bytes(),
            "not JSON",
        ),
    ] {
        let r = post(relay.addr, "/streams/cam/ingest", &headers, body).await?;
        assert_eq!(r.status, 400, "{row}: {}", r.text());
        assert!(r.text().contains(says), "{row}: {}", r.text());
    }
    let unchanged: StreamMeta = relay.json("/api/streams/cam/meta").await?;
    assert_eq!(
        unchanged.meta["frame"], 7,
        "a refused frame changes nothing"
    );

    // In a long stream: the frame is kept, its bad metadata dropped and counted.
    let mut viewer = relay.open("/streams/cam.frames?meta=1").await?;
    let (tx, push) = long_push(&relay, "/streams/cam/ingest", "push").await?;
    tx.send(frame_with_meta(&jpeg, 1, Some("not json"))).await?;
    let part = viewer.next_part(T).await?;
    assert_eq!(
        part.content_type().as_deref(),
        Some("image/jpeg"),
        "the frame, alone"
    );
    assert_eq!(part.timestamp_micros(), Some(BASE + 1000));
    drop(tx);
    assert_eq!(push.await??, 200);
    assert_eq!(relay.info("cam").await?.meta_dropped, Some(1));

    // meta=1 is for .frames only.
    let r = relay.get("/streams/cam.mjpg?meta=1").await?;
    assert_eq!(r.status, 400);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn stage_times_and_metadata_survive_a_relay_to_relay_hop() -> anyhow::Result<()> {
    let origin = relay(&["cam=push"]).await?;
    // The edge reads the origin's `.frames?meta=1`: stages come with every part, metadata with
    // `meta=1`.
    let edge = TestRelay::start(&[&format!(
        "cam=http://{}/streams/cam.frames?meta=1",
        origin.addr
    )])
    .await?;
    let mut viewer = edge.open("/streams/cam.frames?meta=1").await?;
    let (tx, push) = long_push(&origin, "/streams/cam/ingest", "push").await?;
    let jpeg = make_jpeg(160, 120, 20);
    // Frame 0 (no metadata) until the edge's viewer has a part: the edge connects to the
    // origin on demand.
    loop {
        tx.send(frame_with_meta(&jpeg, 0, None)).await?;
        if let Ok(part) =
            tokio::time::timeout(Duration::from_millis(200), viewer.next_part(T)).await
        {
            part?;
            break;
        }
    }
    // The last frame (100) has metadata: a viewer always gets the newest frame, so the edge's
    // API ends on it.
    let reading = tokio::spawn(async move { read_checked(&mut viewer, 100, 2).await });
    for i in 1..=100u64 {
        let meta = (i % 3 != 0).then(|| format!(r#"{{"frame":{i},"extra":{{"kept":true}}}}"#));
        tx.send(frame_with_meta(&jpeg, i, meta.as_deref())).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (frames, with_meta) = reading.await??;
    assert!(frames >= 50, "the edge's viewer saw {frames} of 100 frames");
    assert!(
        with_meta * 3 >= frames * 2 - 3,
        "{with_meta} of {frames} with metadata across the hop"
    );
    let newest: StreamMeta = edge.json("/api/streams/cam/meta").await?;
    assert_eq!(newest.meta["frame"], 100, "the edge's API has it too");
    drop(tx);
    push.await??;
    edge.stop().await?;
    origin.stop().await?;
    Ok(())
}

/// A smooth 320x240 picture (a gradient), so that a second JPEG generation stays close to it.
fn gradient_jpeg() -> Vec<u8> {
    let (w, h) = (320usize, 240usize);
    let rgb: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [(x * 255 / w) as u8, (y * 255 / h) as u8, 128]
        })
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// Mean absolute difference of two decoded pictures over a rectangle.
fn mean_diff(
    a: &mjpeg_relay_tests::Decoded,
    b: &mjpeg_relay_tests::Decoded,
    rect: (usize, usize, usize, usize),
) -> f64 {
    let (x0, y0, w, h) = rect;
    let mut sum = 0u64;
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            for c in 0..3 {
                let i = (y * a.width + x) * 3 + c;
                sum += u64::from(a.rgb[i].abs_diff(b.rgb[i]));
            }
        }
    }
    sum as f64 / (w * h * 3) as f64
}

/// `overlay=1`: the boxes drawn into the JPEG for `<img>` pages, on `.mjpg` and `.jpg`; pixels
/// change on the box and not elsewhere; rendered once per frame however many viewers ask, and
/// never while nobody asks.
#[tokio::test]
async fn overlay_draws_the_boxes_once_per_frame_for_every_viewer() -> anyhow::Result<()> {
    use mjpeg_relay_tests::decode_jpeg;
    let relay = relay(&["cam=push"]).await?;
    let jpeg = gradient_jpeg();
    let plain = decode_jpeg(&jpeg)?;
    let meta = r##"{"boxes":[{"x":0.25,"y":0.25,"w":0.5,"h":0.5,"color":"#ff0000","label":"cat","score":0.9}]}"##;
    let mut watcher = relay.open("/streams/cam.mjpg?layout=strict").await?;
    let (tx, push) = long_push(&relay, "/streams/cam/ingest", "push").await?;
    for i in 0..3 {
        tx.send(frame_with_meta(&jpeg, i, Some(meta))).await?;
        watcher.next_part(T).await?;
    }
    assert_eq!(
        relay.info("cam").await?.overlays_rendered,
        0,
        "nobody asked for the overlay"
    );
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(
            relay
                .open("/streams/cam.mjpg?overlay=1&layout=strict")
                .await?,
        );
    }
    let produced_before = relay.info("cam").await?.frames_produced;
    for i in 3..23 {
        tx.send(frame_with_meta(&jpeg, i, Some(meta))).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for viewer in &mut viewers {
        let part = viewer.next_part(T).await?;
        let drawn = decode_jpeg(&part.body)?;
        assert_eq!((drawn.width, drawn.height), (320, 240));
        // The box's left edge (x = 80) is red now; inside the box and outside it, the picture
        // is what it was, give or take a second JPEG generation.
        let edge = &drawn.rgb[(120 * 320 + 81) * 3..][..3];
        assert!(
            edge[0] > 180 && edge[1] < 90 && edge[2] < 90,
            "box edge {edge:?}"
        );
        assert!(
            mean_diff(&drawn, &plain, (78, 100, 6, 40)) > 40.0,
            "the edge changed"
        );
        for rect in [(10, 10, 40, 40), (130, 130, 60, 40), (270, 190, 40, 40)] {
            let d = mean_diff(&drawn, &plain, rect);
            assert!(d < 4.0, "{rect:?} changed by {d:.1} on average");
        }
    }
    let info = relay.info("cam").await?;
    let rendered = info.overlays_rendered;
    let frames = info.frames_produced - produced_before;
    assert!(
        (1..=frames + 1).contains(&rendered),
        "{rendered} renders for {frames} frames and 3 viewers: once per frame"
    );
    // The snapshot too, and not on .frames (meta=1 there).
    let snap = relay.get("/streams/cam.jpg?overlay=1").await?;
    let drawn = decode_jpeg(&snap.body)?;
    assert!(mean_diff(&drawn, &plain, (78, 100, 6, 40)) > 40.0);
    assert_eq!(
        relay.get("/streams/cam.frames?overlay=1").await?.status,
        400
    );
    drop(tx);
    push.await??;
    relay.stop().await?;
    Ok(())
}
