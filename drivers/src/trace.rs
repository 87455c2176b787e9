//! APDU traces: the text format of docs/TRACES.md, a reader that replays a trace, and a wrapper
//! that records what any reader exchanged.
//!
//! ```text
//! # kassa trace v1
//! # card: visa
//! # 9F37=DEADBEEF
//! > 00A404000E325041592E5359532E444446303100
//! < 6F1E840E325041592E5359532E4444463031A50CBF0C0961074F07A00000000310109000
//! ```
//! Header lines (`#`) carry `KEY=VALUE` pairs (terminal data overrides such as `9F37=...`) and
//! `key: value` metadata; this crate keeps them as text. `>` lines are command APDUs, `<` lines
//! the responses, alternating.

use std::fmt::Write as _;
use std::time::Duration;

use crate::reader::{CardInfo, CardReader, ReaderError, ReaderErrorKind};

/// One command and its response, with the line number of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Line of the `>` line (1-based).
    pub line: usize,
    /// Command APDU.
    pub command: Vec<u8>,
    /// Response APDU.
    pub response: Vec<u8>,
}

/// A parsed trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// `KEY=VALUE` header lines, in order (e.g. `("9F37", "DEADBEEF")`).
    pub overrides: Vec<(String, String)>,
    /// `key: value` header lines, in order.
    pub metadata: Vec<(String, String)>,
    /// The exchanges.
    pub exchanges: Vec<Exchange>,
}

/// A trace file that does not follow the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace line {line}: {message}")]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

fn parse_hex(s: &str, line: usize) -> Result<Vec<u8>, TraceError> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let err = |message: String| TraceError { line, message };
    if compact.is_empty() {
        return Err(err("empty APDU".into()));
    }
    if !compact.len().is_multiple_of(2) {
        return Err(err(format!("odd number of hex digits ({})", compact.len())));
    }
    (0..compact.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&compact[i..i + 2], 16)
                .map_err(|_| err(format!("invalid hex {:?} at digit {i}", &compact[i..i + 2])))
        })
        .collect()
}

impl Trace {
    /// Parses trace text.
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        let mut t = Trace::default();
        let mut pending: Option<(usize, Vec<u8>)> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() {
                continue;
            }
            if let Some(h) = l.strip_prefix('#') {
                let h = h.trim();
                if let Some((k, v)) = h.split_once('=') {
                    t.overrides
                        .push((k.trim().to_string(), v.trim().to_string()));
                } else if let Some((k, v)) = h.split_once(':') {
                    t.metadata
                        .push((k.trim().to_string(), v.trim().to_string()));
                }
                continue;
            }
            if let Some(c) = l.strip_prefix('>') {
                if let Some((prev, _)) = pending {
                    return Err(TraceError {
                        line,
                        message: format!("command without a response (command on line {prev})"),
                    });
                }
                pending = Some((line, parse_hex(c, line)?));
            } else if let Some(r) = l.strip_prefix('<') {
                let Some((cmd_line, command)) = pending.take() else {
                    return Err(TraceError {
                        line,
                        message: "response without a command".into(),
                    });
                };
                let response = parse_hex(r, line)?;
                if response.len() < 2 {
                    return Err(TraceError {
                        line,
                        message: "response shorter than SW1 SW2".into(),
                    });
                }
                t.exchanges.push(Exchange {
                    line: cmd_line,
                    command,
                    response,
                });
            } else {
                return Err(TraceError {
                    line,
                    message: "expected '#', '>' or '<'".into(),
                });
            }
        }
        if let Some((line, _)) = pending {
            return Err(TraceError {
                line,
                message: "command without a response at the end of the trace".into(),
            });
        }
        Ok(t)
    }

    /// Writes the trace in the text format.
    pub fn to_text(&self) -> String {
        let mut s = String::from("# kassa trace v1\n");
        for (k, v) in &self.metadata {
            let _ = writeln!(s, "# {k}: {v}");
        }
        for (k, v) in &self.overrides {
            let _ = writeln!(s, "# {k}={v}");
        }
        for e in &self.exchanges {
            let _ = writeln!(s, "> {}", hex(&e.command));
            let _ = writeln!(s, "< {}", hex(&e.response));
        }
        s
    }

    /// The value of an override, if present.
    pub fn override_value(&self, key: &str) -> Option<&str> {
        self.overrides
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// A reader that answers from a trace, in order. Each command must match the recorded one in
/// CLA, INS, P1 and P2, and for SELECT (INS A4) also in its data; otherwise the exchange fails
/// with a protocol error naming the trace line.
#[derive(Debug, Clone)]
pub struct ReplayReader {
    trace: Trace,
    next: usize,
    present: bool,
}

impl ReplayReader {
    /// A reader for `trace`.
    pub fn new(trace: Trace) -> Self {
        ReplayReader {
            trace,
            next: 0,
            present: true,
        }
    }

    /// How many recorded exchanges were used.
    pub fn used(&self) -> usize {
        self.next
    }
}

impl CardReader for ReplayReader {
    async fn wait_for_card(&mut self, _timeout: Duration) -> Result<CardInfo, ReaderError> {
        if !self.present {
            return Err(ReaderError::new(
                ReaderErrorKind::Timeout,
                "the replayed card was removed",
            ));
        }
        Ok(CardInfo {
            technology: 'A',
            uid: vec![0x08, 0x00, 0x00, 0x00],
        })
    }

    async fn transceive(
        &mut self,
        capdu: &[u8],
        _timeout: Duration,
    ) -> Result<Vec<u8>, ReaderError> {
        let Some(e) = self.trace.exchanges.get(self.next) else {
            return Err(ReaderError::new(
                ReaderErrorKind::CardLost,
                format!(
                    "the trace has no command {} ({} recorded)",
                    self.next + 1,
                    self.trace.exchanges.len()
                ),
            ));
        };
        let header_matches =
            capdu.len() >= 4 && e.command.len() >= 4 && capdu[..4] == e.command[..4];
        let select_matches = capdu.get(1) != Some(&0xA4) || capdu == e.command.as_slice() || {
            // SELECT: compare Lc and data, ignore Le.
            let data = |c: &[u8]| {
                c.get(4)
                    .map(|&lc| c.get(5..5 + lc as usize).map(<[u8]>::to_vec))
            };
            data(capdu) == data(&e.command)
        };
        if !header_matches || !select_matches {
            return Err(ReaderError::new(
                ReaderErrorKind::Protocol,
                format!(
                    "command {} does not match trace line {} (expected {}, got {})",
                    self.next + 1,
                    e.line,
                    hex(&e.command),
                    hex(capdu)
                ),
            ));
        }
        self.next += 1;
        Ok(e.response.clone())
    }

    async fn wait_for_removal(&mut self, _timeout: Duration) -> Result<(), ReaderError> {
        self.present = false;
        Ok(())
    }

    fn name(&self) -> String {
        "replay".into()
    }
}

/// Wraps a reader and keeps every exchange it passes on.
#[derive(Debug)]
pub struct RecordingReader<R> {
    inner: R,
    exchanges: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<R: CardReader> RecordingReader<R> {
    /// Records what `inner` exchanges.
    pub fn new(inner: R) -> Self {
        RecordingReader {
            inner,
            exchanges: Vec::new(),
        }
    }

    /// The recorded (command, response) pairs.
    pub fn exchanges(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.exchanges
    }

    /// Clears the recording (before a new transaction).
    pub fn clear(&mut self) {
        self.exchanges.clear();
    }
}

impl<R: CardReader> CardReader for RecordingReader<R> {
    async fn wait_for_card(&mut self, timeout: Duration) -> Result<CardInfo, ReaderError> {
        self.inner.wait_for_card(timeout).await
    }

    async fn transceive(
        &mut self,
        capdu: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ReaderError> {
        let r = self.inner.transceive(capdu, timeout).await?;
        self.exchanges.push((capdu.to_vec(), r.clone()));
        Ok(r)
    }

    async fn wait_for_removal(&mut self, timeout: Duration) -> Result<(), ReaderError> {
        self.inner.wait_for_removal(timeout).await
    }

    fn name(&self) -> String {
        format!("{} (recording)", self.inner.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# kassa trace v1\n# card: visa\n# 9F37=DEADBEEF\n\n> 00A404000E325041592E5359532E444446303100\n< 6A82\n> 00 B2 01 0C 00\n< 7000 9000\n";

    #[test]
    fn parses_and_writes_back() {
        let t = Trace::parse(TEXT).unwrap();
        assert_eq!(t.override_value("9f37"), Some("DEADBEEF"));
        assert_eq!(t.metadata, vec![("card".to_string(), "visa".to_string())]);
        assert_eq!(t.exchanges.len(), 2);
        assert_eq!(t.exchanges[1].line, 7);
        assert_eq!(t.exchanges[1].command, vec![0x00, 0xB2, 0x01, 0x0C, 0x00]);
        let back = Trace::parse(&t.to_text()).unwrap();
        assert_eq!(
            (&back.overrides, &back.metadata),
            (&t.overrides, &t.metadata)
        );
        let pairs = |t: &Trace| {
            t.exchanges
                .iter()
                .map(|e| (e.command.clone(), e.response.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&back), pairs(&t));
    }

    #[test]
    fn bad_traces_name_the_line() {
        let e = Trace::parse("> 00A4\n> 00B2\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = Trace::parse("< 9000\n").unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (1, "response without a command")
        );
        let e = Trace::parse("> 00A4040000\n< 9G00\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("9G"));
        let e = Trace::parse("> 00A4040000\n").unwrap_err();
        assert!(e.message.contains("end of the trace"));
        assert_eq!(Trace::parse("hello\n").unwrap_err().line, 1);
    }

    #[tokio::test]
    async fn replays_in_order_and_refuses_a_different_command() {
        let mut r = ReplayReader::new(Trace::parse(TEXT).unwrap());
        let d = Duration::from_millis(10);
        r.wait_for_card(d).await.unwrap();
        // SELECT with a different Le still matches; the response is the recorded one.
        assert_eq!(
            r.transceive(
                &[
                    0x00, 0xA4, 0x04, 0x00, 0x0E, b'2', b'P', b'A', b'Y', b'.', b'S', b'Y', b'S',
                    b'.', b'D', b'D', b'F', b'0', b'1'
                ],
                d
            )
            .await
            .unwrap(),
            vec![0x6A, 0x82]
        );
        let e = r
            .transceive(&[0x00, 0xB2, 0x02, 0x0C, 0x00], d)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ReaderErrorKind::Protocol);
        assert!(e.detail.contains("trace line 7"), "{}", e.detail);
        assert_eq!(
            r.transceive(&[0x00, 0xB2, 0x01, 0x0C, 0x00], d)
                .await
                .unwrap(),
            vec![0x70, 0x00, 0x90, 0x00]
        );
        assert_eq!(
            r.transceive(&[0x00, 0xB2, 0x01, 0x0C, 0x00], d)
                .await
                .unwrap_err()
                .kind,
            ReaderErrorKind::CardLost
        );
    }

    #[tokio::test]
    async fn recording_keeps_exchanges() {
        let inner = ReplayReader::new(Trace::parse(TEXT).unwrap());
        let mut rec = RecordingReader::new(inner);
        let d = Duration::from_millis(10);
        rec.transceive(
            &[
                0x00, 0xA4, 0x04, 0x00, 0x0E, b'2', b'P', b'A', b'Y', b'.', b'S', b'Y', b'S', b'.',
                b'D', b'D', b'F', b'0', b'1', 0x00,
            ],
            d,
        )
        .await
        .unwrap();
        assert_eq!(rec.exchanges().len(), 1);
        assert_eq!(rec.exchanges()[0].1, vec![0x6A, 0x82]);
    }
}
