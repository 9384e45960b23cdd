//! Test helpers for the wait tests.
