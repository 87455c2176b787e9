//! Kassa's touch UI in Slint.
//!
//! Each screen is one view (`ui/*.slint`) and one adapter global that the terminal's
//! controller fills: [`IdleAdapter`], [`AmountAdapter`], [`TipAdapter`], [`PresentAdapter`],
//! [`ResultAdapter`], [`OperatorAdapter`], [`ErrorAdapter`], and in emulator mode
//! [`EmulatorAdapter`]. [`AppAdapter`] chooses the screen; [`Theme`] holds large text, high
//! contrast and the layout. This crate holds no payment logic: the controller in
//! `terminal-app` sets properties and reacts to callbacks.
//!
//! Texts are `@tr(...)` in the views, translated by the gettext catalogues under `lang/`
//! (bundled at build time; [`lang::select`] switches). [`offscreen`] renders any window to
//! pixels with the software renderer, without a display.

pub mod amount;
pub mod lang;
pub mod offscreen;
pub mod qr;

#[allow(unsafe_code, missing_docs, clippy::all)]
mod generated {
    slint::include_modules!();
}

pub use generated::{
    AmountAdapter, AppAdapter, EmulatorAdapter, ErrorAdapter, ErrorKind, HistoryLine, IdleAdapter,
    LanguageChoice, MainWindow, OperatorAdapter, OperatorPage, PinAdapter, PresentAdapter,
    PresentMessage, ResultAdapter, ResultKind, Screen, Theme, TipAdapter, TipChoice, TxnTitle,
    VirtualCardEntry,
};
pub use slint;
