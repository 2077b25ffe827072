//! The dashboard at `/` (and its own pages, such as `/wall`: the same `index.html`, the app
//! reads the address): from `--dashboard DIR` when given, else the copy built into the binary
//! (`dist/` when the relay was compiled, through `rust-embed`), else the built-in page
//! ([`super::page`]). Built in, `target/release/mjpeg-relay` copied anywhere (or installed from
//! the `.deb`) serves the whole dashboard with nothing beside it.
//!
//! `rust-embed` rather than `include_bytes!` by hand: it walks the folder, guesses content types
//! and gives each file a hash for its `ETag`; with `debug-embed` debug builds embed too, so the
//! tests serve what a release serves. `build.rs` reruns when `dist/` changes, so a dashboard
//! built after the relay still gets in.

use std::path::PathBuf;

use poem::endpoint::StaticFilesEndpoint;
use poem::http::{header, StatusCode};
use poem::{handler, IntoResponse, Request, Response};

/// `dist/` as it was when the binary was built; empty when it was not there.
#[derive(rust_embed::RustEmbed)]
#[folder = "../dist"]
#[allow_missing = true]
struct Built;

/// Where `/` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dashboard {
    /// `--dashboard DIR`.
    Dir(PathBuf),
    /// The dashboard built into the binary.
    BuiltIn,
    /// No dashboard anywhere: the small built-in page.
    Page,
}

impl Dashboard {
    /// `--dashboard DIR` if given (its `index.html` missing: the page), else the built-in
    /// dashboard if this binary has one.
    pub fn choose(dir: Option<PathBuf>) -> Dashboard {
        match dir {
            Some(dir) if dir.join("index.html").is_file() => Dashboard::Dir(dir),
            Some(_) => Dashboard::Page,
            None if Built::get("index.html").is_some() => Dashboard::BuiltIn,
            None => Dashboard::Page,
        }
    }

    /// For the startup log.
    pub fn describe(&self) -> String {
        match self {
            Dashboard::Dir(dir) => format!("dashboard from {}", dir.display()),
            Dashboard::BuiltIn => "dashboard built into the binary".into(),
            Dashboard::Page => "no dashboard (this binary was built without dist/; run \
                                `trunk build --release` before `cargo build`, or give \
                                --dashboard DIR): serving the built-in page"
                .into(),
        }
    }

    /// The endpoint for `/` and everything under it, or `None` for the built-in page.
    pub fn endpoint(&self) -> Option<poem::endpoint::BoxEndpoint<'static>> {
        use poem::EndpointExt;
        match self {
            Dashboard::Dir(dir) => Some(
                StaticFilesEndpoint::new(dir)
                    .index_file("index.html")
                    .map_to_response()
                    .boxed(),
            ),
            Dashboard::BuiltIn => Some(built_in.map_to_response().boxed()),
            Dashboard::Page => None,
        }
    }

    /// The endpoint for the dashboard's own pages ([`PAGES`]): its `index.html`.
    pub fn page_endpoint(&self) -> Option<poem::endpoint::BoxEndpoint<'static>> {
        use poem::EndpointExt;
        match self {
            Dashboard::Dir(dir) => Some(
                poem::endpoint::StaticFileEndpoint::new(dir.join("index.html"))
                    .map_to_response()
                    .boxed(),
            ),
            Dashboard::BuiltIn => Some(
                poem::endpoint::make_sync(|req: Request| serve_built("index.html", &req))
                    .map_to_response()
                    .boxed(),
            ),
            Dashboard::Page => None,
        }
    }
}

/// Pages of the dashboard that are not files: each answers with `index.html`.
pub const PAGES: &[&str] = &["/wall"];

/// A file of the built-in dashboard. Trunk names every file but `index.html` by its content's
/// hash, so those may be cached for good; `index.html` is revalidated by its `ETag`.
#[handler]
fn built_in(req: &Request) -> Response {
    let path = req.uri().path().trim_start_matches('/');
    serve_built(if path.is_empty() { "index.html" } else { path }, req)
}

/// The built-in dashboard's file at `path`, revalidated by its `ETag`.
fn serve_built(path: &str, req: &Request) -> Response {
    let Some(file) = Built::get(path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let cache = if path == "index.html" {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let resp = Response::builder()
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, cache);
    if fresh {
        return resp.status(StatusCode::NOT_MODIFIED).finish();
    }
    resp.content_type(file.metadata.mimetype())
        .body(file.data.into_owned())
}
