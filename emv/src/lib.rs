//! Sans-IO EMV for contactless payment terminals.
//!
//! This crate knows no I/O, clock or async runtime: the caller passes the time, the
//! unpredictable number and the card's responses in, and gets commands and outcomes out
//! (see [`entry`] for the driving loop).
//!
//! ```
//! use emv::entry::{EntryPoint, Step};
//! # fn card(_: &[u8]) -> Vec<u8> { vec![0x6A, 0x82] }
//! # let (config, input) = emv::testdata::terminal_and_input(1234);
//! let mut txn = EntryPoint::new(&config).start(input).unwrap();
//! let mut step = txn.begin();
//! let outcome = loop {
//!     match step {
//!         Step::Transmit(cmd) => step = txn.on_response(&card(&cmd.to_bytes().unwrap())),
//!         Step::Outcome(o) => break o,
//!     }
//! };
//! assert_eq!(outcome.kind, emv::outcome::OutcomeKind::EndApplication);
//! ```
#![forbid(unsafe_code)]

pub mod apdu;
mod c2;
mod c3;
pub mod card;
pub mod codes;
pub mod config;
pub mod crypto;
mod dictionary;
pub mod dol;
pub mod entry;
pub mod explain;
pub mod oda;
pub mod outcome;
pub mod qr;
pub mod tags;
pub mod testdata;
pub mod tlv;
pub mod torn;
pub mod tvr;
pub mod util;

pub use c3::{AflError, ONLINE_TAGS as C3_ONLINE_TAGS, parse_afl};
