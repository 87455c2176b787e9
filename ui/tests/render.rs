//! Every screen in every language and both layouts, rendered with the software renderer to PNG
//! (no display needed) under `target/tmp/screens/<layout>/<language>/<screen>.png`, a folder a
//! person can browse. Checks that each screen was drawn, and that the translated texts have ink
//! (a language whose glyphs the fonts lack renders as blank space, which fails here).
//!
//! `KASSA_UPDATE_SCREENS=1 cargo test -p kassa-ui --test render` also refreshes the small
//! selection in docs/screens/ that the README shows.

use std::path::{Path, PathBuf};

use slint::{ComponentHandle, ModelRc, VecModel};
use ui::lang::LANGUAGES;
use ui::offscreen::{Frame, Offscreen};
use ui::{
    AmountAdapter, AppAdapter, ErrorAdapter, ErrorKind, IdleAdapter, LanguageChoice, MainWindow,
    OperatorAdapter, OperatorPage, PresentAdapter, PresentMessage, ResultAdapter, ResultKind,
    Screen, Theme, TipAdapter, TipChoice,
};

const BACKGROUND: [u8; 3] = [0x0f, 0x17, 0x20];

/// Fills every adapter with sample data (the preview data of the views).
fn sample(w: &MainWindow) {
    w.global::<IdleAdapter>()
        .set_merchant("Kassa Demo Shop".into());
    let a = w.global::<AmountAdapter>();
    a.set_amount_text("12.34".into());
    a.set_can_charge(true);
    let t = w.global::<TipAdapter>();
    t.set_fare_text("EUR 23.40".into());
    t.set_choices(ModelRc::new(VecModel::from(
        [
            (10, "2.34", "25.74"),
            (15, "3.51", "26.91"),
            (20, "4.68", "28.08"),
        ]
        .iter()
        .map(|(p, tip, total)| TipChoice {
            percent: *p,
            tip_text: (*tip).into(),
            total_text: (*total).into(),
        })
        .collect::<Vec<_>>(),
    )));
    let p = w.global::<PresentAdapter>();
    p.set_amount_text("EUR 12.34".into());
    p.set_lights(1);
    p.set_languages(ModelRc::new(VecModel::from(
        ["en", "zh_CN", "ja", "de"]
            .iter()
            .map(|c| {
                let l = ui::lang::by_code(c).unwrap();
                LanguageChoice {
                    code: l.code.into(),
                    name: l.name.into(),
                }
            })
            .collect::<Vec<_>>(),
    )));
    let r = w.global::<ResultAdapter>();
    r.set_kind(ResultKind::Approved);
    r.set_approval_code("A1B2C3".into());
    r.set_detail("00".into());
    w.global::<ErrorAdapter>()
        .set_code("connect_timeout".into());
}

const SCREENS: &[&str] = &[
    "idle",
    "amount",
    "tip",
    "present",
    "present-qr",
    "card-pin",
    "result",
    "declined",
    "operator-pin",
    "operator-menu",
    "history",
    "settings",
    "e-receipt",
    "error",
];

fn show(w: &MainWindow, screen: &str) {
    let app = w.global::<AppAdapter>();
    let op = w.global::<OperatorAdapter>();
    let r = w.global::<ResultAdapter>();
    r.set_kind(ResultKind::Approved);
    r.set_receipt_chosen(false);
    r.set_showing_qr(false);
    r.set_e_receipt_available(true);
    match screen {
        "idle" => app.set_screen(Screen::Idle),
        "amount" => app.set_screen(Screen::Amount),
        "tip" => app.set_screen(Screen::Tip),
        "present" => {
            w.global::<PresentAdapter>().set_showing_qr(false);
            w.global::<PresentAdapter>()
                .set_message(PresentMessage::PresentCard);
            app.set_screen(Screen::Present);
        }
        "present-qr" => {
            let p = w.global::<PresentAdapter>();
            let code = "00020101021226390016A0000003330101010115KASSA0000000001520459995303978\
                        540512.345802DE5915Kassa Demo Shop6006Berlin62370521KKASSA0012611300000\
                        010708KASSA0016304ACEA";
            p.set_qr_code(ui::qr::image(code.as_bytes(), 300).unwrap());
            p.set_qr_reference("KKASSA001261130000001".into());
            p.set_showing_qr(true);
            p.set_message(PresentMessage::ScanQr);
            app.set_screen(Screen::Present);
        }
        "card-pin" => {
            let p = w.global::<ui::PinAdapter>();
            p.set_amount_text("CNY 300.00".into());
            p.set_scheme("UnionPay Debit".into());
            p.set_keys(ModelRc::new(VecModel::from(
                ["7", "3", "0", "9", "1", "5", "8", "2", "6", "4"]
                    .map(slint::SharedString::from)
                    .to_vec(),
            )));
            p.set_entered(5);
            p.set_seconds_left(27);
            app.set_screen(Screen::Pin);
        }
        "result" => app.set_screen(Screen::Result),
        "declined" => {
            r.set_kind(ResultKind::Declined);
            app.set_screen(Screen::Result);
        }
        "operator-pin" => {
            op.set_page(OperatorPage::Pin);
            op.set_pin_length(3);
            app.set_screen(Screen::Operator);
        }
        "operator-menu" => {
            op.set_page(OperatorPage::Menu);
            app.set_screen(Screen::Operator);
        }
        "settings" => {
            op.set_page(OperatorPage::Settings);
            app.set_screen(Screen::Operator);
        }
        "history" => {
            op.set_history(ModelRc::new(VecModel::from(vec![
                ui::HistoryLine {
                    id: 12,
                    text: "#12 preauth 100.00 approved 541333******0012".into(),
                    voidable: true,
                    completable: true,
                },
                ui::HistoryLine {
                    id: 11,
                    text: "#11 sale 12.34 approved 476173******0119".into(),
                    voidable: true,
                    completable: false,
                },
            ])));
            op.set_page(OperatorPage::History);
            app.set_screen(Screen::Operator);
        }
        "e-receipt" => {
            r.set_receipt_chosen(true);
            r.set_showing_qr(true);
            r.set_e_receipt_qr(
                ui::qr::image(
                    "Kassa Demo Shop\nSALE EUR 12.34\nAPPROVED A1B2C3".as_bytes(),
                    300,
                )
                .unwrap(),
            );
            app.set_screen(Screen::Result);
        }
        "error" => {
            w.global::<ErrorAdapter>().set_kind(ErrorKind::NoHost);
            app.set_screen(Screen::Error);
        }
        other => panic!("unknown screen {other}"),
    }
}

fn out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screens")
}

fn save(frame: &Frame, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    frame.save_png(path).unwrap();
}

#[test]
fn every_screen_in_every_language_and_layout() {
    let off = Offscreen::install(1100, 860).unwrap();
    let w = MainWindow::new().unwrap();
    w.show().unwrap();
    sample(&w);
    let theme = w.global::<Theme>();
    let update_docs = std::env::var_os("KASSA_UPDATE_SCREENS").is_some();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screens");
    let mut count = 0;
    for (layout, portrait, (width, height)) in [
        ("portrait", true, (480u32, 800u32)),
        ("landscape", false, (800, 480)),
    ] {
        theme.set_portrait(portrait);
        for large in [true, false] {
            theme.set_large_text(large);
            // English first: the reference for how much ink each screen's text has.
            let mut english_ink = std::collections::HashMap::new();
            for l in LANGUAGES.iter() {
                ui::lang::select(l.code).unwrap();
                w.global::<PresentAdapter>().set_language(l.code.into());
                for screen in SCREENS {
                    show(&w, screen);
                    let frame = off.render().crop(width, height);
                    let size = if large { "" } else { "-small" };
                    save(
                        &frame,
                        &out_dir().join(format!("{layout}{size}/{}/{screen}.png", l.code)),
                    );
                    count += 1;
                    assert_eq!(
                        frame.pixel(1, 1),
                        BACKGROUND,
                        "{layout} {} {screen}",
                        l.code
                    );
                    let drawn = frame.count_not(BACKGROUND);
                    assert!(
                        drawn > (width * height / 40) as usize,
                        "{layout} {} {screen}: only {drawn} pixels drawn",
                        l.code
                    );
                    // The translated text has ink: at least a third of the English text's.
                    let ink = drawn;
                    if l.code == "en" {
                        english_ink.insert(*screen, ink);
                    } else {
                        let en = english_ink[screen];
                        assert!(
                            ink * 3 > en,
                            "{layout} {} {screen}: {ink} pixels of ink against {en} in English: missing glyphs?",
                            l.code
                        );
                    }
                    if update_docs
                        && portrait
                        && large
                        && *screen == "present"
                        && ["en", "ja", "zh_CN", "de"].contains(&l.code)
                    {
                        save(&frame, &docs.join(format!("present-{}.png", l.code)));
                    }
                }
            }
        }
    }
    if update_docs {
        ui::lang::select("en").unwrap();
        theme.set_portrait(true);
        theme.set_large_text(false);
        show(&w, "present");
        save(
            &off.render().crop(480, 800),
            &docs.join("present-en-standard-text.png"),
        );
        theme.set_large_text(true);
        theme.set_high_contrast(true);
        save(
            &off.render().crop(480, 800),
            &docs.join("present-en-high-contrast.png"),
        );
        theme.set_high_contrast(false);
        theme.set_portrait(false);
        show(&w, "amount");
        save(
            &off.render().crop(800, 480),
            &docs.join("amount-landscape.png"),
        );
        // The emulator window: terminal, virtual cards and virtual printer side by side.
        theme.set_portrait(true);
        w.global::<AppAdapter>().set_emulator(true);
        let emu = w.global::<ui::EmulatorAdapter>();
        emu.set_cards(ModelRc::new(VecModel::from(
            [
                ("visa", "visa"),
                ("visa-ja", "visa"),
                ("mastercard", "mastercard"),
                ("unionpay", "unionpay"),
                ("jcb", "jcb"),
                ("amex", "amex"),
                ("discover", "discover"),
                ("wallet", "visa"),
            ]
            .iter()
            .map(|(n, scheme)| ui::VirtualCardEntry {
                name: (*n).into(),
                scheme: (*scheme).into(),
                description: "".into(),
            })
            .collect::<Vec<_>>(),
        )));
        emu.set_host_status("Host simulator on 127.0.0.1:40123 (mutual TLS)".into());
        emu.set_printed(
            "      Kassa Demo Shop\n\n            売上\n\n金額             EUR 12.34\n\n            承認\n承認番号             A1B2C3\n\n         お客様控え\n"
                .into(),
        );
        ui::lang::select("ja").unwrap();
        show(&w, "result");
        w.global::<ResultAdapter>().set_receipt_chosen(true);
        save(
            &off.render().crop(1100, 820),
            &docs.join("emulator-window.png"),
        );
        w.global::<ResultAdapter>().set_receipt_chosen(false);
        w.global::<AppAdapter>().set_emulator(false);
    }
    assert_eq!(count, 2 * 2 * LANGUAGES.len() * SCREENS.len());
}
