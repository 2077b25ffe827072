//! `GET /metrics`: the streams' figures for Prometheus, checked against the JSON API and read by
//! the Prometheus project's own Python parser (`prometheus_client`, installed by setup.sh).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use mjpeg_relay_tests::{metric_sample as sample, TestRelay};

const T: Duration = Duration::from_secs(5);

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

/// A viewer report as the dashboard sends it.
fn report(viewer: &str, fps: f64, p50: Option<f64>) -> serde_json::Value {
    let mut r = serde_json::json!({
        "viewer": viewer, "transport": "fetch", "fps": fps,
        "skipped_relay": 0, "skipped_browser": 2,
    });
    if let Some(p50) = p50 {
        r["latency_p50_ms"] = p50.into();
        r["latency_p95_ms"] = (p50 + 10.0).into();
    }
    r
}

#[tokio::test]
async fn viewer_reports_reach_the_api_and_metrics_and_bad_ones_change_nothing() -> anyhow::Result<()>
{
    use mjpeg_relay_tests::post;
    let relay = TestRelay::start(&["a=test?size=160x120&fps=30"]).await?;
    const JSON: (&str, &str) = ("Content-Type", "application/json");
    let send = |body: Vec<u8>| post(relay.addr, "/api/streams/a/report", &[JSON], body);
    let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
    let counts = || async {
        let text = relay.get("/metrics").await?.text();
        anyhow::Ok((
            sample(
                &text,
                "mjpeg_relay_viewer_latency_seconds_count{stream=\"a\"}",
            ),
            sample(&text, "mjpeg_relay_viewer_fps_count{stream=\"a\"}"),
            sample(
                &text,
                "mjpeg_relay_viewer_latency_seconds_sum{stream=\"a\"}",
            ),
        ))
    };
    assert_eq!(counts().await?, (Some(0.0), Some(0.0), Some(0.0)));

    let taken = send(json(report("k3j9x0q2", 29.5, Some(40.0)))).await?;
    assert_eq!(taken.status, 204, "{:?}", taken.body);
    let (latency, fps, sum) = counts().await?;
    assert_eq!((latency, fps), (Some(1.0), Some(1.0)));
    assert!((sum.unwrap() - 0.040).abs() < 1e-9, "seconds: {sum:?}");
    let reports = relay.info("a").await?.viewer_reports;
    assert_eq!(reports.len(), 1);
    assert_eq!(
        (
            reports[0].fps,
            reports[0].latency_p50_ms,
            reports[0].skipped_browser
        ),
        (29.5, Some(40.0), 2)
    );
    // The list, polled by every dashboard, does not carry them, and nothing shows the id.
    assert!(relay.list().await?.streams[0].viewer_reports.is_empty());
    let raw = relay.get("/api/streams/a").await?.body;
    assert!(!String::from_utf8_lossy(&raw).contains("k3j9x0q2"));

    // Refused, each saying why, and none of them recorded.
    let too_soon = send(json(report("k3j9x0q2", 30.0, Some(41.0)))).await?;
    assert_eq!(too_soon.status, 429);
    assert_eq!(
        too_soon
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    for (body, why) in [
        (b"not json".to_vec(), "expected"),
        (
            json(
                serde_json::json!({"viewer": "x", "transport": "fetch", "skipped_relay": 0, "skipped_browser": 0}),
            ),
            "missing field",
        ),
        (json(report("x", 5000.0, None)), "fps"),
        (json(report("no spaces", 30.0, None)), "viewer"),
        (
            json({
                let mut r = report("x", 30.0, Some(40.0));
                r["latency_p95_ms"] = 10.0.into();
                r
            }),
            "p95",
        ),
        (
            json({
                let mut r = report("x", 30.0, None);
                r["transport"] = "carrier pigeon".into();
                r
            }),
            "transport",
        ),
    ] {
        let reply = send(body).await?;
        assert_eq!(reply.status, 400, "{why}: {:?}", reply.body);
        let text = String::from_utf8_lossy(&reply.body);
        assert!(text.contains(why), "{why}: {text}");
    }
    let big = send(vec![b' '; 2000]).await?;
    assert_eq!(big.status, 413);
    let unknown = post(
        relay.addr,
        "/api/streams/nope/report",
        &[JSON],
        json(report("x", 30.0, None)),
    )
    .await?;
    assert_eq!(unknown.status, 404);
    // What a page on another site can send without asking first (no CORS preflight) is refused.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| ("Content-Type", t))
            .into_iter()
            .collect();
        let body = json(report("other", 30.0, None));
        let reply = post(relay.addr, "/api/streams/a/report", &headers, body).await?;
        assert_eq!(reply.status, 415, "{content_type:?}");
    }
    assert_eq!(counts().await?.0, Some(1.0));
    assert_eq!(relay.info("a").await?.viewer_reports.len(), 1);

    // Another viewer, with no latency known yet: its fps counts, no latency.
    assert_eq!(send(json(report("second", 10.0, None))).await?.status, 204);
    let (latency, fps, _) = counts().await?;
    assert_eq!((latency, fps), (Some(1.0), Some(2.0)));
    let fps: Vec<f64> = relay
        .info("a")
        .await?
        .viewer_reports
        .iter()
        .map(|r| r.fps)
        .collect();
    assert_eq!(fps, [10.0, 29.5], "the most recent first");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_report_whose_body_stops_halfway_gets_408_after_5_s() -> anyhow::Result<()> {
    let relay = TestRelay::start(&["a=test?size=160x120&fps=30"]).await?;
    let slow = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(relay.addr).await?;
        let head = format!(
            "POST /api/streams/a/report HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"viewer\":",
            relay.addr
        );
        tcp.write_all(head.as_bytes()).await?;
        let mut head = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut head)).await??;
        String::from_utf8_lossy(&head).into_owned()
    };
    assert_eq!(slow, "HTTP/1.1 408");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_grafana_dashboard_asks_only_for_metrics_the_relay_exposes() -> anyhow::Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/mjpeg-relay.json"
    );
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    // Every query in it, wherever it sits.
    fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "definition", serde_json::Value::String(s)) => {
                            out.push(s.clone())
                        }
                        _ => exprs(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
            _ => {}
        }
    }
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");

    let relay = TestRelay::start(&["a=test?size=160x120&fps=30"]).await?;
    let text = relay.get("/metrics").await?.text();
    relay.stop().await?;
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_whitespace().next())
        .collect();
    let mut asked = std::collections::BTreeSet::new();
    for q in &queries {
        for (i, _) in q.match_indices("mjpeg_relay_") {
            let name: String = q[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            asked.insert(name);
        }
    }
    assert!(asked.len() >= 8, "{asked:?}");
    for name in &asked {
        let family = ["_bucket", "_count", "_sum", "_total"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            families.contains(&family),
            "the dashboard asks for {name}, which /metrics does not have: {families:?}"
        );
    }
    // The viewers' own figures are on it.
    assert!(asked.contains("mjpeg_relay_viewer_latency_seconds_bucket"));
    assert!(asked
        .iter()
        .any(|n| n.starts_with("mjpeg_relay_viewer_fps")));
    Ok(())
}
