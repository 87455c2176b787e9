//! Small helpers for EMV data formats (Book 3 §4.3: formats `n`, `cn`, `b`).

use std::fmt;

/// Displays bytes as upper-case hex without separators.
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// Masks every run of 12 or more ASCII digits in `text` to its first six and last four, the
/// middle as `*`, as receipts show a PAN (PCI DSS 3.4). A PAN is all digits, so wherever one
/// appears in text (alone, in track 2, in the hex dump of a record it sits in) it lies inside
/// such a run, and no 12 of its digits survive in a row. Shorter runs (amounts, dates, STANs)
/// stay. For text that may hold card data nobody decoded: crash reports, the raw hex of data
/// that did not parse.
pub fn mask_digit_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 12 {
            out.push_str(&run[..6]);
            out.extend(std::iter::repeat_n('*', run.len() - 10));
            out.push_str(&run[run.len() - 4..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Upper-case hex string of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    Hex(bytes).to_string()
}

/// Decodes hex, ignoring ASCII whitespace. Returns the offset of the first bad character, or
/// the length for an odd number of digits.
pub fn unhex(s: &str) -> Result<Vec<u8>, usize> {
    let digits: Vec<(usize, u8)> = s
        .bytes()
        .enumerate()
        .filter(|(_, c)| !c.is_ascii_whitespace())
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(s.len());
    }
    let nibble = |(i, c): (usize, u8)| -> Result<u8, usize> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(i),
        }
    };
    digits
        .chunks(2)
        .map(|p| Ok((nibble(p[0])? << 4) | nibble(p[1])?))
        .collect()
}

/// Encodes `value` as format `n` (packed BCD, right-justified, left-padded with zeros) in
/// `len` bytes. Returns `None` if the value has more digits than fit.
pub fn bcd_n(value: u64, len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; len];
    let mut v = value;
    for byte in out.iter_mut().rev() {
        let lo = (v % 10) as u8;
        v /= 10;
        let hi = (v % 10) as u8;
        v /= 10;
        *byte = (hi << 4) | lo;
    }
    (v == 0).then_some(out)
}

/// Decodes format `n` packed BCD. Returns `None` on a nibble above 9 or an overflow.
pub fn parse_bcd_n(bytes: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &b in bytes {
        for nib in [b >> 4, b & 0x0F] {
            if nib > 9 {
                return None;
            }
            v = v.checked_mul(10)?.checked_add(nib as u64)?;
        }
    }
    Some(v)
}

/// Decodes format `cn` (compressed numeric: left-justified digits, trailing `F` padding) into
/// ASCII digits. Returns `None` on a bad nibble or a digit after padding.
pub fn parse_cn(bytes: &[u8]) -> Option<String> {
    let mut s = String::with_capacity(bytes.len() * 2);
    let mut padded = false;
    for &b in bytes {
        for nib in [b >> 4, b & 0x0F] {
            match nib {
                0..=9 if !padded => s.push((b'0' + nib) as char),
                0xF => padded = true,
                _ => return None,
            }
        }
    }
    Some(s)
}

/// Encodes ASCII digits as format `cn`, padding the last byte with `F`.
pub fn cn(digits: &str) -> Option<Vec<u8>> {
    let mut nibbles: Vec<u8> = digits
        .bytes()
        .map(|c| c.is_ascii_digit().then(|| c - b'0'))
        .collect::<Option<_>>()?;
    if nibbles.len() % 2 == 1 {
        nibbles.push(0xF);
    }
    Some(nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// A calendar date as EMV carries it (format `n6`, YYMMDD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Full year, 2000-2099.
    pub year: u16,
    /// Month 1-12.
    pub month: u8,
    /// Day 1-31.
    pub day: u8,
}

impl Date {
    /// Encodes as `n6` YYMMDD (tag 9A).
    pub fn to_bcd(self) -> [u8; 3] {
        let b = |v: u8| ((v / 10) << 4) | (v % 10);
        [b((self.year % 100) as u8), b(self.month), b(self.day)]
    }

    /// Decodes `n6` YYMMDD. Years 00-49 are 20xx and 50-99 are 19xx (Book 4 §6.7.3).
    pub fn from_bcd(b: &[u8]) -> Option<Date> {
        if b.len() != 3 {
            return None;
        }
        let yy = parse_bcd_n(&b[0..1])? as u16;
        let month = parse_bcd_n(&b[1..2])? as u8;
        let day = parse_bcd_n(&b[2..3])? as u8;
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        let year = if yy < 50 { 2000 + yy } else { 1900 + yy };
        Some(Date { year, month, day })
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A time of day (format `n6`, HHMMSS, tag 9F21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    /// Hour 0-23.
    pub hour: u8,
    /// Minute 0-59.
    pub minute: u8,
    /// Second 0-59.
    pub second: u8,
}

impl Time {
    /// Encodes as `n6` HHMMSS.
    pub fn to_bcd(self) -> [u8; 3] {
        let b = |v: u8| ((v / 10) << 4) | (v % 10);
        [b(self.hour), b(self.minute), b(self.second)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_formats() {
        assert_eq!(bcd_n(1234, 6).unwrap(), vec![0, 0, 0, 0, 0x12, 0x34]);
        assert_eq!(bcd_n(978, 2).unwrap(), vec![0x09, 0x78]);
        assert_eq!(bcd_n(100, 1), None);
        assert_eq!(parse_bcd_n(&[0x09, 0x78]), Some(978));
        assert_eq!(parse_bcd_n(&[0x0A]), None);
        assert_eq!(cn("4761739001010119").unwrap().len(), 8);
        assert_eq!(cn("123").unwrap(), vec![0x12, 0x3F]);
        assert_eq!(parse_cn(&[0x12, 0x3F, 0xFF]).as_deref(), Some("123"));
        assert_eq!(parse_cn(&[0x1F, 0x23]), None);
        assert_eq!(unhex("9f 02\n06"), Ok(vec![0x9F, 0x02, 0x06]));
        assert_eq!(unhex("9G"), Err(1));
        assert_eq!(unhex("9F0"), Err(3));
    }

    #[test]
    fn dates() {
        let d = Date::from_bcd(&[0x26, 0x11, 0x29]).unwrap();
        assert_eq!(d.to_string(), "2026-11-29");
        assert_eq!(d.to_bcd(), [0x26, 0x11, 0x29]);
        assert_eq!(Date::from_bcd(&[0x26, 0x13, 0x01]), None);
        assert_eq!(Date::from_bcd(&[0x99, 0x12, 0x31]).unwrap().year, 1999);
    }
}
