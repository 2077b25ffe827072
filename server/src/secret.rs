//! Secrets: tokens and passwords from the command line or the config file. They are compared,
//! never shown: `Debug` and `Display` print `***`, so a secret cannot reach a log, an error
//! message or the API by accident. Comparisons go through SHA-256 digests, so that comparing in
//! constant time does not depend on the lengths of the two values.

/// A token or password. Empty or blank values are refused when parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: &str) -> Result<Secret, String> {
        if value.trim().is_empty() {
            return Err("a token must not be empty or blank".into());
        }
        Ok(Secret(value.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest of the value without surrounding whitespace, as [`digest`] takes a guess.
    pub fn digest(&self) -> [u8; 32] {
        digest(&self.0)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Secret, String> {
        Secret::new(s)
    }
}

/// Tokens are compared without surrounding whitespace (a stray newline from a file or a shell).
pub fn digest(token: &str) -> [u8; 32] {
    raw_digest(token.trim())
}

/// SHA-256 of `value` exactly as given (passwords keep their spaces).
pub fn raw_digest(value: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(value.as_bytes()).into()
}
