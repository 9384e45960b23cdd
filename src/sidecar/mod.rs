//! The sidecar's side: the conditions that stop it (`until`), and the copy of its output on the
//! shared volume (`logcopy`, bounded by `rotating`).

pub mod logcopy;
pub mod rotating;
pub mod until;
