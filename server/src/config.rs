//! Command line, config file and stream specs: `mjpeg-relay [--config FILE] --listen ADDR:PORT
//! --stream NAME=SOURCE ...`.
//!
//! A spec that does not parse is refused before anything starts (exit code 2), with a message
//! naming the part that is wrong and what is accepted there; in a config file, with its line.
//! [`Cli::settings`] merges the file and the flags, flags winning.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Parser, Subcommand};

use crate::auth::{AccessConfig, BasicConfig, PasswordConfig};

use crate::source::camera::device::{DeviceSelector, PixelFormat};
use crate::source::camera::CameraOptions;
use crate::source::ffmpeg::FfmpegOptions;
use crate::source::push::{PushOptions, Secret};
use crate::source::upstream::{redact, UpstreamOptions};

const EXAMPLES: &str = "\
Examples:
  mjpeg-relay
      the built-in test pattern as stream \"main\" on http://127.0.0.1:8080/
  mjpeg-relay --stream main=test?size=1280x720&fps=25
  mjpeg-relay --listen 0.0.0.0:8080 --stream lobby=files:/srv/frames?fps=10 --stream demo=test
  mjpeg-relay --stream cam=camera:0?size=1280x720&mirror=1
  mjpeg-relay --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem --auth-token T
      HTTPS and HTTP/2; every stream and API request needs the token (?token=T for <img>)
  echo 'a password' | mjpeg-relay hash-password
      a hash for basic_password_hash in the config file

Sources:
  test[?size=WxH&fps=N]     moving test pattern with clock and frame stamp (default 640x480, 30 fps)
  files:DIR[?fps=N]         the JPEG files in DIR, looped in name order (default 30 fps)
  camera[:INDEX|:/dev/videoN][?size=WxH&fps=N&format=mjpeg|yuyv|nv12|gray|rgb|bgr&quality=Q&mirror=1&idle=S]
                            a webcam, opened once while someone watches (closed after idle=10 s);
                            default: its best MJPEG mode up to 1280x720 at 30 fps, else its best
                            raw mode, encoded at quality 80. NO SIGNAL frames while it is missing.
  ffmpeg:PATH_OR_URL[?fps=N&size=WxH&quality=Q&loop=0]
                            anything ffmpeg reads (files loop, at real time; RTSP), via an ffmpeg
                            child process that runs only while someone watches
  http(s)://[user:pass@]HOST[:PORT]/PATH[#linger=S&ca=PEM]
                            an upstream MJPEG stream (IP camera, another relay): one connection
                            however many viewers, while watched and for linger=10 s after
  push[?token=T&replace=1&max_bytes=N]
                            frames POSTed to /streams/NAME/ingest (one JPEG per request, or one
                            long multipart request); needs a token (here or --ingest-token)
  mjpeg-relay cameras       lists the cameras, their formats, sizes and rates

Endpoints, for a stream NAME:
  /streams/NAME.mjpg        multipart/x-mixed-replace for <img src>; ?layout=strict adds Content-Length
  /streams/NAME.frames      fetch-readable variant with sequence numbers and capture times
  /streams/NAME.jpg         the latest frame
  ?fps=N on both streams caps that viewer's rate
  /api/streams, /api/streams/NAME, /api/time, /healthz";

/// Capture once, fan out to every viewer: an MJPEG relay for browsers.
#[derive(Debug, Parser)]
#[command(name = "mjpeg-relay", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Settings and streams from a TOML file (see the README); the flags below override it, and a
    /// --stream replaces the file's stream of the same name.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port to listen on, e.g. 0.0.0.0:8080 to serve the network (port 0 picks a free
    /// port and prints it). [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// A stream to serve, as NAME=SOURCE; repeat for more streams. NAME is letters, digits, '-'
    /// and '_'. Without any, one stream main=test.
    #[arg(long = "stream", value_name = "NAME=SOURCE", value_parser = StreamArg)]
    pub streams: Vec<StreamSpec>,

    /// Folder of the built dashboard (`trunk build --release` output), served at /. When it does
    /// not exist, / shows a small built-in page instead. [default: dist]
    #[arg(long, value_name = "DIR")]
    pub dashboard: Option<PathBuf>,

    /// Token that `POST /streams/NAME/ingest` requires (as `Authorization: Bearer TOKEN` or
    /// `?token=TOKEN`) for push streams without a token of their own.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MJPEG_RELAY_INGEST_TOKEN",
        hide_env_values = true
    )]
    pub ingest_token: Option<Secret>,

    /// Token every stream, snapshot and API request must carry, as `Authorization: Bearer TOKEN`
    /// or `?token=TOKEN` (for `<img>`); ingest takes it too when no ingest token is set.
    /// /healthz stays open.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MJPEG_RELAY_AUTH_TOKEN",
        hide_env_values = true
    )]
    pub auth_token: Option<Secret>,

    /// User name for HTTP Basic, the alternative to a token (browsers ask for it themselves).
    #[arg(long, value_name = "USER", requires = "basic_password")]
    pub basic_user: Option<String>,

    /// Password for --basic-user. In a config file, prefer basic_password_hash (see
    /// `mjpeg-relay hash-password`).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "MJPEG_RELAY_BASIC_PASSWORD",
        hide_env_values = true,
        requires = "basic_user"
    )]
    pub basic_password: Option<Secret>,

    /// Token for /metrics (for Prometheus' `authorization` setting), which otherwise takes the
    /// relay's credentials or, without any, is open.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MJPEG_RELAY_METRICS_TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<Secret>,

    /// Serve HTTPS with this PEM certificate chain (leaf first), and HTTP/2 to clients that
    /// offer it, which lifts browsers' six-streams-per-host limit. Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// An origin whose pages may read streams, snapshots and the API from script (CORS), e.g.
    /// https://ops.example.com; repeat for more; `*` for any. Default: the relay's own origin
    /// only. `<img>` embedding works from any page either way.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origins: Vec<String>,

    /// At most this many viewers over all streams; more get 503 with Retry-After.
    #[arg(long, value_name = "N")]
    pub max_viewers: Option<u64>,

    /// At most this many viewers on any one stream; more get 503 with Retry-After.
    #[arg(long, value_name = "N")]
    pub max_viewers_per_stream: Option<u64>,

    /// Refuse to start when a camera stream's device cannot be opened (default: start anyway and
    /// show NO SIGNAL while retrying).
    #[arg(long)]
    pub require_camera: bool,

    /// Log filter (tracing's EnvFilter syntax), e.g. `debug` or `mjpeg_relay=debug`.
    /// RUST_LOG, when set, wins. [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Things to do instead of serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the cameras this machine has, with their formats, sizes and rates.
    Cameras,
    /// Read a password from standard input and print its Argon2id hash, for the config file's
    /// basic_password_hash.
    HashPassword,
}

/// `--allow-origin` values: `*`, or an origin as browsers send it (`scheme://host[:port]`, no
/// path, no trailing slash), which is what CORS compares byte for byte.
fn check_origins(origins: Vec<String>) -> Result<Vec<String>, String> {
    for o in &origins {
        let ok = o == "*"
            || ["http://", "https://"].iter().any(|scheme| {
                o.strip_prefix(scheme)
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
            });
        if !ok {
            return Err(format!(
                "allow-origin {o:?} is not an origin: give scheme://host[:port] with no path \
                 (e.g. https://ops.example.com), or * for any"
            ));
        }
    }
    Ok(origins)
}

/// Caps on viewers; beyond them a stream request gets 503 with `Retry-After`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Over all streams together.
    pub max_viewers: Option<u64>,
    /// On each stream.
    pub max_viewers_per_stream: Option<u64>,
}

/// Everything the relay runs with, from the file (if any) and the flags, flags winning.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub listen: SocketAddr,
    pub dashboard: PathBuf,
    pub require_camera: bool,
    pub ingest_token: Option<Secret>,
    pub log: String,
    pub limits: Limits,
    pub allow_origins: Vec<String>,
    pub access: crate::auth::AccessConfig,
    /// Certificate and key files for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// In the file's order, then new ones from the flags; never empty (`main=test` by default).
    pub streams: Vec<StreamSpec>,
}

impl Cli {
    /// Reads `--config` (if given) and applies the flags over it.
    pub fn settings(&self) -> Result<Settings, String> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let from_file = file.streams.len();
        let mut streams = file.streams;
        for spec in &self.streams {
            if streams[from_file..].iter().any(|s| s.name == spec.name) {
                return Err(format!(
                    "stream {:?} is given twice with --stream",
                    spec.name
                ));
            }
            match streams[..from_file]
                .iter_mut()
                .find(|s| s.name == spec.name)
            {
                Some(existing) => *existing = spec.clone(),
                None => streams.push(spec.clone()),
            }
        }
        if streams.is_empty() {
            streams.push(StreamSpec::from_str("main=test").expect("default spec parses"));
        }
        Ok(Settings {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            dashboard: self
                .dashboard
                .clone()
                .or(file.dashboard)
                .unwrap_or_else(|| PathBuf::from("dist")),
            require_camera: self.require_camera || file.require_camera.unwrap_or(false),
            ingest_token: self.ingest_token.clone().or(file.ingest_token),
            log: self
                .log
                .clone()
                .or(file.log)
                .unwrap_or_else(|| "info".into()),
            allow_origins: check_origins(if self.allow_origins.is_empty() {
                file.allow_origins
            } else {
                self.allow_origins.clone()
            })?,
            access: AccessConfig {
                token: self.auth_token.clone().or(file.auth_token),
                basic: match (&self.basic_user, &self.basic_password) {
                    (Some(user), Some(password)) => Some(BasicConfig::new(
                        user,
                        PasswordConfig::Plain(password.clone()),
                    )?),
                    _ => file.basic,
                },
                metrics_token: self.metrics_token.clone().or(file.metrics_token),
                // A --stream that replaces a file's stream keeps the file's token for that name:
                // viewers know the stream by its name.
                stream_tokens: file.stream_tokens,
            },
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
                _ => file.tls,
            },
            limits: Limits {
                max_viewers: self.max_viewers.or(file.max_viewers),
                max_viewers_per_stream: self.max_viewers_per_stream.or(file.max_viewers_per_stream),
            },
            streams,
        })
    }
}

/// `--config FILE`, parsed and checked.
#[derive(Debug, Default)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub allow_origins: Vec<String>,
    pub max_viewers: Option<u64>,
    pub max_viewers_per_stream: Option<u64>,
    pub dashboard: Option<PathBuf>,
    pub require_camera: Option<bool>,
    pub ingest_token: Option<Secret>,
    pub log: Option<String>,
    pub streams: Vec<StreamSpec>,
    pub auth_token: Option<Secret>,
    pub basic: Option<BasicConfig>,
    pub metrics_token: Option<Secret>,
    pub stream_tokens: Vec<(String, Secret)>,
    pub tls: Option<(PathBuf, PathBuf)>,
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
    dashboard: Option<PathBuf>,
    require_camera: Option<bool>,
    ingest_token: Option<toml::Spanned<String>>,
    auth_token: Option<toml::Spanned<String>>,
    basic_user: Option<toml::Spanned<String>>,
    basic_password: Option<toml::Spanned<String>>,
    basic_password_hash: Option<toml::Spanned<String>>,
    metrics_token: Option<toml::Spanned<String>>,
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
        Ok(FileConfig {
            listen: raw.listen,
            allow_origins: raw.allow_origins,
            max_viewers: raw.max_viewers,
            max_viewers_per_stream: raw.max_viewers_per_stream,
            dashboard: raw.dashboard,
            require_camera: raw.require_camera,
            ingest_token: raw
                .ingest_token
                .map(|t| {
                    Secret::new(t.get_ref())
                        .map_err(|e| format!("line {}: ingest_token: {e}", line(t.span().start)))
                })
                .transpose()?,
            log: raw.log,
            streams,
            auth_token: secret("auth_token", raw.auth_token)?,
            basic,
            metrics_token: secret("metrics_token", raw.metrics_token)?,
            stream_tokens,
            tls: match (raw.tls_cert, raw.tls_key) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => return Err("tls_cert and tls_key go together: give both or neither".into()),
            },
        })
    }
}

/// Parses `--stream` values with an error of its own: clap's usual one repeats the whole value,
/// and a push stream's token must not end up in a terminal or a journal. Exit code 2 as usual.
#[derive(Clone)]
struct StreamArg;

impl clap::builder::TypedValueParser for StreamArg {
    type Value = StreamSpec;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<StreamSpec, clap::Error> {
        use clap::error::ErrorKind;
        let value = value.to_str().ok_or_else(|| {
            clap::Error::raw(ErrorKind::InvalidUtf8, "--stream is not UTF-8\n").with_cmd(cmd)
        })?;
        value.parse::<StreamSpec>().map_err(|e| {
            let e = if value.contains("token=") {
                e.replace(value, "<spec>")
            } else {
                e
            };
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid --stream: {e}\n"),
            )
            .with_cmd(cmd)
        })
    }
}

/// One `--stream NAME=SOURCE`.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamSpec {
    pub name: String,
    pub source: SourceSpec,
}

/// A parsed SOURCE.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    Test { width: u32, height: u32, fps: f64 },
    Files { dir: PathBuf, fps: f64 },
    Camera(CameraOptions),
    Push(PushOptions),
    Ffmpeg(FfmpegOptions),
    Upstream(UpstreamOptions),
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Test { width, height, fps } => {
                write!(f, "test?size={width}x{height}&fps={fps}")
            }
            SourceSpec::Files { dir, fps } => write!(f, "files:{}?fps={fps}", dir.display()),
            // Credentials are removed: specs are shown in the API and the logs.
            SourceSpec::Upstream(o) => {
                write!(f, "{}#linger={}", redact(&o.url), o.linger.as_secs())
            }
            SourceSpec::Ffmpeg(o) => {
                write!(
                    f,
                    "ffmpeg:{}?quality={}&loop={}",
                    o.shown(),
                    o.quality,
                    u8::from(o.loop_input)
                )?;
                if let Some(fps) = o.fps {
                    write!(f, "&fps={fps}")?;
                }
                if let Some((w, h)) = o.size {
                    write!(f, "&size={w}x{h}")?;
                }
                Ok(())
            }
            // The token is a secret: never shown (the API prints specs).
            SourceSpec::Push(o) => {
                write!(f, "push?max_bytes={}", o.max_bytes)?;
                if o.replace {
                    write!(f, "&replace=1")?;
                }
                Ok(())
            }
            SourceSpec::Camera(o) => {
                match &o.selector {
                    DeviceSelector::First => write!(f, "camera")?,
                    DeviceSelector::Index(i) => write!(f, "camera:{i}")?,
                    DeviceSelector::Path(p) => write!(f, "camera:{}", p.display())?,
                }
                let mut opts = Vec::new();
                if let Some((w, h)) = o.request.size {
                    opts.push(format!("size={w}x{h}"));
                }
                if let Some(fps) = o.request.fps {
                    opts.push(format!("fps={fps}"));
                }
                if let Some(format) = o.request.format {
                    opts.push(format!("format={format}"));
                }
                opts.push(format!("quality={}", o.quality));
                if o.mirror {
                    opts.push("mirror=1".into());
                }
                opts.push(format!("idle={}", o.idle_close.as_secs()));
                write!(f, "?{}", opts.join("&"))
            }
        }
    }
}

/// Limits on a source's size and rate: large enough for any real use, small enough that a typo
/// cannot make the relay allocate gigabytes.
pub const MIN_SIZE: (u32, u32) = (160, 120);
pub const MAX_SIZE: (u32, u32) = (3840, 2160);
pub const MAX_SOURCE_FPS: f64 = 120.0;

impl FromStr for StreamSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (name, source) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?} is not NAME=SOURCE (e.g. main=test)"))?;
        validate_name(name)?;
        let source = source
            .parse::<SourceSpec>()
            .map_err(|e| format!("stream {name:?}: {e}"))?;
        Ok(StreamSpec {
            name: name.to_string(),
            source,
        })
    }
}

/// Stream names become URL path segments and file-like names: keep them to a safe alphabet.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("stream name {name:?} must be 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "stream name {name:?} may contain only letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

impl FromStr for SourceSpec {
    type Err = String;

    fn from_str(source: &str) -> Result<Self, String> {
        // An upstream URL keeps its own query string; the relay's options follow a `#`, which
        // is never sent to servers.
        if source.starts_with("http://") || source.starts_with("https://") {
            return parse_upstream(source).map(SourceSpec::Upstream);
        }
        let (head, query) = match source.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (source, None),
        };
        let (kind, arg) = match head.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (head, None),
        };
        let params = parse_params(query)?;
        match kind {
            "test" => {
                if let Some(arg) = arg {
                    return Err(format!(
                        "source \"test\" takes no \":{arg}\"; use test?size=WxH&fps=N"
                    ));
                }
                let mut size = (640, 480);
                let mut fps = 30.0;
                for (key, value) in params {
                    match key {
                        "size" => size = parse_size(value)?,
                        "fps" => fps = parse_fps(value, MAX_SOURCE_FPS)?,
                        other => return Err(unknown_param("test", other, "size, fps")),
                    }
                }
                Ok(SourceSpec::Test {
                    width: size.0,
                    height: size.1,
                    fps,
                })
            }
            "files" => {
                let dir = arg
                    .filter(|a| !a.is_empty())
                    .ok_or("source \"files\" needs a folder: files:DIR")?;
                let mut fps = 30.0;
                for (key, value) in params {
                    match key {
                        "fps" => fps = parse_fps(value, MAX_SOURCE_FPS)?,
                        other => return Err(unknown_param("files", other, "fps")),
                    }
                }
                Ok(SourceSpec::Files {
                    dir: PathBuf::from(dir),
                    fps,
                })
            }
            "camera" => parse_camera(arg, &params).map(SourceSpec::Camera),
            "push" => parse_push(arg, &params).map(SourceSpec::Push),
            "ffmpeg" => parse_ffmpeg(arg, &params).map(SourceSpec::Ffmpeg),
            "" => Err(format!("empty source; known sources: {KNOWN_SOURCES}")),
            other => Err(format!(
                "unknown source {other:?}; known sources: {KNOWN_SOURCES}"
            )),
        }
    }
}

const KNOWN_SOURCES: &str =
    "test, files:DIR, camera[:INDEX|:/dev/videoN], push, ffmpeg:PATH_OR_URL, http://...";

/// `http(s)://[user:pass@]host[:port]/path[?query][#linger=S&max_bytes=N&ca=PEM]`.
fn parse_upstream(source: &str) -> Result<UpstreamOptions, String> {
    let (url, options) = match source.split_once('#') {
        Some((u, o)) => (u, Some(o)),
        None => (source, None),
    };
    let mut o = UpstreamOptions {
        url: url.to_string(),
        linger: std::time::Duration::from_secs(10),
        max_part_bytes: 16 * 1024 * 1024,
        ca: None,
    };
    for (key, value) in parse_params(options)? {
        match key {
            "linger" => {
                let secs: u64 = value.parse().ok().filter(|s| *s <= 86_400).ok_or_else(|| {
                    format!("linger {value:?} is not a whole number of seconds from 0 to 86400")
                })?;
                o.linger = std::time::Duration::from_secs(secs);
            }
            "max_bytes" => o.max_part_bytes = parse_max_bytes(value)?,
            "ca" => o.ca = Some(PathBuf::from(value)),
            other => {
                return Err(unknown_param(
                    &redact(url),
                    other,
                    "linger, max_bytes, ca (after #)",
                ))
            }
        }
    }
    Ok(o)
}

/// `ffmpeg:PATH_OR_URL`, with `?fps=N&size=WxH&quality=Q&loop=1`. An input URL with a query of
/// its own is not supported yet: the first `?` starts the relay's options.
fn parse_ffmpeg(arg: Option<&str>, params: &[(&str, &str)]) -> Result<FfmpegOptions, String> {
    let input = arg
        .filter(|a| !a.is_empty())
        .ok_or("source \"ffmpeg\" needs an input: ffmpeg:PATH or ffmpeg:rtsp://...")?;
    let mut o = FfmpegOptions {
        input: input.to_string(),
        fps: None,
        size: None,
        quality: 80,
        loop_input: true,
    };
    for &(key, value) in params {
        match key {
            "fps" => o.fps = Some(parse_fps(value, MAX_SOURCE_FPS)?),
            "size" => o.size = Some(parse_size(value)?),
            "quality" => o.quality = parse_quality(value)?,
            "loop" => o.loop_input = parse_flag("loop", value)?,
            other => return Err(unknown_param("ffmpeg", other, "fps, size, quality, loop")),
        }
    }
    Ok(o)
}

/// `push`, with `?token=T&replace=1&max_bytes=N`.
fn parse_push(arg: Option<&str>, params: &[(&str, &str)]) -> Result<PushOptions, String> {
    if let Some(arg) = arg {
        return Err(format!(
            "source \"push\" takes no \":{arg}\"; use push?token=T"
        ));
    }
    let mut o = PushOptions::default();
    for &(key, value) in params {
        match key {
            "token" => o.token = Some(Secret::new(value)?),
            "replace" => o.replace = parse_flag("replace", value)?,
            "max_bytes" => o.max_bytes = parse_max_bytes(value)?,
            other => return Err(unknown_param("push", other, "token, replace, max_bytes")),
        }
    }
    Ok(o)
}

/// `camera`, `camera:INDEX`, `camera:/dev/videoN`, with `?size=WxH&fps=N&format=F&quality=Q&mirror=1&idle=S`.
fn parse_camera(arg: Option<&str>, params: &[(&str, &str)]) -> Result<CameraOptions, String> {
    let selector = match arg {
        None | Some("") => DeviceSelector::First,
        Some(a) if a.starts_with('/') => DeviceSelector::Path(PathBuf::from(a)),
        Some(a) => DeviceSelector::Index(a.parse().map_err(|_| {
            format!("camera {a:?} is neither an index (camera:0) nor a device path (camera:/dev/video0)")
        })?),
    };
    let mut o = CameraOptions {
        selector,
        ..CameraOptions::default()
    };
    for &(key, value) in params {
        match key {
            "size" => o.request.size = Some(parse_size(value)?),
            "fps" => {
                o.request.fps = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|f| (1..=240).contains(f))
                        .ok_or_else(|| {
                            format!("camera fps {value:?} is not a whole number from 1 to 240")
                        })?,
                )
            }
            "format" => {
                o.request.format = Some(PixelFormat::parse(value).ok_or_else(|| {
                    let known: Vec<&str> = PixelFormat::ALL.iter().map(|f| f.name()).collect();
                    format!(
                        "camera format {value:?} is not known; formats: {}",
                        known.join(", ")
                    )
                })?)
            }
            "quality" => o.quality = parse_quality(value)?,
            "mirror" => o.mirror = parse_flag("mirror", value)?,
            "idle" => {
                let secs: u64 = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=86_400).contains(s))
                    .ok_or_else(|| {
                        format!("idle {value:?} is not a whole number of seconds from 1 to 86400")
                    })?;
                o.idle_close = std::time::Duration::from_secs(secs);
            }
            other => {
                return Err(unknown_param(
                    "camera",
                    other,
                    "size, fps, format, quality, mirror, idle",
                ))
            }
        }
    }
    Ok(o)
}

/// `1`/`true`/`yes` or `0`/`false`/`no`, for on/off options.
fn parse_flag(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(format!("{name} {value:?} is not 1 or 0")),
    }
}

/// A JPEG quality, 1 to 100.
fn parse_quality(value: &str) -> Result<u8, String> {
    value
        .parse()
        .ok()
        .filter(|q| (1..=100).contains(q))
        .ok_or_else(|| format!("quality {value:?} is not a whole number from 1 to 100"))
}

/// A size limit for one received frame, 1 KiB to 64 MiB.
fn parse_max_bytes(value: &str) -> Result<usize, String> {
    value
        .parse()
        .ok()
        .filter(|n| (1024..=64 * 1024 * 1024).contains(n))
        .ok_or_else(|| format!("max_bytes {value:?} is not a whole number from 1024 to 67108864"))
}

fn unknown_param(kind: &str, key: &str, known: &str) -> String {
    format!("source {kind:?} has no option {key:?}; options: {known}")
}

/// Splits `a=1&b=2` into pairs; every pair needs a value.
pub fn parse_params(query: Option<&str>) -> Result<Vec<(&str, &str)>, String> {
    let Some(query) = query else {
        return Ok(Vec::new());
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("option {pair:?} is not KEY=VALUE"))
        })
        .collect()
}

/// `WxH`, within [`MIN_SIZE`]..=[`MAX_SIZE`].
pub fn parse_size(value: &str) -> Result<(u32, u32), String> {
    let bad = || {
        format!(
            "size {value:?} is not WIDTHxHEIGHT between {}x{} and {}x{} (e.g. 640x480)",
            MIN_SIZE.0, MIN_SIZE.1, MAX_SIZE.0, MAX_SIZE.1
        )
    };
    let (w, h) = value.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.parse().map_err(|_| bad())?;
    let h: u32 = h.parse().map_err(|_| bad())?;
    if !(MIN_SIZE.0..=MAX_SIZE.0).contains(&w) || !(MIN_SIZE.1..=MAX_SIZE.1).contains(&h) {
        return Err(bad());
    }
    Ok((w, h))
}

/// The lowest frame rate accepted anywhere: one frame every 100 s. Keeps every frame period a
/// sane `Duration` (a rate of 1e-20 would overflow it).
pub const MIN_FPS: f64 = 0.01;

/// A frame rate from [`MIN_FPS`] to `max` (fractions allowed, e.g. 0.5).
pub fn parse_fps(value: &str, max: f64) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(fps) if (MIN_FPS..=max).contains(&fps) => Ok(fps),
        _ => Err(format!(
            "fps {value:?} is not a number from {MIN_FPS} to {max} (e.g. 15 or 0.5)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_specs() {
        assert_eq!(
            "main=test".parse::<StreamSpec>().unwrap(),
            StreamSpec {
                name: "main".into(),
                source: SourceSpec::Test {
                    width: 640,
                    height: 480,
                    fps: 30.0
                }
            }
        );
        assert_eq!(
            "cam-2=test?size=1280x720&fps=12.5"
                .parse::<StreamSpec>()
                .unwrap()
                .source,
            SourceSpec::Test {
                width: 1280,
                height: 720,
                fps: 12.5
            }
        );
        assert_eq!(
            "f=files:/tmp/x?fps=5".parse::<StreamSpec>().unwrap().source,
            SourceSpec::Files {
                dir: "/tmp/x".into(),
                fps: 5.0
            }
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        let err = |s: &str| s.parse::<StreamSpec>().unwrap_err();
        assert!(err("main").contains("NAME=SOURCE"));
        assert!(err("a b=test").contains("\"a b\""));
        assert!(err("main=tset").contains("unknown source \"tset\""));
        assert!(err("main=test?size=10x10").contains("size \"10x10\""));
        assert!(err("main=test?size=640").contains("WIDTHxHEIGHT"));
        assert!(err("main=test?fps=0").contains("fps \"0\""));
        assert!(err("main=test?fps=1e-300").contains("from 0.01"));
        assert!(err("main=test?fps=abc").contains("fps \"abc\""));
        assert!(err("main=test?colour=red").contains("no option \"colour\""));
        assert!(err("main=files:").contains("needs a folder"));
        assert!(err("main=test?fps").contains("KEY=VALUE"));
    }

    const FILE: &str = r#"
listen = "0.0.0.0:9000"
log = "debug"

[[stream]]
name = "lobby"
source = "files:/srv/lobby?fps=10"

[[stream]]
name = "main"
source = "test?size=320x240&fps=5"
"#;

    #[test]
    fn allow_origin_takes_origins_as_browsers_send_them() {
        let settings = |o: &str| {
            Cli::try_parse_from(["mjpeg-relay", "--allow-origin", o])
                .unwrap()
                .settings()
        };
        assert_eq!(
            settings("https://ops.example.com:8443")
                .unwrap()
                .allow_origins,
            ["https://ops.example.com:8443"]
        );
        assert_eq!(settings("*").unwrap().allow_origins, ["*"]);
        for bad in [
            "https://ops.example.com/",
            "ops.example.com",
            "http://",
            "https://a.example/x",
        ] {
            let err = settings(bad).unwrap_err();
            assert!(err.contains("scheme://host[:port]"), "{bad}: {err}");
        }
    }

    #[test]
    fn config_file_streams_keep_their_order_and_flags_win() {
        let file = FileConfig::parse(FILE).unwrap();
        assert_eq!(file.listen, Some("0.0.0.0:9000".parse().unwrap()));
        let names: Vec<&str> = file.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["lobby", "main"]);

        let dir = std::env::temp_dir().join(format!("mjpeg-relay-config-{}", std::process::id()));
        std::fs::write(&dir, FILE).unwrap();
        let path = dir.display().to_string();
        let cli = Cli::try_parse_from([
            "mjpeg-relay",
            "--config",
            &path,
            "--listen",
            "127.0.0.1:0",
            "--stream",
            "main=test",
            "--stream",
            "extra=test",
        ])
        .unwrap();
        let settings = cli.settings().unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(
            settings.listen,
            "127.0.0.1:0".parse().unwrap(),
            "the flag wins"
        );
        assert_eq!(
            settings.log, "debug",
            "the file fills what the flags leave out"
        );
        let streams: Vec<String> = settings
            .streams
            .iter()
            .map(|s| format!("{}={}", s.name, s.source))
            .collect();
        assert_eq!(
            streams,
            [
                "lobby=files:/srv/lobby?fps=10",
                "main=test?size=640x480&fps=30",
                "extra=test?size=640x480&fps=30"
            ]
        );
    }

    #[test]
    fn the_readme_example_config_parses() {
        let readme = include_str!("../../README.md");
        let start =
            readme.find("```toml\n").expect("README has a TOML example") + "```toml\n".len();
        let example = &readme[start..start + readme[start..].find("```").unwrap()];
        let file = FileConfig::parse(example).unwrap();
        assert_eq!(file.streams.len(), 3);
        assert_eq!(file.listen, Some("0.0.0.0:8080".parse().unwrap()));
    }

    #[test]
    fn config_file_errors_name_the_key_and_line() {
        let err = FileConfig::parse("listen = \"127.0.0.1:1\"\nport = 8080\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("port"), "{err}");
        let err = FileConfig::parse("[[stream]]\nname = \"a\"\nsource = \"test\"\nfps = 3\n")
            .unwrap_err();
        assert!(err.contains("line 4") && err.contains("fps"), "{err}");
        let err = FileConfig::parse("[[stream]]\nname = \"a\"\nsource = \"tset\"\n").unwrap_err();
        assert!(
            err.contains("line 3") && err.contains("unknown source \"tset\""),
            "{err}"
        );
        let err = FileConfig::parse("[[stream]]\nname = \"a\"\nsource = \"test\"\n[[stream]]\nname = \"a\"\nsource = \"test\"\n").unwrap_err();
        assert!(err.contains("line 5") && err.contains("twice"), "{err}");
        let err = FileConfig::parse("listen = \"nowhere\"\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn camera_specs() {
        let spec = |s: &str| match s.parse::<SourceSpec>() {
            Ok(SourceSpec::Camera(o)) => o,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(spec("camera"), CameraOptions::default());
        assert_eq!(spec("camera:2").selector, DeviceSelector::Index(2));
        assert_eq!(
            spec("camera:/dev/video4").selector,
            DeviceSelector::Path("/dev/video4".into())
        );
        let o = spec("camera?size=1280x720&fps=15&format=YUYV&quality=60&mirror=1&idle=3");
        assert_eq!(o.request.size, Some((1280, 720)));
        assert_eq!(o.request.fps, Some(15));
        assert_eq!(o.request.format, Some(PixelFormat::Yuyv));
        assert_eq!((o.quality, o.mirror, o.idle_close.as_secs()), (60, true, 3));
        let err = |s: &str| s.parse::<SourceSpec>().unwrap_err();
        assert!(err("camera:usb").contains("neither an index"));
        assert!(err("camera?format=h264").contains("formats: mjpeg, yuyv"));
        assert!(err("camera?quality=0").contains("quality \"0\""));
        assert!(err("camera?fps=0").contains("from 1 to 240"));
        assert!(err("camera?zoom=2").contains("no option \"zoom\""));
    }

    #[test]
    fn display_round_trips() {
        for spec in [
            "test?size=320x240&fps=7.5",
            "files:/a/b?fps=30",
            "camera:1?size=640x480&format=yuyv&quality=70&mirror=1&idle=5",
        ] {
            let parsed: SourceSpec = spec.parse().unwrap();
            assert_eq!(parsed.to_string().parse::<SourceSpec>().unwrap(), parsed);
        }
    }
}
