//! The pieces every source's option grammar is made of: `KIND[:ARG][?KEY=VALUE&...]` split
//! into its parts, and the values sources share (sizes, rates, qualities, flags, byte limits),
//! each refused with a message naming the bad part and what is accepted.
//!
//! Each source parses and prints its own options beside its code (`FromStr` and `Display` on its
//! options type); [`super::spec`] only picks the source by its kind.

/// Limits on a source's size and rate: large enough for any real use, small enough that a typo
/// (or an untrusted upstream's JPEG header) cannot make the relay allocate gigabytes.
pub const MIN_SIZE: (u32, u32) = (160, 120);
pub const MAX_SIZE: (u32, u32) = (3840, 2160);
pub const MAX_SOURCE_FPS: f64 = 120.0;

/// The lowest frame rate accepted anywhere: one frame every 100 s. Keeps every frame period a
/// sane `Duration` (a rate of 1e-20 would overflow it).
pub const MIN_FPS: f64 = 0.01;

/// A source spec split into kind, argument and options: `camera:2?size=640x480` is
/// `("camera", Some("2"), [("size", "640x480")])`.
pub struct Parts<'a> {
    pub kind: &'a str,
    pub arg: Option<&'a str>,
    pub params: Vec<(&'a str, &'a str)>,
}

impl<'a> Parts<'a> {
    pub fn split(spec: &'a str) -> Result<Parts<'a>, String> {
        let (head, query) = match spec.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (spec, None),
        };
        let (kind, arg) = match head.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (head, None),
        };
        Ok(Parts {
            kind,
            arg,
            params: parse_params(query)?,
        })
    }

    /// Refuses an argument, for kinds that take none.
    pub fn no_arg(&self, usage: &str) -> Result<(), String> {
        match self.arg {
            Some(arg) => Err(format!(
                "source {:?} takes no \":{arg}\"; use {usage}",
                self.kind
            )),
            None => Ok(()),
        }
    }
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

/// The error for an option a source does not have, listing the ones it has.
pub fn unknown_param(kind: &str, key: &str, known: &str) -> String {
    format!("source {kind:?} has no option {key:?}; options: {known}")
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
    if !plausible_size((w, h)) {
        return Err(bad());
    }
    Ok((w, h))
}

/// True for a size within [`MIN_SIZE`]..=[`MAX_SIZE`].
pub fn plausible_size((w, h): (u32, u32)) -> bool {
    (MIN_SIZE.0..=MAX_SIZE.0).contains(&w) && (MIN_SIZE.1..=MAX_SIZE.1).contains(&h)
}

/// A frame rate from [`MIN_FPS`] to `max` (fractions allowed, e.g. 0.5).
pub fn parse_fps(value: &str, max: f64) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(fps) if (MIN_FPS..=max).contains(&fps) => Ok(fps),
        _ => Err(format!(
            "fps {value:?} is not a number from {MIN_FPS} to {max} (e.g. 15 or 0.5)"
        )),
    }
}

/// `1`/`true`/`yes` or `0`/`false`/`no`, for on/off options.
pub fn parse_flag(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(format!("{name} {value:?} is not 1 or 0")),
    }
}

/// A JPEG quality, 1 to 100.
pub fn parse_quality(value: &str) -> Result<u8, String> {
    value
        .parse()
        .ok()
        .filter(|q| (1..=100).contains(q))
        .ok_or_else(|| format!("quality {value:?} is not a whole number from 1 to 100"))
}

/// A size limit for one received frame, 1 KiB to 64 MiB.
pub fn parse_max_bytes(value: &str) -> Result<usize, String> {
    value
        .parse()
        .ok()
        .filter(|n| (1024..=64 * 1024 * 1024).contains(n))
        .ok_or_else(|| format!("max_bytes {value:?} is not a whole number from 1024 to 67108864"))
}

/// A whole number of seconds in `range`, for timeouts such as `idle` and `linger`.
pub fn parse_seconds(
    name: &str,
    value: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<std::time::Duration, String> {
    value
        .parse()
        .ok()
        .filter(|s| range.contains(s))
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| {
            format!(
                "{name} {value:?} is not a whole number of seconds from {} to {}",
                range.start(),
                range.end()
            )
        })
}
