//! `mjpeg-bench wall URL`: the dashboard's wall (`/wall`) in headless Chromium against a running
//! relay, and what it costs on both sides.
//!
//! Opens the page in a window of `--window` pixels, waits until every tile plays and the 2 s
//! windows have filled, then measures over `--seconds`: each tile's FPS and latency (its
//! overlay's `data-` attributes, read at the end), the CPU time of the page renderer's main
//! thread and of its whole process (all threads: decoding and raster too), and of the relay
//! (`--pid`), each as CPU-seconds per second.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mjpeg_relay_tests::browser::Browser;
use serde_json::{json, Value};

use crate::dashboard::{main_thread_cpu, median, page_renderer};

pub struct Opts {
    pub url: String,
    pub seconds: f64,
    pub window: (u32, u32),
    pub relay_pid: Option<u32>,
}

pub async fn run(o: Opts) -> Result<Value> {
    let browser = Browser::start(&[]).await?;
    browser
        .client
        .set_window_size(o.window.0, o.window.1)
        .await?;
    browser.client.goto(&o.url).await?;
    let started = Instant::now();
    loop {
        let t = browser.wall_tiles().await?;
        if !t.is_empty() && t.iter().all(|t| t.str("state") == Some("playing")) {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("not every tile plays within 30 s: {t:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let renderer = page_renderer().await.context("the page's renderer")?;
    let cpu = || {
        (
            main_thread_cpu(renderer),
            crate::cpu_seconds(renderer).ok(),
            o.relay_pid.and_then(|p| crate::cpu_seconds(p).ok()),
            Instant::now(),
        )
    };
    let before = cpu();
    tokio::time::sleep(Duration::from_secs_f64(o.seconds)).await;
    let after = cpu();
    let t = browser.wall_tiles().await?;
    let wall_url = browser
        .client
        .execute(
            "return document.querySelector('main.wall').dataset.wallUrl",
            vec![],
        )
        .await?;
    browser.close().await?;

    let secs = after.3.duration_since(before.3).as_secs_f64();
    let per_second = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / secs);
    let col = |key: &str| -> Vec<f64> { t.iter().filter_map(|o| o.num(key)).collect() };
    let fps = col("fps");
    Ok(json!({
        "url": o.url,
        "wall_url": wall_url,
        "window": [o.window.0, o.window.1],
        "seconds": secs,
        "tiles": t.len(),
        "fps_min": fps.iter().cloned().fold(f64::NAN, f64::min),
        "fps_median": median(fps.clone()),
        "latency_p50_ms_median": median(col("latencyP50Ms")),
        "latency_p95_ms_median": median(col("latencyP95Ms")),
        "skipped_browser_total": col("skippedBrowser").iter().sum::<f64>(),
        "renditions": t.iter().filter_map(|o| o.str("rendition").map(str::to_string)).collect::<std::collections::BTreeSet<_>>(),
        "renderer_main_thread_cpu_per_second": per_second(before.0, after.0),
        "renderer_process_cpu_per_second": per_second(before.1, after.1),
        "relay_cpu_per_second": per_second(before.2, after.2),
    }))
}
