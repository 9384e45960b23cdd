//! Every way out, in the order it runs: the marker the sidecars read (`marker`), the shutdown
//! calls to mesh and proxy sidecars (`shutdown`, after which the marker is written again with
//! their results), the sidecars' log tails (`tails`), the termination message
//! (`termination`), then the one exit code the outcome maps to (`exit`).

pub mod exit;
pub mod marker;
pub mod shutdown;
pub mod tails;
pub mod termination;
