//! `mjpeg-bench dashboard URL`: the dashboard in headless Chromium against a running relay.
//!
//! Opens the page, waits for the first painted frame (the player's own `first_paint_ms`, time
//! from navigation start), then samples every `--sample-every` seconds for `--seconds`: the
//! overlay's figures (`data-` attributes), the JS heap after a forced GC (`--expose-gc`),
//! the page's DOM node count, open bitmaps, and the CPU time of the renderer's main thread
//! (`CrRendererMain`, from /proc) per painted frame. The first `--fetch-only` seconds run the
//! fetch path alone; then compare mode adds the plain `<img>` beside it.
//!
//! The main-thread figure counts everything that thread did, including the forced GC and the
//! few WebDriver scripts of each sample (a few ms every 10 s, under 0.1% of the run).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mjpeg_relay_tests::browser::{Browser, Overlay};
use serde_json::{json, Value};

pub struct Opts {
    pub url: String,
    pub stream: String,
    pub seconds: f64,
    pub fetch_only: f64,
    pub sample_every: f64,
}

/// CPU seconds (user + system) of a process's main thread: the thread whose id is the process
/// id (`/proc/PID/stat` would sum all threads). Assumes USER_HZ = 100, as on every Linux here.
pub(crate) fn main_thread_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15 (1-based), i.e. 11 and 12 here.
    Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
}

/// Main-thread CPU of every Chromium renderer process now.
fn renderers() -> Vec<(u32, f64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("--type=renderer"))
        })
        .filter_map(|pid| Some((pid, main_thread_cpu(pid)?)))
        .collect()
}

/// The renderer painting the page: of all renderers, the one whose main thread worked most
/// over two seconds of playback (a spare renderer, or another browser's, sits idle).
pub(crate) async fn page_renderer() -> Option<u32> {
    let before = renderers();
    tokio::time::sleep(Duration::from_secs(2)).await;
    renderers()
        .into_iter()
        .filter_map(|(pid, cpu)| {
            let was = before.iter().find(|(p, _)| *p == pid)?.1;
            Some((pid, cpu - was))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(pid, _)| pid)
}

struct Sample {
    t: f64,
    fetch: Overlay,
    img: Option<Overlay>,
    /// The card's `data-compare-diff-ms`, read in the same script as the overlays.
    diff_ms: Option<f64>,
    heap_mb: f64,
    dom_nodes: f64,
    main_cpu_s: Option<f64>,
}

async fn page_state(b: &Browser) -> Result<(f64, f64)> {
    let v = b
        .client
        .execute(
            "if (window.gc) window.gc();
             return [performance.memory ? performance.memory.usedJSHeapSize / 1048576 : -1,
                     document.getElementsByTagName('*').length];",
            vec![],
        )
        .await?;
    Ok((v[0].as_f64().unwrap_or(-1.0), v[1].as_f64().unwrap_or(-1.0)))
}

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub async fn run(o: Opts) -> Result<Value> {
    let browser =
        Browser::start(&["--enable-precise-memory-info", "--js-flags=--expose-gc"]).await?;
    let started = Instant::now();
    browser.client.goto(&o.url).await?;
    let first_paint = loop {
        if started.elapsed() > Duration::from_secs(20) {
            bail!("no frame painted within 20 s");
        }
        if let Some(fp) = browser
            .overlay(&o.stream, "primary")
            .await?
            .and_then(|ov| ov.num("firstPaintMs"))
        {
            break fp;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Let the 2 s latency window fill.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let renderer = page_renderer()
        .await
        .context("the page's renderer process")?;

    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut compare_on = false;
    while t0.elapsed().as_secs_f64() < o.seconds {
        let t = t0.elapsed().as_secs_f64();
        if !compare_on && t >= o.fetch_only {
            browser
                .click(&format!("[data-stream=\"{}\"] input.compare", o.stream))
                .await?;
            compare_on = true;
            tokio::time::sleep(Duration::from_secs(3)).await;
            continue;
        }
        let v = browser
            .client
            .execute(
                "const c = document.querySelector(`[data-stream=\"${arguments[0]}\"]`);
                 const ds = (sel) => { const e = c.querySelector(sel); return e ? Object.assign({}, e.dataset) : null; };
                 const d = c.querySelector('.diff');
                 return [ds('.overlay.primary'), ds('.overlay.compare'), d ? d.dataset.compareDiffMs : null];",
                vec![json!(o.stream)],
            )
            .await?;
        let fetch = Overlay(v[0].clone());
        let img = (!v[1].is_null()).then(|| Overlay(v[1].clone()));
        let diff_ms = v[2].as_str().and_then(|d| d.parse().ok());
        let (heap_mb, dom_nodes) = page_state(&browser).await?;
        let s = Sample {
            t,
            fetch,
            img,
            diff_ms,
            heap_mb,
            dom_nodes,
            main_cpu_s: main_thread_cpu(renderer),
        };
        eprintln!(
            "t={:>5.0}s fetch p50 {:?} ms fps {:?} | img p50 {:?} ms | heap {:.2} MB | dom {} | bitmaps {:?}",
            s.t,
            s.fetch.num("latencyP50Ms"),
            s.fetch.num("fps"),
            s.img.as_ref().and_then(|i| i.num("latencyP50Ms")),
            s.heap_mb,
            s.dom_nodes,
            s.fetch.num("openBitmaps")
        );
        samples.push(s);
        tokio::time::sleep(Duration::from_secs_f64(o.sample_every)).await;
    }
    browser.close().await?;

    let fetch_only: Vec<&Sample> = samples.iter().filter(|s| s.img.is_none()).collect();
    let compared: Vec<&Sample> = samples.iter().filter(|s| s.img.is_some()).collect();
    let col = |set: &[&Sample], f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<f64> {
        set.iter().filter_map(|s| f(s)).collect()
    };
    let frames = |s: &Sample| s.fetch.num("frames");
    let main_ms_per_frame = |set: &[&Sample]| -> Option<f64> {
        let (a, b) = (set.first()?, set.last()?);
        let cpu = b.main_cpu_s? - a.main_cpu_s?;
        let n = frames(b)? - frames(a)?;
        (n > 0.0).then(|| cpu * 1000.0 / n)
    };
    let diffs: Vec<f64> = compared
        .iter()
        .filter_map(|s| Some(s.img.as_ref()?.num("latencyP50Ms")? - s.fetch.num("latencyP50Ms")?))
        .collect();
    let heap: Vec<f64> = samples.iter().map(|s| s.heap_mb).collect();
    let dom: Vec<f64> = samples.iter().map(|s| s.dom_nodes).collect();
    let series: Vec<Value> = samples
        .iter()
        .map(|s| {
            json!({
                "t": s.t,
                "fetch_latency_p50_ms": s.fetch.num("latencyP50Ms"),
                "img_latency_p50_ms": s.img.as_ref().and_then(|i| i.num("latencyP50Ms")),
                "img_minus_fetch_ms": s.diff_ms,
                "main_thread_cpu_s": s.main_cpu_s,
                "js_heap_mb": s.heap_mb,
                "dom_nodes": s.dom_nodes,
                "open_bitmaps": s.fetch.num("openBitmaps"),
            })
        })
        .collect();
    Ok(json!({
        "url": o.url,
        "series": series,
        "first_paint_ms": first_paint,
        "fetch_only": {
            "samples": fetch_only.len(),
            "latency_p50_ms_median": median(col(&fetch_only, &|s| s.fetch.num("latencyP50Ms"))),
            "drawn_latency_p50_ms_median": median(col(&fetch_only, &|s| s.fetch.num("drawnLatencyP50Ms"))),
            "latency_p95_ms_median": median(col(&fetch_only, &|s| s.fetch.num("latencyP95Ms"))),
            "fps_median": median(col(&fetch_only, &|s| s.fetch.num("fps"))),
            "own_work_ms_per_frame_median": median(col(&fetch_only, &|s| s.fetch.num("mainThreadMs"))),
            "renderer_main_thread_ms_per_frame": main_ms_per_frame(&fetch_only),
        },
        "compare": {
            "samples": compared.len(),
            "fetch_latency_p50_ms_median": median(col(&compared, &|s| s.fetch.num("latencyP50Ms"))),
            "fetch_drawn_latency_p50_ms_median": median(col(&compared, &|s| s.fetch.num("drawnLatencyP50Ms"))),
            "img_latency_p50_ms_median": median(col(&compared, &|s| s.img.as_ref()?.num("latencyP50Ms"))),
            "img_minus_fetch_p50_ms_median": median(diffs.clone()),
            "img_minus_fetch_p50_ms_min": diffs.iter().cloned().fold(f64::NAN, f64::min),
            "img_minus_fetch_p50_ms_max": diffs.iter().cloned().fold(f64::NAN, f64::max),
            "img_fps_median": median(col(&compared, &|s| s.img.as_ref()?.num("fps"))),
            "renderer_main_thread_ms_per_frame": main_ms_per_frame(&compared),
        },
        "memory": {
            "js_heap_mb_first": heap.first(),
            "js_heap_mb_last": heap.last(),
            "js_heap_mb_max": heap.iter().cloned().fold(f64::NAN, f64::max),
            "dom_nodes_first": dom.first(),
            "dom_nodes_last": dom.last(),
            "dom_nodes_max": dom.iter().cloned().fold(f64::NAN, f64::max),
            "open_bitmaps_max": samples.iter().filter_map(|s| s.fetch.num("openBitmaps")).fold(0.0, f64::max),
        },
        "frames_painted": samples.last().and_then(frames),
        "skipped_browser": samples.last().and_then(|s| s.fetch.num("skippedBrowser")),
        "skipped_relay": samples.last().and_then(|s| s.fetch.num("skippedRelay")),
    }))
}
