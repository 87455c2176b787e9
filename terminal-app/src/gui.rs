//! `kassa emulator`: the terminal in a desktop window, with a panel of virtual cards that a
//! click taps onto the simulated reader and a virtual printer.
//!
//! The Slint event loop owns the main thread; the engine runs on the tokio runtime. UI
//! callbacks reach the engine through a channel ([`Cmd`]); engine events and results come back
//! with `upgrade_in_event_loop`. The controller ([`wire`]) knows no window system: the tests
//! drive it with Slint's testing backend.
//!
//! Languages: the screens start in `[ui] language`; the customer can switch with one tap on the
//! present-card screen; when the card is read, its Language Preference (5F2D, issuer country
//! 5F28 as the hint for Chinese script) switches the customer screens and the customer receipt;
//! after the transaction they return to the merchant's language.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use drivers::indicator::{CallbackOutput, Indicator, Sequencer, Status, lit};
use drivers::{AnyReader, ReaderSpec, SimReader, SimReaderHandle};
use tokio::sync::{mpsc, watch};
use ui::amount::AmountEntry;
use ui::slint::{self, ComponentHandle, ModelRc, VecModel};
use ui::{
    AmountAdapter, AppAdapter, EmulatorAdapter, ErrorAdapter, HistoryLine, IdleAdapter,
    LanguageChoice, MainWindow, OperatorAdapter, OperatorPage, PresentAdapter, PresentMessage,
    ResultAdapter, ResultKind, Screen, Theme, TipAdapter, TipChoice, TxnTitle, VirtualCardEntry,
};

use crate::config::{Config, Mode};
use crate::emulator::{EmulatorEnv, Paths};
use crate::engine::{Engine, EngineEvent, TxnExtras, TxnKind, TxnResult};
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

/// Opens the emulator window and runs until it is closed (or, with `quit_after`, until the
/// idle screen has been shown that long: a smoke test under Xvfb).
pub fn run(
    rt: &tokio::runtime::Runtime,
    paths: &Paths,
    cfg: Config,
    quit_after: Option<std::time::Duration>,
    tms_local: Option<crate::tms::Local>,
) -> anyhow::Result<()> {
    if !display_available() {
        anyhow::bail!(NO_DISPLAY);
    }
    let window = MainWindow::new().map_err(|e| anyhow::anyhow!("{NO_DISPLAY} ({e})"))?;
    let _wiring = start(rt, paths, cfg, &window, tms_local)?;
    if let Some(after) = quit_after {
        let timer = slint::Timer::default();
        timer.start(slint::TimerMode::SingleShot, after, || {
            println!("kassa emulator: idle screen shown; quitting (--quit-after-ms)");
            let _ = slint::quit_event_loop();
        });
        window.run().context("emulator window")?;
        drop(timer);
    } else {
        window.run().context("emulator window")?;
    }
    Ok(())
}

/// The device's payment screen (`kassa run`): full screen on whatever backend this build has
/// (DRM/KMS on the device), the configured hardware, no emulator panels; systemd hears READY
/// when the screen is up and a watchdog ping from the UI loop. A configuration error is shown
/// on the error screen with its message, and the process stays up.
pub fn run_device(
    rt: &tokio::runtime::Runtime,
    paths: &Paths,
    cfg: Result<Config, String>,
    quit_after: Option<std::time::Duration>,
    tms_local: Option<crate::tms::Local>,
) -> anyhow::Result<()> {
    let window = MainWindow::new().map_err(|e| {
        anyhow::anyhow!(
            "no screen: {e} (on the device: is /dev/dri/card0 or /dev/fb0 there and the user in group video?)"
        )
    })?;
    let _wiring = match cfg {
        Ok(cfg) => {
            let emulated = cfg.reader.kind == "sim";
            let w = start(rt, paths, cfg, &window, tms_local)?;
            // The emulator's side panels are for the desktop only.
            window.global::<AppAdapter>().set_emulator(false);
            if emulated {
                tracing::warn!("[reader] kind = \"sim\": no card can be tapped on this screen");
            }
            crate::notify::notify("STATUS=payment screen shown");
            Some(w)
        }
        Err(message) => {
            let e = window.global::<ErrorAdapter>();
            e.set_kind(ui::ErrorKind::Other);
            e.set_code(format!("config: {message}").into());
            window.global::<AppAdapter>().set_emulator(false);
            window.global::<AppAdapter>().set_screen(Screen::Error);
            crate::notify::notify("STATUS=configuration error (see the screen and the journal)");
            None
        }
    };
    window.window().set_fullscreen(true);
    crate::notify::notify("READY=1");
    let watchdog = slint::Timer::default();
    if let Some(every) = crate::notify::watchdog_interval() {
        watchdog.start(slint::TimerMode::Repeated, every, || {
            crate::notify::notify("WATCHDOG=1");
        });
    }
    let quit = slint::Timer::default();
    if let Some(after) = quit_after {
        quit.start(slint::TimerMode::SingleShot, after, || {
            println!("kassa run: screen shown; quitting (--quit-after-ms)");
            let _ = slint::quit_event_loop();
        });
    }
    window.run().context("payment screen")?;
    crate::notify::notify("STOPPING=1");
    Ok(())
}

/// Builds the emulator's engine (host simulator, virtual reader, journal) and wires it to
/// `window`. Keep the returned value alive as long as the window.
/// With `tms_local` and a `[tms] url`, a background poller fetches configuration bundles and
/// the engine task puts each in force between two transactions (docs/FLEET.md).
pub fn start(
    rt: &tokio::runtime::Runtime,
    paths: &Paths,
    cfg: Config,
    window: &MainWindow,
    tms_local: Option<crate::tms::Local>,
) -> anyhow::Result<Wiring> {
    let env = rt.block_on(EmulatorEnv::start(paths, &cfg, None))?;
    let (reader, tap) = SimReader::new("virtual reader");
    // The configured reader: the virtual one (cards tapped from the window's panel), or
    // hardware, whose cards are real and whose panel is hidden.
    let spec = cfg.reader_spec()?;
    let reader = if spec == ReaderSpec::Sim {
        AnyReader::Sim(reader.with_timing(cfg.rf_timing()))
    } else {
        // Opened inside the runtime: the serial port registers with its reactor. A reader
        // that is not there yet (unplugged at boot) is tried again at every transaction.
        let _guard = rt.enter();
        drivers::open::open_or_pending(&spec, crate::readers::pn532_config(&cfg))
    };
    let link = env.link(&cfg)?;
    // The payment screen is the journal's primary: it waits for a short command that holds
    // the lock, then recovers what a crash left.
    let journal = Journal::open_primary(&paths.journal(), std::time::Duration::from_secs(30))?;
    let vault = crate::vault::Vault::open(&paths.device_key())?;
    let mut journal = journal;
    // A fresh start of the payment screen ends any software update hold: the reboot it was
    // for has happened (or the update was abandoned).
    if let Err(e) = journal.release_update_hold() {
        tracing::warn!(error = %e, "update hold not released");
    }
    // The built-in host simulator knows only its test BDK: a terminal talking to it gets the
    // development PIN key when it has none, so the PIN screen works out of the box. A real
    // acquirer's key is loaded with `kassa keys load`.
    if cfg.acquirer.simulator
        && matches!(
            crate::keys::status(&paths.data_dir, &vault, &journal),
            Err(crate::keys::KeyError::NotLoaded)
        )
    {
        let (key, ksn) = sim::pinkeys::test_aes_initial_key();
        let key = crate::keys::InitialKey::Aes(key, ksn);
        match crate::keys::load(&paths.data_dir, &vault, &mut journal, &key, true) {
            Ok(()) => tracing::info!("loaded the development PIN key (simulator test BDK)"),
            Err(e) => tracing::warn!(error = %e, "no development PIN key"),
        }
    }
    let engine = Engine::new(cfg.clone(), reader, link, journal, vault)?.with_pin_pad(
        Box::new(crate::gui_pin::ScreenPinPad::new(window)),
        paths.data_dir.clone(),
    );
    let receipts = paths.data_dir.join("receipts");
    let bundles = tms_local
        .filter(|l| l.config.tms.url.is_some() || l.config.tms.heartbeat_url.is_some())
        .map(|local| {
            let (tx, rx) = mpsc::unbounded_channel();
            rt.spawn(crate::tms_cli::agent(paths.data_dir.clone(), local, tx));
            rx
        });
    Ok(wire(
        window,
        rt.handle(),
        engine,
        tap,
        env,
        cfg,
        receipts,
        bundles,
    ))
}

/// What the UI asks the engine task to do.
#[derive(Debug)]
enum Cmd {
    Pay {
        kind: TxnKind,
        amount: u64,
        tip: u64,
        /// Turns true when the operator cancels (created with the present-card screen, so a
        /// cancel before the engine starts the payment still counts).
        cancel: watch::Receiver<bool>,
    },
    /// A QR sale: the terminal shows a dynamic code for `amount`.
    PayQr {
        amount: u64,
        cancel: watch::Receiver<bool>,
    },
    /// Check the supervisor PIN (the counters and lock-out live in the journal).
    CheckPin(zeroize::Zeroizing<String>),
    /// Complete pre-authorization `id` with `amount`.
    Complete {
        id: i64,
        amount: u64,
    },
    VoidLast,
    Void(i64),
    History,
    Report(&'static str),
    /// The last transaction's receipt was printed.
    Printed,
}

/// UI-thread state of the controller.
struct UiState {
    entry: AmountEntry,
    kind: TxnKind,
    fare: u64,
    /// The pre-authorization an amount entry completes.
    completing: Option<i64>,
    /// Digits typed on the operator PIN pad.
    pin: zeroize::Zeroizing<String>,
}

/// Keeps the controller's parts alive.
pub struct Wiring {
    _env: Arc<EmulatorEnv>,
}

fn amount_text(cfg: &Config, minor: u64, language: &str) -> String {
    let lang = ui::lang::by_code(language).unwrap_or(&ui::lang::LANGUAGES[0]);
    format!(
        "{} {}",
        cfg.terminal.currency_code,
        ui::lang::format_amount(minor, cfg.terminal.currency_exponent, lang)
    )
}

/// Switches the screens' language; an unknown one stays on the current (logged).
fn select_language(w: &MainWindow, code: &str) {
    match ui::lang::select(code) {
        Ok(l) => {
            let p = w.global::<PresentAdapter>();
            p.set_language(l.code.into());
            // The amount on the customer's screen, written the way the language writes it.
            PAYING.with(|a| {
                if let Some((minor, currency, exponent)) = a.borrow().as_ref() {
                    p.set_amount_text(
                        format!(
                            "{currency} {}",
                            ui::lang::format_amount(*minor, *exponent, l)
                        )
                        .into(),
                    );
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "language not switched"),
    }
}

thread_local! {
    /// The amount being paid (minor units, currency, exponent), for re-writing it when the
    /// customer's language changes. UI thread only.
    static PAYING: RefCell<Option<(u64, String, u8)>> = const { RefCell::new(None) };
}

/// Speaks a prompt in `language` with espeak-ng when voice prompts are on and the device has it.
pub(crate) fn speak(w: &MainWindow, language: &str, text: &str) {
    if !w.global::<OperatorAdapter>().get_voice() {
        return;
    }
    let voice = match ui::lang::by_code(language).map(|l| l.code) {
        Some("zh_CN") => "cmn",
        Some("zh_TW") => "cmn",
        Some(code) => code,
        None => "en",
    };
    let text = text.to_string();
    std::thread::spawn(move || {
        let _ = std::process::Command::new("espeak-ng")
            .args(["-v", voice, &text])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    });
}

/// Wires the controller: window callbacks, the engine task on `rt`, the virtual card panel.
#[allow(clippy::too_many_arguments)]
fn wire(
    window: &MainWindow,
    rt: &tokio::runtime::Handle,
    engine: Engine<AnyReader>,
    tap: SimReaderHandle,
    env: EmulatorEnv,
    cfg: Config,
    receipts_dir: std::path::PathBuf,
    bundles: Option<mpsc::UnboundedReceiver<crate::tms::Applied>>,
) -> Wiring {
    PRINT_CFG.with(|c| *c.borrow_mut() = Some(cfg.clone()));
    let t = &cfg.terminal;
    // The screens' home language: `[ui] language`, or what the operator chose in the menu.
    let home = Rc::new(RefCell::new(cfg.ui.language.clone()));
    select_language(window, &cfg.ui.language);
    let theme = window.global::<Theme>();
    theme.set_portrait(cfg.ui.layout != "landscape");
    theme.set_tall(cfg.ui.layout == "portrait-854");
    theme.set_large_text(cfg.ui.large_text);
    theme.set_high_contrast(cfg.ui.high_contrast);
    window.global::<OperatorAdapter>().set_voice(cfg.ui.voice);
    window.global::<OperatorAdapter>().set_sound(cfg.ui.sound);
    window
        .global::<AppAdapter>()
        .set_emulator(cfg.reader.kind == "sim");
    window.global::<AppAdapter>().set_screen(Screen::Idle);
    start_indicators(window, &cfg);
    indicate(Status::Idle);
    let idle = window.global::<IdleAdapter>();
    idle.set_merchant(t.merchant_name.clone().into());
    idle.set_mode(
        match t.mode {
            Mode::Taxi => "taxi",
            Mode::Countertop => "countertop",
        }
        .into(),
    );
    let langs: Vec<LanguageChoice> = cfg
        .ui
        .customer_languages
        .iter()
        .filter_map(|c| ui::lang::by_code(c))
        .map(|l| LanguageChoice {
            code: l.code.into(),
            name: l.name.into(),
        })
        .collect();
    window
        .global::<PresentAdapter>()
        .set_languages(ModelRc::new(VecModel::from(langs)));
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
    let amount_adapter = window.global::<AmountAdapter>();
    amount_adapter.set_currency(t.currency_code.clone().into());
    amount_adapter.set_amount_text(ui::amount::format_minor(0, t.currency_exponent).into());

    let state = Rc::new(RefCell::new(UiState {
        entry: AmountEntry::new(t.currency_exponent, cfg.max_amount_minor()),
        kind: TxnKind::Sale,
        fare: 0,
        completing: None,
        pin: zeroize::Zeroizing::new(String::new()),
    }));
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel::<Cmd>();
    let cancel: Arc<Mutex<Option<watch::Sender<bool>>>> = Arc::new(Mutex::new(None));
    let env = Arc::new(env);

    // Idle.
    {
        let weak = window.as_weak();
        let state = state.clone();
        let cfg = cfg.clone();
        idle.on_sale(move || {
            let Some(w) = weak.upgrade() else { return };
            open_amount(
                &w,
                &mut state.borrow_mut(),
                &cfg,
                if cfg.terminal.mode == Mode::Taxi {
                    TxnTitle::Fare
                } else {
                    TxnTitle::Sale
                },
                TxnKind::Sale,
            );
        });
    }
    {
        let weak = window.as_weak();
        let state = state.clone();
        let has_pin = cfg.operator.supervisor_pin.is_some();
        idle.on_menu(move || {
            let Some(w) = weak.upgrade() else { return };
            state.borrow_mut().pin.clear();
            let op = w.global::<OperatorAdapter>();
            op.set_pin_length(0);
            op.set_pin_wrong(false);
            op.set_page(if has_pin {
                OperatorPage::Pin
            } else {
                OperatorPage::Menu
            });
            w.global::<AppAdapter>().set_screen(Screen::Operator);
        });
    }
    // Amount entry.
    {
        let weak = window.as_weak();
        let state = state.clone();
        amount_adapter.on_key(move |key| {
            let Some(w) = weak.upgrade() else { return };
            let mut s = state.borrow_mut();
            let accepted = s.entry.key(key.as_str());
            let a = w.global::<AmountAdapter>();
            a.set_amount_text(s.entry.text().into());
            a.set_can_charge(s.entry.minor() > 0);
            a.set_at_maximum(!accepted);
        });
    }
    {
        let weak = window.as_weak();
        amount_adapter.on_back(move || {
            let Some(w) = weak.upgrade() else { return };
            w.global::<AppAdapter>().set_screen(Screen::Idle);
            indicate(Status::Idle);
        });
    }
    {
        let weak = window.as_weak();
        let state = state.clone();
        let cfg = cfg.clone();
        let cmd_tx = cmd_tx.clone();
        let cancel = cancel.clone();
        let home = home.clone();
        amount_adapter.on_charge(move || {
            let Some(w) = weak.upgrade() else { return };
            let mut s = state.borrow_mut();
            let fare = s.entry.minor();
            if fare == 0 {
                return;
            }
            s.fare = fare;
            if let Some(id) = s.completing.take() {
                // No card: the completion goes to the host with the pre-authorization's data.
                let p = w.global::<PresentAdapter>();
                p.set_amount_text(amount_text(&cfg, fare, &home.borrow()).into());
                p.set_message(PresentMessage::Authorising);
                indicate(Status::NotReady);
                p.set_busy(true);
                w.global::<AppAdapter>().set_screen(Screen::Present);
                let _ = cmd_tx.send(Cmd::Complete { id, amount: fare });
                return;
            }
            if s.kind == TxnKind::Sale && cfg.tips_enabled() {
                let tip = w.global::<TipAdapter>();
                tip.set_fare_text(amount_text(&cfg, fare, &home.borrow()).into());
                let choices: Vec<TipChoice> = cfg
                    .terminal
                    .tip_presets
                    .iter()
                    .map(|p| {
                        let t = crate::ops::tip_minor(fare, crate::ops::Tip::Percent(*p as u32));
                        TipChoice {
                            percent: *p as i32,
                            tip_text: amount_text(&cfg, t, &home.borrow()).into(),
                            total_text: amount_text(&cfg, fare + t, &home.borrow()).into(),
                        }
                    })
                    .collect();
                tip.set_choices(ModelRc::new(VecModel::from(choices)));
                w.global::<AppAdapter>().set_screen(Screen::Tip);
                return;
            }
            start_payment(&w, &cfg, &cmd_tx, &cancel, s.kind, fare, 0, &home.borrow());
        });
    }
    // Pay by QR code: no tap; the code appears once the host has registered the order.
    {
        let weak = window.as_weak();
        let state = state.clone();
        let cfg = cfg.clone();
        let cmd_tx = cmd_tx.clone();
        let cancel = cancel.clone();
        let home = home.clone();
        amount_adapter.on_charge_qr(move || {
            let Some(w) = weak.upgrade() else { return };
            let mut s = state.borrow_mut();
            let fare = s.entry.minor();
            if fare == 0 || s.kind != TxnKind::Sale || !cfg.qr.enabled {
                return;
            }
            s.fare = fare;
            let p = w.global::<PresentAdapter>();
            p.set_amount_text(amount_text(&cfg, fare, &home.borrow()).into());
            p.set_showing_qr(false);
            p.set_message(PresentMessage::Authorising);
            p.set_busy(false);
            indicate(Status::Processing);
            w.global::<EmulatorAdapter>().set_can_tap(false);
            w.global::<AppAdapter>().set_screen(Screen::Present);
            let (cancel_tx, cancel_rx) = watch::channel(false);
            if let Ok(mut c) = cancel.lock() {
                *c = Some(cancel_tx);
            }
            let _ = cmd_tx.send(Cmd::PayQr {
                amount: fare,
                cancel: cancel_rx,
            });
        });
    }
    // Tips.
    {
        let weak = window.as_weak();
        let state = state.clone();
        let cfg = cfg.clone();
        let cmd_tx = cmd_tx.clone();
        let cancel = cancel.clone();
        let home = home.clone();
        window.global::<TipAdapter>().on_choose(move |percent| {
            let Some(w) = weak.upgrade() else { return };
            let fare = state.borrow().fare;
            let tip = crate::ops::tip_minor(fare, crate::ops::Tip::Percent(percent.max(0) as u32));
            start_payment(
                &w,
                &cfg,
                &cmd_tx,
                &cancel,
                TxnKind::Sale,
                fare,
                tip,
                &home.borrow(),
            );
        });
    }
    {
        let weak = window.as_weak();
        let state = state.clone();
        let cfg = cfg.clone();
        let cmd_tx = cmd_tx.clone();
        let cancel = cancel.clone();
        let home = home.clone();
        window.global::<TipAdapter>().on_no_tip(move || {
            let Some(w) = weak.upgrade() else { return };
            let fare = state.borrow().fare;
            start_payment(
                &w,
                &cfg,
                &cmd_tx,
                &cancel,
                TxnKind::Sale,
                fare,
                0,
                &home.borrow(),
            );
        });
    }
    {
        let weak = window.as_weak();
        window.global::<TipAdapter>().on_back(move || {
            let Some(w) = weak.upgrade() else { return };
            w.global::<AppAdapter>().set_screen(Screen::Amount);
        });
    }
    // Present card: cancel, language, the virtual card panel.
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
        window
            .global::<PresentAdapter>()
            .on_choose_language(move |code| {
                let Some(w) = weak.upgrade() else { return };
                select_language(&w, &code);
            });
    }
    {
        let env = env.clone();
        let weak = window.as_weak();
        emu.on_tap(move |name| {
            if let Some(Ok(card)) = env.card(name.as_str()) {
                tap.tap(Box::new(card));
            }
            if let Some(w) = weak.upgrade() {
                w.global::<EmulatorAdapter>().set_can_tap(false);
            }
        });
    }
    {
        let env = env.clone();
        let weak = window.as_weak();
        emu.on_pay_with_phone(move |action| {
            let Some(w) = weak.upgrade() else { return };
            let emu = w.global::<EmulatorAdapter>();
            emu.set_can_pay_phone(false);
            let Some(payload) = QR_ON_SCREEN.with(|q| q.borrow().clone()) else {
                return;
            };
            let action = match action.as_str() {
                "reject" => sim::WalletAction::Reject,
                _ => sim::WalletAction::Complete,
            };
            let note = match env.host.as_ref() {
                Some(h) => match h.wallet(&payload, action) {
                    Ok(r) => format!("phone: {} ({})", r.reference, r.response_code),
                    Err(e) => format!("phone: {e}"),
                },
                None => "phone: the acquirer is not the built-in simulator".to_string(),
            };
            emu.set_host_status(note.into());
        });
    }
    // Result and receipt choice.
    {
        let weak = window.as_weak();
        let cmd_tx = cmd_tx.clone();
        let cfg = cfg.clone();
        window.global::<ResultAdapter>().on_print(move || {
            let Some(w) = weak.upgrade() else { return };
            let r = w.global::<ResultAdapter>();
            let (qr, language) = SHOWN.with(|x| x.borrow().clone());
            print_virtual(&w, &cfg, &r.get_receipt(), &language, qr);
            let _ = cmd_tx.send(Cmd::Printed);
            r.set_receipt_chosen(true);
        });
    }
    {
        let weak = window.as_weak();
        window.global::<EmulatorAdapter>().on_save_paper(move || {
            let Some(w) = weak.upgrade() else { return };
            let dir = receipts_dir.clone();
            let note = LAST_PAPER.with(|p| match p.borrow().as_ref() {
                None => "nothing printed yet".to_string(),
                Some(r) => {
                    let name = chrono::Local::now().format("receipt-%Y%m%d-%H%M%S.png");
                    let path = dir.join(name.to_string());
                    match std::fs::create_dir_all(&dir)
                        .map_err(anyhow::Error::from)
                        .and_then(|_| crate::paper::save_png(r, &path))
                    {
                        Ok(()) => format!("saved {}", path.display()),
                        Err(e) => format!("not saved: {e}"),
                    }
                }
            });
            w.global::<EmulatorAdapter>().set_paper_note(note.into());
        });
    }
    {
        let weak = window.as_weak();
        window.global::<ResultAdapter>().on_no_receipt(move || {
            let Some(w) = weak.upgrade() else { return };
            w.global::<ResultAdapter>().set_receipt_chosen(true);
        });
    }
    {
        let weak = window.as_weak();
        window.global::<ResultAdapter>().on_e_receipt(move || {
            let Some(w) = weak.upgrade() else { return };
            let r = w.global::<ResultAdapter>();
            // The configured e-receipt address (the transaction reference, no card data);
            // without one, the receipt itself.
            let data = SHOWN
                .with(|x| x.borrow().0.clone())
                .unwrap_or_else(|| r.get_receipt().to_string());
            match ui::qr::image(data.as_bytes(), 300) {
                Ok(img) => {
                    r.set_e_receipt_qr(img);
                    r.set_showing_qr(true);
                    r.set_receipt_chosen(true);
                }
                // Printing stays on offer.
                Err(e) => tracing::warn!(error = %e, "no e-receipt"),
            }
        });
    }
    {
        let weak = window.as_weak();
        let state = state.clone();
        let home = home.clone();
        let exp = t.currency_exponent;
        window.global::<ResultAdapter>().on_done(move || {
            let Some(w) = weak.upgrade() else { return };
            let mut s = state.borrow_mut();
            s.entry.key("C");
            let a = w.global::<AmountAdapter>();
            a.set_amount_text(ui::amount::format_minor(0, exp).into());
            a.set_can_charge(false);
            a.set_at_maximum(false);
            // Back to the merchant's language for the next customer.
            select_language(&w, &home.borrow());
            w.global::<AppAdapter>().set_screen(Screen::Idle);
            indicate(Status::Idle);
        });
    }
    {
        let weak = window.as_weak();
        let home = home.clone();
        window.global::<ErrorAdapter>().on_dismiss(move || {
            let Some(w) = weak.upgrade() else { return };
            select_language(&w, &home.borrow());
            w.global::<AppAdapter>().set_screen(Screen::Idle);
            indicate(Status::Idle);
        });
    }
    // Operator menu.
    {
        let weak = window.as_weak();
        let state = state.clone();
        let cmd_tx = cmd_tx.clone();
        window.global::<OperatorAdapter>().on_pin_key(move |key| {
            let Some(w) = weak.upgrade() else { return };
            let op = w.global::<OperatorAdapter>();
            let mut s = state.borrow_mut();
            match key.as_str() {
                // Checked by the engine task against the journal's counters: three wrong PINs
                // lock the menu for `[operator] lockout_s`, across restarts.
                "OK" => {
                    let pin = zeroize::Zeroizing::new(std::mem::take(&mut *s.pin));
                    op.set_pin_length(0);
                    op.set_busy(true);
                    let _ = cmd_tx.send(Cmd::CheckPin(pin));
                }
                d if d.len() == 1 && d.as_bytes()[0].is_ascii_digit() && s.pin.len() < 12 => {
                    s.pin.push_str(d);
                    op.set_pin_length(s.pin.len() as i32);
                }
                _ => {}
            }
        });
    }
    {
        let weak = window.as_weak();
        let state = state.clone();
        let cfg = cfg.clone();
        let cmd_tx = cmd_tx.clone();
        let home = home.clone();
        window.global::<OperatorAdapter>().on_action(move |action| {
            let Some(w) = weak.upgrade() else { return };
            let op = w.global::<OperatorAdapter>();
            match action.as_str() {
                // An unreferenced refund needs the supervisor PIN, as on the command line.
                "refund" if cfg.operator.supervisor_pin.is_none() => {
                    op.set_message(
                        "supervisor_pin_not_set: an unreferenced refund needs a supervisor PIN ([operator] supervisor_pin)"
                            .into(),
                    );
                    op.set_page(OperatorPage::Message);
                }
                "refund" => open_amount(
                    &w,
                    &mut state.borrow_mut(),
                    &cfg,
                    TxnTitle::Refund,
                    TxnKind::Refund,
                ),
                "preauth" => open_amount(
                    &w,
                    &mut state.borrow_mut(),
                    &cfg,
                    TxnTitle::Preauth,
                    TxnKind::PreAuth,
                ),
                "void-last" => {
                    op.set_busy(true);
                    let _ = cmd_tx.send(Cmd::VoidLast);
                }
                "history" => {
                    op.set_busy(true);
                    let _ = cmd_tx.send(Cmd::History);
                }
                "report-x" => {
                    op.set_busy(true);
                    let _ = cmd_tx.send(Cmd::Report("x"));
                }
                "report-z" => {
                    op.set_busy(true);
                    let _ = cmd_tx.send(Cmd::Report("z"));
                }
                "settings" => op.set_page(OperatorPage::Settings),
                "language" => {
                    // The next of the UI's languages becomes the screens' language until the
                    // terminal restarts (the default lives in `[ui] language`).
                    let current = w.global::<PresentAdapter>().get_language().to_string();
                    let i = ui::lang::LANGUAGES
                        .iter()
                        .position(|l| l.code == current)
                        .unwrap_or(0);
                    let next = ui::lang::LANGUAGES[(i + 1) % ui::lang::LANGUAGES.len()].code;
                    select_language(&w, next);
                    *home.borrow_mut() = next.to_string();
                }
                "menu" => op.set_page(OperatorPage::Menu),
                _ => {
                    state.borrow_mut().pin.clear();
                    op.set_pin_length(0);
                    select_language(&w, &home.borrow());
                    w.global::<AppAdapter>().set_screen(Screen::Idle);
                    indicate(Status::Idle);
                }
            }
        });
    }
    {
        let cmd_tx = cmd_tx.clone();
        let weak = window.as_weak();
        window.global::<OperatorAdapter>().on_void(move |id| {
            if let Some(w) = weak.upgrade() {
                w.global::<OperatorAdapter>().set_busy(true);
            }
            let _ = cmd_tx.send(Cmd::Void(id as i64));
        });
    }
    {
        let weak = window.as_weak();
        let state = state.clone();
        let cfg = cfg.clone();
        window.global::<OperatorAdapter>().on_complete(move |id| {
            let Some(w) = weak.upgrade() else { return };
            let mut s = state.borrow_mut();
            open_amount(&w, &mut s, &cfg, TxnTitle::Completion, TxnKind::Completion);
            s.completing = Some(id as i64);
        });
    }

    rt.spawn(engine_task(engine, cmd_rx, window.as_weak(), cfg, bundles));
    Wiring { _env: env }
}

fn open_amount(w: &MainWindow, s: &mut UiState, cfg: &Config, title: TxnTitle, kind: TxnKind) {
    s.kind = kind;
    s.completing = None;
    s.entry.key("C");
    let a = w.global::<AmountAdapter>();
    a.set_title(title);
    a.set_amount_text(ui::amount::format_minor(0, cfg.terminal.currency_exponent).into());
    a.set_can_charge(false);
    a.set_at_maximum(false);
    a.set_qr_offered(cfg.qr.enabled && kind == TxnKind::Sale && title != TxnTitle::Completion);
    w.global::<AppAdapter>().set_screen(Screen::Amount);
}

#[allow(clippy::too_many_arguments)]
fn start_payment(
    w: &MainWindow,
    cfg: &Config,
    cmd_tx: &mpsc::UnboundedSender<Cmd>,
    cancel: &Arc<Mutex<Option<watch::Sender<bool>>>>,
    kind: TxnKind,
    fare: u64,
    tip: u64,
    language: &str,
) {
    let p = w.global::<PresentAdapter>();
    p.set_amount_text(amount_text(cfg, fare + tip, language).into());
    PAYING.with(|a| {
        *a.borrow_mut() = Some((
            fare + tip,
            cfg.terminal.currency_code.clone(),
            cfg.terminal.currency_exponent,
        ))
    });
    p.set_message(PresentMessage::PresentCard);
    indicate(Status::Ready);
    p.set_busy(false);
    w.global::<EmulatorAdapter>().set_can_tap(true);
    w.global::<AppAdapter>().set_screen(Screen::Present);
    speak(
        w,
        language,
        &ui::lang::tr(language, "Voice", "Please tap your card"),
    );
    let (cancel_tx, cancel_rx) = watch::channel(false);
    if let Ok(mut c) = cancel.lock() {
        *c = Some(cancel_tx);
    }
    let _ = cmd_tx.send(Cmd::Pay {
        kind,
        amount: fare + tip,
        tip,
        cancel: cancel_rx,
    });
}

/// What the engine task takes next: a command from the screen, or a configuration bundle.
enum Next {
    Command(Cmd),
    Bundle(Box<crate::tms::Applied>),
}

async fn engine_task(
    mut engine: Engine<AnyReader>,
    mut commands: mpsc::UnboundedReceiver<Cmd>,
    weak: slint::Weak<MainWindow>,
    mut cfg: Config,
    mut bundles: Option<mpsc::UnboundedReceiver<crate::tms::Applied>>,
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
    let mut last_id = None;
    loop {
        // A configuration bundle is taken only here, between two commands: never during a
        // transaction.
        let next = match bundles.as_mut() {
            Some(rx) => tokio::select! {
                c = commands.recv() => c.map(Next::Command),
                b = rx.recv() => match b {
                    Some(b) => Some(Next::Bundle(Box::new(b))),
                    None => {
                        bundles = None;
                        continue;
                    }
                },
            },
            None => commands.recv().await.map(Next::Command),
        };
        let cmd = match next {
            None => break,
            Some(Next::Command(cmd)) => cmd,
            Some(Next::Bundle(applied)) => {
                match engine.reconfigure(applied.config.clone()) {
                    Ok(()) => {
                        cfg = applied.config;
                        let shown = cfg.clone();
                        let _ = weak.upgrade_in_event_loop(move |w| {
                            w.global::<IdleAdapter>()
                                .set_merchant(shown.terminal.merchant_name.clone().into());
                            PRINT_CFG.with(|c| *c.borrow_mut() = Some(shown));
                        });
                        tracing::info!(version = applied.version, "configuration bundle in force");
                    }
                    Err(e) => tracing::error!(error = %e, "configuration bundle not put in force"),
                }
                continue;
            }
        };
        match cmd {
            Cmd::Pay {
                kind,
                amount,
                tip,
                cancel,
            } => {
                last_id = pay(&mut engine, &weak, cancel, &cfg, kind, amount, tip).await;
            }
            Cmd::PayQr { amount, cancel } => {
                last_id = pay_qr(&mut engine, &weak, cancel, &cfg, amount).await;
            }
            Cmd::CheckPin(pin) => {
                let checked =
                    crate::ops::check_supervisor_pin(&mut engine.journal, &cfg, Some(pin.as_str()));
                let _ = weak.upgrade_in_event_loop(move |w| {
                    let op = w.global::<OperatorAdapter>();
                    op.set_busy(false);
                    match checked {
                        Ok(()) => {
                            op.set_pin_wrong(false);
                            op.set_locked(false);
                            op.set_page(OperatorPage::Menu);
                        }
                        Err((code, _)) => {
                            op.set_locked(code == "operator_locked");
                            op.set_pin_wrong(code != "operator_locked");
                        }
                    }
                });
            }
            Cmd::Complete { id, amount } => {
                let result = engine.complete(id, amount).await;
                engine.link.close().await;
                last_id = result.as_ref().ok().map(|r| r.journal_id);
                let shown = match result {
                    Ok(r) => result_view(&cfg, &r, &mut engine),
                    Err(e) => ResultShown {
                        kind: ResultKind::Error,
                        approval_code: String::new(),
                        detail: e.to_string(),
                        receipt: String::new(),
                        approved: false,
                        merchant_copy: None,
                        e_receipt: None,
                        language: cfg.ui.language.clone(),
                    },
                };
                show_result(&weak, shown);
            }
            Cmd::Printed => {
                if let Some(id) = last_id {
                    let _ = engine.journal.set_printed(id);
                }
            }
            Cmd::VoidLast | Cmd::Void(_) => {
                let id = match cmd {
                    Cmd::Void(id) => Some(id),
                    _ => engine.journal.last_voidable().ok().flatten(),
                };
                let text = match id {
                    None => "nothing_to_void: no approved transaction in the open batch".into(),
                    Some(id) => match engine.void(id).await {
                        Ok(Ok(state)) => format!("#{id}: {}", state.name()),
                        Ok(Err((code, message))) => format!("#{id}: {code}: {message}"),
                        Err(e) => format!("#{id}: journal: {e}"),
                    },
                };
                engine.link.close().await;
                show_operator_text(&weak, OperatorPage::Message, text);
            }
            Cmd::History => {
                let rows = engine.journal.recent(30).unwrap_or_default();
                let batch = engine.journal.current_batch().unwrap_or(0);
                let lines: Vec<HistoryLine> = rows
                    .iter()
                    .map(|r| HistoryLine {
                        id: r.id as i32,
                        text: format!(
                            "#{} {} {} {} {}",
                            r.id,
                            r.txn_type,
                            ui::amount::format_minor(
                                r.amount_minor,
                                cfg.terminal.currency_exponent
                            ),
                            r.state,
                            r.pan_masked.clone().unwrap_or_default()
                        )
                        .into(),
                        voidable: matches!(r.state.as_str(), "approved" | "offline_approved")
                            && (r.batch == batch || r.txn_type == "preauth"),
                        completable: r.txn_type == "preauth"
                            && r.state == "approved"
                            && engine.journal.completion_of(r.id).ok().flatten().is_none(),
                    })
                    .collect();
                let _ = weak.upgrade_in_event_loop(move |w| {
                    let op = w.global::<OperatorAdapter>();
                    op.set_busy(false);
                    op.set_history(ModelRc::new(VecModel::from(lines)));
                    if w.global::<AppAdapter>().get_screen() == Screen::Operator
                        && op.get_page() != OperatorPage::Pin
                    {
                        op.set_page(OperatorPage::History);
                    }
                });
            }
            Cmd::Report(kind) => {
                let exp = cfg.terminal.currency_exponent;
                let text = if kind == "x" {
                    match crate::ops::x_report(&engine.journal, &cfg) {
                        Ok(r) => crate::ops::report_text(&r, exp),
                        Err(e) => format!("X report: {e}"),
                    }
                } else {
                    match crate::ops::z_close(&mut engine, &cfg).await {
                        Ok((r, end)) => format!("{}{end:?}\n", crate::ops::report_text(&r, exp)),
                        Err(e) => format!("Z report: {e}"),
                    }
                };
                show_operator_text(&weak, OperatorPage::Report, text);
            }
        }
    }
}

fn show_operator_text(weak: &slint::Weak<MainWindow>, page: OperatorPage, text: String) {
    let _ = weak.upgrade_in_event_loop(move |w| {
        let op = w.global::<OperatorAdapter>();
        op.set_busy(false);
        // The operator left the menu meanwhile (a customer may be paying): the answer waits
        // in the menu, it does not take the screen.
        if w.global::<AppAdapter>().get_screen() != Screen::Operator
            || op.get_page() == OperatorPage::Pin
        {
            if page == OperatorPage::Report {
                op.set_report_text(text.into());
            } else {
                op.set_message(text.into());
            }
            return;
        }
        if page == OperatorPage::Report {
            op.set_report_text(text.into());
        } else {
            op.set_message(text.into());
        }
        op.set_page(page);
        w.global::<AppAdapter>().set_screen(Screen::Operator);
    });
}

async fn pay(
    engine: &mut Engine<AnyReader>,
    weak: &slint::Weak<MainWindow>,
    cancel_rx: watch::Receiver<bool>,
    cfg: &Config,
    kind: TxnKind,
    amount: u64,
    tip: u64,
) -> Option<i64> {
    let forward = forward_progress(engine, weak);
    let extras = TxnExtras {
        original_id: None,
        tip_minor: tip,
    };
    let result = engine
        .run_full(
            kind,
            amount,
            extras,
            Some(cancel_rx),
            crate::engine::Overrides::default(),
        )
        .await;
    finish_payment(engine, weak, cfg, forward, result).await
}

/// One QR sale through the engine, its progress on the screen, then the result.
async fn pay_qr(
    engine: &mut Engine<AnyReader>,
    weak: &slint::Weak<MainWindow>,
    cancel_rx: watch::Receiver<bool>,
    cfg: &Config,
    amount: u64,
) -> Option<i64> {
    let forward = forward_progress(engine, weak);
    let result = engine
        .run_qr(
            amount,
            TxnExtras::default(),
            crate::qrpay::QrSource::Show,
            Some(cancel_rx),
        )
        .await;
    finish_payment(engine, weak, cfg, forward, result).await
}

/// Sends the engine's progress events to the screen until the engine detaches them.
fn forward_progress(
    engine: &mut Engine<AnyReader>,
    weak: &slint::Weak<MainWindow>,
) -> tokio::task::JoinHandle<()> {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    engine.set_events(ev_tx);
    let w = weak.clone();
    tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            let _ = w.upgrade_in_event_loop(move |w| show_progress(&w, &ev));
        }
    })
}

/// Stops the progress events, then shows the result (or the terminal's own failure).
async fn finish_payment(
    engine: &mut Engine<AnyReader>,
    weak: &slint::Weak<MainWindow>,
    cfg: &Config,
    forward: tokio::task::JoinHandle<()>,
    result: Result<crate::engine::TxnResult, crate::journal::JournalError>,
) -> Option<i64> {
    engine.detach_events();
    let _ = forward.await;
    let id = result.as_ref().ok().map(|r| r.journal_id);
    let shown = match result {
        Ok(r) => result_view(cfg, &r, engine),
        Err(e) => ResultShown {
            kind: ResultKind::Error,
            approval_code: String::new(),
            detail: e.to_string(),
            receipt: String::new(),
            approved: false,
            merchant_copy: None,
            e_receipt: None,
            language: cfg.ui.language.clone(),
        },
    };
    show_result(weak, shown);
    id
}

thread_local! {
    /// The QR payload on the screen, for the emulator's phone. UI thread only.
    static QR_ON_SCREEN: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Shows a result on the result screen and speaks it.
fn show_result(weak: &slint::Weak<MainWindow>, shown: ResultShown) {
    let _ = weak.upgrade_in_event_loop(move |w| {
        if shown.kind == ResultKind::Error {
            // The terminal itself failed (the journal, a stored record): the error screen
            // says what to do, with the code for support.
            let e = w.global::<ErrorAdapter>();
            e.set_kind(ui::ErrorKind::Other);
            e.set_code(shown.detail.clone().into());
            w.global::<EmulatorAdapter>().set_can_tap(false);
            w.global::<AppAdapter>().set_screen(Screen::Error);
            return;
        }
        w.global::<PresentAdapter>().set_showing_qr(false);
        w.global::<EmulatorAdapter>().set_can_pay_phone(false);
        QR_ON_SCREEN.with(|q| *q.borrow_mut() = None);
        let r = w.global::<ResultAdapter>();
        r.set_kind(shown.kind);
        r.set_approval_code(shown.approval_code.into());
        r.set_detail(shown.detail.into());
        r.set_receipt(shown.receipt.clone().into());
        r.set_receipt_chosen(false);
        r.set_showing_qr(false);
        r.set_e_receipt_available(!shown.receipt.is_empty());
        SHOWN.with(|x| *x.borrow_mut() = (shown.e_receipt.clone(), shown.language.clone()));
        if let Some(copy) = &shown.merchant_copy {
            PRINT_CFG.with(|c| {
                if let Some(cfg) = c.borrow().as_ref() {
                    print_virtual(&w, cfg, copy, &cfg.ui.language, None);
                }
            });
        }
        w.global::<EmulatorAdapter>().set_can_tap(false);
        w.global::<AppAdapter>().set_screen(Screen::Result);
        if !shown.approved {
            indicate(Status::Error);
        }
        if !shown.approved && w.global::<OperatorAdapter>().get_sound() {
            crate::sound::play(crate::sound::Tone::Alert);
        }
        let lang = w.global::<PresentAdapter>().get_language().to_string();
        speak(&w, &lang, &voice_words(&lang, shown.kind));
    });
}

thread_local! {
    /// The status lights (and buzzer): on the screen, and on GPIO where configured. UI
    /// thread only.
    static INDICATORS: RefCell<Vec<Box<dyn Indicator>>> = const { RefCell::new(Vec::new()) };
}

/// Shows `status` on every indicator.
fn indicate(status: Status) {
    INDICATORS.with(|i| {
        for ind in i.borrow_mut().iter_mut() {
            ind.show(status);
        }
    });
}

/// The screen's status lights (always) and the GPIO lights and buzzer (`[indicators]
/// kind = "gpio"`), each played by its own sequencer (EMV Book A §9.2).
fn start_indicators(window: &MainWindow, cfg: &Config) {
    let mut list: Vec<Box<dyn Indicator>> = Vec::new();
    if cfg.indicators.kind != "none" {
        let weak = window.as_weak();
        let screen = Sequencer::new(CallbackOutput(move |lights, _tone| {
            let n = lit(lights);
            let _ = weak.upgrade_in_event_loop(move |w| {
                w.global::<PresentAdapter>().set_lights(n);
            });
        }));
        match screen {
            Ok(s) => list.push(Box::new(s)),
            Err(e) => tracing::warn!(error = %e, "screen status lights not started"),
        }
    }
    if cfg.indicators.kind == "gpio" {
        #[cfg(feature = "pi")]
        {
            let i = &cfg.indicators;
            let pins = drivers::indicator::gpio::GpioPins {
                lights: [i.lights[0], i.lights[1], i.lights[2], i.lights[3]],
                buzzer: i.buzzer,
                active_low: i.active_low,
            };
            match drivers::indicator::gpio::GpioOutput::open(&pins).map(Sequencer::new) {
                Ok(Ok(s)) => list.push(Box::new(s)),
                Ok(Err(e)) => tracing::warn!(error = %e, "GPIO indicators not started"),
                Err(e) => tracing::warn!(error = %e, "GPIO indicators not started"),
            }
        }
        #[cfg(not(feature = "pi"))]
        tracing::warn!("[indicators] kind = \"gpio\" needs a build with the `pi` feature");
    }
    INDICATORS.with(|i| *i.borrow_mut() = list);
}

/// The outcome spoken in `lang` (voice prompts).
fn voice_words(lang: &str, kind: ResultKind) -> String {
    match kind {
        ResultKind::Approved | ResultKind::ApprovedOffline => {
            ui::lang::tr(lang, "Voice", "Approved")
        }
        ResultKind::ApprovedSign => ui::lang::tr(lang, "Voice", "Approved, please sign"),
        ResultKind::Declined => ui::lang::tr(lang, "Voice", "Declined"),
        ResultKind::NotAuthorised => ui::lang::tr(lang, "Voice", "Not authorised"),
        ResultKind::Cancelled => ui::lang::tr(lang, "Voice", "Cancelled"),
        ResultKind::TryAgain => ui::lang::tr(lang, "Voice", "Please try again"),
        ResultKind::TryAnotherInterface => {
            ui::lang::tr(lang, "Voice", "Please insert or swipe card")
        }
        ResultKind::UseAnotherCard => ui::lang::tr(lang, "Voice", "Please use another card"),
        ResultKind::Refused => ui::lang::tr(lang, "Voice", "Not allowed"),
        _ => ui::lang::tr(lang, "Voice", "Something went wrong"),
    }
}

/// What the result screen shows.
struct ResultShown {
    kind: ResultKind,
    approval_code: String,
    detail: String,
    receipt: String,
    approved: bool,
    /// The merchant copy with the signature line, printed at once when the CVM is a
    /// signature (whatever the customer chooses).
    merchant_copy: Option<String>,
    /// The e-receipt address (`[printer] e_receipt_url`), if configured.
    e_receipt: Option<String>,
    /// The customer copy's language (for the virtual printer's fonts).
    language: String,
}

fn result_view(cfg: &Config, r: &TxnResult, engine: &mut Engine<AnyReader>) -> ResultShown {
    let receipt_text = receipt::render_text(cfg, r, Copy::Customer);
    // Stored before it is shown (the virtual printer prints it on request).
    crate::ops::store_receipt(&mut engine.journal, r, &receipt_text);
    let signature = r
        .kernel
        .as_ref()
        .is_some_and(|o| o.cvm == emv::outcome::Cvm::Signature);
    let kind = match r.outcome.as_str() {
        "approved" if r.offline.is_some() => ResultKind::ApprovedOffline,
        "approved" if signature => ResultKind::ApprovedSign,
        "approved" => ResultKind::Approved,
        "declined" => ResultKind::Declined,
        "cancelled" => ResultKind::Cancelled,
        // A QR payment whose outcome the host has not given is not a sale: the goods stay.
        "host_unreachable" | "reversal_pending" | "unknown" => ResultKind::NotAuthorised,
        "try_again" => ResultKind::TryAgain,
        "try_another_interface" => ResultKind::TryAnotherInterface,
        "end_application" | "select_next" => ResultKind::UseAnotherCard,
        "refused" => ResultKind::Refused,
        _ => ResultKind::Error,
    };
    let approval_code = r
        .host
        .as_ref()
        .and_then(|h| h.auth_code.clone())
        .or_else(|| r.offline.as_ref().map(|o| o.1.clone()))
        .unwrap_or_default();
    let detail = match (&r.host, &r.error) {
        (_, Some(e)) => e.code.clone(),
        (Some(h), None) => format!("{} {}", h.response_code, h.response_text),
        (None, None) => r
            .kernel
            .as_ref()
            .map(|o| o.reason.to_string())
            .unwrap_or_default(),
    };
    ResultShown {
        kind,
        approval_code,
        detail,
        receipt: receipt_text,
        approved: r.approved(),
        merchant_copy: (signature && r.approved())
            .then(|| receipt::render_text(cfg, r, Copy::Merchant)),
        e_receipt: cfg.e_receipt_url(r.journal_id, r.batch, r.stan),
        language: receipt::language(cfg, r, Copy::Customer),
    }
}

thread_local! {
    /// The configuration, for the virtual printer (UI thread).
    static PRINT_CFG: RefCell<Option<Config>> = const { RefCell::new(None) };
    /// The virtual printer's last paper, for "Save PNG".
    static LAST_PAPER: RefCell<Option<drivers::escpos::Raster>> = const { RefCell::new(None) };
    /// The shown result's e-receipt address and receipt language.
    static SHOWN: RefCell<(Option<String>, String)> = const { RefCell::new((None, String::new())) };
    /// Fonts per language, loaded once.
    static FONTS: RefCell<std::collections::HashMap<String, Rc<crate::paper::Fonts>>> =
        RefCell::new(std::collections::HashMap::new());
}

fn fonts_for(language: &str) -> Rc<crate::paper::Fonts> {
    FONTS.with(|f| {
        f.borrow_mut()
            .entry(language.to_string())
            .or_insert_with(|| Rc::new(crate::paper::Fonts::for_language(language)))
            .clone()
    })
}

/// The virtual printer: the receipt text as the configured printer gets it (ESC/POS bytes
/// for its paper and encoding, lines it cannot carry as images, the e-receipt QR code, the
/// cut), decoded back and drawn as paper.
fn print_virtual(w: &MainWindow, cfg: &Config, text: &str, language: &str, qr: Option<String>) {
    let extras = receipt::Extras {
        qr,
        cut: true,
        duplicate: false,
    };
    let doc = receipt::text_document(text, &extras, language);
    let fonts = fonts_for(language);
    let bytes = crate::print::escpos_bytes_with(cfg, &doc, &fonts);
    let e = w.global::<EmulatorAdapter>();
    e.set_printed(text.into());
    match drivers::escpos::decode(&bytes, cfg.escpos().encoding) {
        Ok(printed) => {
            let r = crate::paper::paper(&printed, cfg.escpos().paper, &fonts);
            let mut buf = slint::SharedPixelBuffer::<slint::Rgb8Pixel>::new(r.width, r.height);
            for (i, px) in buf.make_mut_slice().iter_mut().enumerate() {
                let (x, y) = (i as u32 % r.width, i as u32 / r.width);
                let v = if r.get(x, y) { 0x20 } else { 0xFB };
                *px = slint::Rgb8Pixel { r: v, g: v, b: v };
            }
            e.set_paper(slint::Image::from_rgb8(buf));
            e.set_has_paper(true);
            e.set_paper_note(
                format!(
                    "{} mm, {}, {} bytes of ESC/POS",
                    cfg.printer.paper,
                    cfg.printer.encoding,
                    bytes.len()
                )
                .into(),
            );
            LAST_PAPER.with(|p| *p.borrow_mut() = Some(r));
        }
        Err(err) => {
            e.set_has_paper(false);
            e.set_paper_note(err.to_string().into());
        }
    }
}

fn show_progress(w: &MainWindow, ev: &EngineEvent) {
    let p = w.global::<PresentAdapter>();
    match ev {
        EngineEvent::WaitingForCard => {
            indicate(Status::Ready);
            p.set_message(PresentMessage::PresentCard);
        }
        EngineEvent::CardDetected => {
            indicate(Status::Processing);
            p.set_busy(true);
            p.set_message(PresentMessage::Processing);
        }
        EngineEvent::CardRead {
            languages,
            issuer_country,
        } => {
            indicate(Status::Success);
            if w.global::<OperatorAdapter>().get_sound() {
                crate::sound::play(crate::sound::Tone::Success);
            }
            p.set_message(PresentMessage::CardRead);
            // The cardholder's language from the card, when the UI has it; otherwise the
            // screens stay as they are (the merchant's default or the customer's choice).
            if let Some(l) = ui::lang::from_card(languages, *issuer_country) {
                select_language(w, l.code);
            }
        }
        EngineEvent::Authorising => {
            w.global::<AppAdapter>().set_screen(Screen::Present);
            p.set_message(PresentMessage::Authorising);
        }
        // The PIN pad puts up its own screen (gui::ScreenPinPad).
        EngineEvent::PinEntry => {}
        // Book A Table 9-5: 21 "Present card again", 20 "See phone for instructions".
        EngineEvent::PresentAgain(ui) => {
            indicate(Status::Ready);
            p.set_busy(false);
            w.global::<EmulatorAdapter>().set_can_tap(true);
            p.set_message(if ui.message == emv::outcome::Message::SeePhone {
                PresentMessage::SeePhone
            } else {
                PresentMessage::PresentAgain
            });
        }
        // The host registered the QR order: the code replaces the tap zone.
        EngineEvent::QrShown {
            payload, reference, ..
        } => {
            indicate(Status::Ready);
            match ui::qr::image(payload.as_bytes(), 300) {
                Ok(img) => p.set_qr_code(img),
                Err(e) => tracing::warn!(error = %e, "the payment code cannot be drawn"),
            }
            p.set_qr_reference(reference.as_str().into());
            p.set_showing_qr(true);
            p.set_message(PresentMessage::ScanQr);
            QR_ON_SCREEN.with(|q| *q.borrow_mut() = Some(payload.clone()));
            w.global::<EmulatorAdapter>().set_can_pay_phone(true);
        }
    }
}

#[cfg(test)]
mod tests {
    //! A whole sale through the real engine, the virtual cards and the host simulator over
    //! mutual TLS, driven by clicking elements found by their accessible labels (Slint's
    //! testing backend, no display).

    use std::sync::mpsc as std_mpsc;
    use std::time::{Duration, Instant};

    use i_slint_backend_testing::ElementHandle;
    use ui::PinAdapter;

    use super::*;

    /// Runs `f` on the UI thread and returns its result.
    fn on_ui<T: Send + 'static>(
        weak: &slint::Weak<MainWindow>,
        f: impl FnOnce(&MainWindow) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = std_mpsc::channel();
        let weak = weak.clone();
        slint::invoke_from_event_loop(move || {
            let w = weak.upgrade().expect("window alive");
            let _ = tx.send(f(&w));
        })
        .expect("event loop running");
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the UI thread answered")
    }

    fn click(weak: &slint::Weak<MainWindow>, label: &'static str) {
        on_ui(weak, move |w| {
            let e = ElementHandle::find_by_accessible_label(w, label)
                .find(|e| e.accessible_enabled() != Some(false))
                .unwrap_or_else(|| panic!("no enabled element labelled {label:?}"));
            e.invoke_accessible_default_action();
        });
    }

    fn has_label(weak: &slint::Weak<MainWindow>, label: String) -> bool {
        on_ui(weak, move |w| {
            ElementHandle::find_by_accessible_label(w, &label)
                .next()
                .is_some()
        })
    }

    fn wait_for(
        weak: &slint::Weak<MainWindow>,
        what: &str,
        pred: impl Fn(&MainWindow) -> bool + Send + Sync + Clone + 'static,
    ) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            let p = pred.clone();
            if on_ui(weak, move |w| p(w)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("timed out waiting for {what}");
    }

    /// One sale with `card`; returns (language shown on the result, the result's first line
    /// as drawn, the printed receipt).
    fn sale(weak: &slint::Weak<MainWindow>, card: &'static str) -> (String, ResultKind, String) {
        click(weak, "new sale");
        // Nothing to charge yet: the button is disabled.
        assert_eq!(
            on_ui(weak, |w| ElementHandle::find_by_accessible_label(
                w, "charge"
            )
            .next()
            .and_then(|e| e.accessible_enabled())),
            Some(false)
        );
        for k in ["key 1", "key 2", "key 3", "key 4"] {
            click(weak, k);
        }
        assert_eq!(
            on_ui(weak, |w| w
                .global::<AmountAdapter>()
                .get_amount_text()
                .to_string()),
            "12.34"
        );
        charge(weak);
        // The status lights come from the indicator sequencer (Book A §9.2): ready to read
        // is the first light.
        wait_for(weak, "the first status light", |w| {
            w.global::<PresentAdapter>().get_lights() == 1
        });
        let card_label: &'static str = Box::leak(format!("card {card}").into_boxed_str());
        click(weak, card_label);
        wait_for(weak, "the result screen", |w| {
            w.global::<AppAdapter>().get_screen() == Screen::Result
        });
        let (lang, kind) = on_ui(weak, |w| {
            (
                w.global::<PresentAdapter>().get_language().to_string(),
                w.global::<ResultAdapter>().get_kind(),
            )
        });
        let receipt = on_ui(weak, |w| {
            w.global::<ResultAdapter>().get_receipt().to_string()
        });
        (lang, kind, receipt)
    }

    /// Prints the result's receipt on the virtual printer and returns what it printed.
    fn print(weak: &slint::Weak<MainWindow>) -> String {
        click(weak, "print receipt");
        // The virtual printer drew the paper from the receipt's ESC/POS bytes.
        let (has, size) = on_ui(weak, |w| {
            let e = w.global::<EmulatorAdapter>();
            (e.get_has_paper(), e.get_paper().size())
        });
        assert!(has, "no paper drawn");
        assert_eq!(size.width, 384, "58 mm paper is 384 dots wide");
        assert!(size.height > 400, "{size:?}");
        on_ui(weak, |w| {
            w.global::<EmulatorAdapter>().get_printed().to_string()
        })
    }

    #[test]
    fn outcomes_are_spoken_in_the_language() {
        assert_eq!(voice_words("ja", ResultKind::Approved), "承認されました");
        assert_eq!(voice_words("de", ResultKind::Declined), "Abgelehnt");
        assert_eq!(voice_words("en", ResultKind::TryAgain), "Please try again");
        assert_eq!(
            voice_words("fr", ResultKind::ApprovedSign),
            "Approuvé, veuillez signer"
        );
    }

    #[test]
    fn sales_switch_to_the_cardholders_language_and_back() {
        i_slint_backend_testing::init_integration_test_with_system_time();
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            data_dir: dir.path().to_path_buf(),
        };
        let mut cfg = Config::default();
        // The merchant speaks German; a Hungarian card (a language the UI lacks) keeps it.
        cfg.ui.language = "de".into();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let hungarian = sim::card::builtin_profile_text("visa")
            .unwrap()
            .replace("name = \"visa\"", "name = \"visa-hu\"")
            .replace("language = \"en\"", "language = \"hu\"");
        let hu_file = dir.path().join("visa-hu.toml");
        std::fs::write(&hu_file, hungarian).unwrap();
        let hu = sim::card::load_profile_file(&hu_file).unwrap();
        let env = rt
            .block_on(EmulatorEnv::start_with(
                &paths,
                &cfg,
                None,
                vec![hu],
                sim::HostRules::default(),
            ))
            .unwrap();
        let (reader, tap) = SimReader::new("virtual reader");
        let link = env.link(&cfg).unwrap();
        let mut journal = Journal::open(&paths.journal()).unwrap();
        let vault = crate::vault::Vault::open(&paths.device_key()).unwrap();
        let (key, ksn) = sim::pinkeys::test_aes_initial_key();
        let key = crate::keys::InitialKey::Aes(key, ksn);
        crate::keys::load(&paths.data_dir, &vault, &mut journal, &key, true).unwrap();
        let window = MainWindow::new().unwrap();
        let engine = Engine::new(cfg.clone(), AnyReader::Sim(reader), link, journal, vault)
            .unwrap()
            .with_pin_pad(
                Box::new(crate::gui_pin::ScreenPinPad::new(&window)),
                paths.data_dir.clone(),
            );
        let receipts = dir.path().join("receipts");
        // A configuration bundle from the fleet operator, put in force by the engine task
        // between two sales (docs/FLEET.md): a new shop name.
        let key = crate::tms::SigningKey::generate().unwrap();
        let text = format!(
            "[ui]\nlanguage = \"de\"\n\n[[tms.keys]]\nid = \"ops\"\npublic_key = \"{}\"\n",
            key.public_hex()
        );
        let path = dir.path().join("kassa.toml");
        let local = crate::tms::Local {
            config: Config::parse(&path, &text).unwrap(),
            file: Some((path, text)),
        };
        let raw = crate::tms::sign(
            "[bundle]\nversion = 1\n\n[terminal]\nmerchant_name = \"Flottenladen\"\n",
            &key,
            "ops",
        )
        .unwrap();
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let applied = crate::tms::apply(dir.path(), &local, &raw, today, None).unwrap();
        let (bundle_tx, bundle_rx) = mpsc::unbounded_channel();
        let _wiring = wire(
            &window,
            rt.handle(),
            engine,
            tap,
            env,
            cfg,
            receipts,
            Some(bundle_rx),
        );
        window.show().unwrap();
        let weak = window.as_weak();
        let driver = std::thread::spawn(move || {
            // Whatever happens, the event loop ends (a failed check must not hang the test).
            let checks = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                drive(&weak, bundle_tx, applied)
            }));
            let _ = slint::invoke_from_event_loop(|| {
                let _ = slint::quit_event_loop();
            });
            if let Err(p) = checks {
                std::panic::resume_unwind(p);
            }
        });
        slint::run_event_loop_until_quit().unwrap();
        driver.join().expect("the driver's checks passed");
        drop(window);
    }

    fn drive(
        weak: &slint::Weak<MainWindow>,
        bundles: mpsc::UnboundedSender<crate::tms::Applied>,
        applied: crate::tms::Applied,
    ) {
        let weak = weak.clone();
        {
            // Idle, in the merchant's German.
            assert!(has_label(&weak, "Willkommen".into()));
            // A Japanese card: the result screen and the customer receipt in Japanese.
            let (lang, kind, receipt) = sale(&weak, "visa-ja");
            assert_eq!(lang, "ja");
            // The merchant's German writes 12,34; the Japanese screen 12.34.
            assert_eq!(
                on_ui(&weak, |w| w
                    .global::<PresentAdapter>()
                    .get_amount_text()
                    .to_string()),
                "EUR 12.34"
            );
            assert_eq!(kind, ResultKind::Approved);
            // Card read successfully: all four lights.
            wait_for(&weak, "four status lights", |w| {
                w.global::<PresentAdapter>().get_lights() == 4
            });
            let printed = print(&weak);
            assert_eq!(printed, receipt);
            assert!(has_label(&weak, "承認されました".into()));
            assert!(
                printed.contains("承認") && printed.contains("お客様控え"),
                "{printed}"
            );
            click(&weak, "done");
            // Back to German for the next customer.
            assert!(has_label(&weak, "Willkommen".into()));
            // UnionPay with a Chinese preference: Simplified Chinese.
            let (lang, kind, printed) = sale(&weak, "unionpay");
            assert_eq!(lang, "zh_CN");
            assert_eq!(kind, ResultKind::Approved);
            assert!(has_label(&weak, "交易成功".into()));
            assert!(printed.contains("持卡人存根"), "{printed}");
            // The QR e-receipt shows the receipt as a code to scan.
            click(&weak, "e-receipt");
            let qr = on_ui(&weak, |w| {
                ElementHandle::find_by_accessible_label(w, "e-receipt qr")
                    .next()
                    .map(|e| e.size())
            });
            let qr = qr.expect("the QR code is shown");
            assert!(qr.width > 100.0 && qr.height > 100.0, "{qr:?}");
            click(&weak, "done");
            // A language the UI lacks: the merchant's default stays.
            let (lang, kind, _) = sale(&weak, "visa-hu");
            assert_eq!(lang, "de");
            assert_eq!(kind, ResultKind::Approved);
            let printed = print(&weak);
            assert!(has_label(&weak, "Genehmigt".into()));
            assert!(printed.contains("KUNDENBELEG"), "{printed}");
            click(&weak, "done");
            // The operator menu (no PIN configured): a pre-authorization with a card, then
            // its completion from the history without one, then a void.
            click(&weak, "menu");
            click(&weak, "preauth");
            for k in ["key 1", "key 0", "key 0", "key 0", "key 0"] {
                click(&weak, k);
            }
            charge(&weak);
            click(&weak, "card mastercard");
            wait_for(&weak, "the pre-authorization's result", |w| {
                w.global::<AppAdapter>().get_screen() == Screen::Result
            });
            // 100.00 is above the CVM limit: a signature.
            assert_eq!(
                on_ui(&weak, |w| w.global::<ResultAdapter>().get_kind()),
                ResultKind::ApprovedSign
            );
            click(&weak, "no receipt");
            click(&weak, "done");
            click(&weak, "menu");
            click(&weak, "history");
            wait_for(&weak, "the history", |w| {
                w.global::<OperatorAdapter>().get_page() == OperatorPage::History
            });
            // Four transactions so far: the plural form of the German catalogue.
            assert!(has_label(&weak, "4 Transaktionen".into()));
            click(&weak, "complete 4");
            for k in ["key 1", "key 1", "key 0", "key 0", "key 0"] {
                click(&weak, k);
            }
            click(&weak, "charge");
            wait_for(&weak, "the completion's result", |w| {
                w.global::<AppAdapter>().get_screen() == Screen::Result
            });
            assert_eq!(
                on_ui(&weak, |w| w.global::<ResultAdapter>().get_kind()),
                ResultKind::Approved
            );
            let printed = print(&weak);
            assert!(
                printed.contains("BUCHUNG") && printed.contains("110.00"),
                "{printed}"
            );
            click(&weak, "done");
            click(&weak, "menu");
            click(&weak, "void-last");
            wait_for(&weak, "the void's answer", |w| {
                w.global::<OperatorAdapter>().get_page() == OperatorPage::Message
            });
            let msg = on_ui(&weak, |w| {
                w.global::<OperatorAdapter>().get_message().to_string()
            });
            assert_eq!(msg, "#5: voided");
            click(&weak, "menu");
            click(&weak, "close");
            wait_for(&weak, "the idle screen", |w| {
                w.global::<AppAdapter>().get_screen() == Screen::Idle
            });
            // A QR sale: the code replaces the tap zone once the host has the order; the
            // emulator's phone scans it and pays.
            click(&weak, "new sale");
            for k in ["key 8", "key 8", "key 0", "key 0"] {
                click(&weak, k);
            }
            click(&weak, "charge qr");
            wait_for(&weak, "the QR code on the screen", |w| {
                w.global::<PresentAdapter>().get_showing_qr()
                    && w.global::<EmulatorAdapter>().get_can_pay_phone()
            });
            assert!(has_label(&weak, "payment qr code".into()));
            let (size, reference) = on_ui(&weak, |w| {
                let p = w.global::<PresentAdapter>();
                (p.get_qr_code().size(), p.get_qr_reference().to_string())
            });
            assert!(size.width >= 150 && size.width == size.height, "{size:?}");
            assert!(reference.starts_with("KKASSA001"), "{reference}");
            click(&weak, "phone complete");
            wait_for(&weak, "the QR sale's result", |w| {
                w.global::<AppAdapter>().get_screen() == Screen::Result
            });
            assert_eq!(
                on_ui(&weak, |w| w.global::<ResultAdapter>().get_kind()),
                ResultKind::Approved
            );
            let receipt = on_ui(&weak, |w| {
                w.global::<ResultAdapter>().get_receipt().to_string()
            });
            assert!(
                receipt.contains("QR-ZAHLUNG") && receipt.contains(&reference),
                "{receipt}"
            );
            assert!(!on_ui(&weak, |w| w
                .global::<PresentAdapter>()
                .get_showing_qr()));
            click(&weak, "done");
            // Online PIN: the UnionPay debit card above the CVM limit. The PIN screen shows
            // the amount and the card, a shuffled keypad and dots; Enter with three digits
            // asks for more, Correct clears, the right PIN is approved by the issuer.
            let layout = pin_sale(&weak, "card unionpay-debit");
            assert_eq!(
                on_ui(&weak, |w| {
                    let p = w.global::<PinAdapter>();
                    (p.get_amount_text().to_string(), p.get_scheme().to_string())
                }),
                ("EUR 300.00".to_string(), "UnionPay Debit".to_string())
            );
            let labels: Vec<String> = on_ui(&weak, |w| {
                use slint::Model;
                w.global::<PinAdapter>()
                    .get_keys()
                    .iter()
                    .map(|k| k.to_string())
                    .collect()
            });
            let shown: Vec<String> = layout.iter().map(u8::to_string).collect();
            assert_eq!(labels, shown, "the keys show the keypad's layout");
            type_pin(&weak, &layout, "135");
            assert_eq!(on_ui(&weak, |w| w.global::<PinAdapter>().get_entered()), 3);
            click(&weak, "pin enter");
            assert!(on_ui(&weak, |w| w.global::<PinAdapter>().get_too_short()));
            click(&weak, "pin correct");
            assert_eq!(on_ui(&weak, |w| w.global::<PinAdapter>().get_entered()), 0);
            type_pin(&weak, &layout, "2468");
            click(&weak, "pin enter");
            wait_for(&weak, "the PIN sale's result", |w| {
                w.global::<AppAdapter>().get_screen() == Screen::Result
            });
            assert_eq!(
                on_ui(&weak, |w| w.global::<ResultAdapter>().get_kind()),
                ResultKind::Approved
            );
            let receipt = on_ui(&weak, |w| {
                w.global::<ResultAdapter>().get_receipt().to_string()
            });
            assert!(receipt.contains("密码已联机验证"), "{receipt}");
            click(&weak, "done");
            // The next entry has a new layout (10! of them: a repeat here is a broken
            // shuffle, at odds of one in 3.6 million); Cancel ends the sale with nothing sent.
            let second = pin_sale(&weak, "card unionpay-debit");
            assert_ne!(second, layout);
            type_pin(&weak, &second, "24");
            click(&weak, "pin cancel");
            wait_for(&weak, "the cancelled PIN sale's result", |w| {
                w.global::<AppAdapter>().get_screen() == Screen::Result
            });
            assert_eq!(
                on_ui(&weak, |w| w.global::<ResultAdapter>().get_kind()),
                ResultKind::Cancelled
            );
            assert!(!on_ui(&weak, |_| crate::gui_pin::entry_open()));
            click(&weak, "done");
            // The fleet's bundle arrives while the terminal is idle: in force at once, without
            // a restart; the idle screen and the next receipt carry the new shop name.
            bundles.send(applied).unwrap();
            wait_for(&weak, "the bundle's shop name on the idle screen", |w| {
                w.global::<IdleAdapter>().get_merchant() == "Flottenladen"
            });
            let (_, kind, receipt) = sale(&weak, "visa");
            assert_eq!(kind, ResultKind::Approved);
            assert!(receipt.contains("Flottenladen"), "{receipt}");
            click(&weak, "done");
        }
    }

    /// Presses Charge and waits for the present-card screen, ready for a tap.
    fn charge(weak: &slint::Weak<MainWindow>) {
        click(weak, "charge");
        wait_for(weak, "the present-card screen", |w| {
            w.global::<AppAdapter>().get_screen() == Screen::Present
                && w.global::<EmulatorAdapter>().get_can_tap()
        });
    }

    /// A 300.00 sale tapped with `card` up to the PIN screen; returns the keypad's layout.
    fn pin_sale(weak: &slint::Weak<MainWindow>, card: &'static str) -> [u8; 10] {
        click(weak, "new sale");
        for k in ["key 3", "key 0", "key 0", "key 0", "key 0"] {
            click(weak, k);
        }
        charge(weak);
        click(weak, card);
        wait_for(weak, "the PIN screen", |w| {
            w.global::<AppAdapter>().get_screen() == Screen::Pin
        });
        on_ui(weak, |_| crate::gui_pin::layout()).expect("a PIN entry is open")
    }

    /// Plays the cardholder: presses the keys that carry `pin`'s digits in `layout`.
    fn type_pin(weak: &slint::Weak<MainWindow>, layout: &[u8; 10], pin: &str) {
        for c in pin.bytes() {
            let pos = layout.iter().position(|&d| d == c - b'0').unwrap();
            let label: &'static str = Box::leak(format!("pin key {pos}").into_boxed_str());
            click(weak, label);
        }
    }
}
