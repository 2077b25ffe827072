//! Settings: the command line ([`cli`]) and the `--config` TOML file ([`file`]) merged into the
//! one [`Settings`] the relay runs with. The file gives the base (streams in its order), flags
//! override, and a `--stream` replaces the file's stream of the same name.
//!
//! Anything that does not parse, in either place, stops the relay before it binds, with exit
//! code 2 and a message naming the bad part (and, in the file, its line). Stream specs are
//! parsed by [`crate::source::spec`]; this module only gathers them.

pub mod cli;
pub mod file;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

pub use cli::{Cli, Command};
pub use file::FileConfig;

use crate::fanout::Limits;
use crate::http::auth::{AccessConfig, BasicConfig, PasswordConfig};
use crate::source::spec::StreamSpec;

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

/// `--allow-host` values: host names or addresses as a browser puts them in `Host`, without a
/// scheme, port or path.
fn check_hosts(hosts: Vec<String>) -> Result<Vec<String>, String> {
    for h in &hosts {
        let ok = !h.is_empty()
            && !h.contains("://")
            && !h.contains('/')
            && (h.starts_with('[') || !h.contains(':'));
        if !ok {
            return Err(format!(
                "allow-host {h:?} is not a host name: give it as in the address bar, without scheme, port or path (e.g. cams.example.com, 192.168.1.20, [fd00::2])"
            ));
        }
    }
    Ok(hosts)
}

/// `--frame-ancestors`: CSP sources on one line, so that the header always holds (a value a
/// header cannot carry would otherwise drop the whole policy).
fn check_frame_ancestors(value: String) -> Result<String, String> {
    let ok = !value.trim().is_empty()
        && value
            .chars()
            .all(|c| c == ' ' || (c.is_ascii_graphic() && c != ';' && c != ','));
    if !ok {
        return Err(format!(
            "frame-ancestors {value:?} is not a list of CSP sources: give them on one line, \
             space-separated, e.g. \"'self' https://ha.example.com\" or \"'none'\""
        ));
    }
    Ok(value)
}

/// Everything the relay runs with, from the file (if any) and the flags, flags winning.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `--dashboard DIR`; `None`: the dashboard built into the binary.
    pub dashboard: Option<PathBuf>,
    pub require_camera: bool,
    pub log: String,
    pub limits: Limits,
    pub allow_origins: Vec<String>,
    /// Who may watch, push, read the API and scrape metrics.
    pub access: AccessConfig,
    /// Certificate and key files for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub max_connections: Option<usize>,
    pub allow_hosts: Vec<String>,
    pub frame_ancestors: String,
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
            dashboard: self.dashboard.clone().or(file.dashboard),
            require_camera: self.require_camera || file.require_camera.unwrap_or(false),
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
                token: self.auth_token.clone().or(file.access.token),
                basic: match (&self.basic_user, &self.basic_password) {
                    (Some(user), Some(password)) => Some(BasicConfig::new(
                        user,
                        PasswordConfig::Plain(password.clone()),
                    )?),
                    _ => file.access.basic,
                },
                metrics_token: self.metrics_token.clone().or(file.access.metrics_token),
                // A --stream that replaces a file's stream keeps the file's token for that name:
                // viewers know the stream by its name.
                stream_tokens: file.access.stream_tokens,
                ingest_token: self.ingest_token.clone().or(file.access.ingest_token),
                signing_key: self.signing_key.clone().or(file.access.signing_key),
                max_failures: file.access.max_failures,
                trusted_proxies: if self.trusted_proxies.is_empty() {
                    file.access.trusted_proxies
                } else {
                    self.trusted_proxies.clone()
                },
            },
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            allow_hosts: check_hosts(if self.allow_hosts.is_empty() {
                file.allow_hosts
            } else {
                self.allow_hosts.clone()
            })?,
            frame_ancestors: check_frame_ancestors(
                self.frame_ancestors
                    .clone()
                    .or(file.frame_ancestors)
                    .unwrap_or_else(|| crate::relay::DEFAULT_FRAME_ANCESTORS.into()),
            )?,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
                _ => file.tls,
            },
            limits: Limits {
                max_viewers: self.max_viewers.or(file.limits.max_viewers),
                max_viewers_per_stream: self
                    .max_viewers_per_stream
                    .or(file.limits.max_viewers_per_stream),
                max_renditions: self
                    .max_renditions
                    .map(|n| n as usize)
                    .or(file.limits.max_renditions),
            },
            streams,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
        let readme = include_str!("../../../README.md");
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
}
