//! A fake camera for the camera tests: the relay's `CameraBackend` with no hardware behind it.
//!
//! The test controls it while it runs: what it delivers (MJPEG without Huffman tables, the way
//! many UVC webcams send it, or raw YUYV), whether the device is there at all (unplug / replug),
//! and whether reads stall. It counts opens, reads and how many devices are open, so tests can
//! check what the relay did to the "hardware". Every frame carries the pixel stamp of
//! `mjpeg_shared::stamp` with its read number, so a served frame can be told from NO SIGNAL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use mjpeg_relay::source::camera::device::{
    CameraBackend, CameraDevice, CameraError, DeviceInfo, DeviceSelector, Mode, ModeRequest,
    PixelFormat, RawFrame,
};
use mjpeg_shared::stamp;

/// What the fake delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeKind {
    /// JPEGs with their DHT segments removed.
    MjpegWithoutHuffman,
    /// Raw YUYV 4:2:2.
    Yuyv,
}

/// Shared control panel of one fake camera.
pub struct FakeCamera {
    pub kind: FakeKind,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub present: AtomicBool,
    pub stalled: Mutex<bool>,
    unstall: Condvar,
    pub opens: AtomicU64,
    pub reads: AtomicU64,
    pub open_now: AtomicU64,
}

impl FakeCamera {
    pub fn new(kind: FakeKind, width: u32, height: u32, fps: u32) -> Arc<Self> {
        Arc::new(FakeCamera {
            kind,
            width,
            height,
            fps,
            present: AtomicBool::new(true),
            stalled: Mutex::new(false),
            unstall: Condvar::new(),
            opens: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            open_now: AtomicU64::new(0),
        })
    }

    /// Unplugs (false) or replugs (true) the device.
    pub fn set_present(&self, present: bool) {
        self.present.store(present, Ordering::SeqCst);
    }

    /// Makes reads block (true) until released (false).
    pub fn set_stalled(&self, stalled: bool) {
        *self.stalled.lock().unwrap() = stalled;
        self.unstall.notify_all();
    }

    pub fn mode(&self) -> Mode {
        let format = match self.kind {
            FakeKind::MjpegWithoutHuffman => PixelFormat::Mjpeg,
            FakeKind::Yuyv => PixelFormat::Yuyv,
        };
        Mode {
            format,
            width: self.width,
            height: self.height,
            fps: self.fps,
        }
    }

    /// The RGB picture of read number `n`: left half light, right half dark, with its stamp.
    pub fn picture(&self, n: u32) -> Vec<u8> {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut rgb = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let v = if x < w / 2 {
                    [220, 200, 60]
                } else {
                    [30, 60, 140]
                };
                rgb[(y * w + x) * 3..][..3].copy_from_slice(&v);
            }
        }
        stamp::draw_rgb(
            stamp::Stamp {
                seq: n,
                capture_micros: u64::from(n),
            },
            &mut rgb,
            w,
            h,
        );
        rgb
    }
}

/// The backend the relay is given in tests: one fake device at index 0 (`/dev/video0`).
pub struct FakeBackend(pub Arc<FakeCamera>);

impl CameraBackend for FakeBackend {
    fn list(&self) -> Result<Vec<DeviceInfo>, CameraError> {
        let cam = &self.0;
        Ok(if cam.present.load(Ordering::SeqCst) {
            vec![DeviceInfo {
                index: 0,
                name: "Fake Camera".into(),
                path: Some("/dev/video0".into()),
                modes: vec![cam.mode()],
                modes_error: None,
            }]
        } else {
            vec![]
        })
    }

    fn open(
        &self,
        selector: &DeviceSelector,
        _request: &ModeRequest,
    ) -> Result<Box<dyn CameraDevice>, CameraError> {
        let cam = self.0.clone();
        if !cam.present.load(Ordering::SeqCst) {
            return Err(CameraError::Open {
                device: selector.to_string(),
                reason: "No such file or directory (fake unplugged)".into(),
            });
        }
        cam.opens.fetch_add(1, Ordering::SeqCst);
        cam.open_now.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(FakeDevice {
            cam,
            next_due: std::time::Instant::now(),
        }))
    }
}

struct FakeDevice {
    cam: Arc<FakeCamera>,
    next_due: std::time::Instant,
}

impl Drop for FakeDevice {
    fn drop(&mut self) {
        self.cam.open_now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl CameraDevice for FakeDevice {
    fn name(&self) -> String {
        "Fake Camera".into()
    }

    fn mode(&self) -> Mode {
        self.cam.mode()
    }

    fn read(&mut self) -> Result<RawFrame, CameraError> {
        let cam = &self.cam;
        // A camera delivers at its own pace.
        let now = std::time::Instant::now();
        if self.next_due > now {
            std::thread::sleep(self.next_due - now);
        }
        self.next_due =
            std::time::Instant::now() + Duration::from_secs_f64(1.0 / f64::from(cam.fps));
        let mut stalled = cam.stalled.lock().unwrap();
        while *stalled {
            stalled = cam.unstall.wait(stalled).unwrap();
        }
        drop(stalled);
        if !cam.present.load(Ordering::SeqCst) {
            return Err(CameraError::Read("No such device (fake unplugged)".into()));
        }
        let n = cam.reads.fetch_add(1, Ordering::SeqCst) as u32 + 1;
        let rgb = cam.picture(n);
        let (w, h) = (cam.width, cam.height);
        let data = match cam.kind {
            FakeKind::MjpegWithoutHuffman => strip_huffman_tables(&encode(&rgb, w, h)),
            FakeKind::Yuyv => rgb_to_yuyv(&rgb, w as usize, h as usize),
        };
        Ok(RawFrame {
            data,
            format: cam.mode().format,
            width: w,
            height: h,
        })
    }
}

/// A baseline JPEG of `rgb` (standard Huffman tables, as jpeg-encoder writes by default).
pub fn encode(rgb: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 85)
        .encode(rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .expect("encode");
    out
}

/// Removes every DHT (FF C4) segment before the scan, as AVI1 webcams send their frames.
pub fn strip_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if marker == 0xDA {
            out.extend_from_slice(&jpeg[i..]);
            return out;
        }
        if marker != 0xC4 {
            out.extend_from_slice(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
    }
    out
}

/// True if the JPEG has a DHT segment before its scan.
pub fn has_huffman_tables(jpeg: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        match jpeg[i + 1] {
            0xC4 => return true,
            0xDA => return false,
            _ => i += 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]])),
        }
    }
    false
}

/// Packed RGB to YUYV (BT.601, full range), chroma averaged over each pixel pair.
pub fn rgb_to_yuyv(rgb: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(w * h * 2);
    let yuv = |p: &[u8]| {
        let (r, g, b) = (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        (y, (b - y) * 0.564 + 128.0, (r - y) * 0.713 + 128.0)
    };
    for y in 0..h {
        for x in (0..w).step_by(2) {
            let (y0, u0, v0) = yuv(&rgb[(y * w + x) * 3..]);
            let (y1, u1, v1) = yuv(&rgb[(y * w + x + 1) * 3..]);
            let c = |v: f32| v.round().clamp(0.0, 255.0) as u8;
            out.extend_from_slice(&[c(y0), c((u0 + u1) / 2.0), c(y1), c((v0 + v1) / 2.0)]);
        }
    }
    out
}
