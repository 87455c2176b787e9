//! Barcode scanners that read the customer's payment code (a QR code on a phone) for
//! consumer-presented QR payments.
//!
//! A scanner in serial mode (RS-232, or USB CDC-ACM as `/dev/ttyACM0`) sends each code as one
//! line of text: the code, then CR, LF or CR LF; some frame it with STX (0x02) and ETX (0x03).
//! [`LineDecoder`] is the sans-IO part: bytes in, codes and typed errors out. A scanner on a
//! noisy line (wrong speed, a loose cable) sends bytes that are not a code: those are
//! [`ScannerErrorKind::Noise`], never passed on, and never echoed in errors (a code is a
//! payment token).
//!
//! A scanner in keyboard mode (USB HID, most scanners' factory setting) types the code as
//! key presses and Enter: [`HidScanner`] grabs its input device (`/dev/input/by-id/...-kbd`,
//! so the keys reach nothing else) and [`KeyDecoder`] turns Linux key codes with Shift into
//! characters (US layout, the scanners' default).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use zeroize::Zeroizing;

/// The longest code accepted, in characters (EMVCo codes are at most 512).
pub const MAX_CODE_CHARS: usize = 512;

/// Why reading a code failed: each a reason code for logs, JSON and the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScannerErrorKind {
    /// No scanner at that path, or it could not be opened.
    NoScanner,
    /// The operating system refused access to the device.
    Permission,
    /// No code arrived in time.
    Timeout,
    /// Bytes arrived that are not a code (control characters, invalid UTF-8).
    Noise,
    /// A line longer than any payment code.
    TooLong,
    /// The scanner went away (unplugged).
    Closed,
}

impl ScannerErrorKind {
    /// Stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            ScannerErrorKind::NoScanner => "no_scanner",
            ScannerErrorKind::Permission => "permission",
            ScannerErrorKind::Timeout => "scanner_timeout",
            ScannerErrorKind::Noise => "scanner_noise",
            ScannerErrorKind::TooLong => "scanner_too_long",
            ScannerErrorKind::Closed => "scanner_closed",
        }
    }
}

/// A scanner failure: the reason and a detail that never contains the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scanner: {} ({detail})", kind.code())]
pub struct ScannerError {
    /// The reason.
    pub kind: ScannerErrorKind,
    /// For people.
    pub detail: String,
}

impl ScannerError {
    fn new(kind: ScannerErrorKind, detail: impl Into<String>) -> ScannerError {
        ScannerError {
            kind,
            detail: detail.into(),
        }
    }
}

/// Splits a scanner's byte stream into codes.
#[derive(Default)]
pub struct LineDecoder {
    line: Zeroizing<Vec<u8>>,
    /// Skipping the rest of a line that was too long.
    overflow: bool,
}

impl LineDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> LineDecoder {
        LineDecoder::default()
    }

    /// Forgets a partial line (a code scanned before the terminal asked for one).
    pub fn clear(&mut self) {
        self.line.clear();
        self.overflow = false;
    }

    /// Feeds bytes; returns the first complete line's verdict and how many bytes were used
    /// (feed the rest again), or `None` when more bytes are needed.
    pub fn push(
        &mut self,
        bytes: &[u8],
    ) -> (Option<Result<Zeroizing<String>, ScannerError>>, usize) {
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'\r' | b'\n' | 0x03 => {
                    if self.overflow {
                        self.overflow = false;
                        self.line.clear();
                        return (
                            Some(Err(ScannerError::new(
                                ScannerErrorKind::TooLong,
                                format!("a line longer than {MAX_CODE_CHARS} characters"),
                            ))),
                            i + 1,
                        );
                    }
                    if self.line.is_empty() {
                        continue; // the LF of CR LF, or ETX after the terminator
                    }
                    let line = std::mem::take(&mut *self.line);
                    let line = Zeroizing::new(line);
                    return (Some(Self::verdict(&line)), i + 1);
                }
                0x02 if self.line.is_empty() => {} // STX framing
                _ if self.overflow => {}
                _ => {
                    self.line.push(b);
                    if self.line.len() > MAX_CODE_CHARS * 4 {
                        self.overflow = true;
                        self.line.clear();
                    }
                }
            }
        }
        (None, bytes.len())
    }

    fn verdict(line: &[u8]) -> Result<Zeroizing<String>, ScannerError> {
        let noise = |why: &str| {
            Err(ScannerError::new(
                ScannerErrorKind::Noise,
                format!("{} bytes that are not a code ({why})", line.len()),
            ))
        };
        let Ok(text) = std::str::from_utf8(line) else {
            return noise("not UTF-8");
        };
        if text.chars().any(char::is_control) {
            return noise("control characters");
        }
        let text = text.trim();
        if text.is_empty() {
            return noise("blank");
        }
        if text.chars().count() > MAX_CODE_CHARS {
            return Err(ScannerError::new(
                ScannerErrorKind::TooLong,
                format!("a line longer than {MAX_CODE_CHARS} characters"),
            ));
        }
        Ok(Zeroizing::new(text.to_string()))
    }
}

/// Turns a keyboard-mode scanner's key events into codes: Linux key codes (input-event-codes.h)
/// in the US layout with Shift, Enter ending the line. A key with no character on a scanner
/// (F-keys, arrows, Ctrl) makes the line noise.
#[derive(Default)]
pub struct KeyDecoder {
    line: Zeroizing<String>,
    shift: bool,
    noise: bool,
}

impl KeyDecoder {
    /// A decoder with nothing typed.
    pub fn new() -> KeyDecoder {
        KeyDecoder::default()
    }

    /// Forgets a partial line.
    pub fn clear(&mut self) {
        self.line.clear();
        self.noise = false;
    }

    /// One key event (`value` 1 pressed, 0 released, 2 auto-repeat). Returns a verdict when
    /// Enter ends a line.
    pub fn key(
        &mut self,
        code: u16,
        value: i32,
    ) -> Option<Result<Zeroizing<String>, ScannerError>> {
        const LEFTSHIFT: u16 = 42;
        const RIGHTSHIFT: u16 = 54;
        const ENTER: u16 = 28;
        const KPENTER: u16 = 96;
        if code == LEFTSHIFT || code == RIGHTSHIFT {
            self.shift = value != 0;
            return None;
        }
        if value != 1 {
            return None;
        }
        if code == ENTER || code == KPENTER {
            let noise = std::mem::take(&mut self.noise);
            let line = Zeroizing::new(std::mem::take(&mut *self.line));
            if line.is_empty() && !noise {
                return None;
            }
            if noise {
                return Some(Err(ScannerError::new(
                    ScannerErrorKind::Noise,
                    format!(
                        "{} keys, some without a character",
                        line.chars().count() + 1
                    ),
                )));
            }
            return Some(LineDecoder::verdict(line.as_bytes()));
        }
        match key_char(code, self.shift) {
            Some(c) if self.line.len() < MAX_CODE_CHARS * 4 => self.line.push(c),
            Some(_) => {}
            None => self.noise = true,
        }
        None
    }
}

/// The character of a key in the US layout.
fn key_char(code: u16, shift: bool) -> Option<char> {
    const DIGITS: &[u8; 10] = b"1234567890";
    const SHIFTED: &[u8; 10] = b"!@#$%^&*()";
    let pick = |plain: char, shifted: char| Some(if shift { shifted } else { plain });
    let letter = |c: u8| {
        Some(if shift {
            c.to_ascii_uppercase() as char
        } else {
            c as char
        })
    };
    match code {
        2..=11 => {
            let i = usize::from(code - 2);
            Some(if shift { SHIFTED[i] } else { DIGITS[i] } as char)
        }
        12 => pick('-', '_'),
        13 => pick('=', '+'),
        16..=25 => letter(b"qwertyuiop"[usize::from(code - 16)]),
        26 => pick('[', '{'),
        27 => pick(']', '}'),
        30..=38 => letter(b"asdfghjkl"[usize::from(code - 30)]),
        39 => pick(';', ':'),
        40 => pick('\'', '"'),
        41 => pick('`', '~'),
        43 => pick('\\', '|'),
        44..=50 => letter(b"zxcvbnm"[usize::from(code - 44)]),
        51 => pick(',', '<'),
        52 => pick('.', '>'),
        53 => pick('/', '?'),
        55 => Some('*'),
        57 => Some(' '),
        // The keypad: 7 8 9 - 4 5 6 + 1 2 3 0 .
        71..=83 => Some(b"789-456+1230."[usize::from(code - 71)] as char),
        98 => Some('/'),
        _ => None,
    }
}

/// A scanner in keyboard mode on a Linux input device, grabbed while open.
pub struct HidScanner {
    events: evdev::EventStream,
    decoder: KeyDecoder,
    label: String,
}

impl std::fmt::Debug for HidScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HidScanner")
            .field("label", &self.label)
            .finish()
    }
}

impl HidScanner {
    /// Opens and grabs the input device at `path` (needs a Tokio runtime).
    pub fn open(path: &Path) -> Result<Self, ScannerError> {
        let open_err = |e: std::io::Error| {
            let kind = if e.kind() == std::io::ErrorKind::PermissionDenied {
                ScannerErrorKind::Permission
            } else {
                ScannerErrorKind::NoScanner
            };
            ScannerError::new(kind, format!("{}: {e}", path.display()))
        };
        if !path.exists() {
            return Err(ScannerError::new(
                ScannerErrorKind::NoScanner,
                format!("{} does not exist", path.display()),
            ));
        }
        let mut dev = evdev::Device::open(path).map_err(open_err)?;
        dev.grab().map_err(open_err)?;
        let events = dev.into_event_stream().map_err(open_err)?;
        Ok(HidScanner {
            events,
            decoder: KeyDecoder::new(),
            label: format!("hid:{}", path.display()),
        })
    }

    /// Where it is (`hid:/dev/input/event3`).
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl CodeScanner for HidScanner {
    async fn read_code(&mut self, timeout: Duration) -> Result<Zeroizing<String>, ScannerError> {
        // Keys typed before the terminal asked belong to no payment.
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(2), self.events.next_event()).await
        {}
        self.decoder.clear();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ev = match tokio::time::timeout_at(deadline, self.events.next_event()).await {
                Err(_) => {
                    return Err(ScannerError::new(
                        ScannerErrorKind::Timeout,
                        format!("no code within {} ms", timeout.as_millis()),
                    ));
                }
                Ok(Err(e)) => {
                    return Err(ScannerError::new(ScannerErrorKind::Closed, e.to_string()));
                }
                Ok(Ok(ev)) => ev,
            };
            if ev.event_type() != evdev::EventType::KEY {
                continue;
            }
            if let Some(v) = self.decoder.key(ev.code(), ev.value()) {
                return v;
            }
        }
    }
}

/// A serial or keyboard-mode scanner, by its path: under `/dev/input/` it is an input device.
#[derive(Debug)]
pub enum AnyScanner {
    /// A serial (or USB CDC-ACM) scanner.
    Serial(SerialScanner<tokio_serial::SerialStream>),
    /// A keyboard-mode (USB HID) scanner.
    Hid(Box<HidScanner>),
}

impl AnyScanner {
    /// Opens the scanner at `path` (`baud` for serial ones).
    pub fn open(path: &Path, baud: u32) -> Result<AnyScanner, ScannerError> {
        if path.starts_with("/dev/input") {
            HidScanner::open(path).map(|h| AnyScanner::Hid(Box::new(h)))
        } else {
            SerialScanner::open(path, baud).map(AnyScanner::Serial)
        }
    }

    /// Where it is.
    pub fn label(&self) -> &str {
        match self {
            AnyScanner::Serial(s) => s.label(),
            AnyScanner::Hid(h) => h.label(),
        }
    }
}

impl CodeScanner for AnyScanner {
    async fn read_code(&mut self, timeout: Duration) -> Result<Zeroizing<String>, ScannerError> {
        match self {
            AnyScanner::Serial(s) => s.read_code(timeout).await,
            AnyScanner::Hid(h) => h.read_code(timeout).await,
        }
    }
}

/// Something that reads the customer's code.
pub trait CodeScanner: Send {
    /// Waits up to `timeout` for the next code. Codes scanned before the call are dropped.
    fn read_code(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Zeroizing<String>, ScannerError>> + Send;
}

/// A scanner sending lines on a serial port (or any byte stream).
pub struct SerialScanner<S> {
    port: S,
    decoder: LineDecoder,
    label: String,
}

impl<S> std::fmt::Debug for SerialScanner<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialScanner")
            .field("label", &self.label)
            .finish()
    }
}

impl<S: AsyncRead + Unpin + Send> SerialScanner<S> {
    /// A scanner on `port`.
    pub fn new(port: S, label: impl Into<String>) -> Self {
        SerialScanner {
            port,
            decoder: LineDecoder::new(),
            label: label.into(),
        }
    }

    /// Where it is (`serial:/dev/ttyACM0@9600`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Drops whatever is already waiting in the port.
    async fn drain(&mut self) {
        let mut buf = [0u8; 256];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(2), self.port.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
        }
        self.decoder.clear();
    }
}

impl SerialScanner<tokio_serial::SerialStream> {
    /// Opens a serial scanner.
    pub fn open(path: &Path, baud: u32) -> Result<Self, ScannerError> {
        use tokio_serial::SerialPortBuilderExt;
        if !path.exists() {
            return Err(ScannerError::new(
                ScannerErrorKind::NoScanner,
                format!("{} does not exist", path.display()),
            ));
        }
        let port = tokio_serial::new(path.to_string_lossy(), baud)
            .open_native_async()
            .map_err(|e| {
                let kind = if e.to_string().contains("ermission") {
                    ScannerErrorKind::Permission
                } else {
                    ScannerErrorKind::NoScanner
                };
                ScannerError::new(kind, format!("{}: {e}", path.display()))
            })?;
        Ok(SerialScanner::new(
            port,
            format!("serial:{}@{baud}", path.display()),
        ))
    }
}

impl<S: AsyncRead + Unpin + Send> CodeScanner for SerialScanner<S> {
    async fn read_code(&mut self, timeout: Duration) -> Result<Zeroizing<String>, ScannerError> {
        self.drain().await;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = Zeroizing::new([0u8; 256]);
        loop {
            let n = match tokio::time::timeout_at(deadline, self.port.read(&mut buf[..])).await {
                Err(_) => {
                    return Err(ScannerError::new(
                        ScannerErrorKind::Timeout,
                        format!("no code within {} ms", timeout.as_millis()),
                    ));
                }
                Ok(Ok(0)) => {
                    return Err(ScannerError::new(ScannerErrorKind::Closed, "end of stream"));
                }
                Ok(Ok(n)) => n,
                // A pseudo-terminal whose other side is not open yet reads EIO.
                Ok(Err(e)) if e.raw_os_error() == Some(5) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Ok(Err(e)) => {
                    return Err(ScannerError::new(ScannerErrorKind::Closed, e.to_string()));
                }
            };
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let (verdict, used) = self.decoder.push(rest);
                rest = &rest[used..];
                if let Some(v) = verdict {
                    // The rest of this read belongs to a later scan: dropped with it.
                    self.decoder.clear();
                    return v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(d: &mut LineDecoder, bytes: &[u8]) -> Vec<Result<String, ScannerErrorKind>> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (v, used) = d.push(rest);
            rest = &rest[used..];
            if let Some(v) = v {
                out.push(v.map(|s| s.to_string()).map_err(|e| e.kind));
            }
        }
        out
    }

    #[test]
    fn lines_with_any_terminator_and_stx_etx_framing() {
        let mut d = LineDecoder::new();
        assert_eq!(
            feed(
                &mut d,
                b"281234567890123456\r\n6212345678901234567\n\x02134567890123456789\x03"
            ),
            vec![
                Ok("281234567890123456".into()),
                Ok("6212345678901234567".into()),
                Ok("134567890123456789".into()),
            ]
        );
        // Byte by byte, the same.
        let mut d = LineDecoder::new();
        let mut got = Vec::new();
        for b in b"hQVDUFYwMQ==\r" {
            got.extend(feed(&mut d, &[*b]));
        }
        assert_eq!(got, vec![Ok("hQVDUFYwMQ==".into())]);
    }

    #[test]
    fn noise_and_overlong_lines_are_errors_that_never_echo() {
        let mut d = LineDecoder::new();
        let out = feed(&mut d, b"\x00\x13\xff\xfegarbage\r");
        assert_eq!(out, vec![Err(ScannerErrorKind::Noise)]);
        let (v, _) = LineDecoder::new().push(b"12\x0734\r");
        let e = v.unwrap().unwrap_err();
        assert_eq!(e.kind, ScannerErrorKind::Noise);
        assert!(!e.to_string().contains("1234"), "{e}");
        // Too long: one error, then the next line is fine.
        let mut long = vec![b'9'; 3000];
        long.extend_from_slice(b"\r281234567890123456\r");
        assert_eq!(
            feed(&mut d, &long),
            vec![
                Err(ScannerErrorKind::TooLong),
                Ok("281234567890123456".into())
            ]
        );
        let mut just_over = vec![b'7'; MAX_CODE_CHARS + 1];
        just_over.push(b'\n');
        assert_eq!(
            feed(&mut d, &just_over),
            vec![Err(ScannerErrorKind::TooLong)]
        );
        // Blank lines between codes are skipped, spaces alone are noise.
        assert_eq!(feed(&mut d, b"\r\n\r\n"), vec![]);
        assert_eq!(feed(&mut d, b"   \r"), vec![Err(ScannerErrorKind::Noise)]);
    }

    /// Key events as a keyboard-mode scanner types `text` (US layout) and Enter.
    fn typed(text: &str) -> Vec<(u16, i32)> {
        let mut ev = Vec::new();
        for c in text.chars() {
            let (code, shift) = (1..=120u16)
                .find_map(|k| {
                    if key_char(k, false) == Some(c) {
                        Some((k, false))
                    } else if key_char(k, true) == Some(c) {
                        Some((k, true))
                    } else {
                        None
                    }
                })
                .unwrap();
            if shift {
                ev.push((42, 1));
            }
            ev.extend([(code, 1), (code, 0)]);
            if shift {
                ev.push((42, 0));
            }
        }
        ev.extend([(28, 1), (28, 0)]);
        ev
    }

    fn keys(d: &mut KeyDecoder, events: &[(u16, i32)]) -> Vec<Result<String, ScannerErrorKind>> {
        events
            .iter()
            .filter_map(|(c, v)| d.key(*c, *v))
            .map(|r| r.map(|s| s.to_string()).map_err(|e| e.kind))
            .collect()
    }

    #[test]
    fn keyboard_mode_codes_with_shift() {
        let mut d = KeyDecoder::new();
        // Exactly the events a scanner sends for "6212" and Enter.
        let events = [
            (7, 1),
            (7, 0),
            (3, 1),
            (3, 0),
            (2, 1),
            (2, 0),
            (3, 1),
            (3, 0),
            (28, 1),
            (28, 0),
        ];
        assert_eq!(keys(&mut d, &events), vec![Ok("6212".into())]);
        // Base64 needs Shift for capitals, + and =.
        let cpm = "hQVDUFYwMWEUTwigAAADMwEBAVoIYhI0VniQEj8=";
        assert_eq!(keys(&mut d, &typed(cpm)), vec![Ok(cpm.into())]);
        // An EMVCo payload with spaces, '.', '*'.
        let p = "00020101021229300012D156000000000510A93FO3230Q5914BEST TRANSPORT0603***540523.72";
        assert_eq!(keys(&mut d, &typed(p)), vec![Ok(p.into())]);
        // Auto-repeat and releases type nothing.
        assert_eq!(
            keys(&mut d, &[(2, 1), (2, 2), (2, 0), (28, 1)]),
            vec![Ok("1".into())]
        );
        // A key without a character (F1 = 59) spoils the line; the next is fine.
        assert_eq!(
            keys(&mut d, &[(2, 1), (59, 1), (28, 1), (3, 1), (28, 1)]),
            vec![Err(ScannerErrorKind::Noise), Ok("2".into())]
        );
        // Enter alone is nothing.
        assert_eq!(keys(&mut d, &[(28, 1), (96, 1)]), vec![]);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x2545F491u32;
        let mut d = LineDecoder::new();
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let _ = feed(&mut d, &bytes);
        }
    }
}
