//! The sidecar's side: the conditions that stop it (`until`), what it says while they do not
//! hold (`progress`), and the copy of its output on the shared volume (`logcopy`, bounded by
//! `rotating`).

pub mod logcopy;
pub mod progress;
pub mod rotating;
pub mod until;
