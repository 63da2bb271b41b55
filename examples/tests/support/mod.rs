//! Helpers shared by the end-to-end test binaries (each includes this module with `mod support;`).

pub(crate) mod http;
pub(crate) mod logs;
pub(crate) mod process;
