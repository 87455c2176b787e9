//! The touchscreen PIN pad: [`ScreenPinPad`] is the engine's [`PinPad`] in the window. The
//! engine's task asks for a PIN; the UI thread puts up the PIN screen with a freshly shuffled
//! [`Keypad`], feeds it key positions from the screen, and sends the digits back through a
//! oneshot channel when the cardholder presses Enter (or the end: Cancel, timeout). The
//! digits live only in the keypad on the UI thread and in the [`PinDigits`] handed over; the
//! Slint model never holds them.

use std::cell::RefCell;

use acquirer::pin::PinDigits;
use tokio::sync::oneshot;
use ui::slint::{self, ComponentHandle, ModelRc, SharedString, VecModel};
use ui::{AppAdapter, MainWindow, OperatorAdapter, PinAdapter, PresentAdapter, Screen};

use crate::pinpad::{KeyResult, Keypad, PinEnd, PinFuture, PinPad, PinPrompt};

type Reply = oneshot::Sender<Result<PinDigits, PinEnd>>;

/// One PIN entry in progress. UI thread only.
struct Entry {
    keypad: Keypad,
    reply: Reply,
    /// Counts the seconds down on the screen (the engine's timeout is the one that ends it).
    _countdown: slint::Timer,
}

thread_local! {
    static ENTRY: RefCell<Option<Entry>> = const { RefCell::new(None) };
}

/// The PIN pad on the terminal's screen.
#[derive(Clone)]
pub struct ScreenPinPad {
    window: slint::Weak<MainWindow>,
}

impl ScreenPinPad {
    /// A PIN pad on `window`'s screen; its callbacks are wired here.
    pub fn new(window: &MainWindow) -> ScreenPinPad {
        let p = window.global::<PinAdapter>();
        let w = window.as_weak();
        p.on_key(move |position| {
            if let Some(w) = w.upgrade() {
                on_key(&w, |k| {
                    k.press(usize::try_from(position).unwrap_or(usize::MAX))
                });
            }
        });
        let w = window.as_weak();
        p.on_correct(move || {
            if let Some(w) = w.upgrade() {
                on_key(&w, Keypad::correct);
            }
        });
        let w = window.as_weak();
        p.on_enter(move || {
            if let Some(w) = w.upgrade() {
                on_key(&w, |k| k.enter());
            }
        });
        let w = window.as_weak();
        p.on_cancel(move || {
            if let Some(w) = w.upgrade() {
                on_key(&w, Keypad::cancel);
            }
        });
        ScreenPinPad {
            window: window.as_weak(),
        }
    }
}

impl PinPad for ScreenPinPad {
    fn enter<'a>(&'a mut self, prompt: &'a PinPrompt) -> PinFuture<'a> {
        let (tx, rx) = oneshot::channel();
        let shown = prompt.clone();
        let posted = self
            .window
            .upgrade_in_event_loop(move |w| begin(&w, &shown, tx));
        let timeout = prompt.timeout;
        // However the wait ends (answer, timeout, or the engine dropping it when the
        // operator cancels), an entry still open is closed and its digits forgotten.
        let guard = CloseOnDrop(self.window.clone());
        Box::pin(async move {
            let _guard = guard;
            if posted.is_err() {
                return Err(PinEnd::Unavailable);
            }
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(answer)) => answer,
                // The screen went away with the entry open.
                Ok(Err(_)) => Err(PinEnd::Unavailable),
                Err(_) => Err(PinEnd::TimedOut),
            }
        })
    }
}

/// Closes the open PIN entry, if any, when dropped.
struct CloseOnDrop(slint::Weak<MainWindow>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let _ = self.0.upgrade_in_event_loop(|w| {
            if ENTRY.with(|e| e.borrow_mut().take()).is_some() {
                let p = w.global::<PinAdapter>();
                p.set_entered(0);
                p.set_too_short(false);
                w.global::<AppAdapter>().set_screen(Screen::Present);
            }
        });
    }
}

/// Puts up the PIN screen with a new layout (UI thread).
fn begin(w: &MainWindow, prompt: &PinPrompt, reply: Reply) {
    let Some(keypad) = Keypad::shuffled() else {
        tracing::warn!("no random source for the PIN keypad's layout");
        let _ = reply.send(Err(PinEnd::Unavailable));
        return;
    };
    let p = w.global::<PinAdapter>();
    p.set_amount_text(prompt.amount.as_str().into());
    p.set_scheme(prompt.scheme.as_str().into());
    let labels: Vec<SharedString> = keypad
        .layout()
        .iter()
        .map(|d| SharedString::from(d.to_string()))
        .collect();
    p.set_keys(ModelRc::new(VecModel::from(labels)));
    p.set_entered(0);
    p.set_too_short(false);
    let secs = i32::try_from(prompt.timeout.as_secs()).unwrap_or(i32::MAX);
    p.set_seconds_left(secs);
    let countdown = slint::Timer::default();
    let weak = w.as_weak();
    countdown.start(
        slint::TimerMode::Repeated,
        std::time::Duration::from_secs(1),
        move || {
            if let Some(w) = weak.upgrade() {
                let p = w.global::<PinAdapter>();
                p.set_seconds_left((p.get_seconds_left() - 1).max(0));
            }
        },
    );
    // A previous entry still open (should not happen: one transaction at a time) ends as
    // cancelled rather than hanging its engine.
    ENTRY.with(|e| {
        if let Some(old) = e.borrow_mut().replace(Entry {
            keypad,
            reply,
            _countdown: countdown,
        }) {
            let _ = old.reply.send(Err(PinEnd::Cancelled));
        }
    });
    w.global::<AppAdapter>().set_screen(Screen::Pin);
    let lang = w.global::<PresentAdapter>().get_language().to_string();
    if w.global::<OperatorAdapter>().get_voice() {
        crate::gui::speak(
            w,
            &lang,
            &ui::lang::tr(&lang, "Voice", "Please enter your PIN"),
        );
    }
}

/// Applies a key to the open entry and shows the result (UI thread).
fn on_key(w: &MainWindow, f: impl FnOnce(&mut Keypad) -> KeyResult) {
    let p = w.global::<PinAdapter>();
    let finished = ENTRY.with(|e| {
        let mut slot = e.borrow_mut();
        let entry = slot.as_mut()?;
        match f(&mut entry.keypad) {
            KeyResult::Dots(n) => {
                p.set_entered(i32::try_from(n).unwrap_or(0));
                p.set_too_short(false);
                None
            }
            KeyResult::TooShort => {
                p.set_too_short(true);
                None
            }
            KeyResult::Done => {
                let pin = entry.keypad.take();
                slot.take().map(|e| (e.reply, Ok(pin)))
            }
            KeyResult::Cancelled => slot.take().map(|e| (e.reply, Err(PinEnd::Cancelled))),
        }
    });
    if let Some((reply, answer)) = finished {
        p.set_entered(0);
        p.set_too_short(false);
        w.global::<AppAdapter>().set_screen(Screen::Present);
        let _ = reply.send(answer);
    }
}

/// True while a PIN entry is open (tests).
#[cfg(test)]
pub fn entry_open() -> bool {
    ENTRY.with(|e| e.borrow().is_some())
}

/// The digit on each key of the open entry (tests play the cardholder by it).
#[cfg(test)]
pub fn layout() -> Option<[u8; 10]> {
    ENTRY.with(|e| e.borrow().as_ref().map(|e| e.keypad.layout()))
}
