//! The page served at `/` when there is no dashboard (none built into the binary, no usable
//! `--dashboard DIR`): the classic stream in a plain `<img>`
//! (exactly what a legacy page would embed) and how to build the real dashboard.

use std::sync::Arc;

use mjpeg_shared::api::Endpoints;
use poem::http::StatusCode;
use poem::web::{Data, Html};
use poem::{handler, IntoResponse, Response};

use super::Site;

#[handler]
pub fn builtin_page(site: Data<&Arc<Site>>) -> Response {
    let names: Vec<String> = site.streams.iter().map(|s| s.name.clone()).collect();
    Html(builtin_index(&names))
        .with_header("Cache-Control", "no-cache")
        .with_status(StatusCode::OK)
        .into_response()
}

/// The page for the given stream names; the first one is shown.
pub fn builtin_index(streams: &[String]) -> String {
    let first_name = streams.first().map(String::as_str).unwrap_or("main");
    let first = Endpoints::for_stream(first_name).classic;
    let links: String = streams
        .iter()
        .map(|s| {
            let e = Endpoints::for_stream(s);
            format!(
                "<li><code>{s}</code>: <a href=\"{}\">.mjpg</a> <a href=\"{}\">.jpg</a> \
                 <a href=\"{}\">api</a></li>",
                e.classic, e.snapshot, e.info
            )
        })
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>mjpeg-relay</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;background:#111;color:#ddd}}
img{{max-width:100%;background:#000}} code{{color:#9cf}} a{{color:#9cf}}</style></head>
<body>
<h1>mjpeg-relay</h1>
<p><img id="stream" src="{first}" alt="stream {first_name}"></p>
<p>Embed it in any page: <code>&lt;img src="http://HOST:PORT{first}"&gt;</code></p>
<ul>{links}</ul>
<p>This is the built-in page. The dashboard (latency and FPS overlays) is served here when the
relay is built after it (<code>scripts/run.sh</code> does both; by hand,
<code>trunk build --release</code> then <code>cargo build --release</code>), or from a folder
given with <code>--dashboard DIR</code>.</p>
</body>
</html>
"#
    )
}
