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

    #[error("only GET is served here")]
    MethodNotAllowed,

    #[error("stream {name:?} produced no frame within {seconds} s{}", last_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    NoFrame {
        name: String,
        seconds: u64,
        last_error: Option<String>,
    },

    #[error("the relay is shutting down")]
    ShuttingDown,
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownStream { .. }
            | ApiError::BadStreamPath { .. }
            | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::NoFrame { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn as_response(&self) -> Response {
        let body = ErrorBody {
            error: self.to_string(),
        };
        poem::web::Json(body)
            .with_status(self.status())
            .with_header("Cache-Control", "no-store")
            .into_response()
    }
}
