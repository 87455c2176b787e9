//! Renders the idle (amount) screen and the result screen with the software renderer, no
//! display needed, and checks that they were drawn.

use slint::ComponentHandle;
use ui::offscreen::Offscreen;
use ui::{AmountAdapter, AppAdapter, MainWindow, ResultAdapter, Screen};

const BACKGROUND: [u8; 3] = [0x0f, 0x17, 0x20];

#[test]
fn idle_and_result_screens_render() {
    let off = Offscreen::install(480, 800).unwrap();
    let window = MainWindow::new().unwrap();
    window.show().unwrap();
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));

    window
        .global::<AmountAdapter>()
        .set_amount_text("12.34".into());
    window.global::<AmountAdapter>().set_can_charge(true);
    let idle = off.render();
    idle.save_png(&out.join("idle.png")).unwrap();
    // The theme's background fills the corners; the keypad and buttons cover much of the rest.
    assert_eq!(idle.pixel(2, 2), BACKGROUND);
    let drawn = idle.count_not(BACKGROUND);
    assert!(
        drawn > 480 * 800 / 5,
        "idle screen: only {drawn} pixels drawn"
    );
    assert!(
        idle.distinct_colours() > 8,
        "idle screen has too few colours"
    );
    // The green Charge button along the bottom.
    let [r, g, b] = idle.pixel(240, 760);
    assert!(g > r && g > b, "charge button is green, got {r},{g},{b}");

    window.global::<AppAdapter>().set_screen(Screen::Result);
    let result = window.global::<ResultAdapter>();
    result.set_approved(true);
    result.set_title("Approved".into());
    result.set_detail("Auth code A1B2C3".into());
    result.set_receipt("KASSA DEMO\nSALE  EUR 12.34\nAPPROVED".into());
    let approved = off.render();
    approved.save_png(&out.join("result.png")).unwrap();
    assert_ne!(approved, idle, "result screen differs from the idle screen");
    // The receipt paper is near-white.
    assert!(
        approved
            .rgb
            .chunks(3)
            .filter(|p| p == &[0xfb, 0xfa, 0xf5])
            .count()
            > 10_000
    );
    // The approved disc is green at the top centre (left of its glyph).
    let [r, g, b] = approved.pixel(195, 80);
    assert!(g > r && g > b, "approved disc is green, got {r},{g},{b}");

    result.set_approved(false);
    result.set_title("Declined".into());
    let declined = off.render();
    let [r, g, b] = declined.pixel(195, 80);
    assert!(r > g && r > b, "declined disc is red, got {r},{g},{b}");
}
