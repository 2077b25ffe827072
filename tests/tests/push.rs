//! Frames pushed by other processes: one JPEG per request, or one long multipart request from a
//! real client (Python requests with OpenCV, ffmpeg), with the token, type, size and concurrency
//! rules (the token, type and size rules as a table of requests and the answers they get).

use std::time::Duration;

use bytes::Bytes;
use mjpeg_relay::http::auth::AccessConfig;
use mjpeg_relay::RelayOptions;
use mjpeg_relay_tests::{decode_jpeg, jpeg_dir, long_push, make_jpeg, Reply, TestRelay};
use mjpeg_shared::api::IngestResult;

/// Bound on each wait: generous, since ffmpeg and Python start on a busy CI machine too.
const T: Duration = Duration::from_secs(15);

/// POSTs `body` with the given headers.
async fn post(
    relay: &TestRelay,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> anyhow::Result<Reply> {
    mjpeg_relay_tests::post(relay.addr, path, headers, body).await
}

async fn relay() -> anyhow::Result<TestRelay> {
    let options = RelayOptions {
        access: AccessConfig {
            ingest_token: Some(mjpeg_relay::secret::Secret::new("global").unwrap()),
            ..AccessConfig::default()
        },
        ..RelayOptions::default()
    };
    TestRelay::start_with(
        &[
            "cam=push?token=s3cret&max_bytes=65536",
            "open=push",
            "swap=push?token=t&replace=1",
            "pattern=test?size=160x120&fps=5",
        ],
        options,
    )
    .await
}

#[tokio::test]
async fn a_pushed_jpeg_reaches_viewers_unchanged() -> anyhow::Result<()> {
    let relay = relay().await?;
    let mut viewer = relay.open("/streams/cam.frames").await?;
    let jpeg = make_jpeg(160, 120, 90);
    let reply = post(
        &relay,
        "/streams/cam/ingest",
        &[
            ("Authorization", "Bearer s3cret"),
            ("Content-Type", "image/jpeg"),
        ],
        jpeg.clone(),
    )
    .await?;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), r#"{"frames":1}"#);
    assert_eq!(reply.json::<IngestResult>()?.frames, 1);
    let part = viewer.next_part(T).await?;
    assert_eq!(
        &part.body[..],
        &jpeg[..],
        "the viewer gets the pushed bytes"
    );
    let info = relay.info("cam").await?;
    assert_eq!(info.kind, "push");
    assert_eq!(info.width, Some(160));
    assert!(
        !info.source.contains("s3cret"),
        "the token never shows in the API: {info:?}"
    );
    relay.stop().await?;
    Ok(())
}

/// What a table row sends as its body.
#[derive(Clone, Copy, Debug)]
enum Payload {
    Jpeg,
    NotAPicture,
    /// A JPEG padded to 70 000 bytes, over `cam`'s 65536-byte limit.
    Oversized,
}

/// One push request and the answer it must get.
struct Case {
    row: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    payload: Payload,
    status: u16,
    /// Something the answer's body must say ("" for nothing in particular).
    says: &'static str,
}

const AUTH: (&str, &str) = ("Authorization", "Bearer s3cret");

/// The token, type and size rules (`relay()` has `cam` with its own token and a 64 KiB limit,
/// `open` without a token, the relay-wide token `global`, and `pattern`, a test pattern).
const CASES: &[Case] = &[
    Case {
        row: "no token",
        path: "/streams/cam/ingest",
        headers: &[],
        payload: Payload::Jpeg,
        status: 401,
        // Says how to send it.
        says: "Authorization: Bearer",
    },
    Case {
        row: "a wrong token",
        path: "/streams/cam/ingest",
        headers: &[("Authorization", "Bearer nope")],
        payload: Payload::Jpeg,
        status: 403,
        says: "",
    },
    Case {
        row: "a stream's own token replaces the relay-wide one",
        path: "/streams/cam/ingest",
        headers: &[("Authorization", "Bearer global")],
        payload: Payload::Jpeg,
        status: 403,
        says: "",
    },
    Case {
        row: "?token= for clients that cannot send headers",
        path: "/streams/cam/ingest?token=s3cret",
        headers: &[],
        payload: Payload::Jpeg,
        status: 200,
        says: "",
    },
    Case {
        row: "--ingest-token covers streams without their own",
        path: "/streams/open/ingest",
        headers: &[("Authorization", "Bearer global")],
        payload: Payload::Jpeg,
        status: 200,
        says: "",
    },
    Case {
        row: "not a JPEG",
        path: "/streams/cam/ingest",
        headers: &[AUTH],
        payload: Payload::NotAPicture,
        status: 415,
        says: "not a JPEG",
    },
    Case {
        row: "over the size limit (named)",
        path: "/streams/cam/ingest",
        headers: &[AUTH],
        payload: Payload::Oversized,
        status: 413,
        says: "65536",
    },
    Case {
        row: "not a push stream",
        path: "/streams/pattern/ingest",
        headers: &[AUTH],
        payload: Payload::Jpeg,
        status: 405,
        says: "does not take pushed frames",
    },
];

#[tokio::test]
async fn tokens_types_and_sizes_are_checked_and_the_stream_stays_up() -> anyhow::Result<()> {
    let relay = relay().await?;
    let jpeg = make_jpeg(160, 120, 10);
    for case in CASES {
        let body = match case.payload {
            Payload::Jpeg => jpeg.clone(),
            Payload::NotAPicture => b"hello, not a picture".to_vec(),
            Payload::Oversized => {
                let mut big = make_jpeg(160, 120, 20);
                big.resize(70_000, 0);
                big
            }
        };
        let reply = post(&relay, case.path, case.headers, body).await?;
        let (row, text) = (case.row, reply.text());
        assert_eq!(reply.status, case.status, "{row}: {text}");
        assert!(
            text.contains(case.says),
            "{row}: {text:?} should say {:?}",
            case.says
        );
        if reply.status == 200 {
            assert_eq!(reply.json::<IngestResult>()?.frames, 1, "{row}");
        } else {
            // Every refusal is an error body in JSON.
            reply.error().map_err(|e| anyhow::anyhow!("{row}: {e}"))?;
        }
        if reply.status == 401 {
            let challenge = reply.headers["www-authenticate"].to_str()?;
            assert!(challenge.starts_with("Bearer"), "{row}: {challenge}");
        }
    }
    // After all that, the stream still takes frames and serves them.
    let mut viewer = relay.open("/streams/cam.frames").await?;
    let reply = post(&relay, "/streams/cam/ingest", &[AUTH], jpeg.clone()).await?;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(&viewer.next_part(T).await?.body[..], &jpeg[..]);
    relay.stop().await?;
    Ok(())
}

fn part(jpeg: &[u8]) -> Bytes {
    let mut out = format!(
        "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    )
    .into_bytes();
    out.extend_from_slice(jpeg);
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

#[tokio::test]
async fn one_pusher_at_a_time_unless_the_stream_lets_the_newest_replace() -> anyhow::Result<()> {
    let relay = relay().await?;
    let mut viewer = relay.open("/streams/cam.frames").await?;
    let (tx, first) = long_push(&relay, "/streams/cam/ingest", "s3cret").await?;
    let a = make_jpeg(160, 120, 30);
    tx.send(part(&a)).await?;
    assert_eq!(
        &viewer.next_part(T).await?.body[..],
        &a[..],
        "parts are published as they arrive"
    );
    let reply = post(
        &relay,
        "/streams/cam/ingest",
        &[AUTH],
        make_jpeg(160, 120, 40),
    )
    .await?;
    assert_eq!(reply.status, 409, "{}", reply.text());
    drop(tx);
    assert_eq!(
        tokio::time::timeout(T, first).await???,
        200,
        "the long push ends well when its body ends"
    );

    // With replace=1 the newer pusher takes over and the older one is told so.
    let mut swap_viewer = relay.open("/streams/swap.frames").await?;
    let (tx, older) = long_push(&relay, "/streams/swap/ingest", "t").await?;
    tx.send(part(&a)).await?;
    // The older pusher holds the stream: its part has been published.
    assert_eq!(&swap_viewer.next_part(T).await?.body[..], &a[..]);
    let reply = post(
        &relay,
        "/streams/swap/ingest",
        &[("Authorization", "Bearer t")],
        make_jpeg(160, 120, 50),
    )
    .await?;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let older = tokio::time::timeout(T, older).await??;
    assert!(
        matches!(older, Ok(409) | Err(_)),
        "the replaced pusher is ended: {older:?}"
    );
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn ffmpeg_pushes_a_video_with_the_example_script() -> anyhow::Result<()> {
    let relay = relay().await?;
    let mut viewer = relay.open("/streams/cam.frames").await?;
    let url = format!("http://{}/streams/cam/ingest", relay.addr);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/push_ffmpeg.sh");
    let push = tokio::process::Command::new("bash")
        .args([script, &url, "s3cret"])
        .env("FRAMES", "20")
        .kill_on_drop(true)
        .output();
    let mut got = 0;
    let read = async {
        while got < 5 {
            let part = viewer.next_part(T).await?;
            let img = decode_jpeg(&part.body)?;
            assert_eq!((img.width, img.height), (640, 480));
            got += 1;
        }
        anyhow::Ok(())
    };
    let (out, read) = tokio::join!(tokio::time::timeout(Duration::from_secs(30), push), read);
    read?;
    let out = out??;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let produced = relay.info("cam").await?.frames_produced;
    assert!(produced >= 5, "{produced} frames");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_opencv_example_pushes_annotated_frames_with_their_capture_times() -> anyhow::Result<()>
{
    let relay = relay().await?;
    let mut viewer = relay.open("/streams/cam.frames").await?;
    let url = format!("http://{}/streams/cam/ingest", relay.addr);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/push_opencv.py");
    let push = tokio::process::Command::new("python3")
        .args([
            script,
            &url,
            "--token",
            "s3cret",
            "--source",
            "synthetic",
            "--frames",
            "30",
            "--fps",
            "30",
        ])
        .kill_on_drop(true)
        .output();
    let read = async {
        let part = viewer.next_part(Duration::from_secs(20)).await?;
        let ts = part.timestamp_micros().unwrap();
        assert!(mjpeg_relay_tests::now_micros().saturating_sub(ts) < 2_000_000);
        let img = decode_jpeg(&part.body)?;
        // The example's green box is in the picture (top edge at y = 120, x from 160 to 480).
        let px = &img.rgb[(120 * img.width + 320) * 3..][..3];
        assert!(
            px[1] > 180 && px[0] < 100 && px[2] < 100,
            "green annotation at the box edge, got {px:?}"
        );
        anyhow::Ok(())
    };
    let (out, read) = tokio::join!(tokio::time::timeout(Duration::from_secs(60), push), read);
    read?;
    let out = out??;
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"frames\":30"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn pushing_a_folder_of_frames_as_single_requests() -> anyhow::Result<()> {
    let relay = relay().await?;
    let (_dir, files) = jpeg_dir(3)?;
    let mut viewer = relay.open("/streams/open.frames").await?;
    for f in &files {
        let reply = post(
            &relay,
            "/streams/open/ingest",
            &[("Authorization", "Bearer global")],
            f.clone(),
        )
        .await?;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(&viewer.next_part(T).await?.body[..], &f[..]);
    }
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_pushers_capture_times_are_kept_exactly() -> anyhow::Result<()> {
    let relay = relay().await?;
    let mut viewer = relay.open("/streams/cam.frames").await?;
    // A single request with X-Timestamp.
    let jpeg = make_jpeg(160, 120, 70);
    let auth = AUTH;
    let reply = post(
        &relay,
        "/streams/cam/ingest",
        &[auth, ("X-Timestamp", "1000000000.250000")],
        jpeg,
    )
    .await?;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        viewer.next_part(T).await?.timestamp_micros(),
        Some(1_000_000_000_250_000)
    );
    // A multipart part with X-Timestamp.
    let jpeg = make_jpeg(160, 120, 80);
    let mut body =
        b"--frame\r\nContent-Type: image/jpeg\r\nX-Timestamp: 1200000000.5\r\n\r\n".to_vec();
    body.extend_from_slice(&jpeg);
    body.extend_from_slice(b"\r\n--frame--\r\n");
    let reply = post(
        &relay,
        "/streams/cam/ingest",
        &[
            auth,
            ("Content-Type", "multipart/x-mixed-replace; boundary=frame"),
        ],
        body,
    )
    .await?;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, r#"{"frames":1}"#)
    );
    assert_eq!(
        viewer.next_part(T).await?.timestamp_micros(),
        Some(1_200_000_000_500_000)
    );
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn an_empty_token_is_refused_at_startup() -> anyhow::Result<()> {
    let err = TestRelay::start(&["cam=push?token="])
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("must not be empty"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mjpeg-relay-under-test"))
        .args(["--listen", "127.0.0.1:0", "--stream", "cam=push"])
        .env("MJPEG_RELAY_INGEST_TOKEN", "")
        .output()?;
    assert_eq!(
        out.status.code(),
        Some(2),
        "an empty relay-wide token (an unset variable in a unit file) is refused"
    );
    Ok(())
}
