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
    /// Answers one command APDU with a response APDU (data and SW1 SW2).
    fn process(&mut self, capdu: &[u8]) -> Vec<u8>;
    /// False once the card has left the field (a torn transaction): the reader delivers the
    /// last response, then reports the card lost.
    fn present(&self) -> bool {
        true
    }
}

enum Event {
    Tap(Box<dyn VirtualCard>),
    Remove,
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
}

/// A reader whose field holds at most one virtual card.
pub struct SimReader {
    rx: mpsc::UnboundedReceiver<Event>,
    card: Option<Box<dyn VirtualCard>>,
    name: String,
}

impl SimReader {
    /// A reader and the handle that taps cards onto it.
    pub fn new(name: impl Into<String>) -> (SimReader, SimReaderHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            SimReader {
                rx,
                card: None,
                name: name.into(),
            },
            SimReaderHandle { tx },
        )
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
            self.card = None;
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
