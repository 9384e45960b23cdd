//! The sidecar's side: the conditions that stop it (`until`).

pub mod until;
