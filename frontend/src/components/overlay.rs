//! The figures drawn over a picture: FPS, latency, jitter, size, bitrate, resolution, skips,
//! transport, clock error. Each value is also on the element as a `data-` attribute, as a plain
//! number (no unit), so tools and tests can read what a person sees.

use yew::prelude::*;

use crate::clock::Estimate;
use crate::hooks::ClockHandle;
use crate::stats::Snapshot;

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
}

fn num(v: f64) -> AttrValue {
    AttrValue::from(format!("{v:.2}"))
}

#[component]
pub fn Overlay(props: &OverlayProps) -> Html {
    let clock: Option<Estimate> = use_context::<ClockHandle>().and_then(|c| c.estimate());
    let s = &props.stats;
    let latency = s.latency;
    let latency_line = match (latency, clock) {
        (Some(l), _) => format!(
            "latency p50 {:.1} ms · p95 {:.1} ms{}",
            l.p50_ms,
            l.p95_ms,
            if l.flagged { " ⚠ clock?" } else { "" }
        ),
        (None, None) => "latency: syncing clock…".into(),
        (None, Some(_)) if s.frames == 0 => "latency: no frame yet".into(),
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
    html! {
        <div class={classes!("overlay", props.role.to_string(), s.frozen.then_some("frozen"))}
            data-transport={props.transport.clone()}
            data-state={props.state.clone()}
            data-fps={props.counts_frames.then(|| num(s.fps))}
            data-latency-p50-ms={latency.map(|l| num(l.p50_ms))}
            data-latency-p95-ms={latency.map(|l| num(l.p95_ms))}
            data-latency-flagged={latency.map(|l| AttrValue::from(l.flagged.to_string()))}
            data-jitter-ms={s.jitter_ms.map(num)}
            data-clock-error-ms={clock.map(|c| num(c.error_us / 1000.0))}
            data-frames={AttrValue::from(s.frames.to_string())}
            data-seq={s.last_seq.map(|q| AttrValue::from(q.to_string()))}
            data-skipped-relay={AttrValue::from(s.skipped_upstream.to_string())}
            data-skipped-browser={AttrValue::from(s.skipped_here.to_string())}
            data-main-thread-ms={s.main_thread_ms.map(num)}
            data-open-bitmaps={props.open_bitmaps.map(|n| AttrValue::from(n.to_string()))}
            data-first-paint-ms={props.first_paint_ms.map(num)}
            data-width={AttrValue::from(s.width.to_string())}
            data-height={AttrValue::from(s.height.to_string())}>
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
            <div>{ format!("skipped {} by the relay · {} here", s.skipped_upstream, s.skipped_here) }</div>
            <div>{ clock_line }</div>
            if let Some(note) = &props.note {
                <div class="note">{ note.clone() }</div>
            }
        </div>
    }
}
