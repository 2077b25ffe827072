//! The "embed" panel: the plain `<img>` snippet a legacy page needs, with the page's own origin
//! filled in, and a copy button.

use mjpeg_shared::api::Endpoints;
use yew::prelude::*;

use crate::web;

#[derive(Properties, PartialEq)]
pub struct EmbedProps {
    pub name: AttrValue,
}

#[component]
pub fn EmbedPanel(props: &EmbedProps) -> Html {
    let origin = web::window().location().origin().unwrap_or_default();
    let endpoints = Endpoints::for_stream(&props.name);
    let snippet = format!(
        "<img src=\"{origin}{}\" alt=\"{}\">",
        endpoints.classic, props.name
    );
    let copied = use_state_eq(|| false);
    let onclick = {
        let (snippet, copied) = (snippet.clone(), copied.clone());
        Callback::from(move |_| {
            // The clipboard API needs a secure context (https or localhost); elsewhere the
            // snippet stays selectable by hand.
            let clipboard = web::window().navigator().clipboard();
            let _ = clipboard.write_text(&snippet);
            copied.set(true);
        })
    };
    html! {
        <details class="embed">
            <summary>{ "Embed in a page" }</summary>
            <p>{ "Any page, any browser, no script: a plain image tag." }</p>
            <pre><code class="snippet">{ snippet }</code></pre>
            if crate::auth::token().is_some() {
                <p class="hint">
                    { "This relay needs a token: the page adds " }<code>{ "?token=TOKEN" }</code>
                    { " to the URL, and anyone who can read that page can then watch. A stream \
                       with its own token (auth_token in the config) limits that to one stream." }
                </p>
            }
            <button {onclick}>{ if *copied { "Copied" } else { "Copy" } }</button>
            <p class="hint">
                { "Per-viewer options: " }<code>{ "?fps=5" }</code>{ " caps the rate; " }
                <code>{ "?layout=strict" }</code>{ " puts Content-Length on every part for strict parsers. " }
                { "Latest frame as one JPEG: " }<code>{ endpoints.snapshot }</code>
            </p>
        </details>
    }
}
