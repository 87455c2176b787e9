//! Kassa's touch UI in Slint.
//!
//! Each screen is one view (`ui/*.slint`) and one adapter global that the terminal's
//! controller fills: [`AmountAdapter`], [`PresentAdapter`], [`ResultAdapter`], and in emulator
//! mode [`EmulatorAdapter`]. [`AppAdapter`] chooses the screen. This crate holds no payment
//! logic: the controller in `terminal-app` sets properties and reacts to callbacks.
//!
//! [`offscreen`] renders any window to pixels with the software renderer, without a display.

pub mod amount;
pub mod offscreen;

#[allow(unsafe_code, missing_docs, clippy::all)]
mod generated {
    slint::include_modules!();
}

pub use generated::{
    AmountAdapter, AppAdapter, EmulatorAdapter, MainWindow, PresentAdapter, ResultAdapter, Screen,
    Theme, VirtualCardEntry,
};
pub use slint;
