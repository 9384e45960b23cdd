// The stamp child is linked without libc, start files or dynamic loader, so it starts in
// microseconds and its resident set is a few pages.
fn main() {
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
        println!("cargo:rustc-link-arg-bin=stamp={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
