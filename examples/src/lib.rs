//! Building blocks of the example programs, shared by the binaries, the quickstart and the
//! end-to-end tests.

pub mod dev_idp;
