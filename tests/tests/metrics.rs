//! `GET /metrics`: the streams' figures for Prometheus, checked against the JSON API and read by
//! the Prometheus project's own Python parser (`prometheus_client`, installed by setup.sh).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use mjpeg_relay_tests::TestRelay;

const T: Duration = Duration::from_secs(5);

/// The value of the sample `line_start` (name and labels), e.g. `mjpeg_relay_viewers{stream="a"}`.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_viewers_frames_and_frame_age_per_stream() -> anyhow::Result<()> {
    let relay =
        TestRelay::start(&["a=test?size=160x120&fps=30", "b=test?size=160x120&fps=5"]).await?;
    let mut viewer = relay.open("/streams/a.frames").await?;
    for _ in 0..15 {
        viewer.next_part(T).await?;
    }

    let reply = relay.get("/metrics").await?;
    assert_eq!(reply.status, 200);
    let content_type = &reply.headers["content-type"];
    assert!(
        content_type
            .to_str()?
            .starts_with("application/openmetrics-text"),
        "{content_type:?}"
    );
    let text = String::from_utf8(reply.body.to_vec())?;
    let api = relay.info("a").await?;

    assert_eq!(
        sample(&text, "mjpeg_relay_viewers{stream=\"a\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "mjpeg_relay_viewers{stream=\"b\"}"),
        Some(0.0)
    );
    let sent = sample(&text, "mjpeg_relay_frames_sent_total{stream=\"a\"}").unwrap();
    assert!(sent >= 15.0, "{sent}");
    assert!(sent <= api.frames_sent as f64, "counters only grow");
    let produced = sample(&text, "mjpeg_relay_frames_produced_total{stream=\"a\"}").unwrap();
    assert!(produced >= sent);
    assert_eq!(
        sample(&text, "mjpeg_relay_frames_produced_total{stream=\"b\"}"),
        Some(0.0),
        "b idles"
    );
    let fps = sample(&text, "mjpeg_relay_source_fps{stream=\"a\"}").unwrap();
    assert!((20.0..=40.0).contains(&fps), "{fps}");
    assert_eq!(
        sample(&text, "mjpeg_relay_source_errors_total{stream=\"a\"}"),
        Some(0.0)
    );

    // One frame-age observation per frame sent, and on loopback nearly all under 50 ms.
    let count = sample(
        &text,
        "mjpeg_relay_frame_age_at_send_seconds_count{stream=\"a\"}",
    )
    .unwrap();
    assert_eq!(count, sent);
    let fast = text
        .lines()
        .filter(|l| {
            l.starts_with("mjpeg_relay_frame_age_at_send_seconds_bucket{le=\"0.064\",stream=\"a\"}")
                || l.starts_with(
                    "mjpeg_relay_frame_age_at_send_seconds_bucket{stream=\"a\",le=\"0.064\"}",
                )
        })
        .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no 64 ms bucket in {text}"));
    assert!(
        fast >= count * 0.9,
        "{fast} of {count} frames handed over within 64 ms"
    );

    // Prometheus' own parser accepts the exposition.
    let mut py = Command::new("python3")
        .args([
            "-c",
            "import sys\n\
             from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
             fams = list(text_string_to_metric_families(sys.stdin.read()))\n\
             print(' '.join(sorted(f.name for f in fams)))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    py.stdin.take().unwrap().write_all(text.as_bytes())?;
    let out = py.wait_with_output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = String::from_utf8(out.stdout)?;
    for want in [
        "mjpeg_relay_viewers",
        "mjpeg_relay_frames_sent",
        "mjpeg_relay_frame_age_at_send_seconds",
        "mjpeg_relay_ingest_frames",
        "mjpeg_relay_source_recoveries",
    ] {
        assert!(
            names.split_whitespace().any(|n| n == want),
            "{want} in {names}"
        );
    }
    relay.stop().await?;
    Ok(())
}
