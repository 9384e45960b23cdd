//! The step: spawned clean (`child`), signals read and forwarded (`signals`), every exit
//! collected by the one waitpid (`reaper`), the running child owned by one task (`supervise`)
//! or, for the plain init, by the main thread without a runtime (`direct`),
//! what it left behind terminated (`leftovers`), and podvisor kept out of the OOM killer's way
//! (`oom`).

pub mod child;
pub mod direct;
pub mod dispositions;
pub mod leftovers;
pub mod oom;
pub mod reaper;
pub mod signals;
pub mod supervise;
pub mod vfork;
