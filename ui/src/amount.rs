//! Amount entry on a keypad, as a cash register does it: digits shift in from the right.

/// The amount being keyed, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountEntry {
    minor: u64,
    exponent: u8,
    max_minor: u64,
}

impl AmountEntry {
    /// An empty entry for a currency with `exponent` decimals and a maximum amount.
    pub fn new(exponent: u8, max_minor: u64) -> Self {
        AmountEntry {
            minor: 0,
            exponent,
            max_minor,
        }
    }

    /// Applies a key: `"0"`-`"9"`, `"C"` (clear) or `"<"` (backspace). Returns false when the
    /// key was refused (it would exceed the maximum, or is unknown).
    pub fn key(&mut self, key: &str) -> bool {
        match key {
            "C" => {
                self.minor = 0;
                true
            }
            "<" => {
                self.minor /= 10;
                true
            }
            d if d.len() == 1 && d.as_bytes()[0].is_ascii_digit() => {
                let digit = (d.as_bytes()[0] - b'0') as u64;
                match self
                    .minor
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(digit))
                {
                    Some(v) if v <= self.max_minor => {
                        self.minor = v;
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// The amount in minor units.
    pub fn minor(&self) -> u64 {
        self.minor
    }

    /// The amount as text with the decimal point, e.g. `12.34`.
    pub fn text(&self) -> String {
        format_minor(self.minor, self.exponent)
    }
}

/// Formats minor units with `exponent` decimals: `format_minor(1234, 2) == "12.34"`.
pub fn format_minor(minor: u64, exponent: u8) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let div = 10u64.pow(exponent as u32);
    format!(
        "{}.{:0width$}",
        minor / div,
        minor % div,
        width = exponent as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_shift_in_from_the_right() {
        let mut a = AmountEntry::new(2, 99_999);
        for k in ["1", "2", "3", "4"] {
            assert!(a.key(k));
        }
        assert_eq!(a.text(), "12.34");
        assert!(a.key("<"));
        assert_eq!(a.text(), "1.23");
        assert!(a.key("0") && a.key("0"));
        assert_eq!(a.minor(), 12_300);
        assert!(!a.key("9"), "over the maximum");
        assert_eq!(a.minor(), 12_300);
        assert!(a.key("C"));
        assert_eq!(a.text(), "0.00");
        assert!(!a.key("x"));
        assert_eq!(format_minor(5, 0), "5");
        assert_eq!(format_minor(5, 3), "0.005");
    }
}
