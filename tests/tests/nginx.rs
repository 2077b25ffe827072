//! The relay behind a real nginx (Debian's package, installed by scripts/setup.sh) configured
//! with `deploy/nginx/mjpeg-relay-locations.conf`, the file the deployment docs ship: several
//! viewers get every frame through it, at once, at the source's rate, with the capture time
//! intact and little latency added.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mjpeg_relay_tests::{eventually, now_micros, StreamReader, TestRelay};
use mjpeg_shared::api::StreamInfo;

/// nginx in the foreground, one process (so killing it leaves nothing behind), on a free port.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    async fn start(backend: SocketAddr) -> Result<Nginx> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let locations = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/nginx/mjpeg-relay-locations.conf")
            .canonicalize()?;
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\n\
             error_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               upstream mjpeg_relay {{ server {backend}; keepalive 8; }}\n\
               server {{ listen 127.0.0.1:{port}; include {}; }}\n}}\n",
            locations.display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("nginx (installed by scripts/setup.sh)")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let nginx = Nginx {
            child,
            addr,
            _dir: dir,
        };
        eventually(Duration::from_secs(10), || async {
            Ok(tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()))
        })
        .await
        .with_context(|| {
            std::fs::read_to_string(nginx._dir.path().join("error.log")).unwrap_or_default()
        })?;
        Ok(nginx)
    }
}

/// Reads `secs` of a stream; returns (frames, latencies in ms from capture to receipt).
async fn watch(mut v: StreamReader, secs: f64) -> Result<(usize, Vec<f64>)> {
    let started = Instant::now();
    let mut lat = Vec::new();
    while started.elapsed().as_secs_f64() < secs {
        let part = v.next_part(Duration::from_secs(5)).await?;
        let ts = part.timestamp_micros().context("X-Timestamp kept")?;
        lat.push(now_micros().saturating_sub(ts) as f64 / 1000.0);
    }
    Ok((lat.len(), lat))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::test]
async fn through_nginx_every_viewer_gets_the_full_rate_with_little_added_latency() -> Result<()> {
    let relay = TestRelay::start(&["main=test?size=320x240&fps=30"]).await?;
    let nginx = Nginx::start(relay.addr).await?;

    // The API and the stream headers come through as the relay sent them.
    let reply = mjpeg_relay_tests::get(nginx.addr, "/api/streams/main").await?;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json::<StreamInfo>()?.name, "main");

    // Five viewers through nginx (both endpoints), one straight to the relay, all at once.
    let mut tasks = Vec::new();
    for i in 0..5 {
        let path = if i % 2 == 0 {
            "/streams/main.frames"
        } else {
            "/streams/main.mjpg?layout=strict"
        };
        let v = StreamReader::open(nginx.addr, path, None).await?;
        assert!(v.headers.get("content-encoding").is_none());
        tasks.push(tokio::spawn(watch(v, 4.0)));
    }
    let direct = tokio::spawn(watch(relay.open("/streams/main.frames").await?, 4.0));

    let (direct_frames, direct_lat) = direct.await??;
    let direct_p50 = median(direct_lat);
    // The direct viewer is the baseline the figures below are read against: at full rate too.
    assert!(
        direct_frames >= 108,
        "{direct_frames} frames in 4 s straight from the relay"
    );
    for t in tasks {
        let (frames, lat) = t.await??;
        let p50 = median(lat.clone());
        let max = lat.iter().cloned().fold(0.0, f64::max);
        eprintln!("through nginx: {frames} frames in 4 s, latency p50 {p50:.2} ms max {max:.2} ms; direct: {direct_frames} frames, p50 {direct_p50:.2} ms");
        // 30 fps for 4 s, within 10%.
        assert!(frames >= 108, "{frames} frames in 4 s through nginx");
        assert!(
            p50 < direct_p50 + 10.0,
            "nginx adds {:.2} ms at the median",
            p50 - direct_p50
        );
        assert!(max < 250.0, "a frame arrived {max:.2} ms after capture");
    }
    drop(nginx);
    relay.stop().await?;
    Ok(())
}
