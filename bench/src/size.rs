//! Row 8: the size of the static binary that ships.

use std::path::Path;
use std::process::Command;

use crate::ctx::{Ctx, Section};
use crate::stats::{Line, Unit};

fn size_kib(path: &Path) -> Result<f64, String> {
    std::fs::metadata(path)
        .map(|m| m.len() as f64 / 1024.0)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Strips a copy (a no-op when the release profile already strips) and measures it.
fn stripped_kib(ctx: &Ctx, path: &Path) -> Result<f64, String> {
    let copy = ctx.tmp.join("stripped");
    std::fs::copy(path, &copy).map_err(|e| format!("{}: {e}", path.display()))?;
    let ok = Command::new("strip")
        .arg(&copy)
        .status()
        .map_err(|e| format!("strip: {e}"))?
        .success();
    if !ok {
        return Err("strip failed".into());
    }
    size_kib(&copy)
}

pub fn run(ctx: &mut Ctx) -> Result<Vec<Section>, String> {
    let mut lines = Vec::new();
    let mut line = Line::new("podvisor (static, musl, stripped)");
    line.record(stripped_kib(ctx, Path::new(&ctx.podvisor)));
    lines.push(line);
    let mut line = Line::new("podvisor (as built)");
    line.record(size_kib(Path::new(&ctx.podvisor)));
    lines.push(line);
    for peer in ["tini-static", "tini", "dumb-init", "catatonit"] {
        if let Some(p) = ctx.peer(peer) {
            let mut line = Line::new(peer);
            line.record(size_kib(Path::new(p)));
            lines.push(line);
        }
    }
    Ok(vec![Section {
        key: "size",
        title: "8. Binary size".into(),
        how: "File sizes. podvisor is the x86_64-unknown-linux-musl release build (static, what \
              the images ship), stripped again to be sure; the peers are Debian's binaries \
              (tini-static is static; tini, dumb-init and catatonit link glibc dynamically, \
              so their size leaves libc out)."
            .into(),
        unit: Unit::KiB,
        lines,
        busy: -1.0,
    }])
}
