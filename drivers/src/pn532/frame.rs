//! The PN532 host link frames (NXP UM0701-02 §6.2.1): normal and extended information
//! frames, ACK, NACK and the application-level error frame, as a checked encoder and a
//! streaming decoder that skips garbage and reports bad checksums.
//!
//! ```text
//! normal:    00 00 FF LEN LCS TFI PD0..PDn DCS 00          LEN + LCS = 0, TFI + PD.. + DCS = 0
//! extended:  00 00 FF FF FF LENM LENL LCS TFI PD.. DCS 00  LENM + LENL + LCS = 0
//! ACK:       00 00 FF 00 FF 00
//! NACK:      00 00 FF FF 00 00
//! error:     00 00 FF 01 FF 7F 81 00
//! ```

/// Frame identifier of a frame from the host controller to the PN532.
pub const TFI_HOST: u8 = 0xD4;
/// Frame identifier of a frame from the PN532 to the host controller.
pub const TFI_PN532: u8 = 0xD5;
/// The largest packet data (TFI included) the PN532 firmware accepts (UM0701-02 §6.2.1.2).
pub const MAX_DATA: usize = 265;

/// An ACK frame.
pub const ACK: [u8; 6] = [0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00];
/// A NACK frame: asks the other side to send its last frame again.
pub const NACK: [u8; 6] = [0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00];
/// The application-level error frame (syntax error in the host's frame).
pub const ERROR: [u8; 8] = [0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00];

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Acknowledges the previous information frame.
    Ack,
    /// Asks for the previous frame again.
    Nack,
    /// The PN532 found a syntax error in the host's frame.
    Error,
    /// An information frame: the frame identifier and the packet data after it (PD0 is the
    /// command or response code).
    Info {
        /// `D4` from the host, `D5` from the PN532.
        tfi: u8,
        /// PD0..PDn.
        data: Vec<u8>,
    },
}

/// Why bytes were not a good frame. The decoder has skipped past them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// LEN + LCS (or LENM + LENL + LCS) was not zero.
    #[error("length checksum mismatch")]
    LengthChecksum,
    /// TFI + PD0..PDn + DCS was not zero.
    #[error("data checksum mismatch")]
    DataChecksum,
    /// The length field is longer than the PN532 allows.
    #[error("frame longer than {MAX_DATA} bytes")]
    TooLong,
    /// An information frame with a zero length (no TFI).
    #[error("empty information frame")]
    Empty,
}

/// What one step of the decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A complete frame, and how many input bytes it (and any garbage before it) used.
    Frame(Frame, usize),
    /// A broken frame, and how many bytes to drop to get past it.
    Bad(FrameError, usize),
    /// Not enough bytes yet; `skip` bytes of garbage before a possible start can be dropped.
    Incomplete {
        /// Garbage bytes that can never start a frame.
        skip: usize,
    },
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        .wrapping_neg()
}

/// Encodes an information frame with `tfi` and the packet data: a normal frame up to 254
/// data bytes, an extended frame above.
///
/// # Panics
/// Never: data longer than [`MAX_DATA`] - 1 is refused with [`FrameError::TooLong`].
pub fn encode(tfi: u8, data: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = data.len() + 1;
    if len > MAX_DATA {
        return Err(FrameError::TooLong);
    }
    let mut out = Vec::with_capacity(len + 10);
    out.extend_from_slice(&[0x00, 0x00, 0xFF]);
    if len <= 0xFF {
        out.push(len as u8);
        out.push((len as u8).wrapping_neg());
    } else {
        let (m, l) = ((len >> 8) as u8, len as u8);
        out.extend_from_slice(&[0xFF, 0xFF, m, l, m.wrapping_add(l).wrapping_neg()]);
    }
    out.push(tfi);
    out.extend_from_slice(data);
    let sum = data.iter().fold(tfi, |a, b| a.wrapping_add(*b));
    out.push(sum.wrapping_neg());
    out.push(0x00);
    Ok(out)
}

/// Looks for one frame at the start of `buf` (after any garbage).
///
/// The start code `00 FF` marks a frame; the preamble and postamble bytes are optional on
/// receipt, as the PN532 itself treats them (UM0701-02 §6.2.1.1).
pub fn decode(buf: &[u8]) -> Decoded {
    // Find the start code 00 FF.
    let Some(start) = buf.windows(2).position(|w| w == [0x00, 0xFF]) else {
        // Keep a trailing 00: it may be the first half of a start code.
        let keep = usize::from(buf.last() == Some(&0x00));
        return Decoded::Incomplete {
            skip: buf.len() - keep,
        };
    };
    let body = &buf[start + 2..];
    let postamble = |end: usize| -> usize {
        // Consume the postamble 00 if it is there already.
        let abs = start + 2 + end;
        if buf.get(abs) == Some(&0x00) {
            abs + 1
        } else {
            abs
        }
    };
    if body.len() < 2 {
        return Decoded::Incomplete { skip: start };
    }
    match (body[0], body[1]) {
        (0x00, 0xFF) => return Decoded::Frame(Frame::Ack, postamble(2)),
        (0xFF, 0x00) => return Decoded::Frame(Frame::Nack, postamble(2)),
        _ => {}
    }
    let (len, header) = if body[0] == 0xFF && body[1] == 0xFF {
        if body.len() < 5 {
            return Decoded::Incomplete { skip: start };
        }
        let (m, l, lcs) = (body[2], body[3], body[4]);
        if m.wrapping_add(l).wrapping_add(lcs) != 0 {
            return Decoded::Bad(FrameError::LengthChecksum, start + 2);
        }
        (usize::from(m) << 8 | usize::from(l), 5)
    } else {
        if body[0].wrapping_add(body[1]) != 0 {
            return Decoded::Bad(FrameError::LengthChecksum, start + 2);
        }
        (usize::from(body[0]), 2)
    };
    if len == 0 {
        return Decoded::Bad(FrameError::Empty, start + 2 + header);
    }
    if len > MAX_DATA {
        return Decoded::Bad(FrameError::TooLong, start + 2 + header);
    }
    if body.len() < header + len + 1 {
        return Decoded::Incomplete { skip: start };
    }
    let payload = &body[header..header + len];
    let dcs = body[header + len];
    let end = header + len + 1;
    if checksum(payload) != dcs {
        return Decoded::Bad(FrameError::DataChecksum, postamble(end));
    }
    if len == 1 && payload[0] == 0x7F {
        return Decoded::Frame(Frame::Error, postamble(end));
    }
    Decoded::Frame(
        Frame::Info {
            tfi: payload[0],
            data: payload[1..].to_vec(),
        },
        postamble(end),
    )
}

/// A receive buffer that turns a byte stream into frames.
#[derive(Debug, Default, Clone)]
pub struct FrameBuffer {
    buf: Vec<u8>,
}

impl FrameBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next frame or broken frame, if one is complete; garbage is dropped.
    pub fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        match decode(&self.buf) {
            Decoded::Frame(f, used) => {
                self.buf.drain(..used);
                Some(Ok(f))
            }
            Decoded::Bad(e, used) => {
                self.buf.drain(..used);
                Some(Err(e))
            }
            Decoded::Incomplete { skip } => {
                self.buf.drain(..skip);
                None
            }
        }
    }

    /// Bytes waiting for the rest of their frame.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets everything received.
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_firmware_version_command_bytes() {
        // UM0701-02 §7.2.2: GetFirmwareVersion is D4 02.
        assert_eq!(
            encode(TFI_HOST, &[0x02]).unwrap(),
            [0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00]
        );
    }

    #[test]
    fn sam_configuration_command_bytes() {
        // SAMConfiguration normal mode, timeout 1 s (0x14 x 50 ms), IRQ used.
        assert_eq!(
            encode(TFI_HOST, &[0x14, 0x01, 0x14, 0x01]).unwrap(),
            [
                0x00, 0x00, 0xFF, 0x05, 0xFB, 0xD4, 0x14, 0x01, 0x14, 0x01, 0x02, 0x00
            ]
        );
    }

    #[test]
    fn decodes_firmware_version_response() {
        // The answer of a PN532 v1.6: IC 32, Ver 01, Rev 06, Support 07.
        let bytes = [
            0x00, 0x00, 0xFF, 0x06, 0xFA, 0xD5, 0x03, 0x32, 0x01, 0x06, 0x07, 0xE8, 0x00,
        ];
        assert_eq!(
            decode(&bytes),
            Decoded::Frame(
                Frame::Info {
                    tfi: TFI_PN532,
                    data: vec![0x03, 0x32, 0x01, 0x06, 0x07]
                },
                bytes.len()
            )
        );
    }

    #[test]
    fn ack_nack_and_error_frames() {
        assert_eq!(decode(&ACK), Decoded::Frame(Frame::Ack, 6));
        assert_eq!(decode(&NACK), Decoded::Frame(Frame::Nack, 6));
        assert_eq!(decode(&ERROR), Decoded::Frame(Frame::Error, 8));
    }

    #[test]
    fn extended_frame_round_trip() {
        // 263 data bytes: LEN = 264 = 01 08, LCS = -(01 + 08) = F7.
        let data: Vec<u8> = (0..263u16).map(|i| i as u8).collect();
        let f = encode(TFI_PN532, &data).unwrap();
        assert_eq!(&f[..8], &[0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x01, 0x08, 0xF7]);
        assert_eq!(f.len(), 8 + 1 + 263 + 2);
        assert_eq!(
            decode(&f),
            Decoded::Frame(
                Frame::Info {
                    tfi: TFI_PN532,
                    data
                },
                f.len()
            )
        );
        // A normal frame stops at 254 data bytes plus the TFI.
        let f = encode(TFI_HOST, &[0xAA; 254]).unwrap();
        assert_eq!(&f[..5], &[0x00, 0x00, 0xFF, 0xFF, 0x01]);
        assert_eq!(encode(TFI_HOST, &[0; MAX_DATA]), Err(FrameError::TooLong));
    }

    #[test]
    fn bad_checksums_are_reported_and_skipped() {
        let mut f = encode(TFI_PN532, &[0x41, 0x00, 0x90, 0x00]).unwrap();
        let n = f.len();
        f[n - 2] ^= 0x01;
        assert_eq!(decode(&f), Decoded::Bad(FrameError::DataChecksum, n));
        let bad_len = [0x00, 0x00, 0xFF, 0x03, 0xFC, 0xD5, 0x41, 0x00, 0xEA, 0x00];
        assert!(matches!(
            decode(&bad_len),
            Decoded::Bad(FrameError::LengthChecksum, 3)
        ));
        let empty = [0x00, 0x00, 0xFF, 0x00, 0x00, 0x00];
        assert!(matches!(decode(&empty), Decoded::Bad(FrameError::Empty, _)));
    }

    #[test]
    fn garbage_before_a_frame_is_skipped_and_halves_wait() {
        let mut b = FrameBuffer::new();
        b.push(&[0x55, 0x13, 0x37, 0x00]);
        assert_eq!(b.next_frame(), None);
        assert_eq!(b.pending(), &[0x00]);
        b.push(&[0x00, 0xFF, 0x00]);
        assert_eq!(b.next_frame(), None);
        b.push(&[0xFF, 0x00]);
        assert_eq!(b.next_frame(), Some(Ok(Frame::Ack)));
        // A response right behind the ACK, delivered byte by byte.
        let resp = encode(TFI_PN532, &[0x15]).unwrap();
        for (i, byte) in resp.iter().enumerate() {
            b.push(&[*byte]);
            let got = b.next_frame();
            if i < resp.len() - 2 {
                assert_eq!(got, None, "byte {i}");
            } else if i == resp.len() - 2 {
                assert_eq!(
                    got,
                    Some(Ok(Frame::Info {
                        tfi: TFI_PN532,
                        data: vec![0x15]
                    }))
                );
            }
        }
        assert_eq!(b.next_frame(), None);
        // The postamble may stay behind: a lone 00 could start the next frame.
        assert!(b.pending().iter().all(|&x| x == 0x00));
    }

    #[test]
    fn truncated_frame_waits_and_random_bytes_never_panic() {
        let f = encode(TFI_PN532, &[0x4B, 0x01, 0x01]).unwrap();
        for cut in 0..f.len() - 1 {
            assert!(matches!(decode(&f[..cut]), Decoded::Incomplete { .. }));
        }
        // A cheap deterministic fuzz: every outcome must consume or wait, never panic.
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut b = FrameBuffer::new();
            let mut bytes = Vec::new();
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                bytes.push(if x.is_multiple_of(3) {
                    0x00
                } else {
                    (x >> 8) as u8
                });
            }
            b.push(&bytes);
            let mut steps = 0;
            while b.next_frame().is_some() {
                steps += 1;
                assert!(steps < 64);
            }
        }
    }
}
