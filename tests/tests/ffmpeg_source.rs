//! The ffmpeg source: a video the test makes with ffmpeg, played as a live stream through one
//! ffmpeg child process that runs while someone watches (and `linger` after), is reused by
//! snapshots and returning viewers, and never outlives the relay.

use std::process::{Command, Stdio};
use std::time::Duration;

use mjpeg_relay_tests::{decode_jpeg, eventually, metric_sample, RelayProcess, TestRelay};

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
    // linger=0: ffmpeg stops about a second after the last viewer (the default is 10 s).
    let spec = format!("clip=ffmpeg:{}?size=320x240&linger=0", video.display());
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
        let info = relay.info("cam").await?;
        Ok(info.last_error.is_some().then_some(info))
    })
    .await?;
    // The raw text, on purpose: no field at all (the error included) may hold the credentials.
    let text = relay.get("/api/streams/cam").await?.text();
    assert!(text.contains("last_error"), "{text}");
    assert!(
        !text.contains("Sup3rSecret") && !text.contains("admin:"),
        "{text}"
    );
    let error = info.last_error.as_deref().unwrap_or_default();
    assert!(
        !error.contains("Sup3rSecret") && !error.contains("admin:"),
        "{error}"
    );
    assert!(
        info.source
            .starts_with("ffmpeg:rtsp://***@127.0.0.1:1/stream"),
        "{info:?}"
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
    // The 2 s video ends; nothing restarts it while this viewer stays. A deliberate 3.5 s
    // (the video and 1.5 s more): a source that looped or respawned ffmpeg would add frames
    // over it, which no poll could show.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let info = relay.info("clip").await?;
    let produced = info.frames_produced;
    assert!(
        (15..=22).contains(&produced),
        "played once: {produced} frames of a 20-frame video"
    );
    assert!(
        info.last_error.is_none(),
        "ending as asked is not an error: {info:?}"
    );
    relay.stop().await?;
    Ok(())
}

/// True for the relay's NO SIGNAL picture: nearly all of it is the dark background it is drawn
/// on, where the test video is colour bars and noise.
fn is_no_signal(jpeg: &[u8]) -> bool {
    decode_jpeg(jpeg).is_ok_and(|img| {
        let dark = img
            .rgb
            .chunks(3)
            .filter(|p| p[0] < 56 && p[1] < 56 && p[2] < 64)
            .count();
        dark * 10 > img.width * img.height * 8
    })
}

#[tokio::test]
async fn when_ffmpeg_loses_its_input_viewers_see_no_signal_naming_why_then_live_frames_again(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let video = make_video(dir.path());
    let needle = video.display().to_string();
    let relay = TestRelay::start(&[&format!("clip=ffmpeg:{needle}?size=320x240")]).await?;
    let mut viewer = relay.open("/streams/clip.frames").await?;
    let first = viewer.next_part(T).await?;
    assert!(!is_no_signal(&first.body), "the video plays first");

    // The input goes away, and the ffmpeg reading it dies (as with an unplugged RTSP camera).
    let away = dir.path().join("away.mp4");
    std::fs::rename(&video, &away)?;
    let killed = Command::new("pkill")
        .args(["-f", &format!("ffmpeg .*{needle}")])
        .status()?;
    assert!(killed.success(), "an ffmpeg was running for the viewer");

    // The same connection gets NO SIGNAL, at the stream's size.
    let no_signal = viewer
        .next_where(Duration::from_secs(15), is_no_signal)
        .await?;
    let img = decode_jpeg(&no_signal.body)?;
    assert_eq!(
        (img.width, img.height),
        (320, 240),
        "NO SIGNAL keeps the size"
    );
    // The API names the cause: ffmpeg's own words about the missing input.
    let info = eventually(T, || async {
        let info = relay.info("clip").await?;
        Ok(info
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("No such file"))
            .then_some(info))
    })
    .await?;
    assert_eq!(info.kind, "ffmpeg");

    // The input is back: live frames on the same connection, and the error is gone.
    std::fs::rename(&away, &video)?;
    let live = viewer
        .next_where(Duration::from_secs(15), |jpeg| !is_no_signal(jpeg))
        .await?;
    assert!(live
        .sequence()
        .is_some_and(|s| s > no_signal.sequence().unwrap_or(0)));
    eventually(T, || async {
        Ok(relay.info("clip").await?.last_error.is_none().then_some(()))
    })
    .await?;
    // The failures it covered with NO SIGNAL count for alerting, and so does the recovery.
    let metrics = relay.get("/metrics").await?.text();
    let counter = |name: &str| {
        let series = format!("mjpeg_relay_{name}_total{{stream=\"clip\"}}");
        metric_sample(&metrics, &series)
            .unwrap_or_else(|| panic!("no {name} for clip in:\n{metrics}"))
    };
    assert!(counter("source_errors") >= 1.0, "{metrics}");
    assert!(counter("source_recoveries") >= 1.0, "{metrics}");
    relay.stop().await?;
    Ok(())
}

/// A stand-in for ffmpeg that notes each start (its arguments) in `log`, then runs ffmpeg.
fn counting_ffmpeg(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("starts.log");
    let wrapper = dir.join("ffmpeg");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec ffmpeg \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    (wrapper, log)
}

/// ffmpeg children started so far (the relay's `-version` check at startup is not one).
fn starts(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("-version"))
        .count()
}

/// What a snapshot loop (a home-automation camera card, a cron job) does to an RTSP camera:
/// with one child lingering 10 s after each use, it sees one session, not one per snapshot.
#[tokio::test]
async fn snapshots_and_returning_viewers_reuse_one_ffmpeg_child() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let video = make_video(dir.path());
    let (wrapper, log) = counting_ffmpeg(dir.path());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mjpeg-relay-under-test"));
    cmd.env("MJPEG_RELAY_FFMPEG", &wrapper).args([
        "--listen",
        "127.0.0.1:0",
        "--stream",
        &format!("clip=ffmpeg:{}", video.display()),
    ]);
    let relay = RelayProcess::spawn(cmd)?;
    // Five snapshots of the idle stream at once: one child.
    let first = futures_util::future::try_join_all(
        (0..5).map(|_| mjpeg_relay_tests::get(relay.addr, "/streams/clip.jpg")),
    )
    .await?;
    for r in &first {
        assert_eq!(r.status, 200, "{}", r.text());
        decode_jpeg(&r.body)?;
    }
    assert_eq!(starts(&log), 1, "concurrent snapshots of an idle stream");
    // Then a snapshot every 1.5 s (longer than the old one-second grace) and viewers coming and
    // going: the same child throughout. The pauses are the scenario, not a wait.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let r = mjpeg_relay_tests::get(relay.addr, "/streams/clip.jpg").await?;
        assert_eq!(r.status, 200);
        let mut viewer =
            mjpeg_relay_tests::StreamReader::open(relay.addr, "/streams/clip.frames", None).await?;
        viewer.next_part(T).await?;
    }
    assert_eq!(starts(&log), 1, "one ffmpeg child for the whole loop");
    Ok(())
}
