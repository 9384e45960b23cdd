//! A signal storm at full rate, for the storm tests: sends TOTAL signals to PID, cycling
//! through the given kinds, then prints one line per kind with how many the kernel accepted.
//!
//!     sigstorm PID TOTAL SIG...
//!
//! Standard signals go with kill(2) (they merge while pending, so only "sent" means anything);
//! real-time signals go with sigqueue(3), which fails with EAGAIN when the receiving user's
//! queue is full (RLIMIT_SIGPENDING, `ulimit -i`): those count as refused, not sent. Output:
//!
//!     SIGRTMIN+1 accepted=12500 refused=0
//!     elapsed_ms=81

use std::time::Instant;

use nix::libc;
use podvisor::run::signals;

fn die(msg: &str) -> ! {
    eprintln!("sigstorm: {msg}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        die("usage: sigstorm PID TOTAL SIG...");
    }
    let pid: i32 = args[0].parse().unwrap_or_else(|_| die("bad PID"));
    let total: usize = args[1].parse().unwrap_or_else(|_| die("bad TOTAL"));
    let kinds: Vec<i32> = args[2..]
        .iter()
        .map(|s| signals::parse(s).unwrap_or_else(|e| die(&format!("bad signal {s}: {e}"))))
        .collect();
    let mut accepted = vec![0u64; kinds.len()];
    let mut refused = vec![0u64; kinds.len()];
    let start = Instant::now();
    for n in 0..total {
        let k = n % kinds.len();
        let signo = kinds[k];
        // SAFETY: kill(2) / sigqueue(3) with plain numbers; a zeroed sigval is a valid value.
        let rc = unsafe {
            if signo >= libc::SIGRTMIN() {
                libc::sigqueue(pid, signo, std::mem::zeroed())
            } else {
                libc::kill(pid, signo)
            }
        };
        if rc == 0 {
            accepted[k] += 1;
        } else {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EAGAIN) {
                die(&format!("sending {}: {e}", signals::name(signo)));
            }
            refused[k] += 1;
        }
    }
    let elapsed = start.elapsed();
    for (k, &signo) in kinds.iter().enumerate() {
        println!(
            "{} accepted={} refused={}",
            signals::name(signo),
            accepted[k],
            refused[k]
        );
    }
    println!("elapsed_ms={}", elapsed.as_millis());
}
