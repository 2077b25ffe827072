//! Every error a request can get, and the one place where each maps to an HTTP status.
//!
//! Bodies are JSON `{"error": "..."}` ([`mjpeg_shared::api::ErrorBody`]) with a message that says
//! what was wrong and what is accepted.

use mjpeg_shared::api::ErrorBody;
use poem::error::ResponseError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no stream named {name:?}; streams: {}", available.join(", "))]
    UnknownStream {
        name: String,
        available: Vec<String>,
    },

    #[error("{path:?} is not a stream endpoint; use /streams/NAME.mjpg, /streams/NAME.frames or /streams/NAME.jpg")]
    BadStreamPath { path: String },

    #[error("{0}")]
    BadQuery(String),

    #[error("no such endpoint; streams are at /streams/NAME.mjpg, .frames and .jpg, the list at /api/streams")]
    NotFound,

    #[error("method not allowed here: streams, snapshots and the API are GET; only /streams/NAME/ingest, /api/sign and /api/streams/NAME/report take POST")]
    MethodNotAllowed,

    #[error("stream {name:?} produced no frame within {seconds} s{}", last_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    NoFrame {
        name: String,
        seconds: u64,
        last_error: Option<String>,
    },

    #[error("the relay is shutting down")]
    ShuttingDown,

    #[error("{scope} already has its maximum of {limit} viewers; try again later")]
    TooManyViewers { scope: String, limit: u64 },

    #[error(transparent)]
    TooManyRenditions(#[from] crate::fanout::stream::RenditionCap),

    #[error("stream {name:?} does not take pushed frames (its source is {source_spec}); use a stream with source \"push\"")]
    NotPushStream { name: String, source_spec: String },

    #[error("{}", if *pushing {
        "pushing to this stream needs its token, as Authorization: Bearer TOKEN or ?token=TOKEN".to_string()
    } else {
        format!("this relay needs credentials: Authorization: Bearer TOKEN, ?token=TOKEN (for <img>){}", if *basic { ", or a user and password (HTTP Basic)" } else { "" })
    })]
    AuthRequired { basic: bool, pushing: bool },

    #[error("these credentials do not open this route")]
    AuthWrong,

    #[error("{0}")]
    Signed(crate::signed::Refused),

    #[error("too many wrong credentials from this address; try again in {retry_after} s")]
    TooManyFailures { retry_after: u64 },

    #[error("too many password checks are waiting; try again in a second")]
    VerifierBusy,

    #[error("this relay does not answer to the host {host:?}; if that is how it is reached, start it with --allow-host {bare}")]
    MisdirectedHost { host: String, bare: String },

    #[error("{0}")]
    SigningUnavailable(String),

    #[error("no frame of stream {name:?} has carried metadata yet; pushers send it as a JSON part after the JPEG part, or as X-Frame-Meta (docs/metadata.md)")]
    NoMeta { name: String },

    #[error("{0}")]
    BadMeta(String),

    #[error("{0}")]
    BadAuthorization(String),

    #[error("another process is pushing to this stream; only one at a time (configure push?replace=1 to let the newest take over)")]
    PusherBusy,

    #[error("this push was replaced by a newer pusher")]
    PusherReplaced,

    #[error("{0}")]
    NotJpeg(String),

    #[error("frame of {size} bytes or more is over this stream's limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },

    #[error("bad ingest body: {0}")]
    BadBody(String),

    #[error("the pushed body sent nothing for {seconds} s; the stream is free for another pusher")]
    BodyIdle { seconds: u64 },

    #[error("the request body did not arrive within {seconds} s")]
    BodySlow { seconds: u64 },

    #[error("bad viewer report: {0} (docs/api.md)")]
    BadReport(String),

    #[error("a viewer report is JSON: Content-Type: application/json")]
    ReportNotJson,

    #[error("a viewer report is at most {limit} bytes")]
    ReportTooLarge { limit: usize },

    #[error("viewer report not taken: {0}")]
    ReportRefused(#[from] crate::fanout::reports::Refused),
}

/// The realm named in challenges.
pub const REALM: &str = "mjpeg-relay";

/// The challenges for a 401: Bearer always, Basic when Basic credentials would open the route
/// (a browser then shows its login dialog).
pub fn challenges(basic: bool) -> Vec<String> {
    let mut out = vec![format!("Bearer realm=\"{REALM}\"")];
    if basic {
        out.push(format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""));
    }
    out
}

/// What a refused viewer is told to wait: long enough not to hammer a full relay, short enough
/// that a freed place is taken soon.
const RETRY_AFTER_SECS: &str = "5";

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownStream { .. }
            | ApiError::BadStreamPath { .. }
            | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed | ApiError::NotPushStream { .. } => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            ApiError::AuthRequired { .. } => StatusCode::UNAUTHORIZED,
            ApiError::AuthWrong | ApiError::Signed(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MisdirectedHost { .. } => StatusCode::MISDIRECTED_REQUEST,
            ApiError::SigningUnavailable(_) | ApiError::NoMeta { .. } => StatusCode::NOT_FOUND,
            ApiError::BadMeta(_) => StatusCode::BAD_REQUEST,
            ApiError::BadAuthorization(_) => StatusCode::BAD_REQUEST,
            ApiError::PusherBusy | ApiError::PusherReplaced => StatusCode::CONFLICT,
            ApiError::NotJpeg(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooLarge { .. } | ApiError::ReportTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::BadReport(_) => StatusCode::BAD_REQUEST,
            ApiError::ReportNotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::ReportRefused(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyIdle { .. } | ApiError::BodySlow { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::NoFrame { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::ShuttingDown
            | ApiError::TooManyViewers { .. }
            | ApiError::TooManyRenditions(_)
            | ApiError::VerifierBusy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn as_response(&self) -> Response {
        let body = ErrorBody {
            error: self.to_string(),
        };
        let mut resp = poem::web::Json(body)
            .with_status(self.status())
            .with_header("Cache-Control", "no-store")
            .into_response();
        let retry_after = match self {
            ApiError::TooManyViewers { .. } | ApiError::TooManyRenditions(_) => {
                Some(RETRY_AFTER_SECS.to_string())
            }
            ApiError::VerifierBusy => Some("1".to_string()),
            // Whole seconds, rounded up: never sooner than the relay takes the next one.
            ApiError::ReportRefused(crate::fanout::reports::Refused::TooSoon) => Some(
                crate::fanout::reports::MIN_INTERVAL
                    .as_millis()
                    .div_ceil(1000)
                    .to_string(),
            ),
            ApiError::TooManyFailures { retry_after } => Some(retry_after.to_string()),
            _ => None,
        };
        if let Some(value) = retry_after.and_then(|v| poem::http::HeaderValue::try_from(v).ok()) {
            resp.headers_mut()
                .insert(poem::http::header::RETRY_AFTER, value);
        }
        if let ApiError::AuthRequired { basic, .. } = self {
            for challenge in challenges(*basic) {
                if let Ok(value) = poem::http::HeaderValue::try_from(challenge) {
                    resp.headers_mut()
                        .append(poem::http::header::WWW_AUTHENTICATE, value);
                }
            }
        }
        resp
    }
}
