//! Viewers against the real relay: every frame for those who keep up, skipping for those who do
//! not, both layouts and the fetch variant through the shared parser, pixels that match headers.

use std::time::Duration;

use mjpeg_relay_tests::{decode_jpeg, jpeg_dir, now_micros, StreamReader, TestRelay};
use mjpeg_shared::api::Health;
use mjpeg_shared::stamp;

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn viewers_that_keep_up_get_every_frame_in_order_as_valid_jpegs() -> anyhow::Result<()> {
    // 10 fps leaves each reader 100 ms per frame: keeping up is certain even on a loaded CI box.
    let relay = TestRelay::start(&["main=test?size=320x240&fps=10"]).await?;
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(relay.open("/streams/main.frames").await?);
    }
    // All three read at once: one that stops reading is behind, and the relay rightly sends it
    // frames just in time, skipping the ones its link could not have carried fresh.
    let reads = viewers.into_iter().map(|mut viewer| async move {
        let mut last: Option<u64> = None;
        for _ in 0..15 {
            let part = viewer.next_part(T).await?;
            let seq = part.sequence().expect("X-Sequence on every part");
            let ts = part.timestamp_micros().expect("X-Timestamp on every part");
            let len: usize = part
                .header("Content-Length")
                .expect("Content-Length")
                .parse()?;
            assert_eq!(len, part.body.len());
            if let Some(last) = last {
                assert_eq!(
                    seq,
                    last + 1,
                    "a viewer that keeps up gets every frame, in order"
                );
            }
            last = Some(seq);
            // The picture is the frame the headers describe: its stamp carries the same numbers.
            let img = decode_jpeg(&part.body)?;
            assert_eq!((img.width, img.height), (320, 240));
            let s = stamp::decode(&img.rgb, img.width, img.height, 3).expect("stamp decodes");
            assert_eq!(u64::from(s.seq), seq);
            assert_eq!(s.capture_micros, ts);
            assert!(ts <= now_micros(), "captured in the past");
        }
        anyhow::Ok(())
    });
    for read in futures_util::future::join_all(reads).await {
        read?;
    }
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn classic_layouts_parse_and_carry_what_they_promise() -> anyhow::Result<()> {
    let relay = TestRelay::start(&["main=test?size=320x240&fps=30"]).await?;

    let mut advance = relay.open("/streams/main.mjpg").await?;
    assert_eq!(
        advance.headers["content-type"],
        "multipart/x-mixed-replace; boundary=mjpegrelayframe"
    );
    for _ in 0..5 {
        let part = advance.next_part(T).await?;
        assert_eq!(part.header("Content-Type"), Some("image/jpeg"));
        assert_eq!(
            part.header("Content-Length"),
            None,
            "advance headers cannot know the length"
        );
        decode_jpeg(&part.body)?;
    }

    let mut strict = relay.open("/streams/main.mjpg?layout=strict").await?;
    let mut last = 0;
    for _ in 0..5 {
        let part = strict.next_part(T).await?;
        let len: usize = part
            .header("Content-Length")
            .expect("strict: Content-Length")
            .parse()?;
        assert_eq!(len, part.body.len());
        let ts = part.timestamp_micros().expect("strict: X-Timestamp");
        assert!(part.sequence().is_some(), "strict: X-Sequence");
        assert!(ts > last);
        last = ts;
        decode_jpeg(&part.body)?;
    }
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_frame_is_complete_on_the_wire_as_soon_as_it_is_sent() -> anyhow::Result<()> {
    // At 1 fps, a frame that only became parseable when the next one arrived would show up a
    // whole second late. Each layout must deliver the frame with no help from its successor.
    let relay = TestRelay::start(&["main=test?size=320x240&fps=1"]).await?;
    for path in [
        "/streams/main.frames",
        "/streams/main.mjpg",
        "/streams/main.mjpg?layout=strict",
    ] {
        let mut viewer = relay.open(path).await?;
        viewer.next_part(Duration::from_secs(3)).await?;
        let part = viewer.next_part(Duration::from_secs(3)).await?;
        // Captured at most ~1 s ago: waiting for the following frame would make it >= 1 s old.
        let newest = relay.info("main").await?.last_seq.expect("last_seq");
        let img = decode_jpeg(&part.body)?;
        let s = stamp::decode(&img.rgb, img.width, img.height, 3).expect("stamp");
        assert_eq!(
            u64::from(s.seq),
            newest,
            "{path}: the part read is the newest frame, not the one before"
        );
    }
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_slow_viewer_skips_frames_and_does_not_slow_the_others() -> anyhow::Result<()> {
    let relay = TestRelay::start(&["main=test?size=640x480&fps=20"]).await?;
    // A viewer whose link carries ~100 KB/s: a small receive buffer and a paced reader.
    let mut slow = StreamReader::open(relay.addr, "/streams/main.frames", Some(4096)).await?;
    let mut fast = Vec::new();
    for _ in 0..5 {
        fast.push(relay.open("/streams/main.frames").await?);
    }
    let slow_task = tokio::spawn(async move {
        let rate = 100_000.0; // bytes per second
        let mut ages = Vec::new();
        let mut seqs = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
        while tokio::time::Instant::now() < deadline {
            let (n, parts) = slow.read_chunk(T).await?;
            if n == 0 {
                break;
            }
            for p in parts {
                ages.push(now_micros().saturating_sub(p.timestamp_micros().unwrap()));
                seqs.push(p.sequence().unwrap());
            }
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate)).await;
        }
        anyhow::Ok((ages, seqs))
    });
    // Meanwhile the fast viewers, each reading as fast as it can, get every frame for 4 s.
    let fast_tasks: Vec<_> = fast
        .into_iter()
        .map(|mut viewer| {
            tokio::spawn(async move {
                let mut last = viewer.next_part(T).await?.sequence().unwrap();
                for _ in 0..79 {
                    let seq = viewer.next_part(T).await?.sequence().unwrap();
                    anyhow::ensure!(
                        seq == last + 1,
                        "fast viewer skipped from {last} to {seq} while one viewer is slow"
                    );
                    last = seq;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in fast_tasks {
        task.await??;
    }
    let (ages, seqs) = slow_task.await??;
    assert!(
        seqs.len() >= 4,
        "the slow viewer still gets frames: {seqs:?}"
    );
    let skipped = seqs.windows(2).filter(|w| w[1] > w[0] + 1).count();
    assert!(
        skipped > 0,
        "the slow viewer skips frames instead of queueing them: {seqs:?}"
    );
    // Skip the first frame (sent before the link was known to be slow); after that, what it
    // sees is never much older than the time to carry one ~45 KB frame over its link.
    let worst = ages.iter().skip(1).max().copied().unwrap_or(0);
    assert!(
        worst < 1_000_000,
        "slow viewer saw a frame {} ms old (ages {ages:?})",
        worst / 1000
    );
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_new_viewer_gets_the_current_frame_at_once() -> anyhow::Result<()> {
    // At 1 fps the next frame is up to a second away; a joining viewer must not wait for it.
    let relay = TestRelay::start(&["main=test?size=320x240&fps=1"]).await?;
    let mut first = relay.open("/streams/main.frames").await?;
    first.next_part(T).await?;
    let started = tokio::time::Instant::now();
    let mut second = relay.open("/streams/main.frames").await?;
    let part = second.next_part(T).await?;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "joining viewer waited {:?} for its first frame",
        started.elapsed()
    );
    assert_eq!(part.sequence(), relay.info("main").await?.last_seq);
    assert!(part.sequence().is_some());
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn fps_cap_limits_one_viewer_only() -> anyhow::Result<()> {
    let relay = TestRelay::start(&["main=test?size=320x240&fps=20"]).await?;
    let mut capped = relay.open("/streams/main.frames?fps=4").await?;
    let mut full = relay.open("/streams/main.frames").await?;
    let first = capped.next_part(T).await?.sequence().unwrap();
    let mut last = first;
    let mut full_count = 0;
    let start = tokio::time::Instant::now();
    for _ in 0..4 {
        last = capped.next_part(T).await?.sequence().unwrap();
    }
    let elapsed = start.elapsed();
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(1), full.next_part(T)).await {
        full_count += 1;
    }
    // 4 frames at 4 fps take about a second; source frames in between are skipped, not queued.
    assert!(
        elapsed >= Duration::from_millis(900),
        "capped viewer got 4 frames in {elapsed:?}"
    );
    assert!(
        last - first >= 12,
        "capped viewer skips source frames: {first}..{last}"
    );
    assert!(
        full_count >= 10,
        "uncapped viewer kept its rate: {full_count} frames buffered"
    );
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn files_are_served_byte_for_byte_in_name_order() -> anyhow::Result<()> {
    let (dir, files) = jpeg_dir(3)?;
    std::fs::write(dir.path().join("notes.txt"), "not a jpeg")?;
    let spec = format!("clip=files:{}?fps=10", dir.path().display());
    let relay = TestRelay::start(&[&spec]).await?;
    let mut viewer = relay.open("/streams/clip.frames").await?;
    let mut bodies = Vec::new();
    for _ in 0..6 {
        bodies.push(viewer.next_part(T).await?.body);
    }
    let start = files
        .iter()
        .position(|f| f[..] == bodies[0][..])
        .expect("first part is one of the files");
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(
            &body[..],
            &files[(start + i) % files.len()][..],
            "part {i} is the next file, unchanged"
        );
    }
    let info = relay.info("clip").await?;
    assert_eq!(info.kind, "files");
    assert_eq!(info.width, Some(160));
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_folder_without_jpegs_is_a_startup_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("a.txt"), "text")?;
    let spec = format!("clip=files:{}", dir.path().display());
    let err = TestRelay::start(&[&spec])
        .await
        .err()
        .expect("startup fails")
        .to_string();
    assert!(err.contains("no JPEG files"), "{err}");
    assert!(err.contains("clip"), "names the stream: {err}");
    Ok(())
}

#[tokio::test]
async fn shutdown_ends_every_stream_promptly() -> anyhow::Result<()> {
    let relay = TestRelay::start(&["main=test?size=320x240&fps=30"]).await?;
    let mut viewers = Vec::new();
    for path in [
        "/streams/main.mjpg",
        "/streams/main.frames",
        "/streams/main.mjpg?layout=strict",
    ] {
        let mut v = relay.open(path).await?;
        v.next_part(T).await?;
        viewers.push(v);
    }
    let took = relay.stop().await?;
    assert!(
        took < Duration::from_secs(2),
        "shutdown took {took:?} with viewers connected"
    );
    for mut v in viewers {
        // Drain what was in flight; then the stream must end, not hang.
        let mut parts = 0;
        while v.next_part_or_end(Duration::from_secs(2)).await?.is_some() {
            parts += 1;
            assert!(parts < 100, "stream keeps going after shutdown");
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_failing_source_is_reported_never_shown_as_live_and_recovers_for_connected_viewers(
) -> anyhow::Result<()> {
    let (dir, files) = jpeg_dir(2)?;
    let spec = format!("clip=files:{}?fps=20", dir.path().display());
    let relay = TestRelay::start(&[&spec]).await?;
    let mut viewer = relay.open("/streams/clip.frames").await?;
    let before = viewer.next_part(T).await?.sequence().unwrap();

    // The folder empties (a disk unmounted, a camera gone): the source fails.
    for i in 0..files.len() {
        std::fs::remove_file(dir.path().join(format!("frame-{i:03}.jpg")))?;
    }
    let error =
        mjpeg_relay_tests::eventually(T, || async { Ok(relay.info("clip").await?.last_error) })
            .await?;
    assert!(error.contains("could be read"), "the API says why: {error}");
    // The server stays up, and the last good picture is not handed out as current.
    assert_eq!(relay.json::<Health>("/healthz").await?.status, "ok");
    let snapshot = relay.get("/streams/clip.jpg").await?;
    assert_eq!(
        snapshot.status,
        504,
        "snapshot of a failing source: {}",
        snapshot.text()
    );
    assert!(
        snapshot.error()?.contains("could be read"),
        "names the cause: {}",
        snapshot.text()
    );
    let mut newcomer = relay.open("/streams/clip.frames").await?;
    assert!(
        newcomer
            .next_part(Duration::from_millis(500))
            .await
            .is_err(),
        "a new viewer must not be shown the stale frame as live"
    );

    // The files come back: the viewer that stayed connected gets live frames again.
    for (i, data) in files.iter().enumerate() {
        std::fs::write(dir.path().join(format!("frame-{i:03}.jpg")), data)?;
    }
    let after = viewer.next_part(Duration::from_secs(10)).await?;
    assert!(after.sequence().unwrap() > before);
    assert!(files.iter().any(|f| f[..] == after.body[..]));
    newcomer.next_part(Duration::from_secs(10)).await?;
    let info = relay.info("clip").await?;
    assert!(info.last_error.is_none(), "{info:?}");
    relay.stop().await?;
    Ok(())
}
