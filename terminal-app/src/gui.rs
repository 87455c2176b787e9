//! `kassa emulator`: the terminal in a desktop window, with a panel of virtual cards that a
//! click taps onto the simulated reader.
//!
//! The Slint event loop owns the main thread; the engine runs on the tokio runtime. UI
//! callbacks reach the engine through a channel; engine events come back with
//! `upgrade_in_event_loop`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use drivers::SimReader;
use tokio::sync::{mpsc, watch};
use ui::amount::{AmountEntry, format_minor};
use ui::slint::{self, ComponentHandle, ModelRc, SharedString, VecModel};
use ui::{
    AmountAdapter, AppAdapter, EmulatorAdapter, MainWindow, PresentAdapter, ResultAdapter, Screen,
    VirtualCardEntry,
};

use crate::config::Config;
use crate::emulator::{EmulatorEnv, Paths};
use crate::engine::{Engine, EngineEvent, TxnKind};
use crate::journal::Journal;
use crate::receipt::{self, Copy};

/// The message shown when there is no display.
pub const NO_DISPLAY: &str = "kassa emulator: no display found (DISPLAY and WAYLAND_DISPLAY are unset); \
for a headless payment run `kassa pay --amount 12.34 --card visa`";

/// True if a graphical session seems to be available.
pub fn display_available() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Opens the emulator window and runs until it is closed.
pub fn run(rt: &tokio::runtime::Runtime, paths: &Paths, cfg: Config) -> anyhow::Result<()> {
    if !display_available() {
        anyhow::bail!(NO_DISPLAY);
    }
    let env = rt.block_on(EmulatorEnv::start(paths, &cfg, None))?;
    let (reader, tap) = SimReader::new("virtual reader");
    let reader = reader.with_timing(cfg.rf_timing());
    let link = env.link(&cfg)?;
    let journal = Journal::open(&paths.journal())?;
    let vault = crate::vault::Vault::open(&paths.device_key())?;
    let engine = Engine::new(cfg.clone(), reader, link, journal, vault)?;

    let window = MainWindow::new().map_err(|e| anyhow::anyhow!("{NO_DISPLAY} ({e})"))?;
    window.global::<AppAdapter>().set_emulator(true);
    let cards: Vec<VirtualCardEntry> = env
        .profiles
        .iter()
        .map(|p| VirtualCardEntry {
            name: p.name.clone().into(),
            scheme: emv::card::Scheme::from_aid(
                &emv::util::unhex(&p.application.aid).unwrap_or_default(),
            )
            .name()
            .into(),
            description: p.description.clone().into(),
        })
        .collect();
    let emu = window.global::<EmulatorAdapter>();
    emu.set_cards(ModelRc::new(VecModel::from(cards)));
    emu.set_host_status(format!("Host simulator on {} (mutual TLS)", env.host_address).into());
    let t = &cfg.terminal;
    let amount_adapter = window.global::<AmountAdapter>();
    amount_adapter.set_currency(t.currency_code.clone().into());
    amount_adapter.set_amount_text(format_minor(0, t.currency_exponent).into());

    let entry = Rc::new(RefCell::new(AmountEntry::new(
        t.currency_exponent,
        cfg.max_amount_minor(),
    )));
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel::<u64>();
    let cancel: Arc<Mutex<Option<watch::Sender<bool>>>> = Arc::new(Mutex::new(None));

    {
        let weak = window.as_weak();
        let entry = entry.clone();
        amount_adapter.on_key(move |key| {
            let Some(w) = weak.upgrade() else { return };
            let mut e = entry.borrow_mut();
            let accepted = e.key(key.as_str());
            let a = w.global::<AmountAdapter>();
            a.set_amount_text(e.text().into());
            a.set_can_charge(e.minor() > 0);
            a.set_hint(if accepted {
                SharedString::new()
            } else {
                "Maximum amount reached".into()
            });
        });
    }
    {
        let weak = window.as_weak();
        let entry = entry.clone();
        let currency = t.currency_code.clone();
        amount_adapter.on_charge(move || {
            let Some(w) = weak.upgrade() else { return };
            let e = entry.borrow();
            if e.minor() == 0 {
                return;
            }
            let p = w.global::<PresentAdapter>();
            p.set_amount_text(format!("{currency} {}", e.text()).into());
            p.set_message("Present card".into());
            p.set_detail("Click a virtual card on the right".into());
            p.set_lights(1);
            p.set_busy(false);
            w.global::<EmulatorAdapter>().set_can_tap(true);
            w.global::<AppAdapter>().set_screen(Screen::Present);
            let _ = cmd_tx.send(e.minor());
        });
    }
    {
        let env_cards = env.card_names();
        let profiles_env = Arc::new(env);
        let weak = window.as_weak();
        emu.on_tap(move |name| {
            let name = name.to_string();
            if !env_cards.contains(&name) {
                return;
            }
            if let Some(Ok(card)) = profiles_env.card(&name) {
                tap.tap(Box::new(card));
            }
            if let Some(w) = weak.upgrade() {
                w.global::<EmulatorAdapter>().set_can_tap(false);
            }
        });
    }
    {
        let cancel = cancel.clone();
        window.global::<PresentAdapter>().on_cancel(move || {
            if let Ok(c) = cancel.lock()
                && let Some(tx) = c.as_ref()
            {
                let _ = tx.send(true);
            }
        });
    }
    {
        let weak = window.as_weak();
        let entry = entry.clone();
        let exp = t.currency_exponent;
        window.global::<ResultAdapter>().on_done(move || {
            let Some(w) = weak.upgrade() else { return };
            entry.borrow_mut().key("C");
            let a = w.global::<AmountAdapter>();
            a.set_amount_text(format_minor(0, exp).into());
            a.set_can_charge(false);
            w.global::<AppAdapter>().set_screen(Screen::Amount);
        });
    }

    rt.spawn(engine_task(engine, cmd_rx, window.as_weak(), cancel, cfg));
    window.run().context("emulator window")?;
    Ok(())
}

async fn engine_task(
    mut engine: Engine<SimReader>,
    mut commands: mpsc::UnboundedReceiver<u64>,
    weak: slint::Weak<MainWindow>,
    cancel: Arc<Mutex<Option<watch::Sender<bool>>>>,
    cfg: Config,
) {
    // Recovery on start: what a crash left owed to the host goes now (advices, reversals).
    match engine.sync().await {
        Ok(s) if s.advices_left + s.reversals_left > 0 => {
            tracing::warn!(
                ?s,
                "the host is still owed messages; they go before the next payment"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "recovery sync failed"),
    }
    while let Some(amount) = commands.recv().await {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        if let Ok(mut c) = cancel.lock() {
            *c = Some(cancel_tx);
        }
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
        engine = engine.with_events(ev_tx);
        let w = weak.clone();
        let forward = tokio::spawn(async move {
            while let Some(ev) = ev_rx.recv().await {
                let _ = w.upgrade_in_event_loop(move |w| show_progress(&w, &ev));
            }
        });
        let result = engine.run(TxnKind::Sale, amount, Some(cancel_rx)).await;
        // The engine keeps the sender until replaced; drop it so the forwarder ends.
        let (dead_tx, _) = mpsc::unbounded_channel();
        engine = engine.with_events(dead_tx);
        let _ = forward.await;
        let (approved, title, detail, receipt) = match result {
            Ok(r) => {
                let text = receipt::render_text(&cfg, &r, Copy::Customer);
                // Stored before it is shown (the emulator's printer is the result screen).
                crate::ops::store_receipt(&mut engine.journal, &r, &text);
                if r.approved() {
                    let _ = engine.journal.set_printed(r.journal_id);
                }
                let title = match r.outcome.as_str() {
                    "approved" => "Approved".to_string(),
                    "declined" => "Declined".to_string(),
                    "cancelled" => "Cancelled".to_string(),
                    "host_unreachable" | "reversal_pending" => "Not authorised".to_string(),
                    other => other.replace('_', " "),
                };
                let detail = match (&r.host, &r.error) {
                    (_, Some(e)) => e.message.clone(),
                    (Some(h), None) => match &h.auth_code {
                        Some(code) => format!("Auth code {code}"),
                        None => format!("{} {}", h.response_code, h.response_text),
                    },
                    (None, None) => r
                        .kernel
                        .as_ref()
                        .map(|o| o.reason.to_string())
                        .unwrap_or_default(),
                };
                (r.approved(), title, detail, text)
            }
            Err(e) => (false, "Error".to_string(), e.to_string(), String::new()),
        };
        let _ = weak.upgrade_in_event_loop(move |w| {
            let r = w.global::<ResultAdapter>();
            r.set_approved(approved);
            r.set_title(title.into());
            r.set_detail(detail.into());
            r.set_receipt(receipt.into());
            w.global::<EmulatorAdapter>().set_can_tap(false);
            w.global::<AppAdapter>().set_screen(Screen::Result);
        });
    }
}

fn show_progress(w: &MainWindow, ev: &EngineEvent) {
    let p = w.global::<PresentAdapter>();
    match ev {
        EngineEvent::WaitingForCard => {
            p.set_lights(1);
            p.set_message("Present card".into());
        }
        EngineEvent::CardDetected => {
            p.set_lights(2);
            p.set_busy(true);
            p.set_message("Processing".into());
            p.set_detail("Hold the card still".into());
        }
        EngineEvent::CardRead => {
            p.set_lights(4);
            p.set_message("Card read OK".into());
            p.set_detail("Remove card".into());
        }
        EngineEvent::Authorising => {
            p.set_message("Authorising, please wait".into());
            p.set_detail(String::new().into());
        }
        // Book A Table 9-5: 21 "Present card again", 20 "See phone for instructions".
        EngineEvent::PresentAgain(ui) => {
            p.set_lights(1);
            p.set_busy(false);
            if ui.message == emv::outcome::Message::SeePhone {
                p.set_message("See phone for instructions".into());
                p.set_detail("Then present it again".into());
            } else {
                p.set_message("Present card again".into());
                p.set_detail("Hold it still until the beep".into());
            }
        }
    }
}
