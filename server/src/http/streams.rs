//! The stream routes: `/streams/NAME.mjpg` and `.frames` (a viewer: query parsing, admission
//! under the viewer caps, the response headers streams need) and `/streams/NAME.jpg` (the newest
//! frame, or one fresh frame from an idle stream).

use std::sync::Arc;
use std::time::Duration;

use mjpeg_shared::wire::{self, Layout};
use poem::web::{Data, Path};
use poem::{handler, Request, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;
use super::Site;
use crate::fanout::frame::Frame;
use crate::fanout::pace::Adapt;
use crate::fanout::stream::Stream;
use crate::fanout::viewer::{self, Admission, ViewerOptions};
use crate::net::conn::{self, ConnState};
use crate::source::options::parse_fps;
use crate::source::rendition::Rendition;

/// A viewer may ask for any rate up to this; above the source's rate it changes nothing.
pub const MAX_VIEWER_FPS: f64 = 1000.0;
/// How long a snapshot of an idle stream waits for its source to produce a frame.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

/// The query's pairs, percent-decoded. A bare word (`?1700000000`, the cache buster many pages
/// append) becomes a key with an empty value, which nothing here looks at.
fn query_pairs(req: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[handler]
pub async fn stream_endpoint(
    req: &Request,
    Path(file): Path<String>,
    site: Data<&Arc<Site>>,
) -> poem::Result<Response> {
    let (name, ext) = file
        .rsplit_once('.')
        .ok_or_else(|| ApiError::BadStreamPath {
            path: req.uri().path().to_string(),
        })?;
    let bad_path = || ApiError::BadStreamPath {
        path: req.uri().path().to_string(),
    };
    let layout = match ext {
        "mjpg" | "mjpeg" => Some(Layout::Advance),
        "frames" => Some(Layout::Frames),
        "jpg" | "jpeg" => None,
        _ => return Err(bad_path().into()),
    };
    let stream = site.stream(name)?;
    let params = query_pairs(req);
    match layout {
        Some(layout) => serve_stream(req, &site, stream, layout, &params),
        None => snapshot(&site, stream, &params).await,
    }
}

fn serve_stream(
    req: &Request,
    site: &Site,
    stream: Arc<Stream>,
    default_layout: Layout,
    params: &[(String, String)],
) -> poem::Result<Response> {
    let mut opts = ViewerOptions {
        layout: default_layout,
        max_fps: None,
        adapt: None,
    };
    let rendition = rendition_asked(params, stream_size(&stream))?;
    for (key, value) in params {
        match key.as_str() {
            "fps" => opts.max_fps = Some(parse_fps(value, MAX_VIEWER_FPS).map_err(ApiError::BadQuery)?),
            "adapt" => opts.adapt = parse_adapt(value, default_layout).map_err(ApiError::BadQuery)?,
            "overlay" if default_layout == Layout::Frames => {
                return Err(ApiError::BadQuery(
                    "overlay=1 applies to .mjpg and .jpg; on .frames, meta=1 sends the metadata for the page to draw".into(),
                )
                .into())
            }
            "meta" if default_layout == Layout::Frames => {
                let on = crate::source::options::parse_flag("meta", value).map_err(ApiError::BadQuery)?;
                opts.layout = if on { Layout::FramesMeta } else { Layout::Frames };
            }
            "meta" => {
                return Err(ApiError::BadQuery(
                    "meta=1 applies to .frames only (a JSON part before each frame that has metadata)".into(),
                )
                .into())
            }
            "layout" if default_layout == Layout::Frames => {
                return Err(ApiError::BadQuery(
                    "layout applies to .mjpg only; .frames parts always carry Content-Length, X-Sequence and X-Timestamp".into(),
                )
                .into())
            }
            "layout" => {
                opts.layout = match value.to_ascii_lowercase().as_str() {
                    "advance" => Layout::Advance,
                    "strict" => Layout::Strict,
                    other => {
                        return Err(ApiError::BadQuery(format!(
                            "layout {other:?} is not known; accepted: advance (default, for browsers), strict (Content-Length on every part)"
                        ))
                        .into())
                    }
                }
            }
            // Renditions (width, size, quality, overlay) are read above; anything else (cache
            // busters such as ?t=123 that legacy pages append) is ignored.
            _ => {}
        }
    }
    let peer = req.remote_addr().as_socket_addr().copied();
    let conn = req.extensions().get::<Arc<ConnState>>().cloned();
    let span = tracing::debug_span!(
        "viewer",
        stream = %stream.name,
        peer = %peer.map(|p| p.to_string()).unwrap_or_default(),
        layout = ?opts.layout,
    );
    span.in_scope(|| tracing::debug!(fps = ?opts.max_fps, %rendition, "viewer connected"));
    let admission = admit(site, &stream)?;
    let rendition = stream.join_rendition(rendition).map_err(ApiError::from)?;
    let name = stream.name.clone();
    let body = viewer::body(
        stream,
        opts,
        conn.clone(),
        site.shutdown.clone(),
        span,
        admission,
        rendition,
    );
    Ok(Response::builder()
        .content_type(opts.layout.content_type())
        .header("Cache-Control", "no-cache, no-store, must-revalidate")
        .header("Pragma", "no-cache")
        .header("X-Accel-Buffering", "no")
        .header(wire::HEADER_STREAM, name)
        // Over HTTP/1.x the relay writes the body itself once the head is out.
        .body(conn::endless_body(conn.as_ref(), body)))
}

/// `?adapt=`: `1` changes quality only on `.mjpg` (an `<img>`'s size must not jump) and also
/// size on `.frames`; `size` changes size anywhere; `0` is off.
fn parse_adapt(value: &str, layout: Layout) -> Result<Option<Adapt>, String> {
    match value.to_ascii_lowercase().as_str() {
        "size" => Ok(Some(Adapt::Size)),
        "quality" => Ok(Some(Adapt::Quality)),
        flag => Ok(crate::source::options::parse_flag("adapt", flag)
            .map_err(|_| {
                format!("adapt {value:?} is not known; accepted: 1 (on), 0 (off), quality, size")
            })?
            .then_some(if layout == Layout::Frames {
                Adapt::Size
            } else {
                Adapt::Quality
            })),
    }
}

/// The stream's size, when known (from its newest frame or its source's settings).
fn stream_size(stream: &Stream) -> Option<(u32, u32)> {
    let info = stream.info();
    info.width.zip(info.height)
}

/// The rendition the query asks for (`width`, `size`, `quality`, `overlay`), checked against
/// the source's size when known: 400 saying what is wrong.
fn rendition_asked(
    params: &[(String, String)],
    source: Option<(u32, u32)>,
) -> Result<Rendition, ApiError> {
    Rendition::from_query(params.iter().map(|(k, v)| (k.as_str(), v.as_str())), source)
        .map_err(ApiError::BadQuery)
}

async fn snapshot(
    site: &Site,
    stream: Arc<Stream>,
    params: &[(String, String)],
) -> poem::Result<Response> {
    // Checked before the source is woken, and again against the frame's own size.
    rendition_asked(params, stream_size(&stream))?;
    let frame = newest_frame(site, &stream, SNAPSHOT_TIMEOUT).await?;
    let rendition = rendition_asked(
        params,
        Some((frame.width, frame.height)).filter(|s| s.0 > 0),
    )?;
    let (jpeg, made) = match stream.join_rendition(rendition).map_err(ApiError::from)? {
        Some(r) => frame.rendition(r.rendition, || r.counter()).await,
        None => (frame.jpeg.clone(), None),
    };
    let mut resp = Response::builder();
    if let Some(made) = made {
        resp = resp.header(wire::HEADER_RENDITION, made.to_string());
    }
    Ok(resp
        .content_type(wire::JPEG_CONTENT_TYPE)
        .header("Cache-Control", "no-cache, no-store, must-revalidate")
        .header(
            wire::HEADER_TIMESTAMP,
            wire::format_timestamp(frame.captured_micros),
        )
        .header(wire::HEADER_SEQUENCE, frame.seq)
        .header(wire::HEADER_STREAM, stream.name.clone())
        .body(jpeg))
}

/// The stream's newest frame: the cached one while someone watches, else one fresh frame from
/// its source, woken for it (within `patience`).
pub async fn newest_frame(
    site: &Site,
    stream: &Arc<Stream>,
    patience: Duration,
) -> Result<Arc<Frame>, ApiError> {
    let frame = match stream.current() {
        // Someone is watching: the cached newest frame, answered at once.
        Some(frame) => frame,
        // Idle: wake the source for one fresh frame.
        None => {
            let (need, _request) = stream.request_frame();
            let mut rx = stream.subscribe();
            let wait = async {
                loop {
                    // Any frame numbered `need` or later was produced after this request, so
                    // it is fresh by construction (the driver may already count it stale, since
                    // the stream went idle again right after producing it).
                    if let Some(f) = rx.borrow_and_update().as_ref().filter(|f| f.seq >= need) {
                        return Some(f.clone());
                    }
                    rx.changed().await.ok()?;
                }
            };
            tokio::select! {
                r = tokio::time::timeout(patience, wait) => match r {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return Err(ApiError::ShuttingDown),
                    Err(_) => return Err(ApiError::NoFrame {
                        name: stream.name.clone(),
                        seconds: patience.as_secs(),
                        last_error: stream.info().last_error,
                    }),
                },
                _ = site.shutdown.cancelled() => return Err(ApiError::ShuttingDown),
            }
        }
    };
    Ok(frame)
}

/// Admits one more viewer of `stream`, or says which cap is full. Permits are taken without
/// waiting: a full relay answers 503 at once, and admitted viewers never wait on anyone refused.
fn admit(site: &Site, stream: &Stream) -> Result<Admission, ApiError> {
    let take = |permits: &Option<Arc<Semaphore>>, scope: String, limit: Option<u64>| {
        permits
            .as_ref()
            .map(|p| {
                p.clone()
                    .try_acquire_owned()
                    .map_err(|_| ApiError::TooManyViewers {
                        scope,
                        limit: limit.unwrap_or(0),
                    })
            })
            .transpose()
    };
    let stream_permit = take(
        &stream.viewer_permits,
        format!("stream {:?}", stream.name),
        site.limits.max_viewers_per_stream,
    )?;
    let relay_permit = take(
        &site.viewer_permits,
        "the relay".to_string(),
        site.limits.max_viewers,
    )?;
    Ok(Admission {
        relay: relay_permit,
        stream: stream_permit,
    })
}
