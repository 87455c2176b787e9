//! Printing without a printer's fonts, and paper without a printer: text drawn with the same
//! system fonts the touch screen uses (DejaVu, Noto CJK, TLWG Thai, found through
//! fontconfig's folders), as 1-bit images in the printer's 12 x 24 dot character cells.
//!
//! Two uses: a line the printer's encoding cannot carry (Thai on a Chinese printer) is sent
//! as a raster image ([`Fonts`] is an ESC/POS [`LineRenderer`]); and the virtual printer
//! turns decoded ESC/POS back into a picture of the paper ([`paper`]), saved as PNG.

use std::path::Path;

use ab_glyph::{Font, FontVec, PxScale, ScaleFont};
use drivers::escpos::{self, Align, LineRenderer, Paper, Printed, Raster, Style};

/// Character cell of font A: 12 x 24 dots.
const CELL_W: u32 = 12;
const CELL_H: u32 = 24;

/// A fallback chain of fonts.
pub struct Fonts {
    faces: Vec<FontVec>,
}

impl Fonts {
    /// The system's fonts for `language` (a UI language code): the monospaced Latin font
    /// first, then the CJK face of that language's region, then the others, Thai, and a
    /// proportional Latin font last.
    pub fn for_language(language: &str) -> Fonts {
        let mut db = fontdb::Database::new();
        db.load_system_fonts();
        // Noto Sans CJK (Debian's fonts-noto-cjk) and Source Han Sans (the same typeface under
        // Adobe's name, which the Yocto image installs from meta-oe) by region.
        let sc = [
            "Noto Sans CJK SC",
            "Source Han Sans SC",
            "Source Han Sans CN",
        ];
        let tc = [
            "Noto Sans CJK TC",
            "Source Han Sans TC",
            "Source Han Sans TW",
        ];
        let jp = ["Noto Sans CJK JP", "Source Han Sans", "Source Han Sans JP"];
        let kr = [
            "Noto Sans CJK KR",
            "Source Han Sans K",
            "Source Han Sans KR",
        ];
        let order: [&[&str]; 4] = match language {
            "ja" => [&jp, &sc, &tc, &kr],
            "zh_TW" => [&tc, &sc, &jp, &kr],
            "ko" => [&kr, &sc, &jp, &tc],
            _ => [&sc, &tc, &jp, &kr],
        };
        let cjk: Vec<&str> = order.concat();
        let mut families = vec!["DejaVu Sans Mono"];
        families.extend_from_slice(&cjk);
        families.extend_from_slice(&["Loma", "Garuda", "Norasi", "Noto Sans Thai", "DejaVu Sans"]);
        let mut faces = Vec::new();
        for fam in families {
            let q = fontdb::Query {
                families: &[fontdb::Family::Name(fam)],
                ..fontdb::Query::default()
            };
            let Some(id) = db.query(&q) else { continue };
            let face = db.with_face_data(id, |data, index| {
                FontVec::try_from_vec_and_index(data.to_vec(), index).ok()
            });
            if let Some(Some(f)) = face {
                faces.push(f);
            }
        }
        Fonts { faces }
    }

    /// Whether any font was found.
    pub fn is_empty(&self) -> bool {
        self.faces.is_empty()
    }

    fn face_for(&self, c: char) -> Option<&FontVec> {
        self.faces.iter().find(|f| f.glyph_id(c).0 != 0)
    }

    /// Draws `text` into a raster `width` dots wide, one cell per column (two for wide
    /// characters), combining marks over the character before them.
    pub fn line(&self, text: &str, style: Style, width: u32) -> Raster {
        let k = if style.double { 2 } else { 1 };
        let (cw, ch) = (CELL_W * k, CELL_H * k);
        let mut r = Raster {
            width,
            height: ch,
            bits: vec![0; width.div_ceil(8) as usize * ch as usize],
        };
        let cols = escpos::columns(text) as u32;
        let start = match style.align {
            Align::Left => 0,
            Align::Center => width.saturating_sub(cols * cw) / 2,
            Align::Right => width.saturating_sub(cols * cw),
        };
        let rb = r.row_bytes();
        let mut x = start;
        let mut last_x = start;
        for c in text.chars() {
            let w = escpos::char_columns(c) as u32;
            let at = if w == 0 { last_x } else { x };
            if let Some(font) = self.face_for(c) {
                // A narrow character: the font's ascent + descent fill the cell's height. A
                // wide (CJK) one: its em square nearly fills two cells (24 x 24 dots), on a
                // baseline low enough for the ideographs' ink.
                let (px, baseline) = if w == 2 {
                    (ch as f32 * 0.92, ch as f32 * 0.81)
                } else {
                    let unscaled = font.ascent_unscaled() - font.descent_unscaled();
                    let px = ch as f32 * font.units_per_em().unwrap_or(1000.0) / unscaled.max(1.0);
                    (px, font.as_scaled(PxScale::from(px)).ascent())
                };
                let scale = PxScale::from(px);
                let sf = font.as_scaled(scale);
                let gid = font.glyph_id(c);
                let adv = sf.h_advance(gid);
                // Centre the glyph in its cells (a proportional glyph in a fixed cell).
                let cells = (w.max(1) * cw) as f32;
                let gx = at as f32
                    + if w == 0 {
                        0.0
                    } else {
                        (cells - adv).max(0.0) / 2.0
                    };
                let glyph = gid.with_scale_and_position(scale, ab_glyph::point(gx, baseline));
                if let Some(outline) = font.outline_glyph(glyph) {
                    let b = outline.px_bounds();
                    outline.draw(|gx, gy, cov| {
                        let px = b.min.x as i32 + gx as i32;
                        let py = b.min.y as i32 + gy as i32;
                        if cov > 0.5
                            && px >= 0
                            && py >= 0
                            && (px as u32) < width
                            && (py as u32) < ch
                        {
                            let (px, py) = (px as u32, py as u32);
                            r.bits[py as usize * rb + (px / 8) as usize] |= 0x80 >> (px % 8);
                            if style.bold && px + 1 < width {
                                let px = px + 1;
                                r.bits[py as usize * rb + (px / 8) as usize] |= 0x80 >> (px % 8);
                            }
                        }
                    });
                }
            }
            if w > 0 {
                last_x = x;
                x += w * cw;
            }
        }
        r
    }
}

impl LineRenderer for Fonts {
    fn render(&mut self, text: &str, style: Style, width: u32) -> Option<Raster> {
        (!self.is_empty()).then(|| Fonts::line(self, text, style, width))
    }
}

fn blit(dst: &mut Raster, src: &Raster, x0: u32, y0: u32) {
    let rb = dst.row_bytes();
    for y in 0..src.height {
        for x in 0..src.width {
            if src.get(x, y) && x0 + x < dst.width && y0 + y < dst.height {
                let (px, py) = (x0 + x, y0 + y);
                dst.bits[py as usize * rb + (px / 8) as usize] |= 0x80 >> (px % 8);
            }
        }
    }
}

/// What the paper looks like: decoded ESC/POS drawn top to bottom on `paper`.
pub fn paper(printed: &[Printed], paper: Paper, fonts: &Fonts) -> Raster {
    let width = paper.dots();
    let mut parts: Vec<(Raster, u32)> = Vec::new();
    for p in printed {
        match p {
            Printed::Line(t, s) => parts.push((fonts.line(t, *s, width), 0)),
            Printed::Raster(r) => parts.push((r.clone(), 0)),
            Printed::Qr(data) => {
                if let Some(q) = escpos::qr_raster(data, 6) {
                    let x = width.saturating_sub(q.width) / 2;
                    parts.push((q, x));
                }
            }
            Printed::Feed(n) => parts.push((
                Raster {
                    width,
                    height: CELL_H * u32::from(*n),
                    bits: vec![0; width.div_ceil(8) as usize * (CELL_H * u32::from(*n)) as usize],
                },
                0,
            )),
            Printed::Cut => {
                // A dashed line where the cutter cuts.
                let mut r = Raster {
                    width,
                    height: 8,
                    bits: vec![0; width.div_ceil(8) as usize * 8],
                };
                let rb = r.row_bytes();
                for x in (0..width).filter(|x| x % 12 < 6) {
                    r.bits[4 * rb + (x / 8) as usize] |= 0x80 >> (x % 8);
                }
                parts.push((r, 0));
            }
        }
    }
    let height: u32 = parts.iter().map(|(r, _)| r.height).sum();
    let mut out = Raster {
        width,
        height,
        bits: vec![0; width.div_ceil(8) as usize * height as usize],
    };
    let mut y = 0;
    for (r, x) in &parts {
        blit(&mut out, r, *x, y);
        y += r.height;
    }
    out
}

/// Saves a raster as a greyscale PNG with a paper-coloured margin of 16 dots.
pub fn save_png(r: &Raster, path: &Path) -> anyhow::Result<()> {
    let m = 16;
    let (w, h) = (r.width + 2 * m, r.height + 2 * m);
    let mut pixels = vec![0xFFu8; (w * h) as usize];
    for y in 0..r.height {
        for x in 0..r.width {
            if r.get(x, y) {
                pixels[((y + m) * w + x + m) as usize] = 0x20;
            }
        }
    }
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(())
}
