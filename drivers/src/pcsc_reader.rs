//! USB contactless readers through the PC/SC daemon (pcsc-lite): ACR122U, ACR1252U,
//! Identiv and others. Readers are found by name, cards by the daemon's presence events;
//! a reader that is unplugged is looked for again on the next poll, so it can be plugged
//! back in without restarting Kassa.

use std::ffi::CString;
use std::time::Duration;

use tokio::time::Instant;

use crate::reader::{CardInfo, CardReader, ReaderError, ReaderErrorKind};
use crate::worker::Worker;

/// The device state on the PC/SC thread.
struct State {
    ctx: Option<pcsc::Context>,
    card: Option<pcsc::Card>,
    reader: Option<CString>,
}

fn map_err(e: pcsc::Error, what: &str) -> ReaderError {
    use pcsc::Error as E;
    let kind = match e {
        E::NoService | E::ServiceStopped | E::NoReadersAvailable => ReaderErrorKind::NoReader,
        E::RemovedCard | E::ResetCard | E::UnpoweredCard | E::NoSmartcard => {
            ReaderErrorKind::CardLost
        }
        E::ReaderUnavailable | E::UnknownReader => ReaderErrorKind::ReaderReset,
        E::Timeout => ReaderErrorKind::Timeout,
        E::SharingViolation => ReaderErrorKind::Permission,
        _ => ReaderErrorKind::Protocol,
    };
    let hint = match e {
        E::NoService | E::ServiceStopped => " (is pcscd running? systemctl start pcscd)",
        _ => "",
    };
    ReaderError::new(kind, format!("PC/SC {what}: {e}{hint}"))
}

/// What one polling slice found.
enum Poll {
    Card(CardInfo),
    Nothing,
}

/// The names of the PC/SC readers the daemon knows.
pub fn list_readers() -> Result<Vec<String>, ReaderError> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(|e| map_err(e, "establish"))?;
    match ctx.list_readers_owned() {
        Ok(r) => Ok(r
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(map_err(e, "list readers")),
    }
}

impl State {
    fn ctx(&mut self) -> Result<&pcsc::Context, ReaderError> {
        if self.ctx.as_ref().is_some_and(|c| c.is_valid().is_err()) {
            self.ctx = None;
        }
        if self.ctx.is_none() {
            self.ctx = Some(
                pcsc::Context::establish(pcsc::Scope::User).map_err(|e| map_err(e, "establish"))?,
            );
        }
        self.ctx
            .as_ref()
            .ok_or_else(|| ReaderError::new(ReaderErrorKind::NoReader, "PC/SC: no context"))
    }

    /// Whether the connected reader has a card on it now.
    fn card_present(&mut self) -> bool {
        let (Some(reader), Ok(ctx)) = (self.reader.clone(), self.ctx().cloned()) else {
            return false;
        };
        let mut st = [pcsc::ReaderState::new(reader, pcsc::State::UNAWARE)];
        match ctx.get_status_change(Duration::ZERO, &mut st) {
            Ok(()) | Err(pcsc::Error::Timeout) => {
                st[0].event_state().contains(pcsc::State::PRESENT)
            }
            Err(_) => false,
        }
    }

    /// One slice of waiting: find the reader, wait up to `slice` for a card, connect.
    fn poll(&mut self, filter: Option<&str>, slice: Duration) -> Result<Poll, ReaderError> {
        let ctx = self.ctx()?.clone();
        let readers = match ctx.list_readers_owned() {
            Ok(r) => r,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(e) => {
                self.ctx = None;
                return Err(map_err(e, "list readers"));
            }
        };
        let reader = readers.into_iter().find(|r| {
            filter.is_none_or(|f| {
                r.to_string_lossy()
                    .to_lowercase()
                    .contains(&f.to_lowercase())
            })
        });
        let Some(reader) = reader else {
            // Wait for a reader to be plugged in (PnP notification), then look again.
            let mut st = [pcsc::ReaderState::new(
                pcsc::PNP_NOTIFICATION(),
                pcsc::State::UNAWARE,
            )];
            let _ = ctx.get_status_change(slice, &mut st);
            return Ok(Poll::Nothing);
        };
        let mut st = [pcsc::ReaderState::new(reader.clone(), pcsc::State::UNAWARE)];
        // First call reports the current state; a second one waits for a change.
        if let Err(e) = ctx.get_status_change(Duration::ZERO, &mut st)
            && e != pcsc::Error::Timeout
        {
            return Err(map_err(e, "status"));
        }
        if !st[0].event_state().contains(pcsc::State::PRESENT) {
            st[0].sync_current_state();
            match ctx.get_status_change(slice, &mut st) {
                Ok(()) | Err(pcsc::Error::Timeout) => {}
                Err(e) => return Err(map_err(e, "status")),
            }
            if !st[0].event_state().contains(pcsc::State::PRESENT) {
                return Ok(Poll::Nothing);
            }
        }
        let card = ctx
            .connect(&reader, pcsc::ShareMode::Exclusive, pcsc::Protocols::ANY)
            .map_err(|e| map_err(e, "connect"))?;
        // PC/SC part 3 GET DATA: the UID (or PUPI) of the contactless card.
        let mut buf = [0u8; 32];
        let uid = match card.transmit(&[0xFF, 0xCA, 0x00, 0x00, 0x00], &mut buf) {
            Ok(r) if r.len() >= 2 && r[r.len() - 2..] == [0x90, 0x00] => r[..r.len() - 2].to_vec(),
            _ => Vec::new(),
        };
        self.card = Some(card);
        self.reader = Some(reader);
        Ok(Poll::Card(CardInfo {
            // PC/SC hides the modulation; the ATR's historical bytes would need the reader's
            // vendor rules. Type A is what payment cards and phones use nearly always.
            technology: 'A',
            uid,
        }))
    }
}

/// A PC/SC reader: the first one whose name contains `filter` (any reader without one).
pub struct PcscReader {
    worker: Worker<State>,
    filter: Option<String>,
    name: String,
}

impl PcscReader {
    /// Starts the PC/SC thread. Nothing is contacted until the first poll.
    pub fn new(filter: Option<String>) -> Result<Self, ReaderError> {
        let worker = Worker::spawn("kassa-pcsc", || State {
            ctx: None,
            card: None,
            reader: None,
        })
        .map_err(|e| ReaderError::new(ReaderErrorKind::NoReader, format!("PC/SC thread: {e}")))?;
        let name = match &filter {
            Some(f) => format!("pcsc:{f}"),
            None => "pcsc".into(),
        };
        Ok(PcscReader {
            worker,
            filter,
            name,
        })
    }
}

const SLICE: Duration = Duration::from_millis(250);
const MARGIN: Duration = Duration::from_millis(500);

impl CardReader for PcscReader {
    async fn wait_for_card(&mut self, timeout: Duration) -> Result<CardInfo, ReaderError> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(last.unwrap_or_else(|| {
                    ReaderError::new(
                        ReaderErrorKind::Timeout,
                        format!("no card within {} ms", timeout.as_millis()),
                    )
                }));
            }
            let slice = left.min(SLICE);
            let filter = self.filter.clone();
            match self
                .worker
                .call(slice + MARGIN, move |s| s.poll(filter.as_deref(), slice))
                .await?
            {
                Ok(Poll::Card(info)) => return Ok(info),
                Ok(Poll::Nothing) => last = None,
                // No daemon, no reader, a reader gone: keep looking until the deadline (the
                // reader may be plugged in again), and say why if it never comes.
                Err(e) if e.kind == ReaderErrorKind::Permission => return Err(e),
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(SLICE.min(left)).await;
                }
            }
        }
    }

    async fn transceive(
        &mut self,
        capdu: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ReaderError> {
        let capdu = capdu.to_vec();
        self.worker
            .call(timeout + MARGIN, move |s| {
                let card = s.card.as_ref().ok_or_else(|| {
                    ReaderError::new(ReaderErrorKind::CardLost, "no card connected")
                })?;
                let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
                match card.transmit(&capdu, &mut buf) {
                    Ok(r) => Ok(r.to_vec()),
                    Err(e) => {
                        s.card = None;
                        if matches!(
                            e,
                            pcsc::Error::ReaderUnavailable | pcsc::Error::UnknownReader
                        ) {
                            s.ctx = None;
                            return Err(map_err(e, "transmit"));
                        }
                        // pcsc-lite reports a card pulled mid-command in several ways
                        // (removed card, not transacted, comm error): the reader's state
                        // says what happened.
                        if !s.card_present() {
                            return Err(ReaderError::new(
                                ReaderErrorKind::CardLost,
                                format!("PC/SC transmit: the card left the reader ({e})"),
                            ));
                        }
                        Err(map_err(e, "transmit"))
                    }
                }
            })
            .await?
    }

    async fn wait_for_removal(&mut self, timeout: Duration) -> Result<(), ReaderError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let slice = left.min(SLICE);
            let gone = self
                .worker
                .call(slice + MARGIN, move |s| -> Result<bool, ReaderError> {
                    let (Some(reader), Ok(ctx)) = (s.reader.clone(), s.ctx().cloned()) else {
                        return Ok(true);
                    };
                    let mut st = [pcsc::ReaderState::new(reader, pcsc::State::UNAWARE)];
                    match ctx.get_status_change(Duration::ZERO, &mut st) {
                        Ok(()) | Err(pcsc::Error::Timeout) => {}
                        // The reader itself went away: so did the card.
                        Err(_) => return Ok(true),
                    }
                    if st[0].event_state().contains(pcsc::State::PRESENT) {
                        st[0].sync_current_state();
                        let _ = ctx.get_status_change(slice, &mut st);
                    }
                    let gone = !st[0].event_state().contains(pcsc::State::PRESENT);
                    if gone && let Some(card) = s.card.take() {
                        let _ = card.disconnect(pcsc::Disposition::LeaveCard);
                    }
                    Ok(gone)
                })
                .await??;
            if gone {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ReaderError::new(
                    ReaderErrorKind::Timeout,
                    format!("card still on the reader after {} ms", timeout.as_millis()),
                ));
            }
        }
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}
