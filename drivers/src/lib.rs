//! Devices for Kassa: card readers, printers and indicators, each a trait with real
//! implementations and a simulated twin. This crate knows bytes, not EMV.
#![forbid(unsafe_code)]

pub mod device;
pub mod escpos;
pub mod indicator;
#[cfg(feature = "libnfc")]
pub mod libnfc_reader;
pub mod open;
#[cfg(feature = "pcsc")]
pub mod pcsc_reader;
pub mod pn532;
pub mod printer;
pub mod reader;
pub mod scanner;
pub mod sim_reader;
pub mod trace;
pub mod worker;

pub use indicator::{Indicator, Status as IndicatorStatus};
pub use open::{AnyReader, ReaderSpec};
pub use pn532::{Pn532, Pn532Config};
pub use printer::{EscPosPrinter, Printer, PrinterError, VirtualPrinter};
pub use reader::{CardInfo, CardReader, ReaderError, ReaderErrorKind};
pub use scanner::{
    AnyScanner, CodeScanner, HidScanner, ScannerError, ScannerErrorKind, SerialScanner,
};
pub use sim_reader::{RfTiming, SimReader, SimReaderHandle, VirtualCard};
pub use trace::{RecordingReader, ReplayReader, Trace, TraceError};
