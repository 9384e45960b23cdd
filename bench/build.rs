use std::path::PathBuf;
use std::process::Command;

// The stamp child is linked without libc, start files or dynamic loader, so it starts in
// microseconds and its resident set is a few pages. The C reference waiters (c/) are built
// static with the system's C compiler; the runner finds them by the paths set here.
fn main() {
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
        println!("cargo:rustc-link-arg-bin=stamp={arg}");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    for (source, name, var) in [
        ("c/poll_tcp.c", "c-poll-tcp", "C_POLL_TCP"),
        ("c/wait_file.c", "c-wait-file", "C_WAIT_FILE"),
    ] {
        let exe = out.join(name);
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-O2", "-static", "-o"])
            .arg(&exe)
            .arg(source)
            .status()
            .expect("the C compiler (cc) runs");
        assert!(status.success(), "cc {source} failed");
        println!("cargo:rustc-env={var}={}", exe.display());
        println!("cargo:rerun-if-changed={source}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
