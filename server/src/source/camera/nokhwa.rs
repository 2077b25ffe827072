//! The real camera backend: [`NokhwaBackend`] lists and opens devices through nokhwa (V4L2 on
//! Linux), and [`NokhwaDevice`] is one open, streaming device. This module owns everything that
//! touches nokhwa: selector resolution (`/dev/videoN` and its symlinks to V4L2 index N), the
//! mapping between nokhwa's formats and ours, opening in the mode [`choose_mode`] picks, and
//! cutting each driver buffer down to the frame it holds.
//!
//! nokhwa's `Camera` is `!Send`, so a [`NokhwaDevice`] is opened, read and dropped on the capture
//! thread; the backend itself holds nothing and is shared freely.
//!
//! What nokhwa does not let us control, and what follows from it:
//! - V4L2 buffers: nokhwa starts the stream with `MmapStream::new`, i.e. v4l's fixed 4 mmap
//!   buffers, all queued when the stream starts; the count is not configurable through nokhwa.
//!   That is harmless here because the capture thread reads continuously, so the driver's queue
//!   is always drained and a frame is at most about one frame period old when it is read.
//! - No read timeout: a device that stays open but stops delivering blocks `read` until it
//!   delivers or errors (an unplugged UVC camera errors with ENODEV).
//! - nokhwa hands out the whole mmap buffer, not the `bytesused` part of it, so an MJPEG frame
//!   is followed by stale bytes; [`frame_len`] cuts them off.
//!
//! This machine has no `/dev/video*`: `query` answers with an empty list and opening index 0
//! fails with "No such file or directory", so the tests below run the real path up to that error.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use nokhwa::utils::{
    frame_formats, ApiBackend, CameraFormat, CameraIndex, CameraInfo, FrameFormat, RequestedFormat,
    RequestedFormatType, Resolution,
};
use nokhwa::{Camera, NokhwaError};

use super::device::{
    choose_mode, CameraBackend, CameraDevice, CameraError, DeviceInfo, DeviceSelector, Mode,
    ModeRequest, PixelFormat, RawFrame,
};

/// Frame rates above this come from nokhwa misreading fractional V4L2 intervals (it reports the
/// denominator of 1001/30000 as 30000 fps); such modes are dropped from the list.
const MAX_PLAUSIBLE_FPS: u32 = 1000;

/// Lists and opens cameras through nokhwa's native backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct NokhwaBackend;

impl CameraBackend for NokhwaBackend {
    fn list(&self) -> Result<Vec<DeviceInfo>, CameraError> {
        let found = guard(|| nokhwa::query(ApiBackend::Auto))
            .map_err(|e| CameraError::NotFound(e.to_string()))?;
        let mut devices: Vec<DeviceInfo> = found
            .iter()
            .enumerate()
            .map(|(position, info)| describe(position, info))
            .collect();
        // nokhwa lists in directory order; people expect camera 0 first.
        devices.sort_by_key(|d| d.index);
        Ok(devices)
    }

    fn open(
        &self,
        selector: &DeviceSelector,
        request: &ModeRequest,
    ) -> Result<Box<dyn CameraDevice>, CameraError> {
        if *selector == DeviceSelector::First {
            return open_first(request);
        }
        let (index, device) = resolve(selector)?;
        open_index(index, device, request)
    }
}

/// `camera` without an index: the lowest-numbered device that opens in a matching mode. A UVC
/// webcam usually brings a second node (metadata) that cannot stream; it must not win just
/// because the directory listed it first.
fn open_first(request: &ModeRequest) -> Result<Box<dyn CameraDevice>, CameraError> {
    let mut indices: Vec<u32> = guard(|| nokhwa::query(ApiBackend::Auto))
        .map(|found| {
            found
                .iter()
                .filter_map(|c| c.index().as_index().ok())
                .collect()
        })
        .unwrap_or_default();
    indices.sort_unstable();
    indices.dedup();
    let mut first_error = None;
    for index in indices {
        match open_index(index, format!("camera {index}"), request) {
            Ok(device) => return Ok(device),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    // With nothing found, try 0 anyway so that the error is nokhwa's about a device.
    match first_error {
        Some(err) => Err(err),
        None => open_index(0, "camera 0".into(), request),
    }
}

fn open_index(
    index: u32,
    device: String,
    request: &ModeRequest,
) -> Result<Box<dyn CameraDevice>, CameraError> {
    {
        let open_err = |e: NokhwaError| open_error(&device, e);

        // Open in whatever mode nokhwa picks first, only to learn what the device offers.
        let mut camera =
            guard(|| Camera::new(CameraIndex::Index(index), any_format())).map_err(open_err)?;
        let modes = guard(|| modes_of(&mut camera)).map_err(open_err)?;
        let Some(mode) = choose_mode(&modes, request) else {
            return Err(CameraError::NoMatchingMode {
                device: device.clone(),
                wanted: describe_request(request),
                offered: describe_modes(&modes),
            });
        };

        let exact = RequestedFormat::with_formats(
            RequestedFormatType::Exact(camera_format(mode)),
            frame_formats(),
        );
        guard(|| camera.set_camera_requset(exact)).map_err(open_err)?;
        guard(|| camera.open_stream()).map_err(open_err)?;

        // What the driver reports now (nokhwa has checked it equals what was asked for).
        let mode = mode_of(camera.camera_format());
        let name = match camera.info().human_name() {
            n if n.trim().is_empty() => device.clone(),
            n => n,
        };
        Ok(Box::new(NokhwaDevice { camera, name, mode }))
    }
}

/// An open, streaming camera. Not `Send`: lives on the capture thread.
pub struct NokhwaDevice {
    camera: Camera,
    name: String,
    mode: Mode,
}

impl CameraDevice for NokhwaDevice {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn mode(&self) -> Mode {
        self.mode
    }

    fn read(&mut self) -> Result<RawFrame, CameraError> {
        // `frame_raw` borrows the driver's buffer; `frame` would first copy all of it (for MJPEG
        // typically far more than the frame) into a `Buffer` whose size and format are this same
        // `camera_format`. So: borrow, cut to the frame, copy that once.
        let Mode {
            format,
            width,
            height,
            ..
        } = self.mode;
        let raw = self
            .camera
            .frame_raw()
            .map_err(|e| CameraError::Read(e.to_string()))?;
        let len = frame_len(&raw, format, width, height);
        Ok(RawFrame {
            data: raw[..len].to_vec(),
            format,
            width,
            height,
        })
    }
}

impl Drop for NokhwaDevice {
    fn drop(&mut self) {
        // Best effort: unmaps the buffers (VIDIOC_STREAMOFF); dropping the camera then closes
        // the device node, so the camera is free for others as soon as the capture thread lets
        // go of it.
        let _ = guard(|| self.camera.stop_stream());
    }
}

/// Which V4L2 index a selector names, and how to name it in errors.
fn resolve(selector: &DeviceSelector) -> Result<(u32, String), CameraError> {
    match selector {
        DeviceSelector::Index(i) => Ok((*i, selector.to_string())),
        DeviceSelector::First => {
            // With nothing found, try 0 anyway so that the error is nokhwa's about a device.
            let first = guard(|| nokhwa::query(ApiBackend::Auto))
                .ok()
                .and_then(|found| found.first().and_then(|c| c.index().as_index().ok()))
                .unwrap_or(0);
            Ok((first, format!("camera {first}")))
        }
        DeviceSelector::Path(path) => {
            let device = selector.to_string();
            // nokhwa's V4L2 backend only takes an index N and opens /dev/videoN itself;
            // /dev/v4l/by-id/... symlinks are resolved to that first.
            let real = std::fs::canonicalize(path).map_err(|e| CameraError::Open {
                device: device.clone(),
                reason: e.to_string(),
            })?;
            match v4l_index(&real) {
                Some(i) => Ok((i, device)),
                None => Err(CameraError::Open {
                    device,
                    reason: format!(
                        "{} is not a video capture node (expected /dev/videoN)",
                        real.display()
                    ),
                }),
            }
        }
    }
}

/// `/dev/videoN` -> `N`.
fn v4l_index(path: &Path) -> Option<u32> {
    if path.parent() != Some(Path::new("/dev")) {
        return None;
    }
    let n = path.file_name()?.to_str()?.strip_prefix("video")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// A listed device, with its modes read by opening it briefly.
fn describe(position: usize, info: &CameraInfo) -> DeviceInfo {
    let index = info
        .index()
        .as_index()
        .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX));
    // The V4L2 backend describes a device as "Video4Linux Device @ /dev/videoN".
    let description = info.description();
    let path = description
        .split_once(" @ ")
        .map(|(_, p)| p.trim().to_string())
        .filter(|p| p.starts_with('/'))
        .or_else(|| cfg!(target_os = "linux").then(|| format!("/dev/video{index}")));
    // Note: nokhwa sets the device to its first mode on opening; on a device that is streaming
    // elsewhere in another mode this fails (EBUSY) and the failure is reported, not the modes.
    let (modes, modes_error) = match guard(|| {
        let mut camera = Camera::new(CameraIndex::Index(index), any_format())?;
        modes_of(&mut camera)
    }) {
        Ok(modes) => (modes, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    DeviceInfo {
        index,
        name: info.human_name(),
        path,
        modes,
        modes_error,
    }
}

/// Every mode the device offers that we can express, sorted (format, then largest first, then
/// fastest first) and without duplicates.
fn modes_of(camera: &mut Camera) -> Result<Vec<Mode>, NokhwaError> {
    let mut modes: Vec<Mode> = camera
        .compatible_camera_formats()?
        .into_iter()
        .map(mode_of)
        .filter(|m| m.width > 0 && m.height > 0 && (1..=MAX_PLAUSIBLE_FPS).contains(&m.fps))
        .collect();
    modes.sort_by_key(|m| {
        (
            PixelFormat::ALL.iter().position(|f| *f == m.format),
            std::cmp::Reverse((u64::from(m.width) * u64::from(m.height), m.width)),
            std::cmp::Reverse(m.fps),
        )
    });
    modes.dedup();
    Ok(modes)
}

/// Any mode at all, in any of the formats nokhwa knows (`RgbFormat`'s list would leave out GRAY).
fn any_format() -> RequestedFormat<'static> {
    RequestedFormat::with_formats(RequestedFormatType::None, frame_formats())
}

fn pixel_format(format: FrameFormat) -> PixelFormat {
    match format {
        FrameFormat::MJPEG => PixelFormat::Mjpeg,
        FrameFormat::YUYV => PixelFormat::Yuyv,
        FrameFormat::NV12 => PixelFormat::Nv12,
        FrameFormat::GRAY => PixelFormat::Gray,
        FrameFormat::RAWRGB => PixelFormat::Rgb,
        FrameFormat::RAWBGR => PixelFormat::Bgr,
    }
}

fn frame_format(format: PixelFormat) -> FrameFormat {
    match format {
        PixelFormat::Mjpeg => FrameFormat::MJPEG,
        PixelFormat::Yuyv => FrameFormat::YUYV,
        PixelFormat::Nv12 => FrameFormat::NV12,
        PixelFormat::Gray => FrameFormat::GRAY,
        PixelFormat::Rgb => FrameFormat::RAWRGB,
        PixelFormat::Bgr => FrameFormat::RAWBGR,
    }
}

fn mode_of(format: CameraFormat) -> Mode {
    Mode {
        format: pixel_format(format.format()),
        width: format.width(),
        height: format.height(),
        fps: format.frame_rate(),
    }
}

fn open_error(device: &str, e: NokhwaError) -> CameraError {
    CameraError::Open {
        device: device.to_string(),
        reason: e.to_string(),
    }
}

fn camera_format(mode: Mode) -> CameraFormat {
    CameraFormat::new(
        Resolution::new(mode.width, mode.height),
        frame_format(mode.format),
        mode.fps,
    )
}

fn describe_request(request: &ModeRequest) -> String {
    let format = request
        .format
        .map_or("any format".to_string(), |f| f.to_string());
    let size = request
        .size
        .map_or("any size".to_string(), |(w, h)| format!("{w}x{h}"));
    let fps = request
        .fps
        .map_or("any rate".to_string(), |r| format!("{r} fps"));
    format!("{format}, {size}, {fps}")
}

fn describe_modes(modes: &[Mode]) -> String {
    if modes.is_empty() {
        return "no mode it can stream in".to_string();
    }
    modes
        .iter()
        .map(Mode::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How much of a driver buffer is the frame: raw formats have a known size (the buffer may be
/// larger, page-rounded), an MJPEG frame ends at its EOI marker. When that cannot be told (a
/// short buffer, something that is not a JPEG), the whole buffer is kept and conversion decides.
fn frame_len(data: &[u8], format: PixelFormat, width: u32, height: u32) -> usize {
    match format.frame_len(width, height) {
        Some(len) => len.min(data.len()),
        None => jpeg_len(data).unwrap_or(data.len()),
    }
}

/// The length of the JPEG at the start of `data`, up to and including its EOI marker.
///
/// Walks the marker segments by their lengths, and the entropy-coded data after each SOS up to
/// the next marker (in there `FF 00` is a stuffed byte and `FF D0..D7` a restart), so an `FF D9`
/// inside a table or left over from an earlier, longer frame is not mistaken for the end.
fn jpeg_len(data: &[u8]) -> Option<usize> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    loop {
        if *data.get(i)? != 0xFF {
            return None;
        }
        while *data.get(i)? == 0xFF {
            i += 1; // fill bytes
        }
        let marker = data[i];
        i += 1;
        match marker {
            0xD9 => return Some(i),
            0x01 | 0xD0..=0xD7 => {}
            _ => {
                let len = usize::from(u16::from_be_bytes([*data.get(i)?, *data.get(i + 1)?]));
                if len < 2 {
                    return None;
                }
                i += len;
                if marker == 0xDA {
                    // Entropy-coded data, up to the next real marker.
                    loop {
                        match (*data.get(i)?, *data.get(i + 1)?) {
                            (0xFF, 0x00 | 0xD0..=0xD7) => i += 2,
                            (0xFF, 0xFF) => i += 1,
                            (0xFF, _) => break,
                            _ => i += 1,
                        }
                    }
                }
            }
        }
    }
}

/// Runs a nokhwa call, turning a panic inside nokhwa (it has `unwrap`s, `assert`s and
/// `step_by(0)` on driver-supplied values) into an error the capture loop can retry on.
fn guard<T>(f: impl FnOnce() -> Result<T, NokhwaError>) -> Result<T, NokhwaError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(NokhwaError::GeneralError(format!(
            "nokhwa panicked: {what}"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_video0() -> bool {
        !Path::new("/dev/video0").exists()
    }

    #[test]
    fn list_without_a_camera_is_empty_or_not_found() {
        match NokhwaBackend.list() {
            Ok(devices) => {
                if no_video0() {
                    assert!(
                        devices.is_empty(),
                        "no /dev/video0, yet listed: {devices:?}"
                    );
                }
            }
            Err(err) => assert!(
                matches!(err, CameraError::NotFound(_)),
                "unexpected error: {err}"
            ),
        }
    }

    #[test]
    fn opening_a_missing_camera_names_it() {
        if !no_video0() {
            return;
        }
        let err = match NokhwaBackend.open(&DeviceSelector::Index(0), &ModeRequest::default()) {
            Ok(dev) => panic!("opened {} without /dev/video0", dev.name()),
            Err(err) => err,
        };
        let text = err.to_string();
        assert!(matches!(err, CameraError::Open { .. }), "{text}");
        assert!(text.contains("camera 0"), "{text}");
        assert!(text.starts_with("cannot open camera 0: "), "{text}");
    }

    #[test]
    fn first_camera_falls_back_to_index_0() {
        if !no_video0() || NokhwaBackend.list().is_ok_and(|l| !l.is_empty()) {
            return;
        }
        let err = NokhwaBackend
            .open(&DeviceSelector::First, &ModeRequest::default())
            .err()
            .expect("no camera, yet opened");
        assert!(err.to_string().contains("camera 0"), "{err}");
    }

    #[test]
    fn paths_map_to_v4l_indices() {
        assert_eq!(v4l_index(Path::new("/dev/video0")), Some(0));
        assert_eq!(v4l_index(Path::new("/dev/video12")), Some(12));
        assert_eq!(v4l_index(Path::new("/dev/video")), None);
        assert_eq!(v4l_index(Path::new("/dev/video1a")), None);
        assert_eq!(v4l_index(Path::new("/dev/video+1")), None);
        assert_eq!(v4l_index(Path::new("/tmp/video0")), None);
        assert_eq!(v4l_index(Path::new("/dev/media0")), None);

        let missing = DeviceSelector::Path("/dev/no-such-camera".into());
        let err = NokhwaBackend
            .open(&missing, &ModeRequest::default())
            .err()
            .expect("opened a missing path");
        assert!(
            err.to_string()
                .starts_with("cannot open /dev/no-such-camera: "),
            "{err}"
        );
        // Something that exists but is not a capture node.
        let err = resolve(&DeviceSelector::Path("/dev/null".into())).unwrap_err();
        assert!(
            err.to_string().contains("not a video capture node"),
            "{err}"
        );
    }

    #[test]
    fn formats_round_trip() {
        for f in PixelFormat::ALL {
            assert_eq!(pixel_format(frame_format(f)), f);
        }
        for &f in frame_formats() {
            assert_eq!(frame_format(pixel_format(f)), f);
        }
        let mode = Mode {
            format: PixelFormat::Yuyv,
            width: 640,
            height: 480,
            fps: 15,
        };
        assert_eq!(mode_of(camera_format(mode)), mode);
    }

    #[test]
    fn no_matching_mode_is_described() {
        let request = ModeRequest {
            size: Some((1920, 1080)),
            fps: None,
            format: Some(PixelFormat::Yuyv),
        };
        assert_eq!(describe_request(&request), "yuyv, 1920x1080, any rate");
        assert_eq!(
            describe_request(&ModeRequest::default()),
            "any format, any size, any rate"
        );
        let modes = [
            Mode {
                format: PixelFormat::Mjpeg,
                width: 1280,
                height: 720,
                fps: 30,
            },
            Mode {
                format: PixelFormat::Yuyv,
                width: 640,
                height: 480,
                fps: 30,
            },
        ];
        assert_eq!(
            describe_modes(&modes),
            "mjpeg 1280x720 @ 30 fps, yuyv 640x480 @ 30 fps"
        );
        assert_eq!(describe_modes(&[]), "no mode it can stream in");
    }

    /// A minimal JPEG-shaped buffer: SOI, a DQT-like segment holding FF D9, SOS, entropy data
    /// with a stuffed FF and a restart marker, EOI; then stale bytes with another EOI.
    fn jpeg_with_tail() -> (Vec<u8>, usize) {
        let mut v = vec![0xFF, 0xD8];
        v.extend([0xFF, 0xDB, 0x00, 0x06, 0x00, 0xFF, 0xD9, 0x01]);
        v.extend([0xFF, 0xDA, 0x00, 0x04, 0x01, 0x02]);
        v.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        v.extend([0xFF, 0xD9]);
        let len = v.len();
        v.extend([0x00, 0x00, 0xAB, 0xFF, 0xD9, 0x00, 0x00]);
        (v, len)
    }

    #[test]
    fn mjpeg_frames_are_cut_at_their_eoi() {
        let (data, len) = jpeg_with_tail();
        assert_eq!(jpeg_len(&data), Some(len));
        assert_eq!(frame_len(&data, PixelFormat::Mjpeg, 8, 8), len);
        // Truncated, or not a JPEG: keep everything.
        assert_eq!(jpeg_len(&data[..len - 1]), None);
        assert_eq!(
            frame_len(&data[..len - 1], PixelFormat::Mjpeg, 8, 8),
            len - 1
        );
        assert_eq!(frame_len(&[0u8; 64], PixelFormat::Mjpeg, 8, 8), 64);
        assert_eq!(jpeg_len(&[]), None);
    }

    #[test]
    fn raw_frames_are_cut_to_their_size() {
        let data = vec![7u8; 4096];
        assert_eq!(frame_len(&data, PixelFormat::Yuyv, 4, 2), 16);
        assert_eq!(frame_len(&data, PixelFormat::Nv12, 4, 2), 12);
        assert_eq!(frame_len(&data, PixelFormat::Rgb, 4, 2), 24);
        // Short buffer: kept whole, conversion reports it.
        assert_eq!(frame_len(&data[..10], PixelFormat::Gray, 4, 4), 10);
    }

    #[test]
    fn panics_in_nokhwa_become_errors() {
        let err = guard::<()>(|| panic!("step_by(0)")).unwrap_err();
        assert!(
            err.to_string().contains("nokhwa panicked: step_by(0)"),
            "{err}"
        );
    }
}
