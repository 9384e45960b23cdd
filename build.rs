//! The static (musl) build gets link/hot-text.ld, which places the code the plain init runs
//! first in .text (scripts/hot-text says why and makes it).

fn main() {
    println!("cargo:rerun-if-changed=link/hot-text.ld");
    println!("cargo:rerun-if-env-changed=PODVISOR_NO_HOT_TEXT");
    let musl = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|env| env == "musl");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let script = std::path::Path::new(&dir).join("link").join("hot-text.ld");
    if musl && std::env::var_os("PODVISOR_NO_HOT_TEXT").is_none() && script.exists() {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
