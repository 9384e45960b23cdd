//! Every CPU busy for a while, as a CI step's compile jobs keep them: one spinning process
//! pinned to each CPU the runner may use (`podvisor-bench spin CPU`), at the runner's nice.
//! Row 4 runs once more under it: there a woken wrapper finds its CPU taken and waits for the
//! scheduler to preempt the spinner, which an idle machine never shows.

use std::time::Duration;

use crate::ctx::Ctx;
use crate::proc;

/// The spinners; killed and reaped on drop, so that their CPU time counts as the bench's own.
pub struct Spinners {
    pids: Vec<i32>,
}

impl Spinners {
    /// Starts one spinner per CPU of the runner's set and lets their load build up.
    pub fn start(ctx: &Ctx) -> Result<Self, String> {
        let mut spinners = Self { pids: Vec::new() };
        for cpu in cpus()? {
            let argv = [ctx.runner.clone(), "spin".into(), cpu.to_string()];
            let pid = proc::spawn(&argv, &ctx.null_io()).map_err(|e| format!("spinner: {e}"))?;
            spinners.pids.push(pid);
        }
        // PELT's utilisation grows with a 32 ms half-life: by now each CPU reads as full.
        std::thread::sleep(Duration::from_millis(300));
        Ok(spinners)
    }

    /// How many there are: one per CPU.
    pub fn count(&self) -> usize {
        self.pids.len()
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        for &pid in &self.pids {
            proc::abandon(pid);
        }
    }
}

/// The CPUs the runner may run on.
fn cpus() -> Result<Vec<usize>, String> {
    // SAFETY: sched_getaffinity writes into a local set of the size given.
    let set = unsafe {
        let mut set = std::mem::zeroed::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(format!(
                "sched_getaffinity: {}",
                std::io::Error::last_os_error()
            ));
        }
        set
    };
    // SAFETY: CPU_ISSET reads the set filled above, within its size.
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// `podvisor-bench spin CPU`: runs on CPU only and spins until it is killed.
pub fn spin(args: &[String]) -> i32 {
    let Some(cpu) = args.first().and_then(|a| a.parse::<usize>().ok()) else {
        eprintln!("usage: podvisor-bench spin CPU");
        return 2;
    };
    // SAFETY: a local set, filled and handed to sched_setaffinity for this process.
    let pinned = unsafe {
        let mut set = std::mem::zeroed::<libc::cpu_set_t>();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !pinned {
        eprintln!("spin: CPU {cpu}: {}", std::io::Error::last_os_error());
        return 1;
    }
    loop {
        std::hint::spin_loop();
    }
}
