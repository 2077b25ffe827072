//! The `<img>` path: a plain `<img src=NAME.mjpg>`, exactly what a legacy page embeds, with its
//! latency read back from the frame stamp in its pixels. Used for compare mode and as the fetch
//! path's fallback.

use gloo_timers::callback::Timeout;
use mjpeg_shared::api::Endpoints;
use web_sys::HtmlImageElement;
use yew::prelude::*;

use super::chart::Chart;
use super::overlay::Overlay;
use crate::hooks::{use_img_url, use_stamp_reader};
use crate::web;

/// Wait before reloading an `<img>` whose stream failed or ended.
const RELOAD_MS: u32 = 1_000;

#[derive(Properties, PartialEq)]
pub struct ImgViewProps {
    pub name: AttrValue,
    /// `img` (compare mode) or `img-fallback`.
    pub transport: AttrValue,
    /// `primary` (the viewer's main picture) or `compare`.
    pub role: AttrValue,
    /// Relay restarts seen: a change reloads the `<img>` (its stream ended without an event).
    pub epoch: u32,
    #[prop_or_default]
    pub note: Option<AttrValue>,
    /// Receives the median latency at overlay rate.
    #[prop_or_default]
    pub on_p50: Callback<Option<f64>>,
}

#[component]
pub fn ImgView(props: &ImgViewProps) -> Html {
    let img = use_node_ref();
    let generation = use_state_eq(|| 0u32);
    let reload = use_mut_ref(|| None::<Timeout>);
    let view = use_stamp_reader(img.clone(), *generation + props.epoch);

    // An <img> whose stream broke (the relay restarted) shows its last frame forever: load it
    // again, under a new URL so no cache answers.
    let onerror = {
        let (generation, reload) = (generation.clone(), reload.clone());
        Callback::from(move |_: Event| {
            let generation = generation.clone();
            *reload.borrow_mut() = Some(Timeout::new(RELOAD_MS, move || {
                generation.set(*generation + 1)
            }));
        })
    };
    // Chrome fires no event when a multipart image's stream ends cleanly (one `load` after the
    // first frame, nothing after). With a stamp a frozen picture tells; otherwise `epoch` does.
    // A hidden tab paints nothing, which is not a frozen stream.
    let frozen = view
        .as_ref()
        .is_some_and(|v| v.stamped && v.stats.frozen && v.stats.fps == 0.0)
        && !web::page_hidden();
    {
        let onerror = onerror.clone();
        use_effect_with(frozen, move |frozen| {
            if *frozen {
                onerror.emit(Event::new("frozen").unwrap());
            }
        });
    }
    // Browsers may keep a removed multipart <img>'s connection open (and with it one of the six
    // per host, and the relay's viewer): empty its src first, which ends the request.
    {
        let img = img.clone();
        use_effect_with((), move |_| {
            let el = img.cast::<HtmlImageElement>();
            move || {
                if let Some(el) = el {
                    el.set_src("");
                }
            }
        });
    }
    {
        let p50 = view
            .as_ref()
            .and_then(|v| v.stats.latency)
            .map(|l| l.p50_ms);
        let on_p50 = props.on_p50.clone();
        use_effect_with(p50.map(f64::to_bits), move |_| on_p50.emit(p50));
    }

    let base = Endpoints::for_stream(&props.name).classic;
    let src = use_img_url(
        props.name.clone(),
        match (props.epoch, *generation) {
            (0, 0) => base,
            (e, g) => format!("{base}?reload={e}.{g}"),
        },
        false,
    );
    let (stats, showing, stamped) = view
        .as_ref()
        .map(|v| (v.stats.clone(), v.showing, v.stamped))
        .unwrap_or_default();
    let note = props.note.clone().or_else(|| {
        (showing && !stamped).then(|| {
            AttrValue::from("no frame stamp in this stream: an <img> cannot tell its latency")
        })
    });
    html! {
        <div class={classes!("pane", "img")}>
            <div class="picture">
                <img ref={img} {src} alt={format!("stream {}", props.name)} {onerror} />
                <Overlay role={props.role.clone()} stream={props.name.clone()} transport={props.transport.clone()}
                    state={if showing { "playing" } else { "connecting" }}
                    counts_frames={stamped || !showing}
                    {stats} {note} />
            </div>
            if let Some(v) = &view {
                <Chart history={v.stats.history.clone()} />
            }
        </div>
    }
}
