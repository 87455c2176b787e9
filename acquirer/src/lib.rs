//! The acquirer side of Kassa: an ISO 8583 codec driven by dialect tables, typed
//! authorization messages, and the mutual-TLS link that carries them.
#![forbid(unsafe_code)]

pub mod iso8583;
pub mod link;
pub mod messages;
pub mod pin;
pub mod qr;

pub use iso8583::{Dialect, Message};
pub use link::{Credentials, Exchange, Link, LinkConfig, LinkError, LinkErrorKind};
