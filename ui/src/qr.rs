//! QR codes drawn for the screen: the customer's e-receipt (the receipt text itself, so a
//! phone keeps it without any service behind the terminal), and later the merchant-presented
//! payment codes.

use qrcode::{Color, EcLevel, QrCode};
use slint::{Image, Rgb8Pixel, SharedPixelBuffer};

/// A QR code that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("QR code: {0}")]
pub struct QrError(String);

/// The modules of `data` as a QR code (error correction M): `width` x `width`, row by row,
/// true for dark.
pub fn modules(data: &[u8]) -> Result<(usize, Vec<bool>), QrError> {
    let code = QrCode::with_error_correction_level(data, EcLevel::M)
        .map_err(|e| QrError(e.to_string()))?;
    let width = code.width();
    let dark = code
        .to_colors()
        .into_iter()
        .map(|c| c == Color::Dark)
        .collect();
    Ok((width, dark))
}

/// Pixels of a QR code: each module `scale` x `scale` pixels, with the four-module quiet zone
/// of ISO/IEC 18004 around it; black on white. Returns (side in pixels, RGB pixels).
pub fn pixels(data: &[u8], scale: usize) -> Result<(usize, Vec<Rgb8Pixel>), QrError> {
    let (width, dark) = modules(data)?;
    let scale = scale.max(1);
    let side = (width + 8) * scale;
    let white = Rgb8Pixel {
        r: 255,
        g: 255,
        b: 255,
    };
    let mut px = vec![white; side * side];
    for (i, d) in dark.iter().enumerate() {
        if !*d {
            continue;
        }
        let (mx, my) = (i % width + 4, i / width + 4);
        for y in my * scale..(my + 1) * scale {
            for x in mx * scale..(mx + 1) * scale {
                px[y * side + x] = Rgb8Pixel { r: 0, g: 0, b: 0 };
            }
        }
    }
    Ok((side, px))
}

/// The QR code as a Slint image, at most `max_side` pixels wide (whole pixels per module).
pub fn image(data: &[u8], max_side: usize) -> Result<Image, QrError> {
    let (width, _) = modules(data)?;
    let scale = (max_side / (width + 8)).max(1);
    let (side, px) = pixels(data, scale)?;
    let mut buf = SharedPixelBuffer::<Rgb8Pixel>::new(side as u32, side as u32);
    buf.make_mut_slice().copy_from_slice(&px);
    Ok(Image::from_rgb8(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_follow_the_modules_with_a_quiet_zone() {
        let text = "Kassa Demo Shop\nSALE  EUR 12.34\nAPPROVED A1B2C3\n承認";
        let (width, dark) = modules(text.as_bytes()).unwrap();
        assert_eq!((width - 17) % 4, 0, "a QR symbol is 17 + 4v modules wide");
        let (side, px) = pixels(text.as_bytes(), 3).unwrap();
        assert_eq!(side, (width + 8) * 3);
        // The quiet zone is white.
        assert!(px[..side * 12].iter().all(|p| p.r == 255));
        // Each module's centre pixel has the module's colour.
        for (i, d) in dark.iter().enumerate() {
            let (x, y) = ((i % width + 4) * 3 + 1, (i / width + 4) * 3 + 1);
            assert_eq!(px[y * side + x].r == 0, *d, "module {i}");
        }
        // The finder pattern's corner is dark.
        assert!(dark[0] && dark[6] && dark[6 * width]);
        // A whole customer receipt fits.
        let receipt = "X".repeat(900) + &"承認".repeat(100);
        assert!(modules(receipt.as_bytes()).is_ok());
        assert!(
            modules(&vec![b'x'; 5000]).is_err(),
            "too long for any QR version"
        );
    }
}
