//! ESC/POS: the command language of receipt printers (Epson's reference, followed by most
//! 58 mm and 80 mm thermal printers, Chinese makes included), as an encoder from a receipt
//! [`Document`] to bytes and a decoder from bytes back to what the paper shows.
//!
//! Text goes out in the printer's encoding: WPC1252 for Latin scripts (`ESC t 16`), or a
//! Chinese printer's double-byte mode (`FS &`) with GB18030, GBK or Big5 bytes, or UTF-8
//! (`FS ( C`) on printers that take it. A line the chosen encoding cannot carry (Thai on a
//! Chinese printer, Korean in Big5...) is printed as a raster image (`GS v 0`) that the
//! caller renders with the UI's fonts, so nothing is ever printed as question marks.

use std::fmt;

/// Paper width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Paper {
    /// 58 mm paper: 384 dots, 32 columns of font A (12 x 24 dots).
    Mm58,
    /// 80 mm paper: 576 dots, 48 columns of font A.
    Mm80,
}

impl Paper {
    /// Printable dots across.
    pub fn dots(self) -> u32 {
        match self {
            Paper::Mm58 => 384,
            Paper::Mm80 => 576,
        }
    }

    /// Columns of font A (12 dots wide; a CJK character takes two).
    pub fn columns(self) -> usize {
        (self.dots() / 12) as usize
    }
}

/// How text is encoded for the printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Latin scripts: code page WPC1252 (`ESC t 16`).
    Latin,
    /// Simplified Chinese, GB18030, in double-byte mode.
    Gb18030,
    /// Simplified Chinese, GBK, in double-byte mode.
    Gbk,
    /// Traditional Chinese, Big5, in double-byte mode.
    Big5,
    /// UTF-8 (`FS ( C` function 48).
    Utf8,
}

impl std::str::FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "latin" | "wpc1252" | "cp1252" => Ok(Encoding::Latin),
            "gb18030" => Ok(Encoding::Gb18030),
            "gbk" => Ok(Encoding::Gbk),
            "big5" => Ok(Encoding::Big5),
            "utf8" | "utf-8" => Ok(Encoding::Utf8),
            _ => Err(format!(
                "unknown printer encoding {s:?} (latin, gb18030, gbk, big5, utf-8)"
            )),
        }
    }
}

impl Encoding {
    fn codec(self) -> Option<&'static encoding_rs::Encoding> {
        match self {
            Encoding::Latin => Some(encoding_rs::WINDOWS_1252),
            Encoding::Gb18030 => Some(encoding_rs::GB18030),
            Encoding::Gbk => Some(encoding_rs::GBK),
            Encoding::Big5 => Some(encoding_rs::BIG5),
            Encoding::Utf8 => None,
        }
    }

    /// The text as the printer's bytes, or `None` when a character cannot be represented.
    pub fn encode(self, text: &str) -> Option<Vec<u8>> {
        let Some(codec) = self.codec() else {
            return Some(text.as_bytes().to_vec());
        };
        // encoding_rs writes an HTML character reference for what it cannot map: refuse
        // instead, so the line goes out as an image.
        let (bytes, _, unmappable) = codec.encode(text);
        (!unmappable).then(|| bytes.into_owned())
    }

    /// The printer's bytes as text (the decoder).
    pub fn decode(self, bytes: &[u8]) -> String {
        match self.codec() {
            Some(c) => c.decode_without_bom_handling(bytes).0.into_owned(),
            None => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    fn setup(self) -> &'static [u8] {
        match self {
            // ESC t 16: WPC1252; FS .: leave double-byte mode.
            Encoding::Latin => &[0x1B, 0x74, 0x10, 0x1C, 0x2E],
            // FS &: double-byte (Chinese) mode.
            Encoding::Gb18030 | Encoding::Gbk | Encoding::Big5 => &[0x1C, 0x26],
            // FS ( C 02 00 30 02: character encoding UTF-8; FS .: no double-byte mode.
            Encoding::Utf8 => &[0x1C, 0x28, 0x43, 0x02, 0x00, 0x30, 0x02, 0x1C, 0x2E],
        }
    }
}

/// Text alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Align {
    /// Left.
    #[default]
    Left,
    /// Centred.
    Center,
    /// Right.
    Right,
}

/// How a line of text looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Style {
    /// Alignment.
    pub align: Align,
    /// Emphasised.
    pub bold: bool,
    /// Double width and height.
    pub double: bool,
}

/// A 1-bit image: rows of `width` dots, packed 8 per byte, most significant bit first;
/// 1 is black.
#[derive(Clone, PartialEq, Eq)]
pub struct Raster {
    /// Dots across (a multiple of 8 is not required; rows are padded).
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `height * ceil(width / 8)` bytes.
    pub bits: Vec<u8>,
}

impl fmt::Debug for Raster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Raster({}x{})", self.width, self.height)
    }
}

impl Raster {
    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.width.div_ceil(8) as usize
    }

    /// Whether the dot at (x, y) is black.
    pub fn get(&self, x: u32, y: u32) -> bool {
        if x >= self.width || y >= self.height {
            return false;
        }
        let i = y as usize * self.row_bytes() + (x / 8) as usize;
        self.bits.get(i).is_some_and(|b| b & (0x80 >> (x % 8)) != 0)
    }
}

/// One part of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A line of text (wrapped at the paper's width, never inside a character).
    Text(String, Style),
    /// A QR code of this text.
    Qr(String),
    /// An image.
    Raster(Raster),
    /// Blank lines.
    Feed(u8),
    /// Feed to the cutter and cut (partial cut).
    Cut,
}

/// A receipt to print.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    /// Top to bottom.
    pub blocks: Vec<Block>,
}

/// How the printer is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscPosConfig {
    /// Paper width.
    pub paper: Paper,
    /// Text encoding.
    pub encoding: Encoding,
    /// QR codes with the printer's own `GS ( k` (else as raster images).
    pub native_qr: bool,
}

/// Renders a line the printer's encoding cannot carry as an image `width` dots wide (the
/// terminal renders it with the UI's fonts).
pub trait LineRenderer {
    /// The image of `text` in `style`, or `None` if it cannot be drawn.
    fn render(&mut self, text: &str, style: Style, width: u32) -> Option<Raster>;
}

/// No renderer: unrepresentable characters become `?` (tests and tools only).
pub struct NoRenderer;

impl LineRenderer for NoRenderer {
    fn render(&mut self, _text: &str, _style: Style, _width: u32) -> Option<Raster> {
        None
    }
}

/// Columns a character takes in font A: East Asian wide characters two, combining marks
/// none.
pub fn char_columns(c: char) -> usize {
    match c as u32 {
        0x0300..=0x036F | 0x0E31 | 0x0E34..=0x0E3A | 0x0E47..=0x0E4E => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6 => 2,
        _ => 1,
    }
}

/// Columns a text takes.
pub fn columns(s: &str) -> usize {
    s.chars().map(char_columns).sum()
}

/// Splits `text` into lines of at most `width` columns: at spaces where it can, between
/// wide characters anywhere, inside a long word only as a last resort, and never inside a
/// character or before a combining mark.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(2);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut cols = 0;
    // Where the line could be broken: byte index in `line` after a space or a wide char.
    let mut last_break: Option<usize> = None;
    for c in text.chars() {
        let w = char_columns(c);
        if c == ' ' && cols + w > width {
            // A space at the end of a full line: the line ends there.
            lines.push(std::mem::take(&mut line).trim_end().to_string());
            cols = 0;
            last_break = None;
            continue;
        }
        if cols + w > width && w > 0 {
            match last_break.filter(|b| *b > 0 && *b < line.len()) {
                Some(b) => {
                    let rest = line.split_off(b);
                    lines.push(line.trim_end().to_string());
                    line = rest.trim_start().to_string();
                }
                None => lines.push(std::mem::take(&mut line).trim_end().to_string()),
            }
            cols = columns(&line);
            last_break = None;
        }
        if c == ' ' && line.is_empty() && !lines.is_empty() {
            continue;
        }
        line.push(c);
        cols += w;
        if c == ' ' || w == 2 {
            last_break = Some(line.len());
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line.trim_end().to_string());
    }
    lines
}

/// `GS v 0`: a raster image.
fn raster_bytes(r: &Raster, out: &mut Vec<u8>) {
    let xb = r.row_bytes() as u16;
    let h = r.height as u16;
    out.extend_from_slice(&[0x1D, 0x76, 0x30, 0x00]);
    out.extend_from_slice(&xb.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(&r.bits);
}

/// A QR code as a raster image, `scale` dots per module, with a quiet zone of 4 modules.
pub fn qr_raster(data: &str, scale: u32) -> Option<Raster> {
    let code =
        qrcode::QrCode::with_error_correction_level(data.as_bytes(), qrcode::EcLevel::M).ok()?;
    let n = code.width() as u32;
    let colors = code.to_colors();
    let side = (n + 8) * scale;
    let mut r = Raster {
        width: side,
        height: side,
        bits: vec![0; side.div_ceil(8) as usize * side as usize],
    };
    let rb = r.row_bytes();
    for y in 0..side {
        for x in 0..side {
            let (mx, my) = (x / scale, y / scale);
            if mx < 4 || my < 4 || mx >= n + 4 || my >= n + 4 {
                continue;
            }
            if colors[((my - 4) * n + (mx - 4)) as usize] == qrcode::Color::Dark {
                r.bits[y as usize * rb + (x / 8) as usize] |= 0x80 >> (x % 8);
            }
        }
    }
    Some(r)
}

/// Encodes `doc` for a printer configured as `cfg`. Lines the encoding cannot carry go to
/// `renderer`; if it cannot draw them either, their unrepresentable characters print as `?`.
pub fn encode(doc: &Document, cfg: &EscPosConfig, renderer: &mut dyn LineRenderer) -> Vec<u8> {
    let mut out = vec![0x1B, 0x40];
    out.extend_from_slice(cfg.encoding.setup());
    let mut style = Style::default();
    let set_style = |out: &mut Vec<u8>, s: Style, current: &mut Style, first: bool| {
        if first || s.align != current.align {
            out.extend_from_slice(&[0x1B, 0x61, s.align as u8]);
        }
        if first || s.bold != current.bold {
            out.extend_from_slice(&[0x1B, 0x45, u8::from(s.bold)]);
        }
        if first || s.double != current.double {
            out.extend_from_slice(&[0x1D, 0x21, if s.double { 0x11 } else { 0x00 }]);
        }
        *current = s;
    };
    set_style(&mut out, style, &mut style, true);
    for block in &doc.blocks {
        match block {
            Block::Text(text, s) => {
                let cols = if s.double {
                    cfg.paper.columns() / 2
                } else {
                    cfg.paper.columns()
                };
                for line in wrap(text, cols) {
                    match cfg.encoding.encode(&line) {
                        Some(bytes) => {
                            set_style(&mut out, *s, &mut style, false);
                            out.extend_from_slice(&bytes);
                            out.push(0x0A);
                        }
                        None => match renderer.render(&line, *s, cfg.paper.dots()) {
                            Some(img) => {
                                // Images are placed by the alignment too: left, as drawn.
                                set_style(
                                    &mut out,
                                    Style {
                                        align: Align::Left,
                                        ..style
                                    },
                                    &mut style,
                                    false,
                                );
                                raster_bytes(&img, &mut out);
                            }
                            None => {
                                let safe: String = line
                                    .chars()
                                    .map(|c| {
                                        if cfg.encoding.encode(&c.to_string()).is_some() {
                                            c
                                        } else {
                                            '?'
                                        }
                                    })
                                    .collect();
                                set_style(&mut out, *s, &mut style, false);
                                out.extend_from_slice(
                                    &cfg.encoding.encode(&safe).unwrap_or_default(),
                                );
                                out.push(0x0A);
                            }
                        },
                    }
                }
            }
            Block::Qr(data) => {
                set_style(
                    &mut out,
                    Style {
                        align: Align::Center,
                        ..Style::default()
                    },
                    &mut style,
                    false,
                );
                if cfg.native_qr {
                    let d = data.as_bytes();
                    let len = (d.len() + 3) as u16;
                    // Model 2, module size 6, error correction M, store, print.
                    out.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00]);
                    out.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x43, 0x06]);
                    out.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x45, 0x31]);
                    out.extend_from_slice(&[0x1D, 0x28, 0x6B]);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(&[0x31, 0x50, 0x30]);
                    out.extend_from_slice(d);
                    out.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30]);
                    out.push(0x0A);
                } else if let Some(img) = qr_raster(data, 6) {
                    raster_bytes(&img, &mut out);
                }
            }
            Block::Raster(img) => raster_bytes(img, &mut out),
            Block::Feed(n) => out.extend_from_slice(&[0x1B, 0x64, *n]),
            // GS V 66 n: feed to the cutting position plus n, partial cut.
            Block::Cut => out.extend_from_slice(&[0x1D, 0x56, 0x42, 0x00]),
        }
    }
    out
}

/// What a decoded receipt shows, top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Printed {
    /// A line of text in its style.
    Line(String, Style),
    /// An image.
    Raster(Raster),
    /// A QR code (printed by the printer from this data).
    Qr(String),
    /// Blank lines.
    Feed(u8),
    /// The paper was cut.
    Cut,
}

/// Bytes the decoder could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ESC/POS: {what} at byte {offset}")]
pub struct DecodeError {
    /// Where.
    pub offset: usize,
    /// What.
    pub what: String,
}

/// Reads ESC/POS bytes back into what the paper shows: the virtual printer's view, and the
/// golden tests' check. Text is decoded with `encoding` while the printer is in the mode the
/// bytes selected.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<Vec<Printed>, DecodeError> {
    let mut out = Vec::new();
    let mut style = Style::default();
    let mut text: Vec<u8> = Vec::new();
    let mut double_byte = false;
    let mut utf8 = false;
    let mut qr_store: Option<String> = None;
    let mut i = 0;
    let err = |offset: usize, what: &str| DecodeError {
        offset,
        what: what.to_string(),
    };
    let need = |i: usize, n: usize| -> Result<&[u8], DecodeError> {
        bytes
            .get(i..i + n)
            .ok_or_else(|| err(i, "truncated command"))
    };
    let current = |double_byte: bool, utf8: bool| {
        if utf8 {
            Encoding::Utf8
        } else if double_byte {
            encoding
        } else {
            Encoding::Latin
        }
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            0x0A => {
                let t = current(double_byte, utf8).decode(&text);
                out.push(Printed::Line(t, style));
                text.clear();
                i += 1;
            }
            0x1B => {
                let c = need(i + 1, 1)?[0];
                match c {
                    0x40 => {
                        style = Style::default();
                        double_byte = false;
                        utf8 = false;
                        i += 2;
                    }
                    0x61 => {
                        style.align = match need(i + 2, 1)?[0] {
                            0 | 48 => Align::Left,
                            1 | 49 => Align::Center,
                            2 | 50 => Align::Right,
                            _ => return Err(err(i, "bad alignment")),
                        };
                        i += 3;
                    }
                    0x45 => {
                        style.bold = need(i + 2, 1)?[0] & 1 != 0;
                        i += 3;
                    }
                    0x74 => i += 3,
                    0x64 => {
                        out.push(Printed::Feed(need(i + 2, 1)?[0]));
                        i += 3;
                    }
                    _ => return Err(err(i, &format!("unknown command ESC {c:02X}"))),
                }
            }
            0x1C => {
                let c = need(i + 1, 1)?[0];
                match c {
                    0x26 => {
                        double_byte = true;
                        i += 2;
                    }
                    0x2E => {
                        double_byte = false;
                        i += 2;
                    }
                    0x28 => {
                        let h = need(i + 2, 3)?;
                        let len = usize::from(u16::from_le_bytes([h[1], h[2]]));
                        let p = need(i + 5, len)?;
                        if h[0] == 0x43 && p.first() == Some(&0x30) {
                            utf8 = p.get(1) == Some(&0x02);
                        }
                        i += 5 + len;
                    }
                    _ => return Err(err(i, &format!("unknown command FS {c:02X}"))),
                }
            }
            0x1D => {
                let c = need(i + 1, 1)?[0];
                match c {
                    0x21 => {
                        style.double = need(i + 2, 1)?[0] & 0x11 != 0;
                        i += 3;
                    }
                    0x56 => {
                        let m = need(i + 2, 1)?[0];
                        i += if m >= 65 { 4 } else { 3 };
                        out.push(Printed::Cut);
                    }
                    0x76 => {
                        let h = need(i + 2, 6)?;
                        let xb = usize::from(u16::from_le_bytes([h[2], h[3]]));
                        let y = usize::from(u16::from_le_bytes([h[4], h[5]]));
                        let bits = need(i + 8, xb * y)?.to_vec();
                        out.push(Printed::Raster(Raster {
                            width: (xb * 8) as u32,
                            height: y as u32,
                            bits,
                        }));
                        i += 8 + xb * y;
                    }
                    0x28 => {
                        let h = need(i + 2, 3)?;
                        if h[0] != 0x6B {
                            return Err(err(i, "unknown GS ( function"));
                        }
                        let len = usize::from(u16::from_le_bytes([h[1], h[2]]));
                        let p = need(i + 5, len)?;
                        match (p.first(), p.get(1)) {
                            (Some(0x31), Some(0x50)) => {
                                qr_store = Some(String::from_utf8_lossy(&p[3..]).into_owned());
                            }
                            (Some(0x31), Some(0x51)) => {
                                let data = qr_store
                                    .take()
                                    .ok_or_else(|| err(i, "QR print without data"))?;
                                out.push(Printed::Qr(data));
                            }
                            _ => {}
                        }
                        i += 5 + len;
                    }
                    _ => return Err(err(i, &format!("unknown command GS {c:02X}"))),
                }
            }
            0x10 => i += 3,
            _ => {
                text.push(b);
                i += 1;
            }
        }
    }
    if !text.is_empty() {
        out.push(Printed::Line(
            current(double_byte, utf8).decode(&text),
            style,
        ));
    }
    Ok(out)
}

/// The printer's answer to the status queries (`DLE EOT n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// DLE EOT 1 bit 3: the printer is offline.
    pub offline: bool,
    /// DLE EOT 2 bit 2: the cover is open.
    pub cover_open: bool,
    /// DLE EOT 4 bits 5-6: no paper.
    pub paper_out: bool,
    /// DLE EOT 4 bits 2-3: the roll is nearly used up.
    pub paper_near_end: bool,
}

/// `DLE EOT 1` (printer), `2` (offline cause), `4` (paper roll sensor).
pub const STATUS_QUERY: [u8; 9] = [0x10, 0x04, 0x01, 0x10, 0x04, 0x02, 0x10, 0x04, 0x04];

impl Status {
    /// Reads the three answer bytes of [`STATUS_QUERY`].
    pub fn from_bytes(b: [u8; 3]) -> Status {
        Status {
            offline: b[0] & 0x08 != 0,
            cover_open: b[1] & 0x04 != 0,
            paper_out: b[2] & 0x60 != 0,
            paper_near_end: b[2] & 0x0C != 0,
        }
    }

    /// The three answer bytes a printer in this state sends (fixed bits 1 and 4 set, as
    /// the ESC/POS reference specifies).
    pub fn to_bytes(self) -> [u8; 3] {
        [
            0x12 | if self.offline { 0x08 } else { 0 },
            0x12 | if self.cover_open { 0x04 } else { 0 } | if self.paper_out { 0x20 } else { 0 },
            0x12 | if self.paper_out { 0x60 } else { 0 }
                | if self.paper_near_end { 0x0C } else { 0 },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(paper: Paper, encoding: Encoding) -> EscPosConfig {
        EscPosConfig {
            paper,
            encoding,
            native_qr: true,
        }
    }

    #[test]
    fn a_latin_line_byte_for_byte() {
        let doc = Document {
            blocks: vec![
                Block::Text(
                    "Café".into(),
                    Style {
                        align: Align::Center,
                        bold: true,
                        double: false,
                    },
                ),
                Block::Cut,
            ],
        };
        let b = encode(&doc, &cfg(Paper::Mm58, Encoding::Latin), &mut NoRenderer);
        assert_eq!(
            b,
            [
                0x1B, 0x40, // ESC @
                0x1B, 0x74, 0x10, 0x1C, 0x2E, // WPC1252, no double-byte mode
                0x1B, 0x61, 0x00, 0x1B, 0x45, 0x00, 0x1D, 0x21, 0x00, // defaults
                0x1B, 0x61, 0x01, 0x1B, 0x45, 0x01, // centre, bold
                b'C', b'a', b'f', 0xE9, 0x0A, // "Café" in 1252
                0x1D, 0x56, 0x42, 0x00, // cut
            ]
        );
    }

    #[test]
    fn chinese_in_each_encoding() {
        let doc = Document {
            blocks: vec![Block::Text("交易成功".into(), Style::default())],
        };
        for (enc, text) in [
            (
                Encoding::Gb18030,
                vec![0xBD, 0xBB, 0xD2, 0xD7, 0xB3, 0xC9, 0xB9, 0xA6],
            ),
            (
                Encoding::Gbk,
                vec![0xBD, 0xBB, 0xD2, 0xD7, 0xB3, 0xC9, 0xB9, 0xA6],
            ),
            (Encoding::Utf8, "交易成功".as_bytes().to_vec()),
        ] {
            let b = encode(&doc, &cfg(Paper::Mm58, enc), &mut NoRenderer);
            assert!(
                b.windows(text.len()).any(|w| w == text.as_slice()),
                "{enc:?}: {b:02X?}"
            );
            let d = decode(&b, enc).unwrap();
            assert_eq!(d, vec![Printed::Line("交易成功".into(), Style::default())]);
        }
        // Big5 carries traditional characters: 交易成功 is the same in both scripts.
        let b = encode(&doc, &cfg(Paper::Mm58, Encoding::Big5), &mut NoRenderer);
        assert_eq!(
            decode(&b, Encoding::Big5).unwrap()[0],
            Printed::Line("交易成功".into(), Style::default())
        );
    }

    struct Boxes(u32);
    impl LineRenderer for Boxes {
        fn render(&mut self, _text: &str, _style: Style, width: u32) -> Option<Raster> {
            self.0 += 1;
            Some(Raster {
                width,
                height: 24,
                bits: vec![0xAA; width.div_ceil(8) as usize * 24],
            })
        }
    }

    #[test]
    fn what_the_encoding_cannot_carry_goes_out_as_an_image() {
        let doc = Document {
            blocks: vec![
                Block::Text("ขอบคุณ".into(), Style::default()),
                Block::Text("감사합니다".into(), Style::default()),
            ],
        };
        let mut r = Boxes(0);
        let b = encode(&doc, &cfg(Paper::Mm58, Encoding::Gb18030), &mut r);
        // GB18030 covers all of Unicode: nothing to draw.
        assert_eq!(r.0, 0);
        assert_eq!(decode(&b, Encoding::Gb18030).unwrap().len(), 2);
        let b = encode(&doc, &cfg(Paper::Mm58, Encoding::Big5), &mut r);
        // Big5 has neither Thai nor Hangul: two images, no question marks.
        assert_eq!(r.0, 2);
        let d = decode(&b, Encoding::Big5).unwrap();
        assert!(matches!(&d[0], Printed::Raster(img) if img.width == 384 && img.height == 24));
        assert!(!b.contains(&b'?'));
        // Without a renderer the line still prints, with ? for what cannot be carried.
        let b = encode(&doc, &cfg(Paper::Mm58, Encoding::Latin), &mut NoRenderer);
        assert_eq!(
            decode(&b, Encoding::Latin).unwrap()[0],
            Printed::Line("??????".into(), Style::default())
        );
    }

    #[test]
    fn wrapping_respects_words_and_wide_characters() {
        assert_eq!(
            wrap("THANK YOU FOR SHOPPING WITH US TODAY", 16),
            vec!["THANK YOU FOR", "SHOPPING WITH US", "TODAY"]
        );
        // Eight wide characters in ten columns: five, then three; never half a character.
        assert_eq!(wrap("中文收据打印测试", 10), vec!["中文收据打", "印测试"]);
        // A word longer than the line is cut, as a last resort.
        assert_eq!(wrap("ABCDEFGHIJ", 4), vec!["ABCD", "EFGH", "IJ"]);
        // A Thai combining mark stays with its letter.
        let w = wrap("กี่กี่กี่", 2);
        assert!(w.iter().all(|l| columns(l) <= 2), "{w:?}");
        assert_eq!(w.concat(), "กี่กี่กี่");
        // On the paper: a 40-column line on 58 mm wraps; double size halves the width.
        let doc = Document {
            blocks: vec![Block::Text(
                "X".repeat(40),
                Style {
                    double: true,
                    ..Style::default()
                },
            )],
        };
        let b = encode(&doc, &cfg(Paper::Mm58, Encoding::Latin), &mut NoRenderer);
        let lines = decode(&b, Encoding::Latin).unwrap();
        assert_eq!(lines.len(), 3);
        let b = encode(&doc, &cfg(Paper::Mm80, Encoding::Latin), &mut NoRenderer);
        assert_eq!(decode(&b, Encoding::Latin).unwrap().len(), 2);
    }

    #[test]
    fn qr_native_and_raster() {
        let doc = Document {
            blocks: vec![Block::Qr("https://r.example/abc".into())],
        };
        let b = encode(&doc, &cfg(Paper::Mm80, Encoding::Latin), &mut NoRenderer);
        // GS ( k store: pL pH = data + 3.
        let store = [0x1D, 0x28, 0x6B, 0x18, 0x00, 0x31, 0x50, 0x30];
        assert!(b.windows(store.len()).any(|w| w == store));
        assert_eq!(
            decode(&b, Encoding::Latin).unwrap(),
            vec![
                Printed::Qr("https://r.example/abc".into()),
                Printed::Line(
                    String::new(),
                    Style {
                        align: Align::Center,
                        ..Style::default()
                    }
                )
            ]
        );
        let mut c = cfg(Paper::Mm80, Encoding::Latin);
        c.native_qr = false;
        let b = encode(&doc, &c, &mut NoRenderer);
        match &decode(&b, Encoding::Latin).unwrap()[0] {
            // Version 2 (25 modules) + quiet zone, 6 dots per module.
            Printed::Raster(r) => assert_eq!(r.height, (25 + 8) * 6),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn status_bytes_and_broken_input() {
        let s = Status {
            paper_out: true,
            ..Status::default()
        };
        assert_eq!(Status::from_bytes(s.to_bytes()), s);
        assert_eq!(Status::from_bytes([0x12, 0x12, 0x12]), Status::default());
        assert!(decode(&[0x1D, 0x76, 0x30, 0x00, 0x02], Encoding::Latin).is_err());
        assert!(decode(&[0x1B, 0x99], Encoding::Latin).is_err());
        // Random bytes: an error or lines, never a panic.
        let mut x = 7u32;
        for _ in 0..500 {
            let v: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 8) as u8
                })
                .collect();
            let _ = decode(&v, Encoding::Gb18030);
        }
    }
}
