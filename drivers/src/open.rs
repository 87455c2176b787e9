//! Choosing a reader at run time: a reader specification from the config file or the
//! command line, the reader it opens, and what this machine has.
//!
//! ```text
//! sim                          the emulator's virtual reader
//! pn532-uart:/dev/ttyS0[@BAUD] a PN532 on a serial port (115200 by default)
//! pn532-spi:/dev/spidev0.0     a PN532 on SPI (feature `pi`)
//! pn532-i2c:/dev/i2c-1         a PN532 on I2C at 0x24 (feature `pi`)
//! pcsc[:NAME]                  a PC/SC reader whose name contains NAME (feature `pcsc`)
//! libnfc[:CONNSTRING]          a libnfc device (feature `libnfc`)
//! ```

use std::path::PathBuf;
use std::time::Duration;

use crate::pn532::uart::{SerialPort, UartTransport};
use crate::pn532::{Pn532, Pn532Config};
use crate::reader::{CardInfo, CardReader, ReaderError, ReaderErrorKind};
use crate::sim_reader::SimReader;

/// Which reader, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderSpec {
    /// The virtual reader of emulator mode.
    Sim,
    /// A PN532 on a serial port.
    Pn532Uart {
        /// The device, e.g. /dev/ttyS0 or /dev/ttyUSB0.
        port: PathBuf,
        /// Bits per second (the PN532's HSU default is 115200).
        baud: u32,
    },
    /// A PN532 on SPI.
    Pn532Spi {
        /// SPI bus number (the N of /dev/spidevN.M).
        bus: u8,
        /// Chip select (the M).
        cs: u8,
        /// Clock in Hz.
        hz: u32,
    },
    /// A PN532 on I2C.
    Pn532I2c {
        /// I2C bus number (the N of /dev/i2c-N).
        bus: u8,
    },
    /// A PC/SC reader.
    Pcsc {
        /// Part of the reader's name; the first reader when absent.
        name: Option<String>,
    },
    /// A libnfc device.
    Libnfc {
        /// libnfc connection string; the first device when absent.
        connstring: Option<String>,
    },
}

/// A reader specification that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reader {spec:?}: {reason}")]
pub struct SpecError {
    /// What was given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::str::FromStr for ReaderSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = |reason: &str| SpecError {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a).filter(|a| !a.is_empty())),
            None => (s, None),
        };
        match kind {
            "sim" => Ok(ReaderSpec::Sim),
            "pn532-uart" => {
                let arg = arg.ok_or_else(|| bad("needs a port: pn532-uart:/dev/ttyS0"))?;
                let (port, baud) = match arg.rsplit_once('@') {
                    Some((p, b)) => (
                        p,
                        b.parse::<u32>()
                            .ok()
                            .filter(|b| *b > 0)
                            .ok_or_else(|| bad("baud rate must be a number above 0"))?,
                    ),
                    None => (arg, 115_200),
                };
                Ok(ReaderSpec::Pn532Uart {
                    port: PathBuf::from(port),
                    baud,
                })
            }
            "pn532-spi" => {
                let arg = arg.unwrap_or("/dev/spidev0.0");
                let nums = arg
                    .strip_prefix("/dev/spidev")
                    .and_then(|r| r.split_once('.'))
                    .and_then(|(b, c)| Some((b.parse().ok()?, c.parse().ok()?)))
                    .ok_or_else(|| bad("SPI device must be /dev/spidevBUS.CS"))?;
                Ok(ReaderSpec::Pn532Spi {
                    bus: nums.0,
                    cs: nums.1,
                    hz: 1_000_000,
                })
            }
            "pn532-i2c" => {
                let arg = arg.unwrap_or("/dev/i2c-1");
                let bus = arg
                    .strip_prefix("/dev/i2c-")
                    .and_then(|b| b.parse().ok())
                    .ok_or_else(|| bad("I2C device must be /dev/i2c-BUS"))?;
                Ok(ReaderSpec::Pn532I2c { bus })
            }
            "pcsc" => Ok(ReaderSpec::Pcsc {
                name: arg.map(str::to_string),
            }),
            "libnfc" => Ok(ReaderSpec::Libnfc {
                connstring: arg.map(str::to_string),
            }),
            _ => Err(bad(
                "unknown kind (sim, pn532-uart, pn532-spi, pn532-i2c, pcsc, libnfc)",
            )),
        }
    }
}

impl std::fmt::Display for ReaderSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReaderSpec::Sim => write!(f, "sim"),
            ReaderSpec::Pn532Uart { port, baud } => {
                write!(f, "pn532-uart:{}@{baud}", port.display())
            }
            ReaderSpec::Pn532Spi { bus, cs, .. } => write!(f, "pn532-spi:/dev/spidev{bus}.{cs}"),
            ReaderSpec::Pn532I2c { bus } => write!(f, "pn532-i2c:/dev/i2c-{bus}"),
            ReaderSpec::Pcsc { name: Some(n) } => write!(f, "pcsc:{n}"),
            ReaderSpec::Pcsc { name: None } => write!(f, "pcsc"),
            ReaderSpec::Libnfc {
                connstring: Some(c),
            } => write!(f, "libnfc:{c}"),
            ReaderSpec::Libnfc { connstring: None } => write!(f, "libnfc"),
        }
    }
}

#[cfg(feature = "pi")]
type SpiPn532 = Pn532<
    crate::pn532::bus::BusTransport<crate::pn532::bus::SpiBus<crate::pn532::bus::pi::RppalSpi>>,
>;
#[cfg(feature = "pi")]
type I2cPn532 = Pn532<
    crate::pn532::bus::BusTransport<crate::pn532::bus::I2cBus<crate::pn532::bus::pi::RppalI2c>>,
>;

/// Any reader, chosen at run time.
pub enum AnyReader {
    /// The virtual reader.
    Sim(SimReader),
    /// A PN532 on a serial port.
    Pn532Uart(Box<Pn532<UartTransport<SerialPort>>>),
    /// A PN532 on SPI.
    #[cfg(feature = "pi")]
    Pn532Spi(Box<SpiPn532>),
    /// A PN532 on I2C.
    #[cfg(feature = "pi")]
    Pn532I2c(Box<I2cPn532>),
    /// A PC/SC reader.
    #[cfg(feature = "pcsc")]
    Pcsc(crate::pcsc_reader::PcscReader),
    /// A libnfc device.
    #[cfg(feature = "libnfc")]
    Libnfc(crate::libnfc_reader::LibnfcReader),
    /// A hardware reader that could not be opened yet (unplugged at boot): every wait for a
    /// card tries again, so plugging it in is enough.
    Pending(ReaderSpec, Pn532Config),
}

#[cfg(not(all(feature = "pi", feature = "pcsc", feature = "libnfc")))]
fn not_built(spec: &ReaderSpec, feature: &str) -> ReaderError {
    ReaderError::new(
        ReaderErrorKind::NoReader,
        format!("{spec}: this build of Kassa has no `{feature}` feature"),
    )
}

/// Opens the hardware reader `spec` names. [`ReaderSpec::Sim`] is made by the caller, who
/// also needs its tap handle; asking for it here is an error.
pub fn open(spec: &ReaderSpec, config: Pn532Config) -> Result<AnyReader, ReaderError> {
    match spec {
        ReaderSpec::Sim => Err(ReaderError::new(
            ReaderErrorKind::NoReader,
            "the simulated reader is made with SimReader::new",
        )),
        ReaderSpec::Pn532Uart { port, baud } => Ok(AnyReader::Pn532Uart(Box::new(Pn532::new(
            UartTransport::open(port, *baud)?,
            config,
        )))),
        #[cfg(feature = "pi")]
        ReaderSpec::Pn532Spi { bus, cs, hz } => {
            use crate::pn532::bus::{BusTransport, SpiBus, pi::RppalSpi};
            let dev = RppalSpi::open(*bus, *cs, *hz)?;
            Ok(AnyReader::Pn532Spi(Box::new(Pn532::new(
                BusTransport::new(SpiBus::new(dev)),
                config,
            ))))
        }
        #[cfg(feature = "pi")]
        ReaderSpec::Pn532I2c { bus } => {
            use crate::pn532::bus::{BusTransport, I2cBus, pi::RppalI2c};
            let dev = RppalI2c::open(*bus)?;
            Ok(AnyReader::Pn532I2c(Box::new(Pn532::new(
                BusTransport::new(I2cBus::new(dev)),
                config,
            ))))
        }
        #[cfg(not(feature = "pi"))]
        ReaderSpec::Pn532Spi { .. } | ReaderSpec::Pn532I2c { .. } => Err(not_built(spec, "pi")),
        #[cfg(feature = "pcsc")]
        ReaderSpec::Pcsc { name } => Ok(AnyReader::Pcsc(crate::pcsc_reader::PcscReader::new(
            name.clone(),
        )?)),
        #[cfg(not(feature = "pcsc"))]
        ReaderSpec::Pcsc { .. } => Err(not_built(spec, "pcsc")),
        #[cfg(feature = "libnfc")]
        ReaderSpec::Libnfc { connstring } => Ok(AnyReader::Libnfc(
            crate::libnfc_reader::LibnfcReader::new(connstring.clone())?,
        )),
        #[cfg(not(feature = "libnfc"))]
        ReaderSpec::Libnfc { .. } => Err(not_built(spec, "libnfc")),
    }
}

/// Opens `spec`, or keeps it pending when it cannot be opened now (the terminal then says
/// "reader not connected" and tries again at every transaction).
pub fn open_or_pending(spec: &ReaderSpec, config: Pn532Config) -> AnyReader {
    match open(spec, config) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(reader = %spec, error = %e, "reader not connected; will retry");
            AnyReader::Pending(spec.clone(), config)
        }
    }
}

macro_rules! each {
    ($self:ident, $r:ident => $e:expr) => {
        match $self {
            AnyReader::Pending(spec, _) => Err(ReaderError::new(
                ReaderErrorKind::NoReader,
                format!("reader not connected ({spec})"),
            )),
            AnyReader::Sim($r) => $e,
            AnyReader::Pn532Uart($r) => $e,
            #[cfg(feature = "pi")]
            AnyReader::Pn532Spi($r) => $e,
            #[cfg(feature = "pi")]
            AnyReader::Pn532I2c($r) => $e,
            #[cfg(feature = "pcsc")]
            AnyReader::Pcsc($r) => $e,
            #[cfg(feature = "libnfc")]
            AnyReader::Libnfc($r) => $e,
        }
    };
}

impl AnyReader {
    /// For a PN532: wakes and configures it and returns its firmware, to check the wiring.
    pub async fn probe(&mut self) -> Result<Option<String>, ReaderError> {
        match self {
            AnyReader::Pn532Uart(r) => r.init().await.map(|f| Some(f.to_string())),
            #[cfg(feature = "pi")]
            AnyReader::Pn532Spi(r) => r.init().await.map(|f| Some(f.to_string())),
            #[cfg(feature = "pi")]
            AnyReader::Pn532I2c(r) => r.init().await.map(|f| Some(f.to_string())),
            _ => Ok(None),
        }
    }
}

impl AnyReader {
    /// A pending reader tries to open; the error says why it is still not there.
    async fn reopen(&mut self, timeout: Duration) -> Result<(), ReaderError> {
        if let AnyReader::Pending(spec, config) = self {
            match open(spec, *config) {
                Ok(r) => {
                    tracing::info!(reader = %spec, "reader connected");
                    *self = r;
                }
                Err(e) => {
                    // Not a busy loop: wait a little (within the caller's time) before saying so.
                    tokio::time::sleep(timeout.min(Duration::from_secs(1))).await;
                    return Err(ReaderError::new(
                        e.kind,
                        format!("reader not connected: {}", e.detail),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl CardReader for AnyReader {
    async fn wait_for_card(&mut self, timeout: Duration) -> Result<CardInfo, ReaderError> {
        self.reopen(timeout).await?;
        each!(self, r => r.wait_for_card(timeout).await)
    }

    async fn transceive(
        &mut self,
        capdu: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ReaderError> {
        each!(self, r => r.transceive(capdu, timeout).await)
    }

    async fn wait_for_removal(&mut self, timeout: Duration) -> Result<(), ReaderError> {
        each!(self, r => r.wait_for_removal(timeout).await)
    }

    fn name(&self) -> String {
        match self {
            AnyReader::Pending(spec, _) => format!("{spec} (not connected)"),
            other => each!(other, r => Ok::<String, ReaderError>(r.name())).unwrap_or_default(),
        }
    }
}

/// One thing `kassa readers` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The reader specification to use it (`pn532-uart:/dev/ttyS0`...).
    pub spec: String,
    /// What kind of device: `serial`, `spi`, `i2c`, `pcsc`, `libnfc`.
    pub kind: &'static str,
    /// A note: that a serial port may or may not have a PN532 behind it, a PC/SC reader's
    /// name, or why a source could not be searched.
    pub note: String,
}

/// What readers (or places for one) this machine has. Nothing is opened: serial ports,
/// SPI and I2C devices are listed as candidates for a PN532; PC/SC and libnfc are asked.
pub fn discover() -> Vec<Found> {
    let mut out = Vec::new();
    for p in crate::pn532::uart::list_serial_ports() {
        out.push(Found {
            spec: format!("pn532-uart:{}", p.display()),
            kind: "serial",
            note: "serial port (a PN532 may be behind it: kassa readers --probe SPEC)".into(),
        });
    }
    let mut devs: Vec<PathBuf> = std::fs::read_dir("/dev")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    devs.sort();
    for p in devs {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("spidev") {
            out.push(Found {
                spec: format!("pn532-spi:{}", p.display()),
                kind: "spi",
                note: "SPI device".into(),
            });
        } else if name.starts_with("i2c-") {
            out.push(Found {
                spec: format!("pn532-i2c:{}", p.display()),
                kind: "i2c",
                note: "I2C bus".into(),
            });
        }
    }
    #[cfg(feature = "pcsc")]
    match crate::pcsc_reader::list_readers() {
        Ok(names) => out.extend(names.into_iter().map(|n| Found {
            spec: format!("pcsc:{n}"),
            kind: "pcsc",
            note: n,
        })),
        Err(e) => out.push(Found {
            spec: "pcsc".into(),
            kind: "pcsc",
            note: e.to_string(),
        }),
    }
    #[cfg(feature = "libnfc")]
    match crate::libnfc_reader::list_devices() {
        Ok(devs) => out.extend(devs.into_iter().map(|c| Found {
            spec: format!("libnfc:{c}"),
            kind: "libnfc",
            note: c,
        })),
        Err(e) => out.push(Found {
            spec: "libnfc".into(),
            kind: "libnfc",
            note: e.to_string(),
        }),
    }
    out
}

/// The optional reader drivers this build has.
pub fn features() -> Vec<&'static str> {
    let mut f = vec!["pn532-uart"];
    if cfg!(feature = "pi") {
        f.extend(["pn532-spi", "pn532-i2c", "gpio"]);
    }
    if cfg!(feature = "pcsc") {
        f.push("pcsc");
    }
    if cfg!(feature = "libnfc") {
        f.push("libnfc");
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for (s, canonical) in [
            ("sim", "sim"),
            ("pn532-uart:/dev/ttyS0", "pn532-uart:/dev/ttyS0@115200"),
            (
                "pn532-uart:/dev/ttyUSB0@9600",
                "pn532-uart:/dev/ttyUSB0@9600",
            ),
            ("pn532-spi:/dev/spidev0.1", "pn532-spi:/dev/spidev0.1"),
            ("pn532-spi", "pn532-spi:/dev/spidev0.0"),
            ("pn532-i2c", "pn532-i2c:/dev/i2c-1"),
            ("pcsc", "pcsc"),
            ("pcsc:ACR122", "pcsc:ACR122"),
            (
                "libnfc:pn532_uart:/dev/ttyUSB0",
                "libnfc:pn532_uart:/dev/ttyUSB0",
            ),
        ] {
            let spec: ReaderSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), canonical, "{s}");
        }
        for bad in [
            "pn532-uart",
            "pn532-uart:/dev/x@fast",
            "pn532-spi:/dev/x",
            "nfc:x",
        ] {
            assert!(bad.parse::<ReaderSpec>().is_err(), "{bad}");
        }
    }
}
