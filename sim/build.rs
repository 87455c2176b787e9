//! Embeds every key file under `keys/` (written by `examples/gen_keys.rs`).

use std::fmt::Write;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keys");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("sim/keys exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml") && n != "manifest.toml")
        .collect();
    names.sort();
    let mut out = String::from(
        "/// Key files embedded from sim/keys/.\npub static KEY_FILES: &[(&str, &str)] = &[\n",
    );
    for n in names {
        let stem = n.trim_end_matches(".toml");
        writeln!(
            out,
            "    ({stem:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/keys/{n}\"))),"
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("keys.rs");
    std::fs::write(dest, out).unwrap();
}
