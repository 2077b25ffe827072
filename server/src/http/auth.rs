//! Access control: who may watch the streams, read the API and scrape `/metrics`.
//!
//! Credentials come as `Authorization: Bearer TOKEN`, as `Authorization: Basic ...` (a user and a
//! password), or as `?token=TOKEN` for `<img>` tags, which cannot send headers. Missing: 401 with
//! a `WWW-Authenticate` challenge; present but wrong: 403; an `Authorization` header that does not
//! parse: 400.
//!
//! | route | needs |
//! | --- | --- |
//! | `/healthz`, `/`, the dashboard's files | nothing (the dashboard asks for the token itself) |
//! | `/streams/NAME.*`, `/api/streams/NAME`, `.../NAME/meta`, `.../NAME/report` | the stream's own token, or the relay's credentials |
//! | `/streams/wall.frames?names=A,B` | what opens each stream named (names that do not parse: 400) |
//! | every other `/api/...` | the relay's credentials |
//! | `/metrics` | `--metrics-token`, or the relay's credentials |
//! | `/streams/NAME/ingest` | the push stream's ingest token ([`AccessConfig::ingest_token`]) |
//!
//! A stream's `.mjpg`, `.frames` and `.jpg` also open with a URL signed by `--signing-key`
//! ([`crate::signed`]): `exp=...&sig=...` for that stream, before it expires.
//!
//! Every route, ingest included, reads credentials the same way ([`presented`]): the
//! `Authorization` header (`Bearer` or `Basic`, scheme in any case) and `?token=` are both tried,
//! a header that does not parse is a 400 only when nothing else was presented, and tokens are
//! compared without surrounding whitespace. A route whose gates are all unset is open; a push
//! stream's ingest always has one, since a push stream without a token does not start.
//!
//! Secrets are kept as SHA-256 digests (a Basic password from the config as its Argon2 PHC
//! string) and compared in constant time: the time an answer takes tells nothing about how much
//! of a guess was right, and a Basic user and password are checked together (one digest of
//! both, or the user's digest and the Argon2 run, always both), so a reply never tells a right
//! user from a wrong one. They are never logged, and the API never shows them.
//!
//! Guessing is bounded: wrong credentials are counted per client address ([`super::failures`]),
//! 429 after twenty a minute; Argon2 runs one at a time with at most [`MAX_QUEUED_VERIFY`]
//! waiting, and more are answered 503 at once.
//!
//! The check runs before routing ([`Access::check`], called from [`super::routes`]), on the
//! percent-decoded path, so `/streams/ma%69n.mjpg` is guarded like `/streams/main.mjpg`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::error::ApiError;
use super::failures::{Client, Failures, MAX_FAILURES};
use crate::secret::{digest, raw_digest, Secret};
use crate::signed::{Refused, SigningKey};

/// How many verified Basic passwords are remembered, so that a browser sending its credentials
/// with every request costs one Argon2 verification, not one per request.
const VERIFIED_CACHE: usize = 16;

/// Argon2 verifications that may wait for the one running; more are refused at once (each waits
/// for all before it, tens of milliseconds apiece).
pub const MAX_QUEUED_VERIFY: usize = 8;

/// What protects what, from the settings. Nothing set: everything is open.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessConfig {
    /// `--auth-token`: every stream, snapshot and API route.
    pub token: Option<Secret>,
    /// `--basic-user` with `--basic-password` or the config's `basic_password_hash`.
    pub basic: Option<BasicConfig>,
    /// `--metrics-token`: `/metrics` (which also takes the relay's credentials).
    pub metrics_token: Option<Secret>,
    /// Per-stream tokens from the config (`[[stream]] auth_token`): that stream only, besides the
    /// relay's credentials.
    pub stream_tokens: Vec<(String, Secret)>,
    /// `--ingest-token`: pushing to push streams without a token of their own.
    pub ingest_token: Option<Secret>,
    /// `--signing-key`: signed embed URLs ([`crate::signed`]).
    pub signing_key: Option<Secret>,
    /// Wrong credentials an address may send within a minute before it gets 429 (the config's
    /// `max_auth_failures`; 0: no limit).
    pub max_failures: usize,
    /// `--trusted-proxy`: peers whose `X-Real-IP` is the client's address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            token: None,
            basic: None,
            metrics_token: None,
            stream_tokens: Vec::new(),
            ingest_token: None,
            signing_key: None,
            max_failures: MAX_FAILURES,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The token that opens a push stream's ingest, and where it comes from.
#[derive(Debug, PartialEq)]
pub enum IngestToken<'a> {
    /// The stream's own `push?token=`.
    Own(&'a Secret),
    /// `--ingest-token`.
    Ingest(&'a Secret),
    /// `--auth-token`, the viewers' token, for want of the others (the relay warns).
    Viewers(&'a Secret),
}

impl IngestToken<'_> {
    pub fn secret(&self) -> &Secret {
        match self {
            IngestToken::Own(s) | IngestToken::Ingest(s) | IngestToken::Viewers(s) => s,
        }
    }
}

/// HTTP Basic credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct BasicConfig {
    pub user: String,
    pub password: PasswordConfig,
}

impl BasicConfig {
    /// A user name Basic can carry: not empty, no `:` (RFC 7617 splits at the first one), no
    /// surrounding spaces.
    pub fn new(user: &str, password: PasswordConfig) -> Result<BasicConfig, String> {
        if user.is_empty() || user.contains(':') || user.trim() != user {
            return Err(format!(
                "basic user {user:?} cannot be used: it must be non-empty, without ':' and without \
                 surrounding spaces"
            ));
        }
        Ok(BasicConfig {
            user: user.to_string(),
            password,
        })
    }
}

/// A Basic password: as given, or as an Argon2 PHC string (`mjpeg-relay hash-password`).
#[derive(Clone, Debug, PartialEq)]
pub enum PasswordConfig {
    Plain(Secret),
    Hashed(Secret),
}

impl AccessConfig {
    /// True when something is protected (besides ingest, which always needs its token).
    pub fn protects_viewers(&self) -> bool {
        self.token.is_some() || self.basic.is_some()
    }

    /// The token for pushing to a stream whose own token is `own`: that one, else
    /// `--ingest-token`, else `--auth-token`. `None`: the stream cannot take pushes. The one
    /// place this fallback is decided.
    pub fn ingest_token<'a>(&'a self, own: Option<&'a Secret>) -> Option<IngestToken<'a>> {
        own.map(IngestToken::Own)
            .or(self.ingest_token.as_ref().map(IngestToken::Ingest))
            .or(self.token.as_ref().map(IngestToken::Viewers))
    }
}

/// The checks in force.
pub struct Access {
    relay: Option<Gate>,
    metrics: Option<Gate>,
    streams: HashMap<String, Gate>,
    /// Push streams' ingest, each guarded by its ingest token.
    ingest: HashMap<String, Gate>,
    /// One Argon2 verification at a time: each takes tens of milliseconds of CPU by design, and a
    /// flood of wrong passwords must not take every core from the viewers. The permit travels
    /// with the blocking job, so a client that hangs up does not free it early.
    verifying: Arc<Semaphore>,
    /// Verifications waiting for the permit (at most [`MAX_QUEUED_VERIFY`]).
    queued: AtomicUsize,
    /// Signed embed URLs, when a key is set.
    signing: Option<SigningKey>,
    /// Proxies whose `X-Real-IP` names the client (`--trusted-proxy`).
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Wrong credentials per client address.
    failures: Failures,
}

/// One set of credentials that opens a route.
struct Gate {
    token: Option<[u8; 32]>,
    basic: Option<Basic>,
}

/// A Basic user and password; `USER:PASSWORD` is one string (a user holds no `:`), so one
/// digest covers both.
enum Basic {
    /// The digest of `USER:PASSWORD`.
    Plain([u8; 32]),
    Hashed {
        user: [u8; 32],
        phc: String,
        /// Digests of `USER:PASSWORD` pairs that verified, newest last.
        verified: Mutex<VecDeque<[u8; 32]>>,
    },
}

/// Which gates a request must pass.
#[derive(Debug, PartialEq, Eq)]
enum Scope {
    Open,
    Relay,
    /// A stream's `.mjpg`, `.frames` or `.jpg` (`media`: a signed URL may open it), or its API
    /// entry.
    Stream {
        name: String,
        media: bool,
    },
    Metrics,
    Ingest(String),
    /// `POST /api/sign`: the relay's own credentials, and only those (a relay without them signs
    /// nothing over HTTP, or anyone could sign a URL for a stream with its own token).
    Sign,
    /// `/streams/wall.frames?names=...`: what opens each stream named (no signed URL: one
    /// signs a single stream).
    Wall,
}

/// A request, as far as the access check looks at it.
#[derive(Clone, Copy, Debug)]
pub struct Asked<'a> {
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub query: Option<&'a str>,
    /// Who sent it, for counting failures; `None` counts nothing (in-process callers).
    pub client: Option<Client>,
}

/// What a request presented.
enum Presented {
    Token(String),
    Basic { user: String, password: String },
}

impl Access {
    /// Builds the checks, with each push stream's ingest token (from
    /// [`AccessConfig::ingest_token`]); a hashed password that is not a PHC string is refused
    /// here, at startup.
    pub fn new(
        config: &AccessConfig,
        push_streams: Vec<(String, Secret)>,
    ) -> Result<Access, String> {
        let basic = match &config.basic {
            None => None,
            Some(b) => Some(match &b.password {
                PasswordConfig::Plain(p) => Basic::Plain(pair_digest(&b.user, p.expose())),
                PasswordConfig::Hashed(phc) => {
                    check_phc(phc.expose())?;
                    Basic::Hashed {
                        user: digest(&b.user),
                        phc: phc.expose().to_string(),
                        verified: Mutex::new(VecDeque::new()),
                    }
                }
            }),
        };
        let signing = config
            .signing_key
            .clone()
            .map(SigningKey::new)
            .transpose()?;
        let token_gate = |t: &Secret| Gate {
            token: Some(t.digest()),
            basic: None,
        };
        let relay = config.protects_viewers().then(|| Gate {
            token: config.token.as_ref().map(Secret::digest),
            basic,
        });
        Ok(Access {
            relay,
            metrics: config.metrics_token.as_ref().map(token_gate),
            streams: config
                .stream_tokens
                .iter()
                .map(|(name, t)| (name.clone(), token_gate(t)))
                .collect(),
            ingest: push_streams
                .iter()
                .map(|(name, t)| (name.clone(), token_gate(t)))
                .collect(),
            verifying: Arc::new(Semaphore::new(1)),
            queued: AtomicUsize::new(0),
            signing,
            trusted_proxies: config.trusted_proxies.clone(),
            failures: Failures::new(config.max_failures),
        })
    }

    /// The signing key, for `POST /api/sign`.
    pub fn signing_key(&self) -> Option<&SigningKey> {
        self.signing.as_ref()
    }

    /// Who a request from `peer` carrying `x_real_ip` comes from, for counting failures: the
    /// header is believed only from a `--trusted-proxy`.
    pub fn client(&self, peer: std::net::IpAddr, x_real_ip: Option<&str>) -> Client {
        let forwarded = x_real_ip
            .filter(|_| self.trusted_proxies.contains(&peer))
            .and_then(|v| v.trim().parse().ok());
        Client::new(forwarded.unwrap_or(peer))
    }

    /// Lets the request through, or says why not; counts what failed.
    pub async fn check(&self, asked: &Asked<'_>) -> Result<(), ApiError> {
        let result = self.decide(asked).await;
        // Guesses only: an expired signed URL is genuine, just old.
        let guess = matches!(
            &result,
            Err(ApiError::AuthWrong
                | ApiError::Signed(Refused::BadSignature | Refused::Malformed(_)))
        );
        if let (true, Some(client)) = (guess, asked.client) {
            self.failures.record(client);
        }
        result
    }

    async fn decide(&self, asked: &Asked<'_>) -> Result<(), ApiError> {
        let route = scope(asked.path, &self.ingest);
        let stream_gates = |name: &str| -> Vec<&Gate> {
            self.streams
                .get(name)
                .into_iter()
                .chain(&self.relay)
                .collect()
        };
        // What must open: one gate of each set (a wall: a set per stream on it).
        let sets: Vec<Vec<&Gate>> = match &route {
            Scope::Open => return Ok(()),
            Scope::Relay => vec![self.relay.iter().collect()],
            Scope::Stream { name, .. } => vec![stream_gates(name)],
            Scope::Wall => {
                // Read as the wall's handler reads it. Names that do not parse get the 400 that
                // the handler would give: it tells nothing about the streams, and a page's
                // mistake is not counted as a guess.
                let params = super::streams::parse_query(asked.query.unwrap_or_default());
                let names = super::streams::wall_names(&params).map_err(ApiError::BadQuery)?;
                names.iter().map(|name| stream_gates(name)).collect()
            }
            Scope::Metrics => vec![self.metrics.iter().chain(&self.relay).collect()],
            Scope::Ingest(name) => vec![self.ingest.get(name).into_iter().collect()],
            Scope::Sign if self.relay.is_none() => {
                return Err(ApiError::SigningUnavailable(
                    "this relay signs URLs over HTTP only for holders of its own credentials \
                     (--auth-token or --basic-user), and has none; use `mjpeg-relay sign`"
                        .into(),
                ))
            }
            Scope::Sign => vec![self.relay.iter().collect()],
        };
        // Each gate once, however many streams it guards (a wall's streams share the relay's);
        // the sets keep indices into `gates`.
        let mut gates: Vec<&Gate> = Vec::new();
        let sets: Vec<Vec<usize>> = sets
            .into_iter()
            .filter(|set| !set.is_empty())
            .map(|set| {
                set.into_iter()
                    .map(
                        |gate| match gates.iter().position(|g| std::ptr::eq(*g, gate)) {
                            Some(i) => i,
                            None => {
                                gates.push(gate);
                                gates.len() - 1
                            }
                        },
                    )
                    .collect()
            })
            .collect();
        if gates.is_empty() {
            return Ok(());
        }
        let basic = gates.iter().any(|g| g.basic.is_some());
        let query = asked.query.unwrap_or_default();
        let signed = match (&route, &self.signing) {
            (Scope::Stream { name, media: true }, Some(key)) => {
                key.check(name, query, crate::clock::unix_micros_now() / 1_000_000)
            }
            _ => None,
        };
        let blocked = || match asked.client.and_then(|c| self.failures.blocked(c)) {
            Some(wait) => Err(ApiError::TooManyFailures {
                retry_after: wait.as_secs().max(1),
            }),
            None => Ok(()),
        };
        if let Some(signed) = signed {
            // A signed URL decides alone (whatever else came with it): its refusal says why
            // (expired, another stream).
            blocked()?;
            return signed.map_err(ApiError::Signed);
        }
        let presented = presented(asked.authorization, asked.query)?;
        if presented.is_empty() {
            return Err(ApiError::AuthRequired {
                basic,
                pushing: matches!(route, Scope::Ingest(_)),
            });
        }
        blocked()?;
        // Every credential against every gate, so the time taken does not depend on which one
        // matched.
        let mut opened = vec![false; gates.len()];
        for p in &presented {
            for (gate, open) in gates.iter().zip(&mut opened) {
                *open |= self.opens(gate, p).await?;
            }
        }
        let ok = sets.iter().all(|set| set.iter().any(|&i| opened[i]));
        if ok {
            Ok(())
        } else {
            Err(ApiError::AuthWrong)
        }
    }

    async fn opens(&self, gate: &Gate, presented: &Presented) -> Result<bool, ApiError> {
        Ok(match (presented, gate) {
            (
                Presented::Token(t),
                Gate {
                    token: Some(want), ..
                },
            ) => digest(t).ct_eq(want).into(),
            (Presented::Basic { user, password }, Gate { basic: Some(b), .. }) => {
                self.basic_matches(b, user, password).await?
            }
            _ => false,
        })
    }

    /// User and password together: one digest of both, or (hashed) the user's digest and the
    /// Argon2 run, both always, combined without branching on either.
    async fn basic_matches(
        &self,
        want: &Basic,
        user: &str,
        password: &str,
    ) -> Result<bool, ApiError> {
        let given = pair_digest(user, password);
        match want {
            Basic::Plain(d) => Ok(given.ct_eq(d).into()),
            Basic::Hashed {
                user: want_user,
                phc,
                verified,
            } => {
                let known = verified
                    .lock()
                    .unwrap()
                    .iter()
                    .fold(subtle::Choice::from(0), |acc, d| acc | d.ct_eq(&given));
                if known.into() {
                    return Ok(true);
                }
                let user_ok = digest(user).ct_eq(want_user);
                let password_ok = subtle::Choice::from(u8::from(self.verify(phc, password).await?));
                let ok: bool = (user_ok & password_ok).into();
                if ok {
                    let mut verified = verified.lock().unwrap();
                    if verified.len() == VERIFIED_CACHE {
                        verified.pop_front();
                    }
                    verified.push_back(given);
                }
                Ok(ok)
            }
        }
    }

    /// One Argon2 run, after those queued before it; refused at once when the queue is full.
    async fn verify(&self, phc: &str, password: &str) -> Result<bool, ApiError> {
        struct Queued<'a>(&'a AtomicUsize);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        if self.queued.fetch_add(1, Ordering::SeqCst) >= MAX_QUEUED_VERIFY {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::VerifierBusy);
        }
        let queued = Queued(&self.queued);
        let Ok(permit) = self.verifying.clone().acquire_owned().await else {
            return Ok(false);
        };
        drop(queued);
        let (phc, password) = (phc.to_string(), password.to_string());
        Ok(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify_phc(&phc, &password)
        })
        .await
        .unwrap_or(false))
    }
}

/// A hash the relay can verify: an Argon2 PHC string with valid parameters. Anything else would
/// start fine and then refuse every password.
fn check_phc(phc: &str) -> Result<(), String> {
    let help = "make one with `mjpeg-relay hash-password`";
    let hash = PasswordHash::new(phc)
        .map_err(|e| format!("basic_password_hash is not a password hash ({e}); {help}"))?;
    if !hash.algorithm.as_str().starts_with("argon2") {
        return Err(format!(
            "basic_password_hash uses {}, not Argon2; {help}",
            hash.algorithm
        ));
    }
    argon2::Params::try_from(&hash)
        .map_err(|e| format!("basic_password_hash has bad Argon2 parameters ({e}); {help}"))?;
    Ok(())
}

/// The digest of a Basic pair as one string (a user holds no `:`, so it is unambiguous).
fn pair_digest(user: &str, password: &str) -> [u8; 32] {
    raw_digest(&format!("{}:{password}", user.trim()))
}

/// Checks `password` against an Argon2 PHC string.
fn verify_phc(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Hashes a password for the config's `basic_password_hash` (Argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Which gates guard `path`. The raw path is split on `/` first and each segment decoded after,
/// as poem's router does, so an encoded `%2F` cannot make the two disagree; only the exact
/// shapes of the relay's routes are told apart, and anything else under `/streams` or `/api` is
/// guarded like the API.
fn scope(path: &str, push_streams: &HashMap<String, Gate>) -> Scope {
    let segments: Option<Vec<String>> = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(|seg| {
            percent_encoding::percent_decode_str(seg)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })
        .collect();
    let Some(segments) = segments else {
        return Scope::Relay;
    };
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["healthz"] => Scope::Open,
        ["metrics"] => Scope::Metrics,
        ["streams", file] if file.strip_suffix(".frames") == Some(mjpeg_shared::wire::WALL) => {
            Scope::Wall
        }
        ["streams", file] => Scope::Stream {
            name: file
                .rsplit_once('.')
                .map_or(*file, |(name, _)| name)
                .to_string(),
            media: true,
        },
        // A push stream's ingest token guards its ingest; for any other name the answer (no such
        // stream, not a push stream) would tell which streams exist.
        ["streams", name, "ingest"] if push_streams.contains_key(*name) => {
            Scope::Ingest(name.to_string())
        }
        ["api", "sign"] => Scope::Sign,
        // A viewer reports with the credentials it watches with.
        ["api", "streams", name]
        | ["api", "streams", name, "meta"]
        | ["api", "streams", name, "report"] => Scope::Stream {
            name: name.to_string(),
            media: false,
        },
        ["streams", ..] | ["api", ..] => Scope::Relay,
        _ => Scope::Open,
    }
}

/// The credentials a request presents: its `Authorization` header and its `?token=`, both
/// tried (a browser may send cached Basic credentials, or a proxy its own header, with an
/// `<img>` whose URL carries the token). A header that does not parse is an error only when
/// nothing else was presented.
fn presented(authorization: Option<&str>, query: Option<&str>) -> Result<Vec<Presented>, ApiError> {
    let mut out = Vec::new();
    let mut malformed = None;
    if let Some(value) = authorization {
        match parse_authorization(value) {
            Ok(p) => out.push(p),
            Err(e) => malformed = Some(e),
        }
    }
    let token = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty());
    out.extend(token.map(Presented::Token));
    match malformed {
        Some(e) if out.is_empty() => Err(e),
        _ => Ok(out),
    }
}

fn parse_authorization(value: &str) -> Result<Presented, ApiError> {
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Presented::Token(rest.to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine;
        let bad = || {
            ApiError::BadAuthorization(
                "Authorization: Basic must carry base64 of USER:PASSWORD".into(),
            )
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, password) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Presented::Basic {
            user: user.to_string(),
            password: password.to_string(),
        });
    }
    Err(ApiError::BadAuthorization(
        "Authorization must be Bearer TOKEN or Basic base64(USER:PASSWORD)".into(),
    ))
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("relay", &self.relay.is_some())
            .field("metrics", &self.metrics.is_some())
            .field("streams", &self.streams.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s).unwrap()
    }

    fn asked<'a>(
        path: &'a str,
        authorization: Option<&'a str>,
        query: Option<&'a str>,
    ) -> Asked<'a> {
        Asked {
            path,
            authorization,
            query,
            client: None,
        }
    }

    fn basic_header(user: &str, password: &str) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn routes_map_to_scopes() {
        let access = Access::new(
            &AccessConfig::default(),
            vec![("cam".to_string(), secret("push"))],
        )
        .unwrap();
        let scope = |p| scope(p, &access.ingest);
        let stream = |n: &str| Scope::Stream {
            name: n.to_string(),
            media: true,
        };
        assert_eq!(scope("/healthz"), Scope::Open);
        assert_eq!(scope("/"), Scope::Open);
        assert_eq!(scope("/index.html"), Scope::Open);
        assert_eq!(scope("/metrics"), Scope::Metrics);
        assert_eq!(scope("/api/time"), Scope::Relay);
        assert_eq!(scope("/api/streams"), Scope::Relay);
        assert_eq!(scope("/api/sign"), Scope::Sign);
        for path in ["/api/streams/main/meta", "/api/streams/main/report"] {
            assert_eq!(
                scope(path),
                Scope::Stream {
                    name: "main".into(),
                    media: false
                }
            );
        }
        assert_eq!(
            scope("/api/streams/main"),
            Scope::Stream {
                name: "main".into(),
                media: false
            }
        );
        assert_eq!(scope("/streams/main.mjpg"), stream("main"));
        assert_eq!(scope("/streams/main.frames"), stream("main"));
        assert_eq!(scope("/streams/wall.frames"), Scope::Wall);
        assert_eq!(scope("/streams/w%61ll.frames"), Scope::Wall);
        assert_eq!(scope("/streams/wall.mjpg"), stream("wall"));
        assert_eq!(scope("/streams/ma%69n.jpg"), stream("main"));
        assert_eq!(scope("/streams/cam/ingest"), Scope::Ingest("cam".into()));
        // Not a push stream: its ingest answer would name the streams.
        assert_eq!(scope("/streams/main/ingest"), Scope::Relay);
        assert_eq!(scope("/streams/nope/ingest"), Scope::Relay);
        // Shapes the router does not serve as streams, or only as the API.
        assert_eq!(scope("/streams/main.mjpg%2Fingest"), stream("main"));
        assert_eq!(scope("/streams/cam%2Fingest"), stream("cam/ingest"));
        assert_eq!(scope("/api/streams/main/"), Scope::Relay);
        assert_eq!(scope("/streams/main.mjpg/"), Scope::Relay);
        assert_eq!(scope("/streams/%ff.mjpg"), Scope::Relay);
    }

    #[tokio::test]
    async fn tokens_basic_and_per_stream_gates() {
        let access = Access::new(
            &AccessConfig {
                token: Some(secret("relay-token")),
                basic: Some(BasicConfig {
                    user: "ops".into(),
                    password: PasswordConfig::Plain(secret("pw")),
                }),
                metrics_token: Some(secret("scrape")),
                stream_tokens: vec![("lobby".into(), secret("lobby-token"))],
                ingest_token: None,
                ..AccessConfig::default()
            },
            vec![("cam".into(), secret("push-token"))],
        )
        .unwrap();
        let check = |path: &'static str, auth: Option<String>, query: Option<&'static str>| {
            let access = &access;
            async move {
                access
                    .check(&Asked {
                        path,
                        authorization: auth.as_deref(),
                        query,
                        client: None,
                    })
                    .await
            }
        };
        assert!(matches!(
            check("/streams/cam.mjpg", None, None).await,
            Err(ApiError::AuthRequired {
                basic: true,
                pushing: false
            })
        ));
        assert!(check("/streams/cam.mjpg", None, Some("token=relay-token"))
            .await
            .is_ok());
        assert!(
            check("/streams/cam.mjpg", Some("Bearer relay-token".into()), None)
                .await
                .is_ok()
        );
        assert!(
            check("/streams/cam.mjpg", Some(basic_header("ops", "pw")), None)
                .await
                .is_ok()
        );
        assert!(matches!(
            check("/streams/cam.mjpg", Some(basic_header("ops", "nope")), None).await,
            Err(ApiError::AuthWrong)
        ));
        assert!(matches!(
            check("/streams/cam.mjpg", Some(basic_header("root", "pw")), None).await,
            Err(ApiError::AuthWrong)
        ));
        // A stream's own token opens that stream, and nothing else.
        assert!(
            check("/streams/lobby.mjpg", None, Some("token=lobby-token"))
                .await
                .is_ok()
        );
        assert!(
            check("/streams/lobb%79.jpg", None, Some("token=lobby-token"))
                .await
                .is_ok()
        );
        assert!(check("/api/streams/lobby", None, Some("token=lobby-token"))
            .await
            .is_ok());
        assert!(matches!(
            check("/streams/cam.mjpg", None, Some("token=lobby-token")).await,
            Err(ApiError::AuthWrong)
        ));
        assert!(matches!(
            check("/api/streams", None, Some("token=lobby-token")).await,
            Err(ApiError::AuthWrong)
        ));
        // The metrics token opens /metrics only; the relay's credentials open it too.
        assert!(check("/metrics", Some("Bearer scrape".into()), None)
            .await
            .is_ok());
        assert!(check("/metrics", Some("Bearer relay-token".into()), None)
            .await
            .is_ok());
        assert!(matches!(
            check("/api/time", Some("Bearer scrape".into()), None).await,
            Err(ApiError::AuthWrong)
        ));
        assert!(check("/healthz", None, None).await.is_ok());
        // Ingest opens with the push stream's token only, read the same way as everywhere.
        assert!(matches!(
            check("/streams/cam/ingest", None, None).await,
            Err(ApiError::AuthRequired { pushing: true, .. })
        ));
        for ok in [("bearer push-token", None), ("BEARER  push-token ", None)] {
            assert!(check("/streams/cam/ingest", Some(ok.0.into()), ok.1)
                .await
                .is_ok());
        }
        assert!(check("/streams/cam/ingest", None, Some("token=push-token"))
            .await
            .is_ok());
        assert!(matches!(
            check(
                "/streams/cam/ingest",
                Some("Bearer relay-token".into()),
                None
            )
            .await,
            Err(ApiError::AuthWrong)
        ));
        assert!(matches!(
            check("/streams/cam/ingest", Some(basic_header("ops", "pw")), None).await,
            Err(ApiError::AuthWrong)
        ));
        // A header that does not open the route does not hide a ?token= that does.
        assert!(check(
            "/streams/cam.mjpg",
            Some(basic_header("ops", "stale")),
            Some("token=relay-token")
        )
        .await
        .is_ok());
        assert!(check(
            "/streams/cam.mjpg",
            Some("Negotiate abc".into()),
            Some("token=relay-token")
        )
        .await
        .is_ok());
        assert!(matches!(
            check("/api/time", Some("Digest abc".into()), None).await,
            Err(ApiError::BadAuthorization(_))
        ));
        assert!(matches!(
            check("/api/time", Some("Basic !!!".into()), None).await,
            Err(ApiError::BadAuthorization(_))
        ));
    }

    #[tokio::test]
    async fn hashed_passwords_verify_and_are_remembered() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let access = Access::new(
            &AccessConfig {
                basic: Some(BasicConfig {
                    user: "ops".into(),
                    password: PasswordConfig::Hashed(secret(&phc)),
                }),
                ..AccessConfig::default()
            },
            Vec::new(),
        )
        .unwrap();
        let good = basic_header("ops", "correct horse");
        assert!(access
            .check(&asked("/api/time", Some(&good), None))
            .await
            .is_ok());
        assert!(access
            .check(&asked("/api/time", Some(&good), None))
            .await
            .is_ok());
        let bad = basic_header("ops", "correct horse!");
        assert!(matches!(
            access.check(&asked("/api/time", Some(&bad), None)).await,
            Err(ApiError::AuthWrong)
        ));
        // A token is not a password.
        assert!(matches!(
            access
                .check(&asked("/api/time", None, Some("token=correct horse")))
                .await,
            Err(ApiError::AuthWrong)
        ));
        // Not a hash, or not one the relay can verify: refused at startup.
        for bad in [
            "plain-text",
            "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=1,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            let config = AccessConfig {
                basic: Some(BasicConfig {
                    user: "ops".into(),
                    password: PasswordConfig::Hashed(secret(bad)),
                }),
                ..AccessConfig::default()
            };
            assert!(Access::new(&config, Vec::new()).is_err(), "{bad}");
        }
        assert!(BasicConfig::new("a:b", PasswordConfig::Plain(secret("x"))).is_err());
        assert!(BasicConfig::new("", PasswordConfig::Plain(secret("x"))).is_err());
    }

    #[tokio::test]
    async fn nothing_configured_is_open() {
        let access = Access::new(&AccessConfig::default(), Vec::new()).unwrap();
        assert!(access
            .check(&asked("/streams/main.mjpg", None, None))
            .await
            .is_ok());
        assert!(access.check(&asked("/metrics", None, None)).await.is_ok());
    }
}
