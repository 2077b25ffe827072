//! Signed embed URLs: a query string that opens one stream until a time, for an `<img>` on a page
//! that must not hold the relay's token (a status page, a shared link, the dashboard's own
//! `<img>`s).
//!
//! `exp=UNIX&sig=HEX`, optionally with `fps=N` before them: `sig` is HMAC-SHA256, under the
//! relay's signing key, of the stream name, the expiry and the frame-rate cap. The relay checks it
//! for that stream's `.mjpg`, `.frames` and `.jpg` only ([`crate::http::auth`]). The `fps` it
//! signs is the viewer's `?fps=` the stream endpoint already honours, so a holder of the URL
//! cannot raise it without breaking the signature.
//!
//! Expiry is checked when a request starts; a stream opened before it runs on until its viewer
//! leaves (an `<img>` cannot renew its URL, and a picture that went black at an arbitrary
//! moment would be the worse surprise). Whoever must cut viewers off changes the key and
//! restarts the relay.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// A signing key shorter than this is refused at startup: the signature is only as strong as
/// the key's entropy.
pub const MIN_KEY_LEN: usize = 32;

/// Longest validity a signed URL may have, so that a typo in `--ttl` does not make a URL for
/// ever. About a year.
pub const MAX_TTL_SECS: u64 = 366 * 24 * 3600;

/// What a signed URL grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub stream: String,
    /// Unix seconds after which it no longer opens the stream.
    pub expires: u64,
    /// The viewer's frame-rate cap, if any.
    pub fps: Option<u32>,
}

impl Grant {
    /// A grant of `stream` for `ttl_secs` from `now` (Unix seconds), with an optional cap of
    /// `fps` frames a second up to `max_fps`; the error says which value is out of range. The
    /// one check for `mjpeg-relay sign` and `POST /api/sign`.
    pub fn new(
        stream: &str,
        ttl_secs: u64,
        fps: Option<u32>,
        now: u64,
        max_fps: u32,
    ) -> Result<Grant, String> {
        if !(1..=MAX_TTL_SECS).contains(&ttl_secs) {
            return Err(format!(
                "the validity must be between 1 s and {MAX_TTL_SECS} s (about a year)"
            ));
        }
        if fps.is_some_and(|f| f == 0 || f > max_fps) {
            return Err(format!("fps must be between 1 and {max_fps}"));
        }
        Ok(Grant {
            stream: stream.to_string(),
            expires: now + ttl_secs,
            fps,
        })
    }
}

/// Why a signed URL does not open a stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("this signed URL expired at {at} (Unix seconds); ask for a new one")]
    Expired { at: u64 },
    #[error("this signed URL is not valid for this stream (or was altered)")]
    BadSignature,
    #[error("malformed signed URL: {0}")]
    Malformed(String),
}

/// A key that signs and checks URLs.
#[derive(Clone)]
pub struct SigningKey(Secret);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    pub fn new(key: Secret) -> Result<SigningKey, String> {
        if key.expose().trim().len() < MIN_KEY_LEN {
            return Err(format!(
                "the signing key must be at least {MIN_KEY_LEN} characters (e.g. `openssl rand \
                 -hex 32`)"
            ));
        }
        Ok(SigningKey(key))
    }

    fn mac(&self, stream: &str, expires: &str, fps: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose().trim().as_bytes())
            .expect("HMAC takes keys of any length");
        // Fields separated by a byte none of them can hold (a stream name is [A-Za-z0-9_-]).
        mac.update(b"mjpeg-relay signed URL v1\n");
        for field in [stream, expires, fps] {
            mac.update(field.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    /// The query string for `grant`: `[fps=N&]exp=UNIX&sig=HEX`.
    pub fn sign(&self, grant: &Grant) -> String {
        let fps = grant.fps.map(|f| f.to_string()).unwrap_or_default();
        let expires = grant.expires.to_string();
        let sig = self
            .mac(&grant.stream, &expires, &fps)
            .finalize()
            .into_bytes();
        let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
        match grant.fps {
            Some(_) => format!("fps={fps}&exp={expires}&sig={hex}"),
            None => format!("exp={expires}&sig={hex}"),
        }
    }

    /// Checks a request's query for `stream` at `now` (Unix seconds). `None`: the query carries
    /// no signature. The comparison is constant-time (`Mac::verify_slice`).
    pub fn check(&self, stream: &str, query: &str, now: u64) -> Option<Result<(), Refused>> {
        let (mut exp, mut sig, mut fps) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "exp" => exp.push(value.into_owned()),
                "sig" => sig.push(value.into_owned()),
                "fps" => fps.push(value.into_owned()),
                _ => {}
            }
        }
        if sig.is_empty() {
            return None;
        }
        Some(self.verify(stream, &exp, &sig, &fps, now))
    }

    fn verify(
        &self,
        stream: &str,
        exp: &[String],
        sig: &[String],
        fps: &[String],
        now: u64,
    ) -> Result<(), Refused> {
        let one = |values: &[String], name: &str| -> Result<Option<String>, Refused> {
            match values {
                [] => Ok(None),
                [v] => Ok(Some(v.clone())),
                _ => Err(Refused::Malformed(format!(
                    "{name} is given more than once"
                ))),
            }
        };
        let expires =
            one(exp, "exp")?.ok_or_else(|| Refused::Malformed("sig without exp".into()))?;
        let sig = one(sig, "sig")?.unwrap_or_default();
        let fps = one(fps, "fps")?.unwrap_or_default();
        let at: u64 = expires
            .parse()
            .map_err(|_| Refused::Malformed("exp is not Unix seconds".into()))?;
        let sig = decode_hex(&sig).ok_or_else(|| Refused::Malformed("sig is not hex".into()))?;
        self.mac(stream, &expires, &fps)
            .verify_slice(&sig)
            .map_err(|_| Refused::BadSignature)?;
        if now > at {
            return Err(Refused::Expired { at });
        }
        Ok(())
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::new(Secret::new("0123456789abcdef0123456789abcdef").unwrap()).unwrap()
    }

    #[test]
    fn a_signed_query_opens_its_stream_until_it_expires() {
        let grant = Grant {
            stream: "lobby".into(),
            expires: 1_000,
            fps: Some(5),
        };
        let q = key().sign(&grant);
        assert!(q.starts_with("fps=5&exp=1000&sig="), "{q}");
        assert_eq!(key().check("lobby", &q, 999), Some(Ok(())));
        assert_eq!(key().check("lobby", &q, 1_000), Some(Ok(())));
        assert_eq!(
            key().check("lobby", &q, 1_001),
            Some(Err(Refused::Expired { at: 1_000 }))
        );
        assert_eq!(
            key().check("main", &q, 999),
            Some(Err(Refused::BadSignature))
        );
        let raised = q.replace("fps=5", "fps=50");
        assert_eq!(
            key().check("lobby", &raised, 999),
            Some(Err(Refused::BadSignature))
        );
        let longer = q.replace("exp=1000", "exp=9000");
        assert_eq!(
            key().check("lobby", &longer, 999),
            Some(Err(Refused::BadSignature))
        );
        assert!(matches!(
            key().check("lobby", &format!("{q}&fps=60"), 999),
            Some(Err(Refused::Malformed(_)))
        ));
        assert_eq!(key().check("lobby", "token=x", 999), None);
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(SigningKey::new(Secret::new("short").unwrap()).is_err());
    }
}
