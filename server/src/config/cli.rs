//! The command line: flags, subcommands and `--help` text (clap). Values are parsed here only as
//! far as clap needs; [`super::Cli::settings`] merges them with the config file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::secret::Secret;
use crate::source::spec::StreamSpec;

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
  ffmpeg:PATH_OR_URL[?fps=N&size=WxH&quality=Q&loop=0][#linger=S]
                            anything ffmpeg reads (files loop, at real time; RTSP), via one ffmpeg
                            child process while someone watches and for linger=10 s after
  http(s)://[user:pass@]HOST[:PORT]/PATH[?QUERY][#linger=S&ca=PEM]
                            an upstream MJPEG stream (IP camera, another relay): one connection
                            however many viewers, while watched and for linger=10 s after
  push[?token=T&replace=1&max_bytes=N]
                            frames POSTed to /streams/NAME/ingest (one JPEG per request, or one
                            long multipart request); needs a token (here or --ingest-token)
  mjpeg-relay cameras       lists the cameras, their formats, sizes and rates
  mjpeg-relay --signing-key K sign --stream NAME --ttl 12h [--fps N]
                            a signed query string that opens one stream for <img> embeds

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
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port to listen on, e.g. 0.0.0.0:8080 to serve the network (port 0 picks a free
    /// port and prints it). [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// A stream to serve, as NAME=SOURCE; repeat for more streams. NAME is letters, digits, '-'
    /// and '_'. Without any, one stream main=test.
    #[arg(long = "stream", value_name = "NAME=SOURCE", value_parser = StreamArg)]
    pub streams: Vec<StreamSpec>,

    /// Serve the dashboard from this folder (`trunk build --release` output) instead of the copy
    /// built into the binary. [default: the built-in dashboard, or a small page when the binary
    /// was built without one]
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

    /// At most this many renditions (?width, ?size, ?quality, ?overlay) made at once of any one
    /// stream, each once per frame for all its viewers; a viewer asking for another gets 503.
    /// [default: 8]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=64))]
    pub max_renditions: Option<u64>,

    /// At most this many connections open at once; more are refused at once (503 over plain
    /// HTTP), while viewers already in and every source keep running. [default: the descriptor
    /// limit, raised to its maximum at startup, less a share kept for sources]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// A host name (as in the Host header, without the port) this relay may be reached by, e.g.
    /// cams.example.com; repeat for more. On a loopback --listen only localhost, 127.0.0.1 and
    /// [::1] are served without it (421 otherwise): a web page that rebinds its own name to
    /// 127.0.0.1 cannot read the relay. Given on any other address, the list is enforced there
    /// too.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,

    /// A reverse proxy (its address as the relay sees it, e.g. 127.0.0.1 for nginx on this
    /// machine) whose X-Real-IP header names the client; repeat for more. Failed credentials are
    /// counted per client address: without this, every client behind the proxy shares its
    /// address.
    #[arg(long = "trusted-proxy", value_name = "ADDR")]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Key for signed embed URLs (`mjpeg-relay sign`, `POST /api/sign`): a URL signed with it
    /// opens one stream until it expires. At least 32 characters.
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        env = "MJPEG_RELAY_SIGNING_KEY",
        hide_env_values = true
    )]
    pub signing_key: Option<Secret>,

    /// Who may show the dashboard in a frame, as CSP frame-ancestors sources, e.g.
    /// "'self' https://ha.example.com". [default: 'self']
    #[arg(long, value_name = "SOURCES")]
    pub frame_ancestors: Option<String>,

    /// Refuse to start when a camera stream's device cannot be opened (default: start anyway and
    /// show NO SIGNAL while retrying).
    #[arg(long)]
    pub require_camera: bool,

    /// Log filter (tracing's EnvFilter syntax), e.g. `debug` or `mjpeg_relay=debug`.
    /// RUST_LOG, when set, wins. [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,

    /// A test hook: behave as if this machine's clock were off by this many milliseconds, so
    /// every time the relay states (capture times, `X-Timestamp`, `/api/time`, signed URLs'
    /// expiry) moves by it. Tests use it to check how far off a client's clock estimate lands.
    #[arg(long, value_name = "MS", hide = true, allow_negative_numbers = true)]
    pub clock_shift_ms: Option<i64>,

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
    /// Print a signed query string (exp=UNIX&sig=HEX) that opens one stream's .mjpg, .frames and
    /// .jpg until it expires, for an <img> on a page that must not hold the relay's token. Needs
    /// the relay's signing key (--signing-key, MJPEG_RELAY_SIGNING_KEY or signing_key in
    /// --config).
    Sign {
        /// The stream the URL opens.
        #[arg(long, value_name = "NAME")]
        stream: String,
        /// How long the URL opens it, e.g. 90s, 30m, 12h, 7d.
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: std::time::Duration,
        /// Cap the viewer's frame rate at N (the relay enforces it).
        #[arg(long, value_name = "N")]
        fps: Option<u32>,
    },
}

/// `--ttl`: a duration with its unit (humantime: `90s`, `30m`, `12h`, `7d`, `1h 30m`).
fn parse_ttl(value: &str) -> Result<std::time::Duration, String> {
    let ttl = humantime::parse_duration(value)
        .map_err(|e| format!("{e}; give a duration with its unit, e.g. 90s, 30m, 12h or 7d"))?;
    if ttl.as_secs() == 0 {
        return Err("the duration must be at least one second".into());
    }
    Ok(ttl)
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
