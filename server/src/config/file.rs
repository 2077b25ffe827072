//! `--config FILE`: the TOML file, read into the same settings the flags give. Unknown keys are
//! refused with their name and line, so a typo never silently falls back to a default; errors
//! name the line but never quote it (it may hold a secret).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::fanout::Limits;
use crate::http::auth::{AccessConfig, BasicConfig, PasswordConfig};
use crate::secret::Secret;
use crate::source::spec::{validate_name, SourceSpec, StreamSpec};

/// `--config FILE`, parsed and checked: the settings it gives, each `None` (or empty) where the
/// file leaves it out. Limits and access come grouped as the relay takes them.
#[derive(Debug, Default)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub allow_origins: Vec<String>,
    pub limits: Limits,
    pub dashboard: Option<PathBuf>,
    pub require_camera: Option<bool>,
    pub log: Option<String>,
    pub streams: Vec<StreamSpec>,
    pub access: AccessConfig,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub max_connections: Option<u64>,
    pub allow_hosts: Vec<String>,
    pub frame_ancestors: Option<String>,
}

/// The file as written. Unknown keys are refused (with their name and line), so a typo never
/// silently falls back to a default.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: Option<SocketAddr>,
    #[serde(default)]
    allow_origins: Vec<String>,
    max_viewers: Option<u64>,
    max_viewers_per_stream: Option<u64>,
    max_renditions: Option<usize>,
    dashboard: Option<PathBuf>,
    require_camera: Option<bool>,
    ingest_token: Option<toml::Spanned<String>>,
    auth_token: Option<toml::Spanned<String>>,
    basic_user: Option<toml::Spanned<String>>,
    basic_password: Option<toml::Spanned<String>>,
    basic_password_hash: Option<toml::Spanned<String>>,
    metrics_token: Option<toml::Spanned<String>>,
    signing_key: Option<toml::Spanned<String>>,
    #[serde(default)]
    trusted_proxies: Vec<std::net::IpAddr>,
    max_auth_failures: Option<usize>,
    max_connections: Option<u64>,
    #[serde(default)]
    allow_hosts: Vec<String>,
    frame_ancestors: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log: Option<String>,
    #[serde(default)]
    stream: Vec<RawStream>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    name: toml::Spanned<String>,
    source: toml::Spanned<String>,
    auth_token: Option<toml::Spanned<String>>,
}

impl FileConfig {
    pub fn load(path: &std::path::Path) -> Result<FileConfig, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("config {}: {e}", path.display()))?;
        FileConfig::parse(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<FileConfig, String> {
        let raw: RawFile =
            // The error's message and line only: its full text quotes the line, which may hold
            // a token or a password.
            toml::from_str(text).map_err(|e: toml::de::Error| match e.span() {
                Some(span) => format!(
                    "line {}: {}",
                    text[..span.start.min(text.len())].matches('\n').count() + 1,
                    e.message()
                ),
                None => e.message().to_string(),
            })?;
        let line = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let secret = |key: &str, t: Option<toml::Spanned<String>>| {
            t.map(|t| {
                Secret::new(t.get_ref())
                    .map_err(|e| format!("line {}: {key}: {e}", line(t.span().start)))
            })
            .transpose()
        };
        let mut streams: Vec<StreamSpec> = Vec::new();
        let mut stream_tokens = Vec::new();
        for s in raw.stream {
            let at = line(s.name.span().start);
            validate_name(s.name.get_ref()).map_err(|e| format!("line {at}: {e}"))?;
            if streams.iter().any(|x| &x.name == s.name.get_ref()) {
                return Err(format!(
                    "line {at}: stream {:?} is configured twice",
                    s.name.get_ref()
                ));
            }
            let source = s.source.get_ref().parse::<SourceSpec>().map_err(|e| {
                format!(
                    "line {}: stream {:?}: {e}",
                    line(s.source.span().start),
                    s.name.get_ref()
                )
            })?;
            if let Some(token) = secret("auth_token", s.auth_token)? {
                stream_tokens.push((s.name.get_ref().clone(), token));
            }
            streams.push(StreamSpec {
                name: s.name.into_inner(),
                source,
            });
        }
        let basic_at = raw.basic_user.as_ref().map_or(1, |u| line(u.span().start));
        let password = match (
            secret("basic_password", raw.basic_password)?,
            secret("basic_password_hash", raw.basic_password_hash)?,
        ) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "line {basic_at}: give basic_password or basic_password_hash, not both"
                ))
            }
            (Some(p), None) => Some(PasswordConfig::Plain(p)),
            (None, Some(h)) => Some(PasswordConfig::Hashed(h)),
            (None, None) => None,
        };
        let basic = match (raw.basic_user, password) {
            (Some(user), Some(password)) => Some(
                BasicConfig::new(user.get_ref(), password)
                    .map_err(|e| format!("line {basic_at}: {e}"))?,
            ),
            (None, None) => None,
            (Some(_), None) => {
                return Err(format!(
                    "line {basic_at}: basic_user needs basic_password_hash (or basic_password)"
                ))
            }
            (None, Some(_)) => {
                return Err("basic_password_hash (or basic_password) needs basic_user".into())
            }
        };
        if raw.max_renditions.is_some_and(|n| n > 64) {
            return Err(
                "max_renditions is at most 64 (each costs a decode and an encode per frame)".into(),
            );
        }
        Ok(FileConfig {
            listen: raw.listen,
            allow_origins: raw.allow_origins,
            limits: Limits {
                max_viewers: raw.max_viewers,
                max_viewers_per_stream: raw.max_viewers_per_stream,
                max_renditions: raw.max_renditions,
            },
            dashboard: raw.dashboard,
            require_camera: raw.require_camera,
            log: raw.log,
            streams,
            access: AccessConfig {
                token: secret("auth_token", raw.auth_token)?,
                basic,
                metrics_token: secret("metrics_token", raw.metrics_token)?,
                stream_tokens,
                ingest_token: secret("ingest_token", raw.ingest_token)?,
                signing_key: secret("signing_key", raw.signing_key)?,
                max_failures: raw
                    .max_auth_failures
                    .unwrap_or(crate::http::failures::MAX_FAILURES),
                trusted_proxies: raw.trusted_proxies,
            },
            max_connections: match raw.max_connections {
                Some(0) => return Err("max_connections must be at least 1".into()),
                n => n,
            },
            allow_hosts: raw.allow_hosts,
            frame_ancestors: raw.frame_ancestors,
            tls: match (raw.tls_cert, raw.tls_key) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => return Err("tls_cert and tls_key go together: give both or neither".into()),
            },
        })
    }
}
