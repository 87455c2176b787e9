//! Online PIN entry: where the cardholder's PIN comes from, and the keypad logic of the
//! touchscreen PIN pad.
//!
//! A [`PinPad`] is asked for a PIN when the kernel's CVM is online PIN (EMV Book C-3 §5.7 /
//! C-7: CTQ byte 1 bit 8 with TTQ byte 1 bit 3). It answers with the digits in a zeroized
//! [`PinDigits`] buffer, or how the entry ended: cancelled, timed out, or not a PIN. The
//! engine enciphers the digits at once (ISO 9564-1 format 4 under the next AES DUKPT key)
//! and drops them.
//!
//! [`Keypad`] is the touchscreen's logic, kept out of the Slint model as software PIN entry
//! on commodity devices requires (PCI MPoC): the digit layout is shuffled for every entry,
//! the screen gets only the layout and the number of digits entered (dots), and a key press
//! reaches it as a key position, never as a digit. It is driven without a window in tests.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use acquirer::pin::PinDigits;

/// What the cardholder sees while entering the PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinPrompt {
    /// The amount with its currency ("EUR 300.00").
    pub amount: String,
    /// The card's scheme or application label ("UnionPay Debit").
    pub scheme: String,
    /// The card's language preference (5F2D), most preferred first.
    pub languages: Vec<String>,
    /// How long the cardholder has.
    pub timeout: Duration,
}

/// How a PIN entry ended without a PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinEnd {
    /// The cardholder pressed Cancel.
    Cancelled,
    /// Nothing was confirmed within the prompt's timeout.
    TimedOut,
    /// What came was not 4 to 12 digits (a scripted entry).
    Invalid,
    /// The PIN pad is gone (its screen or input closed).
    Unavailable,
}

impl PinEnd {
    /// The stable reason code the journal and `--json` carry.
    pub fn code(self) -> &'static str {
        match self {
            PinEnd::Cancelled => "pin_cancelled",
            PinEnd::TimedOut => "pin_timeout",
            PinEnd::Invalid => "pin_invalid",
            PinEnd::Unavailable => "pin_unavailable",
        }
    }
}

/// The boxed future a [`PinPad`] returns.
pub type PinFuture<'a> = Pin<Box<dyn Future<Output = Result<PinDigits, PinEnd>> + Send + 'a>>;

/// A source of cardholder PINs.
pub trait PinPad: Send {
    /// Asks for one PIN; resolves when it is confirmed, cancelled or timed out.
    fn enter<'a>(&'a mut self, prompt: &'a PinPrompt) -> PinFuture<'a>;
}

/// Reads the PIN from standard input, one line per entry (`kassa pay --card-pin-stdin`): an
/// empty line is Cancel, end of input is Cancel, nothing within the timeout is a timeout. For
/// scripts and tests that play the cardholder; the line never appears anywhere.
#[derive(Debug, Default)]
pub struct StdinPinPad;

impl PinPad for StdinPinPad {
    fn enter<'a>(&'a mut self, prompt: &'a PinPrompt) -> PinFuture<'a> {
        let timeout = prompt.timeout;
        Box::pin(async move {
            // A plain thread, not the runtime's blocking pool: a read that never returns (the
            // cardholder walked away) must not keep the process from ending after the timeout.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let spawned = std::thread::Builder::new()
                .name("pin-stdin".into())
                .spawn(move || {
                    let mut line = zeroize::Zeroizing::new(String::new());
                    let got = match std::io::stdin().read_line(&mut line) {
                        Ok(0) | Err(_) => None,
                        Ok(_) => Some(line),
                    };
                    let _ = tx.send(got);
                });
            if spawned.is_err() {
                return Err(PinEnd::Unavailable);
            }
            let line = match tokio::time::timeout(timeout, rx).await {
                Err(_) => return Err(PinEnd::TimedOut),
                Ok(Err(_)) | Ok(Ok(None)) => return Err(PinEnd::Cancelled),
                Ok(Ok(Some(line))) => line,
            };
            let text = line.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                return Err(PinEnd::Cancelled);
            }
            PinDigits::parse(text).map_err(|_| PinEnd::Invalid)
        })
    }
}

/// What a key press did, for the screen and the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyResult {
    /// The digit count changed (or stayed: a 13th digit is ignored); show this many dots.
    Dots(usize),
    /// Enter with 4 to 12 digits: the PIN is ready ([`Keypad::take`]).
    Done,
    /// Enter with too few digits: say so, keep the entry.
    TooShort,
    /// Cancel.
    Cancelled,
}

/// The touchscreen keypad's state: a shuffled layout of the ten digits and the digits
/// entered so far. The layout is what the screen draws; the digits never leave this struct
/// except as the [`PinDigits`] [`take`](Keypad::take) hands to the engine.
#[derive(Debug)]
pub struct Keypad {
    layout: [u8; 10],
    digits: PinDigits,
}

impl Keypad {
    /// A keypad with a fresh layout from the OS random source (Fisher-Yates with rejection
    /// sampling, so every layout is equally likely). Without a working random source there is
    /// no keypad: a predictable layout would let an onlooker read the PIN from the touches.
    pub fn shuffled() -> Option<Keypad> {
        Keypad::shuffle_with(|| {
            let mut b = [0u8; 1];
            getrandom::fill(&mut b).ok().map(|()| b[0])
        })
    }

    /// A keypad whose layout is shuffled with bytes from `next` (None: the source failed).
    pub fn shuffle_with(mut next: impl FnMut() -> Option<u8>) -> Option<Keypad> {
        let mut layout: [u8; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        for i in (1..10usize).rev() {
            let n = i + 1;
            // The largest multiple of n that fits in a byte: bytes at or above it are drawn
            // again, so each of the n choices is equally likely.
            let limit = 256 - 256 % n;
            let j = loop {
                let b = usize::from(next()?);
                if b < limit {
                    break b % n;
                }
            };
            layout.swap(i, j);
        }
        Some(Keypad {
            layout,
            digits: PinDigits::new(),
        })
    }

    /// The digit on each of the ten keys, in screen order (what the keys are labelled).
    pub fn layout(&self) -> [u8; 10] {
        self.layout
    }

    /// How many digits have been entered.
    #[cfg(test)]
    pub fn dots(&self) -> usize {
        self.digits.len()
    }

    /// The key at `position` (0-9, screen order) was pressed.
    pub fn press(&mut self, position: usize) -> KeyResult {
        if let Some(&d) = self.layout.get(position) {
            self.digits.push(d);
        }
        KeyResult::Dots(self.digits.len())
    }

    /// The Correct key: clears the whole entry (ISO 9564-1 §5: the cardholder starts over).
    pub fn correct(&mut self) -> KeyResult {
        self.digits.clear();
        KeyResult::Dots(0)
    }

    /// The Enter key.
    pub fn enter(&self) -> KeyResult {
        if self.digits.complete() {
            KeyResult::Done
        } else {
            KeyResult::TooShort
        }
    }

    /// The Cancel key: the digits are forgotten.
    pub fn cancel(&mut self) -> KeyResult {
        self.digits.clear();
        KeyResult::Cancelled
    }

    /// Hands the entered PIN over and leaves the keypad empty.
    pub fn take(&mut self) -> PinDigits {
        std::mem::take(&mut self.digits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position_of(k: &Keypad, digit: u8) -> usize {
        k.layout().iter().position(|&d| d == digit).unwrap()
    }

    #[test]
    fn the_layout_is_a_permutation_and_changes_between_entries() {
        let mut layouts = std::collections::HashSet::new();
        for _ in 0..50 {
            let k = Keypad::shuffled().unwrap();
            let mut sorted = k.layout();
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
            layouts.insert(k.layout());
        }
        // 10! layouts: fifty entries that repeat one would be a broken shuffle.
        assert!(layouts.len() >= 49, "{}", layouts.len());
        // Every digit reaches every position over many byte streams.
        let mut seen = [[false; 10]; 10];
        for s in 0..=255u8 {
            let mut x = u32::from(s).wrapping_mul(2_654_435_761).wrapping_add(1);
            let k = Keypad::shuffle_with(|| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                Some((x >> 24) as u8)
            })
            .unwrap();
            for (pos, &d) in k.layout().iter().enumerate() {
                seen[usize::from(d)][pos] = true;
            }
        }
        assert!(seen.iter().all(|row| row.iter().all(|&b| b)));
    }

    #[test]
    fn keys_enter_digits_by_position_correct_clears_enter_needs_four() {
        let mut bytes = [9u8, 8, 7, 6, 5, 4, 3, 2, 1, 0].into_iter();
        let mut k = Keypad::shuffle_with(|| bytes.next()).unwrap();
        for d in [2, 4, 6] {
            let p = position_of(&k, d);
            assert_eq!(k.press(p), KeyResult::Dots(k.dots()));
        }
        assert_eq!(k.dots(), 3);
        assert_eq!(k.enter(), KeyResult::TooShort);
        assert_eq!(k.correct(), KeyResult::Dots(0));
        for d in [2, 4, 6, 8] {
            let p = position_of(&k, d);
            k.press(p);
        }
        // A position off the pad does nothing; a 13th digit is ignored.
        assert_eq!(k.press(10), KeyResult::Dots(4));
        assert_eq!(k.enter(), KeyResult::Done);
        let pin = k.take();
        assert_eq!(pin.expose(), "2468");
        assert_eq!(k.dots(), 0);
        for _ in 0..13 {
            k.press(0);
        }
        assert_eq!(k.dots(), 12);
        assert_eq!(k.cancel(), KeyResult::Cancelled);
        assert_eq!(k.dots(), 0);
        // Debug output of the keypad never shows digits entered.
        k.press(position_of(&k, 7));
        assert!(format!("{k:?}").contains("<1 digits>"));
    }

    #[test]
    fn no_random_source_no_keypad() {
        assert!(Keypad::shuffle_with(|| None).is_none());
        // Bytes past the last multiple of n are drawn again, not folded onto small digits.
        let mut bytes = [255u8, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0].into_iter();
        let k = Keypad::shuffle_with(|| bytes.next()).unwrap();
        assert_eq!(k.layout(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]);
    }

    #[test]
    fn end_codes_are_stable() {
        assert_eq!(PinEnd::Cancelled.code(), "pin_cancelled");
        assert_eq!(PinEnd::TimedOut.code(), "pin_timeout");
        assert_eq!(PinEnd::Invalid.code(), "pin_invalid");
        assert_eq!(PinEnd::Unavailable.code(), "pin_unavailable");
    }
}
