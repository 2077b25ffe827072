//! The camera source against fake devices (there is no camera on these machines), and the real
//! nokhwa path up to the error this machine gives.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mjpeg_relay::RelayOptions;
use mjpeg_relay_tests::camera::{encode, has_huffman_tables, FakeBackend, FakeCamera, FakeKind};
use mjpeg_relay_tests::{decode_jpeg, eventually, RelayProcess, StreamReader, TestRelay};
use mjpeg_shared::api::StreamInfo;
use mjpeg_shared::stamp;

/// How long a test waits for a particular kind of part.
const WITHIN: Duration = Duration::from_secs(10);
const T: Duration = Duration::from_secs(5);

async fn relay_with(cam: &Arc<FakeCamera>, specs: &[&str]) -> anyhow::Result<TestRelay> {
    let options = RelayOptions {
        cameras: Arc::new(FakeBackend(cam.clone())),
        ..RelayOptions::default()
    };
    TestRelay::start_with(specs, options).await
}

/// The fake's read number painted in a served frame, or None for a picture without a stamp
/// (NO SIGNAL).
fn stamp_of(jpeg: &[u8]) -> Option<u32> {
    let img = decode_jpeg(jpeg).ok()?;
    stamp::decode(&img.rgb, img.width, img.height, 3).map(|s| s.seq)
}

#[tokio::test]
async fn mjpeg_without_huffman_tables_is_served_decodable_and_unchanged() -> anyhow::Result<()> {
    let cam = FakeCamera::new(FakeKind::MjpegWithoutHuffman, 320, 240, 20);
    let relay = relay_with(&cam, &["cam=camera"]).await?;
    let mut viewer = relay.open("/streams/cam.frames").await?;
    for _ in 0..5 {
        let part = viewer.next_part(T).await?;
        assert!(
            has_huffman_tables(&part.body),
            "the relay inserted the standard tables"
        );
        // Strictly decodable, and the same picture as the camera's frame with standard tables.
        let served = decode_jpeg(&part.body)?;
        let n = stamp::decode(&served.rgb, served.width, served.height, 3)
            .expect("stamp")
            .seq;
        let original = decode_jpeg(&encode(&cam.picture(n), 320, 240))?;
        assert_eq!(
            served.rgb, original.rgb,
            "frame {n}: pixels unchanged by the insertion"
        );
    }
    let info = relay.info("cam").await?;
    assert_eq!(info.kind, "camera");
    assert_eq!(info.device.as_deref(), Some("Fake Camera"));
    assert_eq!(info.format.as_deref(), Some("mjpeg 320x240 @ 20 fps"));
    assert_eq!((info.width, info.height), (Some(320), Some(240)));
    assert!(info.last_error.is_none(), "{info:?}");
    // The measured capture rate (a 20 fps camera), once a second's worth has been counted.
    let fps = eventually(T, || async { Ok(relay.info("cam").await?.capture_fps) }).await?;
    assert!((15.0..=25.0).contains(&fps), "capture_fps {fps}");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn raw_yuyv_is_encoded_once_per_frame_however_many_viewers() -> anyhow::Result<()> {
    let cam = FakeCamera::new(FakeKind::Yuyv, 320, 240, 15);
    let relay = relay_with(&cam, &["cam=camera?quality=70"]).await?;
    let mut viewers = Vec::new();
    for _ in 0..4 {
        viewers.push(relay.open("/streams/cam.frames").await?);
    }
    // Every viewer gets the very same bytes for a frame: one encoding, shared.
    let mut by_seq = std::collections::HashMap::new();
    for v in &mut viewers {
        for _ in 0..6 {
            let part = v.next_part(T).await?;
            let seq = part.sequence().unwrap();
            let prev = by_seq.entry(seq).or_insert_with(|| part.body.clone());
            assert_eq!(prev, &part.body, "frame {seq} differs between viewers");
            let img = decode_jpeg(&part.body)?;
            assert_eq!((img.width, img.height), (320, 240));
            // Left half light, right half dark, as the camera saw it (not mirrored).
            let at = |x: usize, y: usize| img.rgb[(y * 320 + x) * 3] as i32;
            assert!(at(60, 200) > at(260, 200) + 100, "picture as captured");
        }
    }
    // The relay produced at most one frame per camera read, whatever the number of viewers.
    let produced = relay.info("cam").await?.frames_produced;
    assert!(
        produced <= cam.reads.load(Ordering::SeqCst),
        "{produced} frames from {} reads",
        cam.reads.load(Ordering::SeqCst)
    );
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn mirror_flips_raw_and_mjpeg_frames() -> anyhow::Result<()> {
    for kind in [FakeKind::Yuyv, FakeKind::MjpegWithoutHuffman] {
        let cam = FakeCamera::new(kind, 320, 240, 15);
        let relay = relay_with(&cam, &["cam=camera?mirror=1"]).await?;
        let mut viewer = relay.open("/streams/cam.frames").await?;
        let img = decode_jpeg(&viewer.next_part(T).await?.body)?;
        let at = |x: usize, y: usize| img.rgb[(y * 320 + x) * 3] as i32;
        assert!(
            at(260, 200) > at(60, 200) + 100,
            "{kind:?}: the light half is now on the right"
        );
        relay.stop().await?;
    }
    Ok(())
}

#[tokio::test]
async fn unplug_shows_no_signal_and_replug_resumes_without_reconnecting() -> anyhow::Result<()> {
    let cam = FakeCamera::new(FakeKind::MjpegWithoutHuffman, 320, 240, 20);
    let relay = relay_with(&cam, &["cam=camera", "other=test?size=160x120&fps=10"]).await?;
    let mut viewer = relay.open("/streams/cam.frames").await?;
    let mut other = relay.open("/streams/other.frames").await?;
    let before = stamp_of(&viewer.next_part(T).await?.body).expect("live frames first");

    cam.set_present(false);
    // The same connection now gets NO SIGNAL pictures, about once a second.
    let part = viewer
        .next_where(WITHIN, |jpeg| stamp_of(jpeg).is_none())
        .await?;
    let img = decode_jpeg(&part.body)?;
    assert_eq!(
        (img.width, img.height),
        (320, 240),
        "NO SIGNAL keeps the camera's size"
    );
    let t0 = tokio::time::Instant::now();
    let next = viewer.next_part(T).await?;
    assert!(stamp_of(&next.body).is_none());
    let gap = t0.elapsed();
    assert!(
        gap > Duration::from_millis(500) && gap < Duration::from_millis(1600),
        "NO SIGNAL every ~1 s, got {gap:?}"
    );
    let info = relay.info("cam").await?;
    let err = info.last_error.as_deref().unwrap_or_default();
    assert!(err.contains("fake unplugged"), "the API says why: {info:?}");
    // Other streams are not disturbed.
    for _ in 0..5 {
        other.next_part(T).await?;
    }

    cam.set_present(true);
    let back = viewer
        .next_where(WITHIN, |jpeg| stamp_of(jpeg).is_some())
        .await?;
    assert!(
        stamp_of(&back.body).unwrap() > before,
        "new live frames on the same connection, not old ones"
    );
    let info = relay.info("cam").await?;
    assert!(info.last_error.is_none(), "{info:?}");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_stalled_camera_shows_no_signal_and_does_not_hold_anything_up() -> anyhow::Result<()> {
    let cam = FakeCamera::new(FakeKind::Yuyv, 320, 240, 20);
    let relay = relay_with(&cam, &["cam=camera", "other=test?size=160x120&fps=10"]).await?;
    let mut viewer = relay.open("/streams/cam.frames").await?;
    viewer.next_part(T).await?;
    cam.set_stalled(true);
    let part = viewer
        .next_where(WITHIN, |jpeg| stamp_of(jpeg).is_none())
        .await?;
    decode_jpeg(&part.body)?;
    let info = relay.info("cam").await?;
    assert!(
        info.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("no frame from"),
        "API says it stalled: {info:?}"
    );
    assert!(
        info.capture_fps.is_none(),
        "no capture rate while stalled: {info:?}"
    );
    let mut other = relay.open("/streams/other.frames").await?;
    other.next_part(T).await?;
    // Shutdown does not wait for the read stuck in the "driver".
    let took = relay.stop().await?;
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    cam.set_stalled(false);
    Ok(())
}

#[tokio::test]
async fn the_camera_opens_for_viewers_and_closes_when_they_are_gone() -> anyhow::Result<()> {
    let cam = FakeCamera::new(FakeKind::MjpegWithoutHuffman, 320, 240, 20);
    let relay = relay_with(&cam, &["cam=camera?idle=1"]).await?;
    // Deliberately idle for 300 ms: a relay that opened the camera at startup would have by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        cam.opens.load(Ordering::SeqCst),
        0,
        "no viewer, camera untouched"
    );

    let mut viewer = relay.open("/streams/cam.mjpg").await?;
    viewer.next_part(T).await?;
    let mut second = relay.open("/streams/cam.mjpg").await?;
    second.next_part(T).await?;
    assert_eq!(
        cam.opens.load(Ordering::SeqCst),
        1,
        "opened once for every viewer"
    );
    drop((viewer, second));
    eventually(Duration::from_secs(5), || async {
        Ok((cam.open_now.load(Ordering::SeqCst) == 0).then_some(()))
    })
    .await?;

    let mut viewer = relay.open("/streams/cam.mjpg").await?;
    viewer.next_part(T).await?;
    assert_eq!(
        cam.opens.load(Ordering::SeqCst),
        2,
        "the next viewer reopened it"
    );
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn shutdown_releases_the_camera() -> anyhow::Result<()> {
    let cam = FakeCamera::new(FakeKind::Yuyv, 320, 240, 20);
    // An idle close an hour away: only shutdown can release it within the test.
    let relay = relay_with(&cam, &["cam=camera?idle=3600"]).await?;
    let mut viewer = relay.open("/streams/cam.mjpg").await?;
    viewer.next_part(T).await?;
    drop(viewer);
    assert_eq!(cam.open_now.load(Ordering::SeqCst), 1);
    relay.stop().await?;
    eventually(Duration::from_secs(3), || async {
        Ok((cam.open_now.load(Ordering::SeqCst) == 0).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_camera_missing_at_startup_shows_no_signal_then_goes_live_when_plugged_in(
) -> anyhow::Result<()> {
    let cam = FakeCamera::new(FakeKind::MjpegWithoutHuffman, 320, 240, 20);
    cam.set_present(false);
    let relay = relay_with(&cam, &["cam=camera?size=320x240"]).await?;
    let mut viewer = relay.open("/streams/cam.frames").await?;
    let part = viewer.next_part(Duration::from_secs(8)).await?;
    assert!(
        stamp_of(&part.body).is_none(),
        "NO SIGNAL while the camera is missing"
    );
    let img = decode_jpeg(&part.body)?;
    assert_eq!(
        (img.width, img.height),
        (320, 240),
        "NO SIGNAL at the requested size"
    );
    cam.set_present(true);
    viewer
        .next_where(WITHIN, |jpeg| stamp_of(jpeg).is_some())
        .await?;
    let info = relay.info("cam").await?;
    assert!(info.last_error.is_none(), "{info:?}");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn require_camera_refuses_to_start_without_the_device() -> anyhow::Result<()> {
    let cam = FakeCamera::new(FakeKind::Yuyv, 320, 240, 20);
    cam.set_present(false);
    let options = RelayOptions {
        cameras: Arc::new(FakeBackend(cam.clone())),
        require_camera: true,
        ..RelayOptions::default()
    };
    let err = TestRelay::start_with(&["cam=camera:0"], options)
        .await
        .err()
        .expect("startup fails")
        .to_string();
    assert!(
        err.contains("camera 0") && err.contains("fake unplugged"),
        "{err}"
    );
    Ok(())
}

// The real nokhwa path, up to the error this machine gives (it has no /dev/video*).

fn relay_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mjpeg-relay-under-test"));
    cmd.stdin(Stdio::null());
    cmd
}

fn no_cameras_here() -> bool {
    !std::path::Path::new("/dev/video0").exists()
}

#[test]
fn cameras_subcommand_says_none_was_found() {
    if !no_cameras_here() {
        return;
    }
    let out = relay_cmd().arg("cameras").output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No camera found"),
        "{out:?}"
    );
}

#[test]
fn require_camera_without_a_device_exits_naming_it() {
    if !no_cameras_here() {
        return;
    }
    let out = relay_cmd()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--require-camera",
            "--stream",
            "cam=camera:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("camera 0") && err.contains("\"cam\""), "{err}");
}

#[tokio::test]
async fn a_missing_real_camera_serves_no_signal_naming_the_device() -> anyhow::Result<()> {
    if !no_cameras_here() {
        return Ok(());
    }
    let mut cmd = relay_cmd();
    cmd.args(["--listen", "127.0.0.1:0", "--stream", "cam=camera:0"]);
    let process = RelayProcess::spawn(cmd)?;
    let addr = process.addr;
    {
        let mut viewer = StreamReader::open(addr, "/streams/cam.frames", None).await?;
        let part = viewer.next_part(T).await?;
        let img = decode_jpeg(&part.body)?;
        assert!(
            stamp::decode(&img.rgb, img.width, img.height, 3).is_none(),
            "a NO SIGNAL picture"
        );
        let info: StreamInfo = mjpeg_relay_tests::get(addr, "/api/streams/cam")
            .await?
            .json()?;
        let err = info.last_error.as_deref().unwrap_or_default();
        assert!(
            err.contains("camera 0"),
            "the API names the device: {info:?}"
        );
    }
    Ok(())
}
