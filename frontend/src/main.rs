//! The mjpeg-relay dashboard (placeholder).
//!
//! For now it shows the default stream in a plain `<img>`, the way a legacy page embeds it. The
//! real dashboard (fetch-path viewer with latency and FPS overlays, `<img>` comparison, fallback)
//! replaces this; it already links the shared crate so the wire format builds for wasm32.
#![forbid(unsafe_code)]

use mjpeg_shared::api::Endpoints;
use yew::prelude::*;

#[component]
fn App() -> Html {
    let endpoints = Endpoints::for_stream("main");
    html! {
        <main>
            <h1>{ "mjpeg-relay" }</h1>
            <p><img id="stream" src={endpoints.classic.clone()} alt="stream main" /></p>
            <p>
                { "Embed it in any page: " }
                <code>{ format!("<img src=\"http://HOST:PORT{}\">", endpoints.classic) }</code>
            </p>
            <p>
                <a href={endpoints.snapshot.clone()}>{ "snapshot" }</a>{ " · " }
                <a href="/api/streams">{ "/api/streams" }</a>
            </p>
        </main>
    }
}

fn main() {
    yew::Renderer::<App>::new().render();
}
