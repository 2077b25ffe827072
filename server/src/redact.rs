//! Secrets inside source URLs, kept out of everything the relay shows.
//!
//! Cameras take credentials in the URL: as userinfo (`rtsp://admin:pw@cam/...`,
//! `http://admin:pw@cam/video.mjpg`) or as query parameters (Foscam's `?usr=admin&pwd=...`,
//! tokens as `?token=`, signed URLs as `?sig=`). A URL is shown in the API, the NO SIGNAL picture
//! every viewer sees, errors, snapshot error bodies and the log; each of them shows it through
//! [`redact`] (a URL) or [`scrub`] (free text that may quote one, such as an ffmpeg error line).
//! Userinfo becomes `***@`, and each query parameter named in [`SECRET_PARAMS`] keeps its name
//! with `***` as its value.
//!
//! The split is the one the HTTP client ([`crate::source::upstream`]) and ffmpeg make: the
//! authority ends at the first `/`, `?` or `#`, and userinfo is what comes before its last `@`.
//! A password holding a `/`, `?` or `#` would therefore be cut in two, and half of it shown as a
//! host or a path; [`check_userinfo`] refuses such a URL at startup, saying to percent-encode it.

/// Query parameters whose values are secrets, compared without regard to case.
pub const SECRET_PARAMS: &[&str] = &[
    "user",
    "username",
    "usr",
    "login",
    "pass",
    "passwd",
    "password",
    "pwd",
    "token",
    "access_token",
    "key",
    "apikey",
    "api_key",
    "auth",
    "authorization",
    "secret",
    "sig",
    "signature",
    "credentials",
];

/// The parts of `scheme://[userinfo@]host/rest`, split as the HTTP client and ffmpeg split them.
pub struct Split<'a> {
    pub scheme: &'a str,
    pub userinfo: Option<&'a str>,
    /// `host[:port]`.
    pub host: &'a str,
    /// Path, query and fragment, from the first `/`, `?` or `#` on.
    pub rest: &'a str,
}

/// Splits a URL; `None` for text without `://`.
pub fn split(url: &str) -> Option<Split<'_>> {
    let (scheme, after) = url.split_once("://")?;
    let (authority, rest) = after.split_at(after.find(['/', '?', '#']).unwrap_or(after.len()));
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    Some(Split {
        scheme,
        userinfo,
        host,
        rest,
    })
}

/// `url` without its secrets: userinfo as `***@`, secret query values as `***`. Text that is
/// not a URL is returned as it is.
pub fn redact(url: &str) -> String {
    let Some(parts) = split(url) else {
        return url.to_string();
    };
    let userinfo = if parts.userinfo.is_some() { "***@" } else { "" };
    let (path, query_and_fragment) = parts
        .rest
        .split_at(parts.rest.find('?').unwrap_or(parts.rest.len()));
    let mut out = format!("{}://{userinfo}{}{path}", parts.scheme, parts.host);
    if let Some(qf) = query_and_fragment.strip_prefix('?') {
        let (query, fragment) = match qf.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (qf, None),
        };
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_param(key) => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
    }
    out
}

fn is_secret_param(key: &str) -> bool {
    let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
    SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(&key))
}

/// Refuses a URL whose userinfo the connection would cut at a `/`, `?` or `#` (it would then
/// send half a password and show the other half), with how to write it instead. Give it the
/// whole spec, before anything splits it at a `#`.
///
/// The rule: an `@` anywhere after an authority that holds none. That is a user or password
/// that went on past a `/`, `?` or `#` (`admin:12/34@cam`, where `admin:12` would pass for a
/// host and port), or a literal `@` in a path or query, which percent-encoding (`%40`) keeps
/// apart from userinfo for every reader.
pub fn check_userinfo(url: &str) -> Result<(), String> {
    let Some(parts) = split(url) else {
        return Ok(());
    };
    let cut = parts.userinfo.is_none() && parts.rest.contains('@');
    if cut {
        // Not quoted: where the URL is cut is not known, so any part of it may be secret.
        return Err(format!(
            "a {}:// URL has an '@' after its host: a user or password holding a '/', '?' or '#' \
             (which end the host part of a URL), or an '@' in its path; percent-encode them \
             (/ as %2F, ? as %3F, # as %23, @ as %40)",
            parts.scheme
        ));
    }
    Ok(())
}

/// `text` with every URL in it redacted: for messages that quote a URL (an ffmpeg error line, a
/// connection error).
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: the letters, digits, '+', '-' and '.' right before "://".
        let start = rest[..at]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .map_or(rest.len(), |i| at + i);
        // Punctuation that ends a sentence or a clause is the message's, not the URL's.
        let end = at
            + rest[at..end]
                .trim_end_matches([':', ',', '.', ';', ')'])
                .len();
        out.push_str(&rest[..start]);
        out.push_str(&redact(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_and_secret_parameters_are_hidden() {
        assert_eq!(
            redact("http://127.0.0.1:9/v.cgi?user=admin&pwd=S3cret&res=1"),
            "http://127.0.0.1:9/v.cgi?user=***&pwd=***&res=1"
        );
        assert_eq!(
            redact("rtsp://admin:pw@cam:554/h264?Token=x#linger=5"),
            "rtsp://***@cam:554/h264?Token=***#linger=5"
        );
        assert_eq!(
            redact("http://a%40b:p%2Fw@cam/x"),
            "http://***@cam/x",
            "the last '@' ends the userinfo"
        );
        assert_eq!(redact("http://cam?SIG=1&x"), "http://cam?SIG=***&x");
        assert_eq!(redact("/srv/video.mp4"), "/srv/video.mp4");
        assert_eq!(redact("http://cam/a?p%77d=x"), "http://cam/a?p%77d=***");
    }

    #[test]
    fn a_password_cut_by_a_slash_is_refused() {
        let err = check_userinfo("http://admin:pa/ss@127.0.0.1:9/x").unwrap_err();
        assert!(err.contains("%2F") && !err.contains("ss@"), "{err}");
        assert!(check_userinfo("http://admin:p?ss@cam/x").is_err());
        assert!(
            check_userinfo("http://admin:1234/5678@cam/x").is_err(),
            "cut after a port-like part"
        );
        assert!(
            check_userinfo("http://tok/en@cam/").is_err(),
            "a user alone"
        );
        assert!(
            check_userinfo("http://u:p#ss@cam/x#linger=5").is_err(),
            "cut at '#'"
        );
        assert!(
            check_userinfo("http://cam/v.cgi?mail=a@b").is_err(),
            "'@' is written %40"
        );
        assert!(check_userinfo("http://u:p@cam/x#linger=5").is_ok());
        assert!(check_userinfo("http://admin:pa%2Fss@127.0.0.1:9/x").is_ok());
        assert!(check_userinfo("http://cam:8080/path%402x.jpg").is_ok());
        assert!(check_userinfo("http://[::1]:8080/x").is_ok());
        assert!(check_userinfo("rtsp://cam/stream").is_ok());
    }

    #[test]
    fn urls_inside_text_are_redacted() {
        assert_eq!(
            scrub("rtsp://admin:pw@cam/x?pwd=1: Connection refused"),
            "rtsp://***@cam/x?pwd=***: Connection refused"
        );
        assert_eq!(
            scrub("cannot open 'http://u:p@h/a' or \"https://h/b?token=t\""),
            "cannot open 'http://***@h/a' or \"https://h/b?token=***\""
        );
        assert_eq!(scrub("no url here"), "no url here");
        assert_eq!(
            scrub("«rtsp://u:p@h/x» \u{fffd}http://u:p@h/"),
            "«rtsp://***@h/x» \u{fffd}http://***@h/",
            "characters of any width around a URL"
        );
    }
}
