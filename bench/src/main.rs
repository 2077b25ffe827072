//! `mjpeg-bench`: a load client for a running relay, and the fixtures it needs.
//!
//! - `mjpeg-bench frames DIR`: writes 640x480 JPEGs of about 48 KB (a noisy, camera-like picture
//!   with the frame stamp) for a `files:DIR` source.
//! - `mjpeg-bench run URL --viewers N`: opens N viewers (real HTTP/1.1 connections through
//!   hyper), parses every part with the shared parser, and reports per-viewer fps, latency from
//!   `X-Timestamp` to the moment the part is complete, bytes, the server's CPU time per delivered
//!   GB and its peak RSS (from /proc, given `--pid`), optionally with slow viewers (small receive
//!   buffer, rate-limited reader) and with the time a joining viewer waits for its first frame.
//! - `mjpeg-bench encode-yuyv`: the camera source's cost for a raw YUYV camera: encodes one
//!   camera-like frame again and again on one thread with the relay's own encoder, and reports
//!   wall and CPU time per frame, the frame rate one core sustains and the JPEG size.
//!
//! - `mjpeg-bench rendition`: what one rendition of a frame costs (`?width=`): a camera-like
//!   JPEG made into the rendition again and again with the relay's own code, on one thread,
//!   CPU per frame in total and for the decode alone, and the share of a core at a frame rate.
//! - `mjpeg-bench dashboard URL`: the dashboard in headless Chromium; latency, FPS, main-thread
//!   time, heap and DOM size over time (see `dashboard.rs`).
//! - `mjpeg-bench wall URL`: the wall in headless Chromium; each tile's FPS and latency, and the
//!   CPU of the renderer and of the relay per second (see `wall.rs`).
//!
//! `scripts/bench.sh` runs the configurations quoted in `docs/benchmarks.md`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mjpeg_shared::multipart::MultipartParser;

mod dashboard;
mod wall;

#[derive(Parser)]
#[command(
    name = "mjpeg-bench",
    about = "Load client and fixtures for mjpeg-relay"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write COUNT camera-like 640x480 JPEGs of about TARGET_KB each into DIR.
    Frames {
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 60)]
        count: u32,
        #[arg(long, default_value_t = 48)]
        target_kb: usize,
    },
    /// Open viewers against a stream URL and measure.
    Run {
        /// e.g. http://127.0.0.1:8080/streams/main.frames (parts must carry X-Timestamp).
        url: String,
        /// Viewers that read as fast as they can.
        #[arg(long, default_value_t = 10)]
        viewers: usize,
        /// Viewers whose link carries only --slow-rate bytes per second.
        #[arg(long, default_value_t = 0)]
        slow: usize,
        #[arg(long, default_value_t = 100_000.0)]
        slow_rate: f64,
        /// Receive buffer of slow viewers' sockets, bytes (0: the kernel's default, autotuned).
        #[arg(long, default_value_t = 4096)]
        slow_rcvbuf: u32,
        /// Query the slow viewers add to the URL (e.g. adapt=1).
        #[arg(long)]
        slow_query: Option<String>,
        /// Seconds to let connections settle before measuring.
        #[arg(long, default_value_t = 3.0)]
        warmup: f64,
        /// Seconds measured.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// After measuring, open this many more viewers one by one and time their first frame.
        #[arg(long, default_value_t = 0)]
        join_probes: usize,
        /// The relay's process id, to read its CPU time and peak RSS.
        #[arg(long)]
        pid: Option<u32>,
        /// Write the summary as JSON here too.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// Watch the dashboard in headless Chromium and sample what it shows.
    Dashboard {
        /// The dashboard page, e.g. http://127.0.0.1:8080/
        url: String,
        #[arg(long, default_value = "main")]
        stream: String,
        /// Seconds sampled in all.
        #[arg(long, default_value_t = 300.0)]
        seconds: f64,
        /// Seconds of fetch path alone before compare mode is switched on.
        #[arg(long, default_value_t = 60.0)]
        fetch_only: f64,
        #[arg(long, default_value_t = 10.0)]
        sample_every: f64,
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// Watch the wall (`/wall`) in headless Chromium: tiles' FPS and latency, renderer and
    /// relay CPU.
    Wall {
        /// The wall page, e.g. http://127.0.0.1:8080/wall
        url: String,
        /// Seconds measured, once every tile plays.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// The browser window, WIDTHxHEIGHT.
        #[arg(long, default_value = "1320x1000")]
        window: String,
        /// The relay's process id, to read its CPU time.
        #[arg(long)]
        pid: Option<u32>,
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// Encode a camera-like YUYV frame FRAMES times on this thread, as the camera source does.
    EncodeYuyv {
        #[arg(long, default_value_t = 1280)]
        width: u32,
        #[arg(long, default_value_t = 720)]
        height: u32,
        #[arg(long, default_value_t = 300)]
        frames: usize,
        #[arg(long, default_value_t = 80)]
        quality: u8,
        /// Flip horizontally while encoding, as a mirrored camera stream does.
        #[arg(long)]
        mirror: bool,
    },
    /// The CPU one rendition costs per frame, with the relay's own code.
    Rendition {
        #[arg(long, default_value_t = 1280)]
        width: u32,
        #[arg(long, default_value_t = 720)]
        height: u32,
        /// The rendition's width (its height follows the aspect ratio).
        #[arg(long, default_value_t = 320)]
        to: u32,
        /// The rendition's JPEG quality [default: the relay's default for renditions].
        #[arg(long)]
        quality: Option<u8>,
        /// The source's frame rate, for the share of a core.
        #[arg(long, default_value_t = 30.0)]
        fps: f64,
        #[arg(long, default_value_t = 300)]
        frames: usize,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Dashboard {
            url,
            stream,
            seconds,
            fetch_only,
            sample_every,
            json,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = rt.block_on(dashboard::run(dashboard::Opts {
                url,
                stream,
                seconds,
                fetch_only,
                sample_every,
            }))?;
            print_report(&report, json)
        }
        Cmd::Wall {
            url,
            seconds,
            window,
            pid,
            json,
        } => {
            let (w, h) = window
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                .context("--window is WIDTHxHEIGHT")?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = rt.block_on(wall::run(wall::Opts {
                url,
                seconds,
                window: (w, h),
                relay_pid: pid,
            }))?;
            print_report(&report, json)
        }
        Cmd::Frames {
            dir,
            count,
            target_kb,
        } => make_frames(&dir, count, target_kb),
        Cmd::Run {
            url,
            viewers,
            slow,
            slow_rate,
            slow_rcvbuf,
            slow_query,
            warmup,
            seconds,
            join_probes,
            pid,
            json,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let opts = RunOpts {
                viewers,
                slow,
                slow_rate,
                slow_rcvbuf,
                slow_query,
                warmup,
                seconds,
                join_probes,
                pid,
            };
            let summary = rt.block_on(run(&url, opts))?;
            let text = serde_json::to_string_pretty(&summary)?;
            println!("{text}");
            if let Some(path) = json {
                std::fs::write(path, text)?;
            }
            Ok(())
        }
        Cmd::EncodeYuyv {
            width,
            height,
            frames,
            quality,
            mirror,
        } => {
            let summary = encode_yuyv(width, height, frames.max(1), quality, mirror)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        Cmd::Rendition {
            width,
            height,
            to,
            quality,
            fps,
            frames,
        } => {
            let summary = rendition_cost(width, height, to, quality, fps, frames.max(1))?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
    }
}

/// See [`Cmd::Rendition`]. The source frame is a camera-like picture encoded at quality 80 by
/// the camera path (what a webcam's MJPEG is like), so decoding costs what it would.
fn rendition_cost(
    width: u32,
    height: u32,
    to: u32,
    quality: Option<u8>,
    fps: f64,
    frames: usize,
) -> Result<serde_json::Value> {
    use mjpeg_relay::source::camera::convert::RawEncoder;
    use mjpeg_relay::source::rendition::{render, Rendition, Target};
    let source = RawEncoder::default().encode(&camera_like_frame(width, height), 80, false)?;
    let asked = Rendition {
        target: Some(Target::Width(to)),
        quality,
        overlay: false,
    };
    let pid = std::process::id();
    let timed = |what: &dyn Fn() -> usize| -> Result<(f64, usize)> {
        let mut out = what();
        let cpu0 = cpu_seconds(pid)?;
        for _ in 0..frames {
            out = what();
        }
        // Only this thread runs, so the process's CPU time is the work's.
        Ok(((cpu_seconds(pid)? - cpu0) / frames as f64, out))
    };
    let (decode, _) = timed(&|| {
        mjpeg_relay::source::draw::decode(&source)
            .map(|d| d.pixels.len())
            .unwrap_or(0)
    })?;
    let (total, bytes) = timed(&|| {
        render(&source, None, &asked)
            .map(|(jpeg, _)| jpeg.len())
            .unwrap_or(0)
    })?;
    if bytes == 0 {
        bail!("the rendition failed");
    }
    Ok(serde_json::json!({
        "source": format!("{width}x{height}"), "source_bytes": source.len(),
        "rendition": asked.to_string(), "rendition_bytes": bytes, "frames": frames,
        "cpu_ms_per_frame": total * 1000.0,
        "cpu_ms_decode": decode * 1000.0,
        "cpu_ms_resize_and_encode": (total - decode) * 1000.0,
        "share_of_a_core_at_fps": total * fps, "fps": fps,
    }))
}

/// [`camera_like_yuyv`] as the camera source gets it from a device.
fn camera_like_frame(width: u32, height: u32) -> mjpeg_relay::source::camera::device::RawFrame {
    use mjpeg_relay::source::camera::device::{PixelFormat, RawFrame};
    RawFrame {
        data: camera_like_yuyv(width, height),
        format: PixelFormat::Yuyv,
        width,
        height,
    }
}

/// A YUYV frame like a webcam's: smooth gradients in luma and both chroma channels, with
/// sensor-like noise (which is most of what a JPEG of a real room spends its bytes on).
fn camera_like_yuyv(width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut seed: u32 = 12345;
    let mut noise = move |amplitude: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed % (2 * amplitude + 1)) as i32 - amplitude as i32
    };
    let mut data = Vec::with_capacity(w * h * 2);
    for y in 0..h {
        for x in (0..w).step_by(2) {
            let luma = 40 + ((x + y) * 160 / (w + h)) as i32;
            let cb = 96 + (x * 64 / w) as i32;
            let cr = 160 - (y * 64 / h) as i32;
            let byte = |v: i32| v.clamp(0, 255) as u8;
            data.extend_from_slice(&[
                byte(luma + noise(8)),
                byte(cb + noise(3)),
                byte(luma + noise(8)),
                byte(cr + noise(3)),
            ]);
        }
    }
    data
}

fn encode_yuyv(
    width: u32,
    height: u32,
    frames: usize,
    quality: u8,
    mirror: bool,
) -> Result<serde_json::Value> {
    use mjpeg_relay::source::camera::convert::RawEncoder;
    let raw = camera_like_frame(width, height);
    let mut encoder = RawEncoder::default();
    // One frame first, as the capture thread has done by the time it runs steadily.
    let mut jpeg_bytes = encoder.encode(&raw, quality, mirror)?.len();
    let pid = std::process::id();
    let cpu0 = cpu_seconds(pid)?;
    let t0 = Instant::now();
    let mut ms = Vec::with_capacity(frames);
    for _ in 0..frames {
        let t = Instant::now();
        jpeg_bytes = encoder.encode(&raw, quality, mirror)?.len();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let wall = t0.elapsed().as_secs_f64();
    // Only this thread runs, so the process's CPU time is the encoder's.
    let cpu_per_frame = (cpu_seconds(pid)? - cpu0) / frames as f64;
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    Ok(serde_json::json!({
        "width": width, "height": height, "frames": frames, "quality": quality, "mirror": mirror,
        "ms_mean": wall * 1000.0 / frames as f64,
        "ms_median": pct(0.5), "ms_p99": pct(0.99), "ms_max": pct(1.0),
        "cpu_seconds_per_frame": cpu_per_frame,
        "fps_one_core": (cpu_per_frame > 0.0).then(|| 1.0 / cpu_per_frame),
        "jpeg_bytes": jpeg_bytes,
    }))
}

/// Camera-like frames: a gradient, moving shapes and sensor-like noise, which is what makes real
/// 640x480 MJPEG frames 40-60 KB. Quality is searched per frame to land near the target size.
fn make_frames(dir: &std::path::Path, count: u32, target_kb: usize) -> Result<()> {
    use mjpeg_shared::stamp;
    std::fs::create_dir_all(dir)?;
    let (w, h) = (640usize, 480usize);
    let mut seed: u32 = 12345;
    let mut rng = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut total = 0;
    for i in 0..count {
        let mut rgb = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let cx = (x as i32 - (i as i32 * 7) % w as i32).unsigned_abs() as usize;
                let base = [
                    (x * 255 / w) as u8,
                    (y * 255 / h) as u8,
                    ((cx / 3) % 256) as u8,
                ];
                let n = (rng() % 48) as u8;
                for c in 0..3 {
                    rgb[(y * w + x) * 3 + c] = base[c].saturating_add(n).saturating_sub(24);
                }
            }
        }
        stamp::draw_rgb(
            stamp::Stamp {
                seq: i + 1,
                capture_micros: 0,
            },
            &mut rgb,
            w,
            h,
        );
        let (mut lo, mut hi, mut best) = (10u8, 98u8, Vec::new());
        while lo <= hi {
            let q = (lo + hi) / 2;
            let mut out = Vec::new();
            jpeg_encoder::Encoder::new(&mut out, q).encode(
                &rgb,
                w as u16,
                h as u16,
                jpeg_encoder::ColorType::Rgb,
            )?;
            if out.len() > target_kb * 1024 {
                hi = q - 1;
            } else {
                lo = q + 1;
                best = out;
            }
        }
        total += best.len();
        std::fs::write(dir.join(format!("frame-{i:04}.jpg")), &best)?;
    }
    eprintln!(
        "wrote {count} frames to {}, mean {} bytes",
        dir.display(),
        total / count as usize
    );
    Ok(())
}

struct RunOpts {
    viewers: usize,
    slow: usize,
    slow_rate: f64,
    slow_rcvbuf: u32,
    slow_query: Option<String>,
    warmup: f64,
    seconds: f64,
    join_probes: usize,
    pid: Option<u32>,
}

#[derive(Default)]
struct ViewerStats {
    frames: u64,
    bytes: u64,
    skipped: u64,
    /// Capture -> part complete, microseconds, for parts completed in the window.
    latencies: Vec<u32>,
}

/// Measurement window: parts are counted only while `on` is set.
struct Window {
    on: AtomicBool,
    stop: AtomicBool,
}

async fn run(url: &str, o: RunOpts) -> Result<serde_json::Value> {
    let (addr, path) = parse_url(url)?;
    let window = Arc::new(Window {
        on: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let mut tasks = Vec::new();
    for i in 0..o.viewers + o.slow {
        let slow = (i >= o.viewers).then_some((o.slow_rate, o.slow_rcvbuf));
        let (window, mut path) = (window.clone(), path.clone());
        if let (Some(_), Some(q)) = (slow, &o.slow_query) {
            path = format!("{path}{}{q}", if path.contains('?') { '&' } else { '?' });
        }
        tasks.push(tokio::spawn(async move {
            viewer(addr, &path, slow, &window).await
        }));
        // Do not flood the accept queue: open in small batches.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
    let cpu0 = o.pid.map(cpu_seconds).transpose()?;
    let t0 = Instant::now();
    window.on.store(true, Ordering::Release);
    tokio::time::sleep(Duration::from_secs_f64(o.seconds)).await;
    window.on.store(false, Ordering::Release);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = o.pid.map(cpu_seconds).transpose()?;

    // New viewers joining a busy stream: time from request to first complete frame.
    let mut joins = Vec::new();
    for _ in 0..o.join_probes {
        let started = Instant::now();
        let mut reader = open(addr, &path, None).await?;
        reader.next_part().await?.context("stream ended")?;
        joins.push(started.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    window.stop.store(true, Ordering::Release);
    let mut fast = Vec::new();
    let mut slow = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let stats = t.await??;
        if i < o.viewers {
            fast.push(stats);
        } else {
            slow.push(stats);
        }
    }
    let rss_peak_kb = o.pid.map(peak_rss_kb).transpose()?;
    let summarize = |group: &[ViewerStats]| -> serde_json::Value {
        if group.is_empty() {
            return serde_json::Value::Null;
        }
        let mut fps: Vec<f64> = group.iter().map(|s| s.frames as f64 / elapsed).collect();
        fps.sort_by(f64::total_cmp);
        let mut lat: Vec<u32> = group
            .iter()
            .flat_map(|s| s.latencies.iter().copied())
            .collect();
        lat.sort_unstable();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
                .map(|v| *v as f64 / 1000.0)
        };
        serde_json::json!({
            "viewers": group.len(),
            "fps_min": fps.first(), "fps_median": fps[fps.len() / 2], "fps_max": fps.last(),
            "latency_ms_p50": pct(0.5), "latency_ms_p99": pct(0.99), "latency_ms_max": pct(1.0),
            "skipped_total": group.iter().map(|s| s.skipped).sum::<u64>(),
            "bytes_total": group.iter().map(|s| s.bytes).sum::<u64>(),
        })
    };
    let delivered: u64 = fast.iter().chain(&slow).map(|s| s.bytes).sum();
    let cpu = cpu0.zip(cpu1).map(|(a, b)| b - a);
    Ok(serde_json::json!({
        "url": url,
        "seconds": elapsed,
        "fast": summarize(&fast),
        "slow": summarize(&slow),
        "delivered_gb": delivered as f64 / 1e9,
        "delivered_gbit_per_s": delivered as f64 * 8.0 / 1e9 / elapsed,
        "server_cpu_seconds": cpu,
        "server_cpu_cores": cpu.map(|c| c / elapsed),
        "server_cpu_seconds_per_gb": cpu.map(|c| c / (delivered as f64 / 1e9)),
        "server_peak_rss_mb": rss_peak_kb.map(|k| k as f64 / 1024.0),
        "join_first_frame_ms": joins,
    }))
}

async fn viewer(
    addr: SocketAddr,
    path: &str,
    slow: Option<(f64, u32)>,
    window: &Window,
) -> Result<ViewerStats> {
    let mut reader = open(addr, path, slow.map(|s| s.1)).await?;
    let mut stats = ViewerStats::default();
    let mut last_seq: Option<u64> = None;
    while !window.stop.load(Ordering::Acquire) {
        let Some(chunk) = reader.chunk().await? else {
            break;
        };
        if let Some((rate, _)) = slow {
            tokio::time::sleep(Duration::from_secs_f64(chunk as f64 / rate)).await;
        }
        while let Some(part) = reader.parser.next_part()? {
            let now = mjpeg_relay::clock::unix_micros_now();
            let seq = part.sequence();
            if window.on.load(Ordering::Acquire) {
                stats.frames += 1;
                stats.bytes += part.body.len() as u64;
                if let (Some(last), Some(seq)) = (last_seq, seq) {
                    stats.skipped += seq.saturating_sub(last + 1);
                }
                if let Some(ts) = part.timestamp_micros() {
                    stats
                        .latencies
                        .push(now.saturating_sub(ts).min(u64::from(u32::MAX)) as u32);
                }
            }
            last_seq = seq.or(last_seq);
        }
    }
    Ok(stats)
}

struct Reader {
    body: Body,
    parser: MultipartParser,
}

enum Body {
    Hyper(hyper::body::Incoming),
    /// A slow viewer's socket, read directly (see [`open`]).
    Raw(tokio::net::TcpStream),
}

/// What a slow viewer reads at once: a link delivers bytes a few at a time.
const SLOW_READ: usize = 4096;

impl Reader {
    /// Feeds the next body chunk to the parser; its size, or None at the end.
    async fn chunk(&mut self) -> Result<Option<usize>> {
        match &mut self.body {
            Body::Hyper(body) => match body.frame().await {
                Some(frame) => {
                    let data = frame?.into_data().unwrap_or_default();
                    self.parser.push(&data);
                    Ok(Some(data.len()))
                }
                None => Ok(None),
            },
            Body::Raw(stream) => {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; SLOW_READ];
                match stream.read(&mut buf).await? {
                    0 => Ok(None),
                    n => {
                        self.parser.push(&buf[..n]);
                        Ok(Some(n))
                    }
                }
            }
        }
    }

    async fn next_part(&mut self) -> Result<Option<mjpeg_shared::multipart::Part>> {
        loop {
            if let Some(p) = self.parser.next_part()? {
                return Ok(Some(p));
            }
            if self.chunk().await?.is_none() {
                return Ok(None);
            }
        }
    }
}

async fn open(addr: SocketAddr, path: &str, rcvbuf: Option<u32>) -> Result<Reader> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(size) = rcvbuf.filter(|s| *s > 0) {
        socket.set_recv_buffer_size(size)?;
    }
    let mut stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    if rcvbuf.is_some() {
        // A slow viewer emulates a link: bytes it has not "received" yet must stay in its
        // socket's receive buffer, where the relay can see them, not in a client library's
        // buffers (hyper's client reads ahead of its body's reader). So it speaks HTTP/1.0
        // itself (a close-delimited body, no chunked coding) and reads the socket directly.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut head = Vec::new();
        let mut buf = [0u8; SLOW_READ];
        let end = loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                bail!("GET {path}: closed before the response head");
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let text = String::from_utf8_lossy(&head[..end]).to_string();
        if !text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.0 200") {
            bail!("GET {path}: {}", text.lines().next().unwrap_or_default());
        }
        let ct = text
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    .map(|(_, v)| v.trim().to_string())
            })
            .context("no content type")?;
        let mut parser = MultipartParser::from_content_type(&ct)?;
        parser.push(&head[end..]);
        return Ok(Reader {
            body: Body::Raw(stream),
            parser,
        });
    }
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("Host", addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    if !resp.status().is_success() {
        bail!("GET {path}: {}", resp.status());
    }
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let parser = MultipartParser::from_content_type(ct)?;
    Ok(Reader {
        body: Body::Hyper(resp.into_body()),
        parser,
    })
}

fn parse_url(url: &str) -> Result<(SocketAddr, String)> {
    let rest = url.strip_prefix("http://").context("only http:// URLs")?;
    let (host, path) = rest.split_once('/').context("URL needs a path")?;
    Ok((
        host.parse().context("host must be IP:PORT")?,
        format!("/{path}"),
    ))
}

/// Prints `report` as JSON, and writes it to `json` too when given.
fn print_report(report: &serde_json::Value, json: Option<std::path::PathBuf>) -> Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    println!("{text}");
    if let Some(path) = json {
        std::fs::write(path, text)?;
    }
    Ok(())
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at ") ".
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .context("stat")?
        .1
        .split(' ')
        .collect();
    let utime: f64 = fields[11].parse()?;
    let stime: f64 = fields[12].parse()?;
    let hz = 100.0; // USER_HZ on Linux
    Ok((utime + stime) / hz)
}

/// VmHWM: the process's peak resident set, kB.
fn peak_rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("VmHWM")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmHWM value")?
        .parse()?)
}
