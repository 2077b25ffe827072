//! The camera as the relay sees it: a backend that lists and opens devices, and an open device
//! that delivers frames. Hardware sits behind these traits so that every behaviour of the camera
//! source (missing device, unplug, stall, formats) is tested with fakes, while the real path
//! ([`super::nokhwa`]) is one implementation among them.
//!
//! An open device is not `Send` (nokhwa's `Camera` is not): it is opened, read and dropped on the
//! capture thread. The backend, which only knows how to open devices, is shared.

use std::fmt;
use std::path::PathBuf;

/// How a frame's pixels are laid out, as delivered by the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Each frame is a JPEG (possibly without Huffman tables).
    Mjpeg,
    /// Packed 4:2:2, Y0 U Y1 V.
    Yuyv,
    /// Planar Y, then interleaved UV at half resolution in both directions.
    Nv12,
    /// 8-bit luma only.
    Gray,
    /// Packed 8-bit R G B.
    Rgb,
    /// Packed 8-bit B G R.
    Bgr,
}

impl PixelFormat {
    pub const ALL: [PixelFormat; 6] = [
        PixelFormat::Mjpeg,
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::Gray,
        PixelFormat::Rgb,
        PixelFormat::Bgr,
    ];

    /// The name used in specs (`?format=yuyv`) and in the API.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Mjpeg => "mjpeg",
            PixelFormat::Yuyv => "yuyv",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::Gray => "gray",
            PixelFormat::Rgb => "rgb",
            PixelFormat::Bgr => "bgr",
        }
    }

    pub fn parse(name: &str) -> Option<PixelFormat> {
        PixelFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// Bytes of one `width` x `height` frame, for raw formats (`None` for MJPEG).
    pub fn frame_len(self, width: u32, height: u32) -> Option<usize> {
        let px = width as usize * height as usize;
        match self {
            PixelFormat::Mjpeg => None,
            PixelFormat::Yuyv => Some(px * 2),
            PixelFormat::Nv12 => Some(px + px / 2),
            PixelFormat::Gray => Some(px),
            PixelFormat::Rgb | PixelFormat::Bgr => Some(px * 3),
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One capture mode a device offers, or the one it was opened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mode {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{} @ {} fps",
            self.format, self.width, self.height, self.fps
        )
    }
}

/// Which device a spec names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSelector {
    /// `camera`: the first device found.
    First,
    /// `camera:INDEX`.
    Index(u32),
    /// `camera:/dev/videoN`.
    Path(PathBuf),
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSelector::First => f.write_str("the first camera"),
            DeviceSelector::Index(i) => write!(f, "camera {i}"),
            DeviceSelector::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What the spec asks of the mode; unset fields are chosen by [`choose_mode`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModeRequest {
    pub size: Option<(u32, u32)>,
    pub fps: Option<u32>,
    pub format: Option<PixelFormat>,
}

/// A device as `mjpeg-relay cameras` lists it.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub index: u32,
    pub name: String,
    /// Its device node, where the platform has one.
    pub path: Option<String>,
    pub modes: Vec<Mode>,
    /// Why the modes could not be read, if they could not.
    pub modes_error: Option<String>,
}

/// One frame as the device delivered it.
#[derive(Debug)]
pub struct RawFrame {
    pub data: Vec<u8>,
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
}

/// Why the camera could not be opened or read. Every variant is something that may get better:
/// the capture loop shows it on the NO SIGNAL frame and retries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CameraError {
    #[error("no camera found ({0})")]
    NotFound(String),
    #[error("cannot open {device}: {reason}")]
    Open { device: String, reason: String },
    #[error("{device} offers no mode matching {wanted}; it offers: {offered}")]
    NoMatchingMode {
        device: String,
        wanted: String,
        offered: String,
    },
    #[error("reading a frame failed: {0}")]
    Read(String),
}

/// Lists and opens devices. Shared between the async side and capture threads.
pub trait CameraBackend: Send + Sync + 'static {
    /// Every device, with its modes.
    fn list(&self) -> Result<Vec<DeviceInfo>, CameraError>;

    /// Opens `selector` in the mode [`choose_mode`] picks for `request` and starts streaming.
    /// Called on the capture thread, which keeps the device until it drops it.
    fn open(
        &self,
        selector: &DeviceSelector,
        request: &ModeRequest,
    ) -> Result<Box<dyn CameraDevice>, CameraError>;
}

/// An open, streaming device. Lives on the camera's reader thread, where it was opened (nokhwa's
/// `Camera` is not `Send`).
pub trait CameraDevice {
    /// The device's name, for the API.
    fn name(&self) -> String;
    /// The mode it was opened in.
    fn mode(&self) -> Mode;
    /// Blocks until the device delivers its next frame.
    fn read(&mut self) -> Result<RawFrame, CameraError>;
}

/// Without a request: MJPEG is what a browser can take without re-encoding, 1280x720 at 30 fps
/// is as much as most viewers want.
pub const DEFAULT_MAX_SIZE: (u32, u32) = (1280, 720);
pub const DEFAULT_MAX_FPS: u32 = 30;

/// Picks the mode to open from what a device offers.
///
/// - `format`, `size`, `fps` given: only modes with that format / size, and for `fps` the mode
///   whose rate is closest to it (ties: the higher).
/// - Unset: prefer MJPEG (served without re-encoding), then the largest size up to 1280x720,
///   then the highest rate up to 30 fps; if no MJPEG mode fits, the same among raw modes.
///
/// `None` if nothing matches.
pub fn choose_mode(modes: &[Mode], request: &ModeRequest) -> Option<Mode> {
    let fits = |m: &&Mode| {
        request.format.is_none_or(|f| m.format == f)
            && request
                .size
                .is_none_or(|(w, h)| (m.width, m.height) == (w, h))
    };
    let candidates: Vec<&Mode> = modes.iter().filter(fits).collect();
    let within = |m: &Mode| {
        (request.size.is_some()
            || (m.width <= DEFAULT_MAX_SIZE.0 && m.height <= DEFAULT_MAX_SIZE.1))
            && (request.fps.is_some() || m.fps <= DEFAULT_MAX_FPS)
    };
    let pool: Vec<&Mode> = if candidates.iter().any(|m| within(m)) {
        candidates.iter().filter(|m| within(m)).copied().collect()
    } else {
        candidates
    };
    let score = |m: &Mode| {
        let mjpeg = (m.format == PixelFormat::Mjpeg) as u8;
        let area = u64::from(m.width) * u64::from(m.height);
        // Closest to the requested rate (negated distance), else the highest.
        let rate = match request.fps {
            Some(want) => {
                -(i64::from(m.fps) - i64::from(want)).abs() * 2 + i64::from(m.fps >= want)
            }
            None => i64::from(m.fps),
        };
        match request.fps {
            Some(_) => (mjpeg, rate, area as i64),
            None => (mjpeg, area as i64, rate),
        }
    };
    pool.into_iter().max_by_key(|m| score(m)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(format: PixelFormat, width: u32, height: u32, fps: u32) -> Mode {
        Mode {
            format,
            width,
            height,
            fps,
        }
    }

    #[test]
    fn default_is_the_best_mjpeg_mode_up_to_720p30() {
        let modes = [
            m(PixelFormat::Yuyv, 1280, 720, 10),
            m(PixelFormat::Mjpeg, 1920, 1080, 30),
            m(PixelFormat::Mjpeg, 1280, 720, 60),
            m(PixelFormat::Mjpeg, 1280, 720, 30),
            m(PixelFormat::Mjpeg, 640, 480, 30),
        ];
        assert_eq!(
            choose_mode(&modes, &ModeRequest::default()),
            Some(m(PixelFormat::Mjpeg, 1280, 720, 30))
        );
    }

    #[test]
    fn without_mjpeg_the_best_raw_mode() {
        let modes = [
            m(PixelFormat::Yuyv, 640, 480, 30),
            m(PixelFormat::Yuyv, 1280, 720, 10),
            m(PixelFormat::Nv12, 1920, 1080, 30),
        ];
        assert_eq!(
            choose_mode(&modes, &ModeRequest::default()),
            Some(m(PixelFormat::Yuyv, 1280, 720, 10))
        );
    }

    #[test]
    fn requests_narrow_the_choice() {
        let modes = [
            m(PixelFormat::Mjpeg, 1280, 720, 30),
            m(PixelFormat::Yuyv, 640, 480, 30),
            m(PixelFormat::Yuyv, 640, 480, 15),
        ];
        let yuyv15 = ModeRequest {
            format: Some(PixelFormat::Yuyv),
            fps: Some(15),
            size: None,
        };
        assert_eq!(
            choose_mode(&modes, &yuyv15),
            Some(m(PixelFormat::Yuyv, 640, 480, 15))
        );
        let big = ModeRequest {
            size: Some((1920, 1080)),
            ..Default::default()
        };
        assert_eq!(choose_mode(&modes, &big), None);
        // Above the default cap only when asked for.
        let modes = [m(PixelFormat::Mjpeg, 1920, 1080, 30)];
        assert_eq!(
            choose_mode(&modes, &ModeRequest::default()),
            Some(m(PixelFormat::Mjpeg, 1920, 1080, 30))
        );
    }

    #[test]
    fn format_names_round_trip() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::parse(f.name()), Some(f));
        }
        assert_eq!(PixelFormat::parse("YUYV"), Some(PixelFormat::Yuyv));
        assert_eq!(PixelFormat::Yuyv.frame_len(4, 2), Some(16));
        assert_eq!(PixelFormat::Nv12.frame_len(4, 2), Some(12));
    }
}
