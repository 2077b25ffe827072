//! The stream routes: `/streams/NAME.mjpg` and `.frames` (a viewer: query parsing, admission
//! under the viewer caps, the response headers streams need), `/streams/wall.frames?names=...`
//! (a viewer of each named stream, all in one response) and `/streams/NAME.jpg` (the newest
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
use crate::fanout::stream::{RenditionGuard, Stream};
use crate::fanout::viewer::{self, Admission, ViewerOptions};
use crate::net::conn::{self, ConnState};
use crate::source::options::parse_fps;
use crate::source::rendition::Rendition;

/// A viewer may ask for any rate up to this; above the source's rate it changes nothing.
pub const MAX_VIEWER_FPS: f64 = 1000.0;
/// Streams one wall may carry: each is a viewer of its stream, with its caps.
pub const MAX_WALL_STREAMS: usize = mjpeg_shared::wire::WALL_MAX_STREAMS;
/// How long a snapshot of an idle stream waits for its source to produce a frame.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

/// The query's pairs, percent-decoded. A bare word (`?1700000000`, the cache buster many pages
/// append) becomes a key with an empty value, which nothing here looks at.
fn query_pairs(req: &Request) -> Vec<(String, String)> {
    parse_query(req.uri().query().unwrap_or_default())
}

/// [`query_pairs`] of a raw query string.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
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
    let params = query_pairs(req);
    if name == wire::WALL && layout == Some(Layout::Frames) {
        return serve_wall(req, &site, &params);
    }
    let stream = site.stream(name)?;
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
    let asked = rendition_asked(params, stream_size(&stream))?;
    let opts = viewer_options(default_layout, params)?;
    let conn = req.extensions().get::<Arc<ConnState>>().cloned();
    let name = stream.name.clone();
    let body = admit_viewer(site, stream, asked)?.start(req, site, opts, conn.as_ref());
    Ok(stream_response(opts.layout)
        .header(wire::HEADER_STREAM, name)
        // Over HTTP/1.x the relay writes the body itself once the head is out.
        .body(conn::endless_body(conn.as_ref(), body)))
}

/// `/streams/wall.frames?names=a,b,c`: a viewer of each named stream (the same query as
/// `.frames` otherwise: `fps`, `width`, `size`, `quality` apply to every one), their parts merged
/// into one response as they come, each naming its stream. One connection for a page of many
/// streams: a browser opens at most six per host over HTTP/1.1.
fn serve_wall(req: &Request, site: &Site, params: &[(String, String)]) -> poem::Result<Response> {
    let names = wall_names(params).map_err(ApiError::BadQuery)?;
    if let Some((key, _)) = params
        .iter()
        .find(|(k, _)| matches!(k.as_str(), "meta" | "adapt" | "overlay" | "layout"))
    {
        return Err(ApiError::BadQuery(format!(
            "{key} applies to one stream's .mjpg or .frames, not to a wall"
        ))
        .into());
    }
    let mut opts = viewer_options(Layout::Frames, params)?;
    opts.layout = Layout::Wall;
    let conn = req.extensions().get::<Arc<ConnState>>().cloned();
    let streams = names
        .iter()
        .map(|name| site.stream(name))
        .collect::<Result<Vec<_>, _>>()?;
    // Checked, then admitted, then started: a refused wall wakes no source and leaves nothing
    // counted (the admissions taken before a refusal are dropped with it).
    let asked = streams
        .iter()
        .map(|stream| {
            rendition_asked(params, stream_size(stream)).map_err(|e| match e {
                ApiError::BadQuery(msg) => {
                    ApiError::BadQuery(format!("stream {:?}: {msg}", stream.name))
                }
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let admitted = streams
        .into_iter()
        .zip(asked)
        .map(|(stream, asked)| admit_viewer(site, stream, asked))
        .collect::<Result<Vec<_>, _>>()?;
    let bodies: Vec<_> = admitted
        .into_iter()
        .map(|viewer| Box::pin(viewer.start(req, site, opts, conn.as_ref())))
        .collect();
    Ok(stream_response(opts.layout).body(conn::endless_body(
        conn.as_ref(),
        futures_util::stream::select_all(bodies),
    )))
}

/// A wall's `names`: given once, 1 to [`MAX_WALL_STREAMS`] names separated by commas, none
/// twice. Also read by access control ([`super::auth`]), which lets a wall through only to
/// someone who may watch every stream on it, so both must read the query the same way.
pub fn wall_names(params: &[(String, String)]) -> Result<Vec<String>, String> {
    let mut given = params.iter().filter(|(k, _)| k == "names");
    let (Some((_, value)), None) = (given.next(), given.next()) else {
        return Err("a wall needs names=A,B,... (the streams on it), given once".into());
    };
    let names: Vec<String> = value.split(',').map(|n| n.trim().to_string()).collect();
    if names.iter().any(String::is_empty) {
        return Err(format!("names {value:?} has an empty name"));
    }
    if names.len() > MAX_WALL_STREAMS {
        return Err(format!(
            "a wall carries at most {MAX_WALL_STREAMS} streams; names lists {}",
            names.len()
        ));
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(format!("names lists {name:?} twice"));
        }
    }
    Ok(names)
}

/// The head every stream response has, whatever its layout.
fn stream_response(layout: Layout) -> poem::ResponseBuilder {
    Response::builder()
        .content_type(layout.content_type())
        .header("Cache-Control", "no-cache, no-store, must-revalidate")
        .header("Pragma", "no-cache")
        .header("X-Accel-Buffering", "no")
}

/// What the query asks of a viewer on an endpoint whose layout is `default_layout`; 400 saying
/// what is wrong. Renditions are read per stream ([`rendition_asked`]).
fn viewer_options(
    default_layout: Layout,
    params: &[(String, String)],
) -> Result<ViewerOptions, ApiError> {
    let mut opts = ViewerOptions {
        layout: default_layout,
        max_fps: None,
        adapt: None,
    };
    for (key, value) in params {
        match key.as_str() {
            "fps" => opts.max_fps = Some(parse_fps(value, MAX_VIEWER_FPS).map_err(ApiError::BadQuery)?),
            "adapt" => opts.adapt = parse_adapt(value, default_layout).map_err(ApiError::BadQuery)?,
            "overlay" if default_layout == Layout::Frames => {
                return Err(ApiError::BadQuery(
                    "overlay=1 applies to .mjpg and .jpg; on .frames, meta=1 sends the metadata for the page to draw".into(),
                ))
            }
            "meta" if default_layout == Layout::Frames => {
                let on = crate::source::options::parse_flag("meta", value).map_err(ApiError::BadQuery)?;
                opts.layout = if on { Layout::FramesMeta } else { Layout::Frames };
            }
            "meta" => {
                return Err(ApiError::BadQuery(
                    "meta=1 applies to .frames only (a JSON part before each frame that has metadata)".into(),
                ))
            }
            "layout" if default_layout == Layout::Frames => {
                return Err(ApiError::BadQuery(
                    "layout applies to .mjpg only; .frames parts always carry Content-Length, X-Sequence and X-Timestamp".into(),
                ))
            }
            "layout" => {
                opts.layout = match value.to_ascii_lowercase().as_str() {
                    "advance" => Layout::Advance,
                    "strict" => Layout::Strict,
                    other => {
                        return Err(ApiError::BadQuery(format!(
                            "layout {other:?} is not known; accepted: advance (default, for browsers), strict (Content-Length on every part)"
                        )))
                    }
                }
            }
            // Renditions (width, size, quality, overlay) are read per stream
            // (`rendition_asked`); anything else (cache busters such as ?t=123 that legacy pages
            // append) is ignored.
            _ => {}
        }
    }
    Ok(opts)
}

/// A viewer admitted under the viewer caps, with its rendition joined; not started yet (it is
/// not counted and wakes no source until [`Admitted::start`]).
struct Admitted {
    stream: Arc<Stream>,
    admission: Admission,
    asked: Rendition,
    rendition: Option<RenditionGuard>,
}

/// Admits a viewer of `stream` asking for `asked` (already checked by [`rendition_asked`]): 503
/// naming a full viewer cap, or the rendition cap's refusal.
fn admit_viewer(site: &Site, stream: Arc<Stream>, asked: Rendition) -> Result<Admitted, ApiError> {
    let admission = admit(site, &stream)?;
    let rendition = stream.join_rendition(asked)?;
    Ok(Admitted {
        stream,
        admission,
        asked,
        rendition,
    })
}

impl Admitted {
    /// The viewer's body: from now on it counts, and its stream's source runs for it.
    fn start(
        self,
        req: &Request,
        site: &Site,
        opts: ViewerOptions,
        conn: Option<&Arc<ConnState>>,
    ) -> impl futures_util::Stream<Item = std::io::Result<crate::net::takeover::Chunk>> + Send + 'static
    {
        let peer = req.remote_addr().as_socket_addr().copied();
        let span = tracing::debug_span!(
            "viewer",
            stream = %self.stream.name,
            peer = %peer.map(|p| p.to_string()).unwrap_or_default(),
            layout = ?opts.layout,
        );
        span.in_scope(
            || tracing::debug!(fps = ?opts.max_fps, rendition = %self.asked, "viewer connected"),
        );
        viewer::body(
            self.stream,
            opts,
            conn.cloned(),
            site.shutdown.clone(),
            span,
            self.admission,
            self.rendition,
        )
    }
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
