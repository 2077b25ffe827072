//! The relay's token, when the relay asks for one (`--auth-token`): typed once into the prompt,
//! kept in `sessionStorage` for this tab's session, sent as `Authorization: Bearer` on fetches
//! and as `?token=` on `<img>` URLs, which cannot carry headers. HTTP Basic needs nothing here:
//! the browser asks for the user and password itself and sends them with every request.

use crate::web;

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
