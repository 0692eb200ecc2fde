//! Checks of the workspace itself.

mod layering;
