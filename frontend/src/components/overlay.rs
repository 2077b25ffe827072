//! The figures drawn over a picture: FPS, latency (capture to presented on screen, and to drawn),
//! jitter, size, bitrate, resolution, skips, transport, clock offset and error, and the latency
//! waterfall (capture, each stage, arrived, painted, presented).
//! Each value is also on the element as a `data-` attribute, as a plain number (no unit), so
//! tools and tests can read what a person sees: the waterfall's as `data-stage-NAME-ms` (the
//! step from the checkpoint before, in ms) and `data-stage-total-ms`, set by hand because the
//! names come from the stream.

use yew::prelude::*;

use crate::clock::Estimate;
use crate::hooks::{use_report, ClockHandle};
use crate::stats::Snapshot;
use crate::waterfall::Summary;

const STAGE_ATTR: (&str, &str) = ("data-stage-", "-ms");

#[derive(Properties, PartialEq)]
pub struct OverlayProps {
    /// `primary` (the viewer's main picture) or `compare` (the `<img>` beside it).
    pub role: AttrValue,
    /// `fetch`, `img` or `img-fallback`.
    pub transport: AttrValue,
    /// `playing`, `waiting`, `reconnecting`, `fallback`, ...
    pub state: AttrValue,
    pub stats: Snapshot,
    /// False when frames cannot be counted (an `<img>` showing a stream without a stamp):
    /// FPS and latency are then unknown, not zero.
    #[prop_or(true)]
    pub counts_frames: bool,
    #[prop_or_default]
    pub first_paint_ms: Option<f64>,
    #[prop_or_default]
    pub open_bitmaps: Option<u32>,
    /// Shown under the figures (why a fallback, what is missing).
    #[prop_or_default]
    pub note: Option<AttrValue>,
    /// Metadata shapes drawn over the newest frame (fetch path).
    #[prop_or_default]
    pub meta_shapes: Option<usize>,
    /// What the newest frame is: `source`, or its rendition as `X-Rendition` says
    /// (`320x180;q=85`); unknown on the `<img>` path.
    #[prop_or_default]
    pub rendition: Option<AttrValue>,
    /// A wall's tile: FPS, latency and state only, in two short lines (the `data-` attributes
    /// are all there still).
    #[prop_or_default]
    pub compact: bool,
    /// The stream these figures are of: while it plays and its frames are counted, they are
    /// reported to the relay (`use_report`). None: not reported (a paused viewer's snapshot).
    #[prop_or_default]
    pub stream: Option<AttrValue>,
}

/// Puts the waterfall's `data-stage-*-ms` attributes on `el`, removing those of checkpoints it
/// no longer has.
fn set_stage_attributes(el: &web_sys::Element, waterfall: Option<&Summary>) {
    let wanted: Vec<(String, String)> = waterfall
        .map(|w| {
            w.segments
                .iter()
                .map(|(name, ms)| (name.to_string(), *ms))
                .chain([(crate::waterfall::TOTAL.to_string(), w.total_ms)])
                .map(|(name, ms)| {
                    (
                        format!("{}{name}{}", STAGE_ATTR.0, STAGE_ATTR.1),
                        format!("{ms:.2}"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let names = el.get_attribute_names();
    for name in names.iter().filter_map(|n| n.as_string()) {
        if name.starts_with(STAGE_ATTR.0) && !wanted.iter().any(|(w, _)| *w == name) {
            let _ = el.remove_attribute(&name);
        }
    }
    for (name, value) in wanted {
        let _ = el.set_attribute(&name, &value);
    }
}

/// `capture → encoded 4.1 → arrived 0.6 → painted 9.8 = 14.5 ms`, and the same as a bar.
fn waterfall_view(w: &Summary) -> Html {
    let line = w
        .segments
        .iter()
        .map(|(name, ms)| format!(" → {name} {ms:.1}"))
        .collect::<String>();
    let total = w.total_ms.max(f64::EPSILON);
    html! {
        <div class="waterfall">
            <div>{ format!("capture{line} = {:.1} ms", w.total_ms) }</div>
            <div class="bar">
                { for w.segments.iter().enumerate().map(|(i, (name, ms))| html! {
                    <span class={format!("segment s{}", i % 6)} title={format!("{name}: {ms:.1} ms")}
                        style={format!("width:{:.2}%", (ms / total * 100.0).clamp(0.0, 100.0))}></span>
                }) }
            </div>
        </div>
    }
}

fn num(v: f64) -> AttrValue {
    AttrValue::from(format!("{v:.2}"))
}

#[component]
pub fn Overlay(props: &OverlayProps) -> Html {
    let clock: Option<Estimate> = use_context::<ClockHandle>().and_then(|c| c.estimate());
    let s = &props.stats;
    let playing = props.state == "playing" && props.counts_frames;
    use_report(
        props.stream.clone().filter(|_| playing),
        playing.then(|| mjpeg_shared::api::ReportedFigures {
            transport: props.transport.to_string(),
            fps: s.fps,
            // A flagged latency is 0 by clamping: the clock is off, so it says nothing.
            latency_p50_ms: s.latency.filter(|l| !l.flagged).map(|l| l.p50_ms),
            latency_p95_ms: s.latency.filter(|l| !l.flagged).map(|l| l.p95_ms),
            skipped_relay: s.skipped_upstream,
            skipped_browser: s.skipped_here,
        }),
    );
    let latency = s.latency;
    let latency_line = match (latency, clock) {
        (Some(l), _) => format!(
            "latency p50 {:.1} ms · p95 {:.1} ms{} · drawn p50 {}",
            l.p50_ms,
            l.p95_ms,
            if l.flagged { " ⚠ clock?" } else { "" },
            s.drawn_latency
                .map_or_else(|| "–".into(), |d| format!("{:.1} ms", d.p50_ms)),
        ),
        (None, None) => "latency: syncing clock…".into(),
        (None, Some(_)) if s.frames == 0 => "latency: no frame yet".into(),
        // Frames carry capture times (their jitter is known) but none was presented yet: the
        // first one is a frame away, or animation frames have stopped.
        (None, Some(_)) if s.jitter_ms.is_some() => "latency: no frame on screen yet".into(),
        (None, Some(_)) => "latency: unknown (frames carry no capture time)".into(),
    };
    let clock_line = match clock {
        Some(c) => format!(
            "clock offset {:+.1} ms ±{:.1} ms",
            c.offset_us / 1000.0,
            c.error_us / 1000.0
        ),
        None => "clock offset: probing".into(),
    };
    let node = use_node_ref();
    {
        let (node, waterfall) = (node.clone(), s.waterfall.clone());
        use_effect_with(waterfall, move |w| {
            if let Some(el) = node.cast::<web_sys::Element>() {
                set_stage_attributes(&el, w.as_ref());
            }
        });
    }
    html! {
        <div ref={node} class={classes!("overlay", props.role.to_string(), s.frozen.then_some("frozen"))}
            data-transport={props.transport.clone()}
            data-state={props.state.clone()}
            data-fps={props.counts_frames.then(|| num(s.fps))}
            data-latency-p50-ms={latency.map(|l| num(l.p50_ms))}
            data-latency-p95-ms={latency.map(|l| num(l.p95_ms))}
            data-latency-flagged={latency.map(|l| AttrValue::from(l.flagged.to_string()))}
            data-drawn-latency-p50-ms={s.drawn_latency.map(|l| num(l.p50_ms))}
            data-drawn-latency-p95-ms={s.drawn_latency.map(|l| num(l.p95_ms))}
            data-jitter-ms={s.jitter_ms.map(num)}
            data-clock-offset-ms={clock.map(|c| num(c.offset_us / 1000.0))}
            data-clock-error-ms={clock.map(|c| num(c.error_us / 1000.0))}
            data-frames={AttrValue::from(s.frames.to_string())}
            data-seq={s.last_seq.map(|q| AttrValue::from(q.to_string()))}
            data-skipped-relay={AttrValue::from(s.skipped_upstream.to_string())}
            data-skipped-browser={AttrValue::from(s.skipped_here.to_string())}
            data-main-thread-ms={s.main_thread_ms.map(num)}
            data-open-bitmaps={props.open_bitmaps.map(|n| AttrValue::from(n.to_string()))}
            data-first-paint-ms={props.first_paint_ms.map(num)}
            data-width={AttrValue::from(s.width.to_string())}
            data-height={AttrValue::from(s.height.to_string())}
            data-meta-shapes={props.meta_shapes.map(|n| AttrValue::from(n.to_string()))}
            data-rendition={props.rendition.clone()}>
            if props.compact {
                <div>{ format!("{} · {:.1} fps", props.state, s.fps) }</div>
                <div>{ latency.map_or_else(
                    || "latency –".to_string(),
                    |l| format!("{:.0} ms p50 · {:.0} p95", l.p50_ms, l.p95_ms),
                ) }</div>
            } else {
                <div class="big">{
                    if props.counts_frames {
                        format!("{} · {:.1} fps{}", props.transport, s.fps, if s.frozen { " · frozen" } else { "" })
                    } else {
                        format!("{} · fps unknown", props.transport)
                    }
                }</div>
                <div>{ latency_line }</div>
                <div>{ format!(
                    "jitter {} · {}×{} · {:.1} KB · {:.0} kbit/s",
                    s.jitter_ms.map(|j| format!("{j:.1} ms")).unwrap_or_else(|| "–".into()),
                    s.width, s.height, s.last_bytes as f64 / 1024.0, s.kbps
                ) }</div>
                <div>{ format!("skipped {} by the relay · {} here", s.skipped_upstream, s.skipped_here) }{
                    props.rendition.as_ref().map(|r| format!(" · {r}")).unwrap_or_default()
                }</div>
                <div>{ clock_line }</div>
                if let Some(w) = &s.waterfall {
                    { waterfall_view(w) }
                }
            }
            if let Some(note) = &props.note {
                <div class="note">{ note.clone() }</div>
            }
        </div>
    }
}
