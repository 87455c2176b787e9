//! A reader with virtual cards: the emulator's reader and the tests' reader.
//!
//! A [`SimReaderHandle`] taps cards onto the reader (from the emulator window or a test); the
//! [`SimReader`] implements [`CardReader`] and passes each command APDU to the card on the
//! field.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::reader::{CardInfo, CardReader, ReaderError, ReaderErrorKind};

/// A card application that answers command APDUs: the virtual cards of `kassa-sim`, or
/// anything else that speaks ISO/IEC 7816-4.
pub trait VirtualCard: Send {
    /// The anti-collision UID the card shows the reader.
    fn uid(&self) -> Vec<u8>;
    /// Answers one command APDU with a response APDU (data and SW1 SW2). An empty answer
    /// from a card that has left the field means the response never arrived.
    fn process(&mut self, capdu: &[u8]) -> Vec<u8>;
    /// False once the card has left the field (a torn transaction): the reader delivers the
    /// last response (unless it was empty), then reports the card lost.
    fn present(&self) -> bool {
        true
    }
    /// The cardholder brings the card back to the field: a power-on reset.
    fn reinsert(&mut self) {}
}

enum Event {
    Tap(Box<dyn VirtualCard>),
    Remove,
    PresentAgain,
}

/// Puts virtual cards on a [`SimReader`]'s field. Cloneable; usable from any thread.
#[derive(Clone)]
pub struct SimReaderHandle {
    tx: mpsc::UnboundedSender<Event>,
}

impl SimReaderHandle {
    /// Places `card` on the reader. Returns false if the reader is gone.
    pub fn tap(&self, card: Box<dyn VirtualCard>) -> bool {
        self.tx.send(Event::Tap(card)).is_ok()
    }

    /// Takes the card off the field.
    pub fn remove(&self) -> bool {
        self.tx.send(Event::Remove).is_ok()
    }

    /// Presents again the card that last left the field during a transaction (the cardholder
    /// answering "present card again"). Nothing happens if no card left that way.
    pub fn present_again(&self) -> bool {
        self.tx.send(Event::PresentAgain).is_ok()
    }
}

/// How long a simulated exchange takes: ISO/IEC 14443 transmission at `bitrate` plus the
/// card's processing time. The default is instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RfTiming {
    /// Bits per second on the air (106 000, 212 000, 424 000 or 848 000); 0 for instant.
    pub bitrate: u32,
    /// Card processing time for a plain command (SELECT, READ RECORD, GET DATA).
    pub processing: Duration,
    /// Card processing time for a command that computes a cryptogram or a signature (GET
    /// PROCESSING OPTIONS, GENERATE AC, INTERNAL AUTHENTICATE).
    pub crypto: Duration,
}

impl RfTiming {
    /// A typical card at 106 kbit/s: 4 ms per plain command, 40 ms per cryptographic one.
    pub fn typical() -> Self {
        RfTiming {
            bitrate: 106_000,
            processing: Duration::from_millis(4),
            crypto: Duration::from_millis(40),
        }
    }

    /// The time one exchange takes: each byte is 9 bits on the air (ISO/IEC 14443-3 type A
    /// parity), plus 5 bytes of ISO 14443-4 framing (PCB, CID, CRC) each way.
    pub fn exchange(&self, capdu: &[u8], rapdu_len: usize) -> Duration {
        if self.bitrate == 0 {
            return Duration::ZERO;
        }
        let bits = (capdu.len() + rapdu_len + 10) as u64 * 9;
        let air = Duration::from_micros(bits * 1_000_000 / self.bitrate as u64);
        let card = match capdu.get(1) {
            Some(0xA8 | 0xAE | 0x88) => self.crypto,
            _ => self.processing,
        };
        air + card
    }
}

/// A reader whose field holds at most one virtual card.
pub struct SimReader {
    rx: mpsc::UnboundedReceiver<Event>,
    card: Option<Box<dyn VirtualCard>>,
    /// The card that left the field mid-transaction, kept for [`SimReaderHandle::present_again`].
    left: Option<Box<dyn VirtualCard>>,
    name: String,
    timing: RfTiming,
}

impl SimReader {
    /// A reader and the handle that taps cards onto it.
    pub fn new(name: impl Into<String>) -> (SimReader, SimReaderHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            SimReader {
                rx,
                card: None,
                left: None,
                name: name.into(),
                timing: RfTiming::default(),
            },
            SimReaderHandle { tx },
        )
    }

    /// Makes exchanges take as long as `timing` says.
    pub fn with_timing(mut self, timing: RfTiming) -> Self {
        self.timing = timing;
        self
    }

    fn bring_back(&mut self) {
        if self.card.is_none()
            && let Some(mut card) = self.left.take()
        {
            card.reinsert();
            self.card = Some(card);
        }
    }

    /// Applies queued events without waiting.
    fn drain(&mut self) -> Result<(), ReaderError> {
        loop {
            match self.rx.try_recv() {
                Ok(Event::Tap(card)) => {
                    if self.card.is_some() {
                        return Err(ReaderError::new(
                            ReaderErrorKind::Collision,
                            "a second card was tapped",
                        ));
                    }
                    self.card = Some(card);
                }
                Ok(Event::Remove) => self.card = None,
                Ok(Event::PresentAgain) => self.bring_back(),
                Err(mpsc::error::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::error::TryRecvError::Disconnected) => return Ok(()),
            }
        }
    }
}

impl CardReader for SimReader {
    async fn wait_for_card(&mut self, timeout: Duration) -> Result<CardInfo, ReaderError> {
        self.drain()?;
        let deadline = tokio::time::Instant::now() + timeout;
        while self.card.is_none() {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Event::Tap(card))) => self.card = Some(card),
                Ok(Some(Event::Remove)) => {}
                Ok(Some(Event::PresentAgain)) => self.bring_back(),
                Ok(None) => {
                    return Err(ReaderError::new(
                        ReaderErrorKind::NoReader,
                        "simulated reader closed",
                    ));
                }
                Err(_) => {
                    return Err(ReaderError::new(
                        ReaderErrorKind::Timeout,
                        format!("no card within {} ms", timeout.as_millis()),
                    ));
                }
            }
        }
        let uid = self.card.as_ref().map(|c| c.uid()).unwrap_or_default();
        Ok(CardInfo {
            technology: 'A',
            uid,
        })
    }

    async fn transceive(
        &mut self,
        capdu: &[u8],
        _timeout: Duration,
    ) -> Result<Vec<u8>, ReaderError> {
        self.drain()?;
        let Some(card) = self.card.as_mut() else {
            return Err(ReaderError::new(
                ReaderErrorKind::CardLost,
                "card left the field",
            ));
        };
        let response = card.process(capdu);
        if !card.present() {
            self.left = self.card.take();
            if response.is_empty() {
                return Err(ReaderError::new(
                    ReaderErrorKind::CardLost,
                    "card left the field before answering",
                ));
            }
        }
        let delay = self.timing.exchange(capdu, response.len());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(response)
    }

    async fn wait_for_removal(&mut self, _timeout: Duration) -> Result<(), ReaderError> {
        // A virtual tap is brief: the card leaves as soon as the reader is done with it.
        self.drain()?;
        self.card = None;
        Ok(())
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl VirtualCard for Echo {
        fn uid(&self) -> Vec<u8> {
            vec![1, 2, 3, 4]
        }
        fn process(&mut self, capdu: &[u8]) -> Vec<u8> {
            let mut r = capdu.to_vec();
            r.extend_from_slice(&[0x90, 0x00]);
            r
        }
    }

    #[tokio::test]
    async fn tap_exchange_remove() {
        let (mut reader, handle) = SimReader::new("sim");
        assert!(handle.tap(Box::new(Echo)));
        let info = reader
            .wait_for_card(Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(info.uid, vec![1, 2, 3, 4]);
        let r = reader
            .transceive(&[0, 0xA4], Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(r, vec![0, 0xA4, 0x90, 0x00]);
        reader
            .wait_for_removal(Duration::from_millis(10))
            .await
            .unwrap();
        let e = reader
            .transceive(&[0], Duration::from_millis(10))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ReaderErrorKind::CardLost);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_times_out_with_a_reason() {
        let (mut reader, _handle) = SimReader::new("sim");
        let e = reader
            .wait_for_card(Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ReaderErrorKind::Timeout);
        assert_eq!(
            e.to_string(),
            "card reader: timeout (no card within 5000 ms)"
        );
    }

    #[test]
    fn rf_timing_model() {
        let t = RfTiming::typical();
        // A 5-byte READ RECORD and a 100-byte response: 115 bytes * 9 bits at 106 kbit/s
        // = 9.76 ms on the air, plus 4 ms in the card.
        assert_eq!(
            t.exchange(&[0x00, 0xB2, 0x01, 0x0C, 0x00], 100),
            Duration::from_micros(9_764 + 4_000)
        );
        assert_eq!(
            t.exchange(&[0x80, 0xA8, 0, 0, 2, 0x83, 0], 60) - Duration::from_millis(40),
            Duration::from_micros(6_537)
        );
        assert_eq!(RfTiming::default().exchange(&[0; 5], 100), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn timed_exchanges_take_their_time() {
        let (reader, handle) = SimReader::new("sim");
        let mut reader = reader.with_timing(RfTiming::typical());
        handle.tap(Box::new(Echo));
        reader
            .wait_for_card(Duration::from_millis(10))
            .await
            .unwrap();
        let start = tokio::time::Instant::now();
        reader
            .transceive(&[0x00, 0xB2, 0x01, 0x0C, 0x00], Duration::from_secs(1))
            .await
            .unwrap();
        assert!(start.elapsed() >= Duration::from_millis(4));
    }

    #[tokio::test]
    async fn two_cards_collide() {
        let (mut reader, handle) = SimReader::new("sim");
        handle.tap(Box::new(Echo));
        handle.tap(Box::new(Echo));
        let e = reader
            .wait_for_card(Duration::from_millis(10))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ReaderErrorKind::Collision);
    }
}
