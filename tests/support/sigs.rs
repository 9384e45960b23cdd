//! Test helpers for the sigs tests.
