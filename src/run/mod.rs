//! The step: spawned clean (`child`), signals read and forwarded (`signals`), every exit
//! collected by the one waitpid (`reaper`), the running child owned by one task (`supervise`),
//! and what it left behind terminated (`leftovers`).

pub mod child;
pub mod dispositions;
pub mod leftovers;
pub mod reaper;
pub mod signals;
pub mod supervise;
pub mod vfork;
