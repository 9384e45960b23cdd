//! The sidecar's side: the conditions that stop it (`until`), and what it says while they do
//! not hold (`progress`).

pub mod progress;
pub mod until;
