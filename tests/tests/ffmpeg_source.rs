//! The ffmpeg source: a video the test makes with ffmpeg, played as a live stream through an
//! ffmpeg child process that runs only while someone watches and never outlives the relay.

use std::process::{Command, Stdio};
use std::time::Duration;

use mjpeg_relay_tests::{decode_jpeg, eventually, RelayProcess, TestRelay};

const T: Duration = Duration::from_secs(10);

/// A 2-second 160x120 video at 10 fps, made by ffmpeg.
fn make_video(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=2:size=160x120:rate=10",
        ])
        .args(["-c:v", "mpeg4", "-y"])
        .arg(&path)
        .status()
        .expect("ffmpeg is installed by scripts/setup.sh");
    assert!(status.success());
    path
}

/// ffmpeg processes whose command line mentions `needle`.
fn ffmpeg_children(needle: &str) -> usize {
    let out = Command::new("pgrep")
        .args(["-f", &format!("ffmpeg .*{needle}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test]
async fn a_video_file_plays_as_a_looping_live_stream_while_watched() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let video = make_video(dir.path());
    let spec = format!("clip=ffmpeg:{}?size=320x240", video.display());
    let relay = TestRelay::start(&[&spec]).await?;
    let needle = video.display().to_string();
    assert_eq!(ffmpeg_children(&needle), 0, "no viewer, no ffmpeg");

    let mut viewer = relay.open("/streams/clip.frames").await?;
    let started = tokio::time::Instant::now();
    let mut frames = 0;
    // 2.5 s of a 2 s video at 10 fps: it loops instead of ending, at real time.
    while started.elapsed() < Duration::from_millis(2500) {
        let part = viewer.next_part(T).await?;
        let img = decode_jpeg(&part.body)?;
        assert_eq!((img.width, img.height), (320, 240), "scaled as asked");
        frames += 1;
    }
    assert!(
        (20..=32).contains(&frames),
        "{frames} frames in 2.5 s of a 10 fps video played at real time"
    );
    assert_eq!(ffmpeg_children(&needle), 1, "one ffmpeg for the stream");

    drop(viewer);
    eventually(T, || async {
        Ok((ffmpeg_children(&needle) == 0).then_some(()))
    })
    .await?;
    // Watching again starts it again.
    let mut viewer = relay.open("/streams/clip.frames").await?;
    viewer.next_part(T).await?;
    relay.stop().await?;
    eventually(T, || async {
        Ok((ffmpeg_children(&needle) == 0).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn ffmpeg_does_not_outlive_a_killed_relay() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let video = make_video(dir.path());
    let needle = video.display().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mjpeg-relay-under-test"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--stream",
        &format!("clip=ffmpeg:{needle}"),
    ]);
    let mut relay = RelayProcess::spawn(cmd)?;
    let mut viewer =
        mjpeg_relay_tests::StreamReader::open(relay.addr, "/streams/clip.frames", None).await?;
    viewer.next_part(T).await?;
    assert_eq!(ffmpeg_children(&needle), 1);
    relay.child.kill()?; // SIGKILL: no cleanup code runs
    relay.child.wait()?;
    eventually(T, || async {
        Ok((ffmpeg_children(&needle) == 0).then_some(()))
    })
    .await?;
    Ok(())
}

#[test]
fn without_ffmpeg_the_relay_says_which_package_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("clip.mp4");
    std::fs::write(&video, b"not really a video").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mjpeg-relay-under-test"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--stream",
            &format!("clip=ffmpeg:{}", video.display()),
        ])
        .env("MJPEG_RELAY_FFMPEG", "/nonexistent/ffmpeg")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("apt-get install ffmpeg") && err.contains("\"clip\""),
        "{err}"
    );
}

#[tokio::test]
async fn rtsp_credentials_never_show_even_in_ffmpegs_own_errors() -> anyhow::Result<()> {
    // Nothing listens on port 1: ffmpeg fails, and its error line quotes the input.
    let relay =
        TestRelay::start(&["cam=ffmpeg:rtsp://admin:Sup3rSecret@127.0.0.1:1/stream"]).await?;
    let mut viewer = relay.open("/streams/cam.frames").await?;
    let _ = tokio::time::timeout(Duration::from_secs(3), viewer.next_part(T)).await;
    let info = eventually(T, || async {
        let info = relay.json("/api/streams/cam").await?;
        Ok(info["last_error"].is_string().then_some(info))
    })
    .await?;
    let text = info.to_string();
    assert!(
        !text.contains("Sup3rSecret") && !text.contains("admin:"),
        "{text}"
    );
    assert!(
        info["source"]
            .as_str()
            .unwrap()
            .starts_with("ffmpeg:rtsp://127.0.0.1:1/stream"),
        "{info}"
    );
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn loop_zero_plays_a_file_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let video = make_video(dir.path());
    let relay = TestRelay::start(&[&format!("clip=ffmpeg:{}?loop=0", video.display())]).await?;
    let mut viewer = relay.open("/streams/clip.frames").await?;
    viewer.next_part(T).await?;
    // The 2 s video ends; nothing restarts it while this viewer stays.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let info = relay.json("/api/streams/clip").await?;
    let produced = info["frames_produced"].as_u64().unwrap();
    assert!(
        (15..=22).contains(&produced),
        "played once: {produced} frames of a 20-frame video"
    );
    assert!(
        info["last_error"].is_null(),
        "ending as asked is not an error: {info}"
    );
    relay.stop().await?;
    Ok(())
}
