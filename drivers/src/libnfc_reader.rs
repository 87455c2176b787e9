//! Any reader libnfc supports (PN53x on USB or UART, ACR122 through its own driver...),
//! through the nfc1 crate. libnfc is blocking C code: it runs on its own thread and every
//! call has a deadline.

use std::time::Duration;

use tokio::time::Instant;

use crate::reader::{CardInfo, CardReader, ReaderError, ReaderErrorKind};
use crate::worker::Worker;

/// The device state on the libnfc thread. The device is declared first: it must close
/// before its context.
struct State {
    dev: Option<nfc1::Device>,
    ctx: Option<nfc1::Context>,
    connstring: Option<String>,
    active: bool,
}

fn map_err(e: nfc1::Error, what: &str) -> ReaderError {
    use nfc1::Error as E;
    let kind = match e {
        E::NoDeviceFound | E::NoSuchDeviceFound | E::DeviceNotSupported => {
            ReaderErrorKind::NoReader
        }
        E::Io => ReaderErrorKind::ReaderReset,
        E::Timeout | E::TargetReleased | E::RfTransmissionError => ReaderErrorKind::CardLost,
        _ => ReaderErrorKind::Protocol,
    };
    ReaderError::new(kind, format!("libnfc {what}: {e:?}"))
}

/// The connection strings of the devices libnfc finds (`pn532_uart:/dev/ttyUSB0`...).
pub fn list_devices() -> Result<Vec<String>, ReaderError> {
    let mut ctx = nfc1::Context::new().map_err(|e| map_err(e, "init"))?;
    ctx.list_devices(8).map_err(|e| map_err(e, "list"))
}

impl State {
    fn dev(&mut self) -> Result<&mut nfc1::Device, ReaderError> {
        if self.dev.is_none() {
            if self.ctx.is_none() {
                self.ctx = Some(nfc1::Context::new().map_err(|e| map_err(e, "init"))?);
            }
            let ctx = self
                .ctx
                .as_mut()
                .ok_or_else(|| ReaderError::new(ReaderErrorKind::NoReader, "libnfc: no context"))?;
            let mut dev = match &self.connstring {
                Some(c) => ctx.open_with_connstring(c),
                None => ctx.open(),
            }
            .map_err(|e| map_err(e, "open"))?;
            dev.initiator_init()
                .map_err(|e| map_err(e, "initiator init"))?;
            // Return at once when no card is there: the async side does the waiting.
            dev.set_property_bool(nfc1::Property::InfiniteSelect, false)
                .map_err(|e| map_err(e, "configure"))?;
            self.dev = Some(dev);
        }
        self.dev
            .as_mut()
            .ok_or_else(|| ReaderError::new(ReaderErrorKind::NoReader, "libnfc: no device"))
    }

    fn poll(&mut self) -> Result<Option<CardInfo>, ReaderError> {
        let dev = self.dev()?;
        for (mt, tech) in [
            (nfc1::ModulationType::Iso14443a, 'A'),
            (nfc1::ModulationType::Iso14443b, 'B'),
        ] {
            let m = nfc1::Modulation {
                modulation_type: mt,
                baud_rate: nfc1::BaudRate::Baud106,
            };
            match dev.initiator_select_passive_target(&m) {
                Ok(t) => {
                    let uid = match t.target_info {
                        nfc1::target_info::TargetInfo::Iso14443a(a) => {
                            if a.sak & 0x20 == 0 {
                                let _ = dev.initiator_deselect_target();
                                return Err(ReaderError::new(
                                    ReaderErrorKind::Protocol,
                                    "the card does not support ISO/IEC 14443-4 (not a payment card)",
                                ));
                            }
                            a.uid[..a.uid_len.min(10)].to_vec()
                        }
                        nfc1::target_info::TargetInfo::Iso14443b(b) => b.pupi.to_vec(),
                        _ => Vec::new(),
                    };
                    self.active = true;
                    return Ok(Some(CardInfo {
                        technology: tech,
                        uid,
                    }));
                }
                Err(nfc1::Error::Io) => {
                    self.dev = None;
                    return Err(map_err(nfc1::Error::Io, "select"));
                }
                Err(_) => continue,
            }
        }
        Ok(None)
    }
}

/// A libnfc reader: the device at `connstring`, or the first libnfc finds.
pub struct LibnfcReader {
    worker: Worker<State>,
    name: String,
    poll_interval: Duration,
}

impl LibnfcReader {
    /// Starts the libnfc thread. The device is opened on first use.
    pub fn new(connstring: Option<String>) -> Result<Self, ReaderError> {
        let name = match &connstring {
            Some(c) => format!("libnfc:{c}"),
            None => "libnfc".into(),
        };
        let worker = Worker::spawn("kassa-libnfc", move || State {
            dev: None,
            ctx: None,
            connstring,
            active: false,
        })
        .map_err(|e| ReaderError::new(ReaderErrorKind::NoReader, format!("libnfc thread: {e}")))?;
        Ok(LibnfcReader {
            worker,
            name,
            poll_interval: Duration::from_millis(50),
        })
    }
}

const CALL: Duration = Duration::from_secs(2);

impl CardReader for LibnfcReader {
    async fn wait_for_card(&mut self, timeout: Duration) -> Result<CardInfo, ReaderError> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.worker.call(CALL, |s| s.poll()).await? {
                Ok(Some(info)) => return Ok(info),
                Ok(None) => None,
                Err(e) if e.kind == ReaderErrorKind::Protocol => return Err(e),
                Err(e) => Some(e),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(last.unwrap_or_else(|| {
                    ReaderError::new(
                        ReaderErrorKind::Timeout,
                        format!("no card within {} ms", timeout.as_millis()),
                    )
                }));
            }
            tokio::time::sleep(self.poll_interval.min(left)).await;
        }
    }

    async fn transceive(
        &mut self,
        capdu: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ReaderError> {
        let capdu = capdu.to_vec();
        self.worker
            .call(timeout + CALL, move |s| {
                if !s.active {
                    return Err(ReaderError::new(
                        ReaderErrorKind::CardLost,
                        "no card activated",
                    ));
                }
                let dev = s.dev()?;
                match dev.initiator_transceive_bytes(&capdu, 264, nfc1::Timeout::Duration(timeout))
                {
                    Ok(r) => Ok(r),
                    Err(e) => {
                        s.active = false;
                        if e == nfc1::Error::Io {
                            s.dev = None;
                        }
                        Err(map_err(e, "transceive"))
                    }
                }
            })
            .await?
    }

    async fn wait_for_removal(&mut self, timeout: Duration) -> Result<(), ReaderError> {
        let deadline = Instant::now() + timeout;
        loop {
            let gone = self
                .worker
                .call(CALL, |s| -> Result<bool, ReaderError> {
                    if !s.active {
                        return Ok(true);
                    }
                    let dev = s.dev()?;
                    if dev.initiator_target_is_present_any().is_ok() {
                        return Ok(false);
                    }
                    let _ = dev.initiator_deselect_target();
                    let _ = dev.set_property_bool(nfc1::Property::ActivateField, false);
                    s.active = false;
                    Ok(true)
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
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}
