//! What every response carries, and which `Host`s are answered at all.
//!
//! **Hosts.** A relay on a loopback address is reachable by any web page its user opens, through
//! DNS rebinding: the page's own name is made to resolve to 127.0.0.1, and its script then reads
//! the relay as same-origin. The browser still sends the page's name as `Host`, so on a loopback
//! bind only `localhost`, `127.0.0.1` and `[::1]` (any port) and the names given with
//! `--allow-host` are served; anything else gets 421 naming the flag. On other addresses the
//! check applies once `--allow-host` is given (credentials are the defence there). A request
//! without `Host` (HTTP/1.0 tools; never a browser) is served.
//!
//! **Headers.** Every response gets `X-Content-Type-Options: nosniff` (a stream or a JSON error is
//! never run as a script or a page), `Referrer-Policy: no-referrer` (a `?token=` or a signed URL
//! in the page's address must not travel in `Referer`), and a `Content-Security-Policy` that
//! lets the dashboard run and nothing else: its own scripts and WebAssembly, the inline scripts
//! of the served page by their hashes (computed from the page as served, so Trunk's loader and
//! the page's fallback script pass whatever the build), images and connections to itself, and
//! framing by `--frame-ancestors` only (default `'self'`). Pages are never answered 304
//! ([`whole_pages`]), since the hashes come from the page's body.

use base64::Engine;
use poem::http::{header, HeaderValue};
use poem::{IntoResponse, Request, Response};

use super::error::ApiError;

/// Host names always served on a loopback bind.
const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

/// The host names a relay answers to, or `None` for any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hosts(Option<Vec<String>>);

impl Hosts {
    /// For a relay bound to `loopback` or not, with `--allow-host` names.
    pub fn new(loopback: bool, allowed: &[String]) -> Hosts {
        if !loopback && allowed.is_empty() {
            return Hosts(None);
        }
        let mut names: Vec<String> = LOOPBACK_NAMES.iter().map(|s| s.to_string()).collect();
        names.extend(allowed.iter().map(|h| normalise(h)));
        Hosts(Some(names))
    }

    /// Checks a request's `Host` (or HTTP/2's `:authority`).
    pub fn check(&self, req: &Request) -> Result<(), ApiError> {
        let Some(names) = &self.0 else {
            return Ok(());
        };
        let host = req
            .headers()
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("\u{fffd}").to_string())
            .or_else(|| req.uri().authority().map(|a| a.to_string()));
        let Some(host) = host else {
            return Ok(());
        };
        let bare = normalise(&host);
        if names.contains(&bare) {
            return Ok(());
        }
        Err(ApiError::MisdirectedHost { host, bare })
    }
}

/// A `Host` value without its port, in lower case, without a trailing dot.
fn normalise(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let bare = if host.starts_with('[') {
        host.find(']').map_or(host.as_str(), |end| &host[..=end])
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host.as_str(),
        }
    };
    bare.trim_end_matches('.').to_string()
}

/// Pages (`/`, `*.html`, the dashboard's own pages such as `/wall`) are always answered whole: a 304 would carry a CSP computed without the
/// page, so without its scripts' hashes, and the browser would apply it to the cached page
/// (blocking its scripts). Their conditional headers are dropped; pages are a few kilobytes.
pub fn whole_pages(req: &mut Request) {
    let path = req.uri().path();
    if path.ends_with('/') || path.ends_with(".html") || super::dashboard::PAGES.contains(&path) {
        let headers = req.headers_mut();
        headers.remove(header::IF_NONE_MATCH);
        headers.remove(header::IF_MODIFIED_SINCE);
    }
}

/// Adds the security headers to `resp`; an HTML page's inline scripts are hashed into its CSP.
pub async fn secure(resp: Response, frame_ancestors: &str) -> Response {
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let (resp, hashes) = if html {
        let (parts, body) = resp.into_parts();
        let bytes = body.into_bytes().await.unwrap_or_default();
        let hashes = inline_script_hashes(&String::from_utf8_lossy(&bytes));
        (Response::from_parts(parts, bytes.into()), hashes)
    } else {
        (resp, Vec::new())
    };
    let mut resp = resp.into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(csp) = HeaderValue::try_from(policy(frame_ancestors, &hashes)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    resp
}

/// The Content-Security-Policy for a response whose inline scripts hash to `hashes`.
pub fn policy(frame_ancestors: &str, hashes: &[String]) -> String {
    let scripts: String = hashes.iter().map(|h| format!(" 'sha256-{h}'")).collect();
    // Styles: Yew sets style attributes, which only 'unsafe-inline' allows (they cannot run
    // code).
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{scripts}; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {frame_ancestors}"
    )
}

/// Base64 SHA-256 of each inline `<script>`'s text (those without `src`).
fn inline_script_hashes(html: &str) -> Vec<String> {
    use sha2::Digest;
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(open) = lower[at..].find("<script").map(|i| at + i) {
        let Some(tag_end) = lower[open..].find('>').map(|i| open + i + 1) else {
            break;
        };
        let Some(close) = lower[tag_end..].find("</script").map(|i| tag_end + i) else {
            break;
        };
        if !lower[open..tag_end].contains(" src=") {
            let digest = sha2::Sha256::digest(&html.as_bytes()[tag_end..close]);
            out.push(base64::engine::general_purpose::STANDARD.encode(digest));
        }
        at = close;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_without_port_or_case() {
        assert_eq!(normalise("LocalHost:8080"), "localhost");
        assert_eq!(normalise("[::1]:8080"), "[::1]");
        assert_eq!(normalise("cams.example.com."), "cams.example.com");
        assert_eq!(normalise("127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn inline_scripts_are_hashed_and_external_ones_are_not() {
        let html = "<script>a()</script><script src=\"/x.js\"></script><SCRIPT type=\"module\">b()</SCRIPT>";
        let hashes = inline_script_hashes(html);
        assert_eq!(hashes.len(), 2);
        use sha2::Digest;
        let want = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"a()"));
        assert_eq!(hashes[0], want);
    }
}
