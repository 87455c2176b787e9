//! Compiles the Slint views into Rust, with the translations in `lang/` bundled into the
//! binary (`lang/<language>/LC_MESSAGES/kassa-ui.po`).
fn main() {
    // Debug info names the elements, so tests find them by accessible label (Slint's testing
    // backend) and screen readers get the same names.
    let config = slint_build::CompilerConfiguration::new()
        .with_bundled_translations("lang")
        .with_debug_info(true);
    slint_build::compile_with_config("ui/main.slint", config).expect("Slint UI compiles");
    println!("cargo:rerun-if-changed=lang");
}
