//! Every gettext catalogue under ui/lang/ has every `@tr` string of the views, translated,
//! with the same placeholders, and nothing stale (scripts/tr-extract --check).

#[test]
fn catalogues_are_complete() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/tr-extract");
    let o = std::process::Command::new("python3")
        .arg(&script)
        .arg("--check")
        .output()
        .expect("python3 runs scripts/tr-extract");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("11 catalogues"), "{out}");
}
