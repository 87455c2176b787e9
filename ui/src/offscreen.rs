//! Rendering without a display: a Slint platform whose window is a
//! [`MinimalSoftwareWindow`], drawn by the software renderer into a pixel buffer. Used by the
//! golden-image tests and by `kassa` to save screenshots.

use std::path::Path;
use std::rc::Rc;

use slint::PhysicalSize;
use slint::Rgb8Pixel;
use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::{Platform, WindowAdapter};

/// Errors of off-screen rendering.
#[derive(Debug, thiserror::Error)]
pub enum OffscreenError {
    /// Slint refused the platform (one was already set in this process).
    #[error("cannot install the off-screen platform: {0}")]
    Platform(String),
    /// Writing the PNG failed.
    #[error("writing {path}: {message}")]
    Png {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

struct OffscreenPlatform {
    window: Rc<MinimalSoftwareWindow>,
}

impl Platform for OffscreenPlatform {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, slint::PlatformError> {
        Ok(self.window.clone())
    }
}

/// An off-screen window of a fixed size.
pub struct Offscreen {
    window: Rc<MinimalSoftwareWindow>,
    width: u32,
    height: u32,
}

impl Offscreen {
    /// Installs the off-screen platform for this process (once, before any component is
    /// created) with a window of `width` x `height` pixels.
    pub fn install(width: u32, height: u32) -> Result<Self, OffscreenError> {
        let window = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
        window.set_size(PhysicalSize::new(width, height));
        slint::platform::set_platform(Box::new(OffscreenPlatform {
            window: window.clone(),
        }))
        .map_err(|e| OffscreenError::Platform(e.to_string()))?;
        Ok(Offscreen {
            window,
            width,
            height,
        })
    }

    /// Renders the current state of the window into RGB pixels, row by row.
    pub fn render(&self) -> Frame {
        slint::platform::update_timers_and_animations();
        self.window.request_redraw();
        let mut pixels = vec![Rgb8Pixel { r: 0, g: 0, b: 0 }; (self.width * self.height) as usize];
        self.window.draw_if_needed(|renderer| {
            renderer.render(&mut pixels, self.width as usize);
        });
        Frame {
            width: self.width,
            height: self.height,
            rgb: pixels.iter().flat_map(|p| [p.r, p.g, p.b]).collect(),
        }
    }
}

/// A rendered frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGB bytes, row by row.
    pub rgb: Vec<u8>,
}

impl Frame {
    /// The colour of one pixel.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// The top-left `width` x `height` part of the frame.
    pub fn crop(&self, width: u32, height: u32) -> Frame {
        let (w, h) = (width.min(self.width), height.min(self.height));
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            let start = ((y * self.width) * 3) as usize;
            rgb.extend_from_slice(&self.rgb[start..start + (w * 3) as usize]);
        }
        Frame {
            width: w,
            height: h,
            rgb,
        }
    }

    /// How many pixels differ from `background` in the rectangle at (`x`, `y`), `w` x `h`.
    pub fn count_not_in(&self, background: [u8; 3], x: u32, y: u32, w: u32, h: u32) -> usize {
        let mut n = 0;
        for yy in y..(y + h).min(self.height) {
            for xx in x..(x + w).min(self.width) {
                if self.pixel(xx, yy) != background {
                    n += 1;
                }
            }
        }
        n
    }

    /// How many pixels differ from `background`.
    pub fn count_not(&self, background: [u8; 3]) -> usize {
        self.rgb.chunks(3).filter(|p| *p != background).count()
    }

    /// Number of distinct colours.
    pub fn distinct_colours(&self) -> usize {
        let mut set: Vec<[u8; 3]> = self.rgb.chunks(3).map(|p| [p[0], p[1], p[2]]).collect();
        set.sort_unstable();
        set.dedup();
        set.len()
    }

    /// Writes the frame as an 8-bit RGB PNG.
    pub fn save_png(&self, path: &Path) -> Result<(), OffscreenError> {
        let err = |e: &dyn std::fmt::Display| OffscreenError::Png {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let file = std::fs::File::create(path).map_err(|e| err(&e))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), self.width, self.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| err(&e))?;
        w.write_image_data(&self.rgb).map_err(|e| err(&e))?;
        w.finish().map_err(|e| err(&e))
    }
}
