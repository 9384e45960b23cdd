//! Test helpers for the docker tests.
