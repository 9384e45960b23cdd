//! Test helpers for the pod tests.
