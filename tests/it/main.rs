//! The integration tests: one binary that runs the real `ra-signer` and `ra-emulator`
//! (and, per backend, real SoftHSM2 tokens and swtpm instances) as child processes.

mod common;

mod cli;
mod file_keys;
mod real_clients;
