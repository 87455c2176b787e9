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

/// Masks card numbers in free text, as receipts show a PAN (PCI DSS 3.4): the first six and
/// last four digits stay, the rest become `*`. For text that may hold card data nobody
/// decoded: crash reports, the raw hex of data that did not parse.
///
/// - Every run of 12 or more digits (a PAN alone, in track 2, in the hex dump of a record
///   it sits in: a PAN is all digits, so it lies inside such a run).
/// - Groups of 4 to 6 digits joined by single spaces or dashes, at least three of them and
///   12 digits in all (`4761 7390 0101 0119`, `3742-454554-00126`).
/// - Six or more two-digit groups joined by `, ` (a byte list printed as `{:02X?}`:
///   `[47, 61, 73, 90, 01, 01, 01, 19]`).
///
/// Shorter runs (amounts, dates, times, STANs) stay. Other spellings (digits spelt out one
/// per line, decimal byte values) are not recognised.
pub fn mask_digit_runs(text: &str) -> String {
    // Alternating tokens: digit groups and what lies between them.
    let mut tokens: Vec<(bool, String)> = Vec::new();
    for c in text.chars() {
        let d = c.is_ascii_digit();
        match tokens.last_mut() {
            Some((is_digits, t)) if *is_digits == d => t.push(c),
            _ => tokens.push((d, c.to_string())),
        }
    }
    // Writes `group`, whose first digit is digit `from` of a number of `total` digits.
    let write = |group: &str, from: usize, total: usize, out: &mut String| {
        for (k, c) in group.chars().enumerate() {
            let p = from + k;
            out.push(if p >= 6 && p + 4 < total { '*' } else { c });
        }
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < tokens.len() {
        let (is_digits, t) = &tokens[i];
        if !is_digits {
            out.push_str(t);
            i += 1;
            continue;
        }
        // The chain of groups joined by one kind of separator, starting here.
        let sep = tokens
            .get(i + 1)
            .map(|(_, s)| s.as_str())
            .filter(|s| matches!(*s, " " | "-" | ", "));
        let mut last = i;
        if let Some(sep) = sep {
            while tokens.get(last + 1).is_some_and(|(d, s)| !d && s == sep)
                && tokens.get(last + 2).is_some_and(|(d, _)| *d)
            {
                last += 2;
            }
        }
        let groups: Vec<&str> = (i..=last)
            .step_by(2)
            .map(|k| tokens[k].1.as_str())
            .collect();
        let total: usize = groups.iter().map(|g| g.len()).sum();
        let card = groups.len() >= 3
            && total >= 12
            && matches!(sep, Some(" " | "-"))
            && groups.iter().all(|g| (4..=6).contains(&g.len()));
        let bytes = groups.len() >= 6 && sep == Some(", ") && groups.iter().all(|g| g.len() == 2);
        if card || bytes {
            let mut from = 0;
            for (d, t) in &tokens[i..=last] {
                if *d {
                    write(t, from, total, &mut out);
                    from += t.len();
                } else {
                    out.push_str(t);
                }
            }
            i = last + 1;
        } else {
            if t.len() >= 12 {
                write(t, 0, t.len(), &mut out);
            } else {
                out.push_str(t);
            }
            i += 1;
        }
    }
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
    fn card_numbers_in_free_text_are_masked() {
        let m = mask_digit_runs;
        assert_eq!(m("pan 4761739001010119 ok"), "pan 476173******0119 ok");
        assert_eq!(m("4761 7390 0101 0119"), "4761 73** **** 0119");
        assert_eq!(m("3742-454554-00126"), "3742-45****-*0126");
        assert_eq!(
            m("[47, 61, 73, 90, 01, 01, 01, 19]"),
            "[47, 61, 73, **, **, **, 01, 19]"
        );
        // Dates, times, amounts and STANs stay, even side by side.
        for keep in [
            "12.34 000017 2026-11-30 10:00:00",
            "[1, 2, 3]",
            "2026-11-30 1234 5678",
            "日本 12",
        ] {
            assert_eq!(m(keep), keep);
        }
    }

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
