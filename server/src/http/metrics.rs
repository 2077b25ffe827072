//! `GET /metrics`: Prometheus (OpenMetrics text) exposition, encoded with `prometheus-client`.
//!
//! Counters and gauges are read at scrape time from the streams' own atomics, the same numbers
//! `/api/streams` shows, so nothing is counted twice. The one thing only kept for metrics is a
//! histogram per stream of how old a frame is when it is handed to a viewer's connection
//! (capture time to send): the latency the relay adds, plus the source's own for relayed or
//! pushed frames whose capture time came with them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use poem::web::Data;
use poem::{handler, Response};

use super::Site;
use crate::fanout::stream::Stream;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reads every stream's figures at each scrape.
struct Streams(Vec<Arc<Stream>>);

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|s| &s.name))
            .finish()
    }
}

type Read = fn(&Stream) -> f64;

impl Collector for Streams {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let families: [(&str, MetricType, &str, Read); 9] = [
            ("frames_produced", Counter, "Frames the source produced.", |s| s.counters().frames_produced as f64),
            ("frames_sent", Counter, "Frames handed to viewers' connections, summed over viewers.", |s| s.counters().frames_sent as f64),
            ("frames_skipped", Counter, "Frames viewers skipped because their connection was busy or their ?fps cap not due.", |s| s.counters().frames_skipped as f64),
            ("bytes_sent", Counter, "Bytes of stream parts handed to viewers' connections.", |s| s.counters().bytes_sent as f64),
            ("source_errors", Counter, "Failed attempts of the source (a camera read, an upstream connection, ...).", |s| s.counters().source_errors as f64),
            ("source_recoveries", Counter, "Times the source delivered again after failing (reconnects).", |s| s.counters().source_recoveries as f64),
            ("ingest_frames", Counter, "Frames accepted from pushers (push streams only).", |s| {
                s.ingest.as_ref().map_or(0.0, |h| h.frames_in.load(Ordering::Relaxed) as f64)
            }),
            ("viewers", Gauge, "Viewers connected now, over both stream endpoints.", |s| s.viewers() as f64),
            ("source_fps", Gauge, "Frames per second the source delivers: measured where the source measures it, else configured; 0 while idle.", |s| {
                let info = s.info();
                if info.active {
                    info.capture_fps.unwrap_or(info.source_fps)
                } else {
                    0.0
                }
            }),
        ];
        for (name, kind, help, read) in families {
            let name = format!("mjpeg_relay_{name}");
            let mut family = encoder.encode_descriptor(&name, help, None, kind)?;
            for s in &self.0 {
                let labels = [("stream", s.name.as_str())];
                let sample = family.encode_family(&labels)?;
                match kind {
                    Counter => ConstCounter::new(read(s)).encode(sample)?,
                    _ => ConstGauge::new(read(s)).encode(sample)?,
                }
            }
        }
        // Each live rendition (`rendition` is what its viewers asked, as a query); its counters
        // start again if it goes away (no viewer) and comes back.
        type ReadRendition = fn(&mjpeg_shared::api::RenditionInfo) -> f64;
        let renditions: Vec<_> = self.0.iter().map(|s| (s, s.renditions())).collect();
        let families: [(&str, MetricType, &str, ReadRendition); 3] = [
            (
                "rendition_viewers",
                Gauge,
                "Viewers (and snapshots being answered) of a rendition now.",
                |r| r.viewers as f64,
            ),
            (
                "rendition_frames",
                Counter,
                "Frames made of a rendition, once each for all its viewers.",
                |r| r.frames_made as f64,
            ),
            (
                "rendition_cpu_seconds",
                Counter,
                "CPU time making a rendition's frames (decode, resize, draw, encode).",
                |r| r.cpu_seconds,
            ),
        ];
        for (name, kind, help, read) in families {
            let name = format!("mjpeg_relay_{name}");
            let mut family = encoder.encode_descriptor(&name, help, None, kind)?;
            for (s, list) in &renditions {
                for r in list {
                    let labels = [("stream", s.name.as_str()), ("rendition", r.asked.as_str())];
                    let sample = family.encode_family(&labels)?;
                    match kind {
                        Counter => ConstCounter::new(read(r)).encode(sample)?,
                        _ => ConstGauge::new(read(r)).encode(sample)?,
                    }
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "mjpeg_relay_frame_age_at_send_seconds",
            "Age of a frame (now minus its capture time) when it is handed to a viewer's connection.",
            None,
            MetricType::Histogram,
        )?;
        for s in &self.0 {
            s.sent
                .encode(family.encode_family(&[("stream", s.name.as_str())])?)?;
        }
        // What the dashboard's viewers report they saw (`fanout::reports`): a sample per report.
        type ReadReports = fn(&crate::fanout::reports::Reports) -> &Histogram;
        let families: [(&str, &str, ReadReports); 2] = [
            (
                "mjpeg_relay_viewer_latency_seconds",
                "Latency viewers saw, capture to presented on screen: each report's median over its last 2 s (dashboard viewers only; a plain <img> elsewhere cannot report).",
                |r| &r.latency,
            ),
            (
                "mjpeg_relay_viewer_fps",
                "Frames per second viewers saw: each report's last second (dashboard viewers only).",
                |r| &r.fps,
            ),
        ];
        for (name, help, read) in families {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for s in &self.0 {
                read(&s.reports).encode(family.encode_family(&[("stream", s.name.as_str())])?)?;
            }
        }
        Ok(())
    }
}

#[handler]
pub fn metrics(site: Data<&Arc<Site>>) -> Response {
    Response::builder()
        .content_type(CONTENT_TYPE)
        .header("Cache-Control", "no-store")
        .body(render(&site.streams))
}

/// The exposition for `streams`.
pub fn render(streams: &[Arc<Stream>]) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Streams(streams.to_vec())));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String does not fail");
    out
}
