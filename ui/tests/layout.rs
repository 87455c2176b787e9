//! Every screen fits both layouts in every language, in large and standard text: with Slint's
//! testing backend, every element with an accessible label lies inside the terminal's screen,
//! and every button is at least a 9 mm touch target (47 px on a 7-inch 800x480 panel).

use i_slint_backend_testing::ElementHandle;
use slint::ComponentHandle;
use ui::lang::LANGUAGES;
use ui::{
    AppAdapter, ErrorAdapter, ErrorKind, MainWindow, OperatorAdapter, OperatorPage, ResultAdapter,
    ResultKind, Screen, Theme,
};

/// A screen's name and how to show it.
type Shower = (&'static str, Box<dyn Fn()>);

fn screens(w: &MainWindow) -> Vec<Shower> {
    let app = |s: Screen| {
        let w = w.as_weak();
        move || w.unwrap().global::<AppAdapter>().set_screen(s)
    };
    let op = |page: OperatorPage| {
        let w = w.as_weak();
        move || {
            let w = w.unwrap();
            w.global::<OperatorAdapter>().set_page(page);
            w.global::<AppAdapter>().set_screen(Screen::Operator);
        }
    };
    let result = |kind: ResultKind| {
        let w = w.as_weak();
        move || {
            let w = w.unwrap();
            let r = w.global::<ResultAdapter>();
            r.set_kind(kind);
            r.set_receipt_chosen(false);
            r.set_showing_qr(false);
            r.set_e_receipt_available(true);
            r.set_approval_code("A1B2C3".into());
            r.set_detail("rc 00".into());
            w.global::<AppAdapter>().set_screen(Screen::Result);
        }
    };
    let error = {
        let w = w.as_weak();
        move || {
            let w = w.unwrap();
            w.global::<ErrorAdapter>().set_kind(ErrorKind::NoHost);
            w.global::<ErrorAdapter>()
                .set_code("connect_timeout".into());
            w.global::<AppAdapter>().set_screen(Screen::Error);
        }
    };
    let history = {
        let w = w.as_weak();
        move || {
            let w = w.unwrap();
            let op = w.global::<OperatorAdapter>();
            op.set_history(slint::ModelRc::new(slint::VecModel::from(vec![
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
            w.global::<AppAdapter>().set_screen(Screen::Operator);
        }
    };
    let qr = {
        let w = w.as_weak();
        move || {
            let w = w.unwrap();
            let r = w.global::<ResultAdapter>();
            r.set_kind(ResultKind::Approved);
            r.set_approval_code("A1B2C3".into());
            r.set_receipt_chosen(true);
            r.set_showing_qr(true);
            r.set_e_receipt_qr(ui::qr::image("X".repeat(700).as_bytes(), 300).unwrap());
            w.global::<AppAdapter>().set_screen(Screen::Result);
        }
    };
    let card_pin = {
        let w = w.as_weak();
        move || {
            let w = w.unwrap();
            let p = w.global::<ui::PinAdapter>();
            p.set_amount_text("CNY 300.00".into());
            p.set_scheme("UnionPay Debit".into());
            p.set_entered(12);
            p.set_too_short(true);
            w.global::<AppAdapter>().set_screen(Screen::Pin);
        }
    };
    vec![
        ("card-pin", Box::new(card_pin)),
        ("e-receipt", Box::new(qr)),
        ("history", Box::new(history)),
        ("idle", Box::new(app(Screen::Idle))),
        ("amount", Box::new(app(Screen::Amount))),
        ("tip", Box::new(app(Screen::Tip))),
        ("present", Box::new(app(Screen::Present))),
        ("approved", Box::new(result(ResultKind::ApprovedSign))),
        (
            "declined",
            Box::new(result(ResultKind::TryAnotherInterface)),
        ),
        ("pin", Box::new(op(OperatorPage::Pin))),
        ("menu", Box::new(op(OperatorPage::Menu))),
        ("settings", Box::new(op(OperatorPage::Settings))),
        ("error", Box::new(error)),
    ]
}

#[test]
fn every_screen_fits_every_layout_and_language() {
    i_slint_backend_testing::init_no_event_loop();
    let w = MainWindow::new().unwrap();
    w.show().unwrap();
    let theme = w.global::<Theme>();
    // The models the screens show: four language buttons, three tip choices.
    w.global::<ui::PresentAdapter>()
        .set_languages(slint::ModelRc::new(slint::VecModel::from(
            ["en", "zh_TW", "ja", "ru"]
                .iter()
                .map(|c| {
                    let l = ui::lang::by_code(c).unwrap();
                    ui::LanguageChoice {
                        code: l.code.into(),
                        name: l.name.into(),
                    }
                })
                .collect::<Vec<_>>(),
        )));
    w.global::<ui::PresentAdapter>()
        .set_amount_text("EUR 1,234.56".into());
    w.global::<ui::TipAdapter>()
        .set_fare_text("EUR 123.40".into());
    w.global::<ui::TipAdapter>()
        .set_choices(slint::ModelRc::new(slint::VecModel::from(
            [10, 15, 20]
                .iter()
                .map(|p| ui::TipChoice {
                    percent: *p,
                    tip_text: "EUR 12.34".into(),
                    total_text: "EUR 135.74".into(),
                })
                .collect::<Vec<_>>(),
        )));
    let mut problems = Vec::new();
    let mut checked = 0;
    for (layout, portrait, width, height) in [
        ("portrait", true, 480.0f32, 800.0f32),
        ("portrait-854", true, 480.0, 854.0),
        ("landscape", false, 800.0, 480.0),
    ] {
        theme.set_portrait(portrait);
        theme.set_tall(height > 800.0);
        for large in [true, false] {
            theme.set_large_text(large);
            for l in LANGUAGES.iter() {
                ui::lang::select(l.code).unwrap();
                for (name, show) in screens(&w) {
                    show();
                    let elements: Vec<ElementHandle> = ElementHandle::query_descendants(
                        &ElementHandle::find_by_element_type_name(&w, "Terminal")
                            .next()
                            .expect("the terminal screen"),
                    )
                    .match_predicate(|e| e.accessible_label().is_some_and(|l| !l.is_empty()))
                    .find_all();
                    assert!(!elements.is_empty(), "{name}: no labelled elements");
                    for e in elements {
                        let label = e.accessible_label().unwrap_or_default();
                        let p = e.absolute_position();
                        let s = e.size();
                        checked += 1;
                        let inside = p.x >= -0.5
                            && p.y >= -0.5
                            && p.x + s.width <= width + 0.5
                            && p.y + s.height <= height + 0.5;
                        if !inside {
                            problems.push(format!(
                                "{layout} large={large} {} {name}: {label:?} at {:.0},{:.0} size {:.0}x{:.0} leaves the {width}x{height} screen",
                                l.code, p.x, p.y, s.width, s.height
                            ));
                        }
                        let is_button = e.accessible_role()
                            == Some(i_slint_backend_testing::AccessibleRole::Button);
                        // 9 mm: 47 px on the 7" countertop, 66 px on a 5" handheld.
                        let min = if portrait { 66.0 } else { 47.0 };
                        if is_button && (s.width < min || s.height < min) {
                            problems.push(format!(
                                "{layout} large={large} {} {name}: button {label:?} is {:.0}x{:.0}, under 9 mm",
                                l.code, s.width, s.height
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} elements checked");
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
