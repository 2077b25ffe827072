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
