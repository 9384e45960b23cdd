//! Every way out, in the order it runs: the marker the sidecars read (`marker`), then the one
//! exit code the outcome maps to (`exit`).

pub mod exit;
pub mod marker;
