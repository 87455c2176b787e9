//! Simulators for Kassa: virtual cards with real keys, a development PKI, and the
//! acquirer/issuer host. Each is a real implementation of the interface it stands in for
//! (a card answering APDUs, a host speaking ISO 8583 over mutual TLS), usable by a person in
//! emulator mode as well as by tests.
#![forbid(unsafe_code)]

pub mod card;
pub mod emvpki;
pub mod host;
pub mod keys;
pub mod pinkeys;
pub mod pki;
pub mod pn532;
pub mod printer;
pub mod rsa;
pub mod scanner;
pub mod script;
pub mod transport;
pub mod vicc;

pub use card::{CardFault, EmvCard, Profile, builtin_card, builtin_profiles};
pub use host::{
    EntryStatus, HostConfig, HostFault, HostRules, HostSim, IssuerKey, LedgerEntry, WalletAction,
    WalletResult, consumer_code_wallet,
};
pub use pki::{BadHostCertificate, DevPki};
