//! Compiles the Slint views into Rust.
fn main() {
    slint_build::compile("ui/main.slint").expect("Slint UI compiles");
}
