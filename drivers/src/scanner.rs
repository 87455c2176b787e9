//! Barcode scanners that read the customer's payment code (a QR code on a phone) for
//! consumer-presented QR payments.
//!
//! A scanner in serial mode (RS-232, or USB CDC-ACM as `/dev/ttyACM0`) sends each code as one
//! line of text: the code, then CR, LF or CR LF; some frame it with STX (0x02) and ETX (0x03).
//! [`LineDecoder`] is the sans-IO part: bytes in, codes and typed errors out. A scanner on a
//! noisy line (wrong speed, a loose cable) sends bytes that are not a code: those are
//! [`ScannerErrorKind::Noise`], never passed on, and never echoed in errors (a code is a
//! payment token).

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
