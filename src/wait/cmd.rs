//! Command readiness: `/bin/sh -c STRING` exits 0. Its output is shown only at debug level.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::time::timeout;

use crate::after::exit::ChildEnd;
use crate::run::child;
use crate::run::reaper::Reaper;

/// Kills the attempt's process group if the attempt is abandoned (timeout, deadline, failure).
struct Running(Option<Pid>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = killpg(pid, Signal::SIGKILL);
        }
    }
}

/// One attempt.
pub async fn probe(script: &str, reaper: &Reaper) -> Result<(), String> {
    let argv = ["/bin/sh".into(), "-c".into(), script.into()];
    let mut cmd = child::command("/bin/sh".as_ref(), &argv, true, false);
    cmd.stdin(Stdio::null());
    let show = tracing::enabled!(tracing::Level::DEBUG);
    let mut reader = None;
    if show {
        // One pipe for both streams: read to its end without a deadlock on either.
        let (tx, rx) = pipe::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let tx = tx.into_blocking_fd().map_err(|e| e.to_string())?;
        let tx2 = tx.try_clone().map_err(|e| e.to_string())?;
        cmd.stdout(Stdio::from(tx)).stderr(Stdio::from(tx2));
        reader = Some(rx);
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    let (pid, end) = reaper
        .spawn(&mut cmd)
        .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    // Our copies of the pipe's write end must close, or the read never ends.
    drop(cmd);
    let mut guard = Running(Some(pid));
    let mut text = Vec::new();
    let mut end = end;
    let end = match reader {
        None => end.await,
        Some(mut rx) => {
            let read = rx.read_to_end(&mut text);
            tokio::pin!(read);
            let mut drained = false;
            let status = tokio::select! {
                status = &mut end => status,
                _ = &mut read => {
                    drained = true;
                    (&mut end).await
                }
            };
            // The shell has ended, so what it wrote is in the pipe; but a child it left in the
            // background (`daemon &`) may hold the pipe open for ever: drain only briefly.
            if !drained {
                let _ = timeout(Duration::from_millis(50), &mut read).await;
            }
            status
        }
    }
    .map_err(|_| "lost the command's status".to_owned())?;
    guard.0 = None;
    // One event per line of output, so that every line on stderr keeps the `podvisor:` prefix
    // (and every JSON object stays one line of text anyway).
    let name = script.replace('\n', "\\n");
    for line in String::from_utf8_lossy(&text).lines() {
        tracing::debug!("{name}: {line}");
    }
    match end {
        ChildEnd::Exited(0) => Ok(()),
        ChildEnd::Exited(n) => Err(format!("exited with {n}")),
        ChildEnd::Signaled(s) => Err(format!("killed by {}", crate::run::signals::name(s))),
    }
}
