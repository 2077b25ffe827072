//! The relay's token, when the relay asks for one (`--auth-token`): typed once into the prompt,
//! kept in `sessionStorage` for this tab's session, sent as `Authorization: Bearer` on fetches.
//! `<img>` URLs cannot carry headers: they get a signed query string from `POST /api/sign`
//! instead ([`img_url`]), which opens only that stream and expires, so the token itself never
//! sits in the page's markup, a copied image address or a proxy's log; a relay without a
//! signing key answers 404 there, and then `?token=` is used. HTTP Basic needs nothing here:
//! the browser asks for the user and password itself and sends them with every request.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use mjpeg_shared::api::{SignRequest, SignedUrl};

use crate::web;

/// How long a signed `<img>` URL is asked to open its stream. An `<img>` already playing goes
/// on past it (the relay checks expiry when a request starts); new ones ask again.
const SIGNED_TTL_S: u64 = 3600;
/// A signed query is not used for a new `<img>` this close to its expiry.
const RENEW_BEFORE_S: u64 = 300;

thread_local! {
    /// Signed query strings per stream, with when to stop using them (Unix seconds, this
    /// browser's clock).
    static SIGNED: RefCell<HashMap<String, (String, f64)>> = RefCell::default();
    /// The relay signs no URLs (404 from `/api/sign`): use `?token=`.
    static NO_SIGNING: Cell<bool> = const { Cell::new(false) };
}

const KEY: &str = "mjpeg-relay-token";

fn storage() -> Option<web_sys::Storage> {
    web::window().session_storage().ok().flatten()
}

/// The token this tab was given, if any.
pub fn token() -> Option<String> {
    storage()?
        .get_item(KEY)
        .ok()
        .flatten()
        .filter(|t| !t.trim().is_empty())
}

/// Keeps `token` for the session (a blank one forgets it).
pub fn set_token(token: &str) {
    if let Some(s) = storage() {
        let token = token.trim();
        let _ = if token.is_empty() {
            s.remove_item(KEY)
        } else {
            s.set_item(KEY, token)
        };
    }
}

/// The `Authorization` header value for fetches, if a token is kept.
pub fn header() -> Option<String> {
    token().map(|t| format!("Bearer {t}"))
}

/// `url` with the kept token added as `?token=` (for `<img>` and links). Only for paths on this
/// relay (`/...`): the token never goes to another host.
pub fn with_token(url: &str) -> String {
    match token() {
        Some(t) if url.starts_with('/') && !url.starts_with("//") && !url.contains('#') => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}token={}", js_sys::encode_uri_component(&t))
        }
        _ => url.to_string(),
    }
}

/// `url` (a path of `stream`'s endpoints) as an `<img>` should load it: unchanged without a
/// token; with a signed query for `stream` when the relay signs URLs; with [`with_token`] when it
/// does not (404 from `/api/sign`). `None` when signing failed three times over (a relay busy or
/// refusing): the token is not put in the page for a passing failure.
pub async fn img_url(stream: &str, url: &str) -> Option<String> {
    if token().is_none() || NO_SIGNING.with(Cell::get) {
        return Some(with_token(url));
    }
    let now = js_sys::Date::now() / 1000.0;
    let cached = SIGNED.with(|s| {
        s.borrow()
            .get(stream)
            .filter(|(_, deadline)| *deadline > now + RENEW_BEFORE_S as f64)
            .map(|(q, _)| q.clone())
    });
    let append = |q: &str| {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{q}")
    };
    if let Some(q) = cached {
        return Some(append(&q));
    }
    for attempt in 0..3 {
        if attempt > 0 {
            gloo_timers::future::TimeoutFuture::new(1_000).await;
        }
        match sign(stream).await {
            Signing::Signed(q) => return Some(append(&q)),
            Signing::Unsupported => return Some(with_token(url)),
            Signing::Failed => {}
        }
    }
    None
}

/// What `POST /api/sign` gave.
enum Signing {
    Signed(String),
    /// 404: the relay signs no URLs (remembered for the session).
    Unsupported,
    /// Anything else: the network, a refusal, a busy relay.
    Failed,
}

/// Asks the relay for a signed query for `stream`, kept until a deadline on this browser's own
/// clock (the TTL asked for from now), so a clock that differs from the relay's does not matter.
async fn sign(stream: &str) -> Signing {
    let body = SignRequest {
        stream: stream.to_string(),
        ttl_seconds: SIGNED_TTL_S,
        fps: None,
    };
    let asked = js_sys::Date::now() / 1000.0;
    let mut req = gloo_net::http::Request::post("/api/sign");
    if let Some(auth) = header() {
        req = req.header("Authorization", &auth);
    }
    let Some(resp) = async { req.json(&body).ok()?.send().await.ok() }.await else {
        return Signing::Failed;
    };
    if resp.status() == 404 {
        NO_SIGNING.with(|n| n.set(true));
        return Signing::Unsupported;
    }
    if !resp.ok() {
        return Signing::Failed;
    }
    let Ok(signed) = resp.json::<SignedUrl>().await else {
        return Signing::Failed;
    };
    SIGNED.with(|s| {
        s.borrow_mut().insert(
            stream.to_string(),
            (signed.query.clone(), asked + SIGNED_TTL_S as f64),
        )
    });
    Signing::Signed(signed.query)
}
