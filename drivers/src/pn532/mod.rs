//! The NXP PN532 contactless reader (user manual UM0701-02), over any [`Transport`]: the
//! Pi's UART (HSU) through tokio-serial, SPI and I2C through rppal.
//!
//! The driver speaks the host link frames of [`frame`], waits for every ACK, asks for a
//! frame again (NACK) when its checksum is wrong, aborts a command that outlives its
//! timeout (by sending an ACK, UM0701-02 §6.2.1.3), and re-initialises a reader that stopped
//! answering: a reset PN532 forgets its SAM configuration and its activated card, so the
//! APDU that was in flight fails with [`ReaderErrorKind::ReaderReset`] and the next poll
//! finds the reader ready again.

pub mod bus;
pub mod frame;
pub mod uart;

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::reader::{CardInfo, CardReader, ReaderError, ReaderErrorKind};
pub use frame::{Frame, FrameBuffer, FrameError};

/// PN532 command codes (UM0701-02 §7).
pub mod cmd {
    /// Self tests, among them the card presence test (NumTst 06).
    pub const DIAGNOSE: u8 = 0x00;
    /// IC, version, revision, supported protocols.
    pub const GET_FIRMWARE_VERSION: u8 = 0x02;
    /// Normal mode, virtual card, wired card, dual card.
    pub const SAM_CONFIGURATION: u8 = 0x14;
    /// RF field, timings, retries.
    pub const RF_CONFIGURATION: u8 = 0x32;
    /// Exchanges data with an activated target (ISO 14443-4 blocks handled by the PN532).
    pub const IN_DATA_EXCHANGE: u8 = 0x40;
    /// Detects and activates targets.
    pub const IN_LIST_PASSIVE_TARGET: u8 = 0x4A;
    /// Releases targets (DESELECT for ISO 14443-4).
    pub const IN_RELEASE: u8 = 0x52;
}

/// How the host reaches the PN532: one frame out, one frame in, with a deadline.
pub trait Transport: Send {
    /// Wakes the PN532 (HSU: a run of 0x55 and zeros; SPI and I2C: nothing to do) and drops
    /// whatever was waiting in the receive direction.
    fn wake(&mut self) -> impl Future<Output = Result<(), ReaderError>> + Send;
    /// Sends the bytes of one frame.
    fn send(&mut self, bytes: &[u8]) -> impl Future<Output = Result<(), ReaderError>> + Send;
    /// The next frame (or broken frame) from the PN532, or `None` when `timeout` passed
    /// without one.
    fn receive(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<Result<Frame, FrameError>>, ReaderError>> + Send;
    /// Where the reader is, for logs and `kassa readers` (`uart:/dev/ttyS0@115200`...).
    fn describe(&self) -> String;
}

/// Timeouts and retries of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pn532Config {
    /// How long the PN532 has to acknowledge a frame.
    pub ack_timeout: Duration,
    /// How long a command that does not touch a card may take.
    pub command_timeout: Duration,
    /// Pause between two polls for a card, and between two card presence checks.
    pub poll_interval: Duration,
    /// How many times a frame is asked for again (NACK) or resent before giving up.
    pub retries: u32,
    /// Passive activation retries per InListPassiveTarget (RFConfiguration item 05): small,
    /// so that a poll returns and the driver stays responsive.
    pub activation_retries: u8,
    /// Also poll for ISO/IEC 14443 type B cards.
    pub type_b: bool,
}

impl Default for Pn532Config {
    fn default() -> Self {
        Pn532Config {
            ack_timeout: Duration::from_millis(100),
            command_timeout: Duration::from_millis(500),
            poll_interval: Duration::from_millis(30),
            retries: 2,
            activation_retries: 2,
            type_b: true,
        }
    }
}

/// What GetFirmwareVersion said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firmware {
    /// 0x32 for a PN532.
    pub ic: u8,
    /// Firmware version.
    pub version: u8,
    /// Firmware revision.
    pub revision: u8,
    /// Supported protocols (bit 0 type A, bit 1 type B, bit 2 ISO 18092).
    pub support: u8,
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PN5{:02X} v{}.{}", self.ic, self.version, self.revision)
    }
}

/// Counters a driver keeps for `kassa readers` and the benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pn532Stats {
    /// Frames sent (commands, ACKs and NACKs).
    pub frames_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// NACKs sent because a frame arrived broken.
    pub nacks: u64,
    /// Times the reader was re-initialised after it stopped answering.
    pub reinits: u64,
    /// Commands aborted after their timeout.
    pub aborts: u64,
}

/// A PN532 reader.
pub struct Pn532<T> {
    transport: T,
    config: Pn532Config,
    firmware: Option<Firmware>,
    /// The activated target's logical number.
    target: Option<u8>,
    stats: Pn532Stats,
}

fn err(kind: ReaderErrorKind, detail: impl Into<String>) -> ReaderError {
    ReaderError::new(kind, detail)
}

/// The meaning of an InDataExchange / InDiagnose status byte (UM0701-02 §7.1, table 188),
/// as a reader error, or `None` for success.
pub fn status_error(status: u8) -> Option<ReaderError> {
    let code = status & 0x3F;
    let what = match code {
        0x00 => return None,
        0x01 => "card did not answer in time",
        0x02 => "CRC error from the card",
        0x03 => "parity error from the card",
        0x04 => "wrong bit count from the card",
        0x05 => "framing error from the card",
        0x06 => "bit collision",
        0x2A => "a different card answered",
        0x2B => "the activated card disappeared",
        0x07 => "response too long for the PN532's buffer",
        0x0A => "RF buffer overflow",
        0x0D => "RF protocol error",
        0x13 => "data format error",
        0x27 => "command not acceptable in this context",
        0x29 => "target released",
        _ => "reader error",
    };
    let kind = match code {
        0x01..=0x06 | 0x2A | 0x2B => ReaderErrorKind::CardLost,
        _ => ReaderErrorKind::Protocol,
    };
    Some(err(kind, format!("{what} (PN532 status {code:02X})")))
}

/// A card the PN532 activated, parsed from the InListPassiveTarget answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The logical target number (1 or 2).
    pub number: u8,
    /// `'A'` or `'B'`.
    pub technology: char,
    /// NFCID1 (type A) or PUPI (type B).
    pub uid: Vec<u8>,
    /// True when the card announced ISO/IEC 14443-4 (SAK bit 6 for type A; always for B).
    pub iso14443_4: bool,
}

/// Parses the InListPassiveTarget answer after its response code: NbTg, then the targets.
/// Returns the targets it could parse; malformed data is a protocol error.
pub fn parse_targets(data: &[u8], type_b: bool) -> Result<Vec<Target>, ReaderError> {
    let bad = || {
        err(
            ReaderErrorKind::Protocol,
            "malformed InListPassiveTarget answer",
        )
    };
    let (&n, mut rest) = data.split_first().ok_or_else(bad)?;
    let mut out = Vec::new();
    for _ in 0..n {
        if type_b {
            // Tg, ATQB (12 bytes: 50 PUPI[4] AppData[4] ProtInfo[3]), ATTRIB_RES length and bytes.
            if rest.len() < 14 {
                return Err(bad());
            }
            let alen = usize::from(rest[13]);
            if rest.len() < 14 + alen {
                return Err(bad());
            }
            out.push(Target {
                number: rest[0],
                technology: 'B',
                uid: rest[2..6].to_vec(),
                iso14443_4: true,
            });
            rest = &rest[14 + alen..];
        } else {
            // Tg, SENS_RES[2], SEL_RES, NFCIDLength, NFCID1, then ATS (length first) when
            // the card is ISO/IEC 14443-4.
            if rest.len() < 5 {
                return Err(bad());
            }
            let sak = rest[3];
            let idlen = usize::from(rest[4]);
            if rest.len() < 5 + idlen {
                return Err(bad());
            }
            let uid = rest[5..5 + idlen].to_vec();
            let mut used = 5 + idlen;
            let iso = sak & 0x20 != 0;
            if iso {
                let alen = usize::from(*rest.get(used).ok_or_else(bad)?);
                if alen == 0 || rest.len() < used + alen {
                    return Err(bad());
                }
                used += alen;
            }
            out.push(Target {
                number: rest[0],
                technology: 'A',
                uid,
                iso14443_4: iso,
            });
            rest = &rest[used..];
        }
    }
    Ok(out)
}

impl<T: Transport> Pn532<T> {
    /// A driver over `transport`. Nothing is sent until the first use (or [`Pn532::init`]).
    pub fn new(transport: T, config: Pn532Config) -> Self {
        Pn532 {
            transport,
            config,
            firmware: None,
            target: None,
            stats: Pn532Stats::default(),
        }
    }

    /// The firmware found by the last initialisation.
    pub fn firmware(&self) -> Option<Firmware> {
        self.firmware
    }

    /// The driver's counters.
    pub fn stats(&self) -> Pn532Stats {
        self.stats
    }

    /// The transport, for tests and diagnostics.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    async fn send_frame(&mut self, bytes: &[u8]) -> Result<(), ReaderError> {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.transport.send(bytes).await
    }

    /// Sends a command and returns the response data after the response code. Errors keep
    /// their reason: `no_answer` when not even an ACK came, `timeout` when the answer did
    /// not come in `timeout` (the command is then aborted), `bad_checksum`, `protocol`.
    pub async fn command(
        &mut self,
        code: u8,
        params: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ReaderError> {
        let mut data = Vec::with_capacity(params.len() + 1);
        data.push(code);
        data.extend_from_slice(params);
        let out = frame::encode(frame::TFI_HOST, &data)
            .map_err(|e| err(ReaderErrorKind::Protocol, format!("command too long: {e}")))?;
        // Send until acknowledged.
        let mut attempt = 0;
        loop {
            self.send_frame(&out).await?;
            match self.transport.receive(self.config.ack_timeout).await? {
                Some(Ok(Frame::Ack)) => break,
                Some(Ok(Frame::Error)) => {
                    return Err(err(
                        ReaderErrorKind::Protocol,
                        format!("PN532 refused command {code:02X} as malformed"),
                    ));
                }
                None if attempt >= self.config.retries => {
                    return Err(err(
                        ReaderErrorKind::NoAnswer,
                        format!(
                            "no ACK for command {code:02X} within {} ms",
                            self.config.ack_timeout.as_millis()
                        ),
                    ));
                }
                // A NACK, a broken ACK, stray bytes or silence: send the command again.
                _ if attempt >= self.config.retries => {
                    return Err(err(
                        ReaderErrorKind::BadChecksum,
                        format!("command {code:02X} not acknowledged after {attempt} retries"),
                    ));
                }
                _ => attempt += 1,
            }
        }
        // Wait for the response, asking again for broken frames.
        let deadline = Instant::now() + timeout;
        let mut nacks = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.transport.receive(left).await? {
                Some(Ok(Frame::Info { tfi, data })) => {
                    if tfi == frame::TFI_PN532 && data.first() == Some(&code.wrapping_add(1)) {
                        return Ok(data[1..].to_vec());
                    }
                    // An answer to something else (a late one after an abort): ignore it.
                    tracing::debug!(
                        command = code,
                        tfi,
                        answer = data.first().copied(),
                        "PN532: ignored a frame that answers something else"
                    );
                }
                Some(Ok(Frame::Error)) => {
                    return Err(err(
                        ReaderErrorKind::Protocol,
                        format!("PN532 reported an error for command {code:02X}"),
                    ));
                }
                Some(Ok(Frame::Ack | Frame::Nack)) => {}
                Some(Err(e)) => {
                    if nacks >= self.config.retries {
                        return Err(err(
                            ReaderErrorKind::BadChecksum,
                            format!("answer to command {code:02X}: {e} after {nacks} retries"),
                        ));
                    }
                    nacks += 1;
                    self.stats.nacks += 1;
                    self.send_frame(&frame::NACK).await?;
                }
                None => {
                    // UM0701-02 §6.2.1.3: an ACK from the host aborts the command.
                    self.stats.aborts += 1;
                    self.send_frame(&frame::ACK).await?;
                    return Err(err(
                        ReaderErrorKind::Timeout,
                        format!(
                            "no answer to command {code:02X} within {} ms",
                            timeout.as_millis()
                        ),
                    ));
                }
            }
        }
    }

    /// Wakes and configures the reader: GetFirmwareVersion, SAMConfiguration (normal mode),
    /// RFConfiguration (passive activation retries), field off.
    pub async fn init(&mut self) -> Result<Firmware, ReaderError> {
        self.firmware = None;
        self.target = None;
        self.transport.wake().await?;
        let t = self.config.command_timeout;
        let fw = self.command(cmd::GET_FIRMWARE_VERSION, &[], t).await?;
        if fw.len() < 4 {
            return Err(err(ReaderErrorKind::Protocol, "short firmware version"));
        }
        let firmware = Firmware {
            ic: fw[0],
            version: fw[1],
            revision: fw[2],
            support: fw[3],
        };
        // Normal mode, virtual-card timeout 1 s (20 x 50 ms), IRQ pin used.
        self.command(cmd::SAM_CONFIGURATION, &[0x01, 0x14, 0x01], t)
            .await?;
        // Item 05 MaxRetries: MxRtyATR, MxRtyPSL, MxRtyPassiveActivation.
        self.command(
            cmd::RF_CONFIGURATION,
            &[0x05, 0xFF, 0x01, self.config.activation_retries],
            t,
        )
        .await?;
        self.field(false).await?;
        self.firmware = Some(firmware);
        Ok(firmware)
    }

    /// Switches the RF field on or off (RFConfiguration item 01).
    pub async fn field(&mut self, on: bool) -> Result<(), ReaderError> {
        let t = self.config.command_timeout;
        self.command(cmd::RF_CONFIGURATION, &[0x01, u8::from(on)], t)
            .await
            .map(|_| ())
    }

    async fn ensure_init(&mut self) -> Result<(), ReaderError> {
        if self.firmware.is_none() {
            self.init().await?;
        }
        Ok(())
    }

    /// After a command went unanswered: initialise again. A reader that answers now was
    /// reset (its card session is gone); one that does not is reported as not answering.
    async fn recover(&mut self, e: ReaderError) -> ReaderError {
        if !matches!(
            e.kind,
            ReaderErrorKind::NoAnswer | ReaderErrorKind::Timeout | ReaderErrorKind::BadChecksum
        ) {
            return e;
        }
        self.stats.reinits += 1;
        match self.init().await {
            Ok(_) => err(
                ReaderErrorKind::ReaderReset,
                format!("reader re-initialised after: {}", e.detail),
            ),
            Err(again) => {
                self.firmware = None;
                again
            }
        }
    }

    async fn poll_once(&mut self) -> Result<Option<Target>, ReaderError> {
        let t = self.config.command_timeout;
        // BrTy 00: 106 kbps type A; 03: 106 kbps type B with AFI 00 (all families).
        // MaxTg 2, so that two cards in the field are seen as a collision.
        let mut kinds: Vec<(bool, &[u8])> = vec![(false, &[0x02, 0x00])];
        if self.config.type_b {
            kinds.push((true, &[0x02, 0x03, 0x00]));
        }
        for (type_b, params) in kinds {
            let data = self.command(cmd::IN_LIST_PASSIVE_TARGET, params, t).await?;
            let targets = parse_targets(&data, type_b)?;
            match targets.len() {
                0 => continue,
                1 => return Ok(targets.into_iter().next()),
                _ => {
                    let _ = self.command(cmd::IN_RELEASE, &[0x00], t).await;
                    return Err(err(
                        ReaderErrorKind::Collision,
                        "more than one card in the field",
                    ));
                }
            }
        }
        Ok(None)
    }
}

impl<T: Transport> CardReader for Pn532<T> {
    async fn wait_for_card(&mut self, timeout: Duration) -> Result<CardInfo, ReaderError> {
        let deadline = Instant::now() + timeout;
        let mut last: Option<ReaderError> = None;
        loop {
            if Instant::now() >= deadline {
                return Err(last.unwrap_or_else(|| {
                    err(
                        ReaderErrorKind::Timeout,
                        format!("no card within {} ms", timeout.as_millis()),
                    )
                }));
            }
            let step = async {
                self.ensure_init().await?;
                self.field(true).await?;
                self.poll_once().await
            };
            match step.await {
                Ok(Some(t)) if !t.iso14443_4 => {
                    // A MIFARE Classic or Ultralight tag: not a payment card.
                    let _ = self
                        .command(cmd::IN_RELEASE, &[0x00], self.config.command_timeout)
                        .await;
                    return Err(err(
                        ReaderErrorKind::Protocol,
                        "the card does not support ISO/IEC 14443-4 (not a payment card)",
                    ));
                }
                Ok(Some(t)) => {
                    self.target = Some(t.number);
                    return Ok(CardInfo {
                        technology: t.technology,
                        uid: t.uid,
                    });
                }
                Ok(None) => last = None,
                Err(e) if e.kind == ReaderErrorKind::Collision => return Err(e),
                Err(e) if e.kind == ReaderErrorKind::Permission => return Err(e),
                Err(e) => {
                    // Recover and keep polling until the deadline: a reader that was reset
                    // or missed a frame comes back by itself.
                    let e = self.recover(e).await;
                    last = Some(e);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(self.config.poll_interval.min(left)).await;
        }
    }

    async fn transceive(
        &mut self,
        capdu: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ReaderError> {
        let Some(tg) = self.target else {
            return Err(err(ReaderErrorKind::CardLost, "no card activated"));
        };
        // The PN532 takes at most 262 bytes of DataOut per frame; longer commands go in
        // pieces with the MI bit (bit 6) of Tg set on all but the last (UM0701-02 §7.3.8).
        const CHUNK: usize = 262;
        let mut out = Vec::new();
        let pieces: Vec<&[u8]> = if capdu.is_empty() {
            vec![capdu]
        } else {
            capdu.chunks(CHUNK).collect()
        };
        let last = pieces.len() - 1;
        for (i, piece) in pieces.into_iter().enumerate() {
            let mut params = Vec::with_capacity(piece.len() + 1);
            params.push(if i < last { tg | 0x40 } else { tg });
            params.extend_from_slice(piece);
            let data = match self.command(cmd::IN_DATA_EXCHANGE, &params, timeout).await {
                Ok(d) => d,
                Err(e) => {
                    self.target = None;
                    return Err(self.recover(e).await);
                }
            };
            let (&status, rest) = data
                .split_first()
                .ok_or_else(|| err(ReaderErrorKind::Protocol, "empty InDataExchange answer"))?;
            if let Some(e) = status_error(status) {
                if e.kind == ReaderErrorKind::CardLost {
                    self.target = None;
                }
                return Err(e);
            }
            if i == last {
                out.extend_from_slice(rest);
                // The answer continues while the PN532 sets MI in the status byte.
                let mut more = status & 0x40 != 0;
                let mut guard = 0;
                while more {
                    guard += 1;
                    if guard > 16 {
                        return Err(err(ReaderErrorKind::Protocol, "endless chained answer"));
                    }
                    let data = match self.command(cmd::IN_DATA_EXCHANGE, &[tg], timeout).await {
                        Ok(d) => d,
                        Err(e) => {
                            self.target = None;
                            return Err(self.recover(e).await);
                        }
                    };
                    let (&status, rest) = data.split_first().ok_or_else(|| {
                        err(ReaderErrorKind::Protocol, "empty InDataExchange answer")
                    })?;
                    if let Some(e) = status_error(status) {
                        self.target = None;
                        return Err(e);
                    }
                    out.extend_from_slice(rest);
                    more = status & 0x40 != 0;
                }
            }
        }
        Ok(out)
    }

    async fn wait_for_removal(&mut self, timeout: Duration) -> Result<(), ReaderError> {
        let deadline = Instant::now() + timeout;
        let t = self.config.command_timeout;
        if self.target.is_some() {
            loop {
                // Diagnose NumTst 06: ISO/IEC 14443-4 card presence (UM0701-02 §7.2.1).
                let present = match self.command(cmd::DIAGNOSE, &[0x06], t).await {
                    Ok(d) => d.first() == Some(&0x00),
                    Err(e) => {
                        self.target = None;
                        return Err(self.recover(e).await);
                    }
                };
                if !present {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(err(
                        ReaderErrorKind::Timeout,
                        format!("card still in the field after {} ms", timeout.as_millis()),
                    ));
                }
                tokio::time::sleep(self.config.poll_interval).await;
            }
        }
        self.target = None;
        // Release whatever is left and switch the field off until the next transaction.
        let _ = self.command(cmd::IN_RELEASE, &[0x00], t).await;
        self.field(false).await
    }

    fn name(&self) -> String {
        match self.firmware {
            Some(fw) => format!("{fw} on {}", self.transport.describe()),
            None => format!("PN532 on {}", self.transport.describe()),
        }
    }
}
