//! The relay's ingest route, `POST /streams/NAME/ingest`, through its real route tree (auth
//! check, handler, multipart reader, JPEG check) with arbitrary bodies, content types and chunking.
//!
//! Checked on every input: no panic, and no 5xx: whatever a pusher sends is either taken or
//! refused with a 4xx that says why.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mjpeg_relay::{Relay, RelayOptions};

struct World {
    runtime: tokio::runtime::Runtime,
    app: poem::endpoint::BoxEndpoint<'static, poem::Response>,
    _relay: Arc<Relay>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (relay, app) = runtime.block_on(async {
            // max_bytes under the inputs' length (-max_len=8192), so 413 is reached too.
            let specs = ["cam=push?token=t&max_bytes=4096&replace=1".parse().unwrap()];
            let relay = Relay::start(
                &specs,
                RelayOptions {
                    dashboard: "/nonexistent".into(),
                    ..RelayOptions::default()
                },
                tokio_util::sync::CancellationToken::new(),
            )
            .unwrap();
            let app = poem::EndpointExt::boxed(poem::EndpointExt::map_to_response(
                mjpeg_relay::http::routes(relay.site.clone()),
            ));
            (relay, app)
        });
        World {
            runtime,
            app,
            _relay: relay,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (kind, size, body) = (data[0], usize::from(data[1] % 128) + 1, &data[2..]);
    let content_type = match kind % 4 {
        0 => "image/jpeg".to_string(),
        1 => "multipart/x-mixed-replace; boundary=frame".to_string(),
        2 => "multipart/x-mixed-replace;boundary=\"--frame\"".to_string(),
        // The body's first line as the content type (the whole input is still the body).
        _ => String::from_utf8_lossy(body.split(|b| *b == b'\n').next().unwrap_or_default())
            .into_owned(),
    };
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = body
        .chunks(size)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let w = world();
    let mut req = poem::Request::builder()
        .method(poem::http::Method::POST)
        .uri(poem::http::Uri::from_static("/streams/cam/ingest?token=t"));
    if let Ok(value) = poem::http::HeaderValue::from_str(&content_type) {
        req = req.header(poem::http::header::CONTENT_TYPE, value);
    }
    let req = req.body(poem::Body::from_bytes_stream(futures_util::stream::iter(chunks)));
    let status = w.runtime.block_on(async {
        use poem::Endpoint;
        w.app.get_response(req).await.status()
    });
    assert!(
        !status.is_server_error(),
        "ingest answered {status} to a {content_type:?} body of {} bytes",
        body.len()
    );
});
