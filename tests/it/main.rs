//! The integration tests: one binary that runs the real `ra-signer` and `ra-emulator`
//! (and, per backend, real SoftHSM2 tokens and swtpm instances) as child processes.

mod common;

mod cache;
mod cli;
mod config_file;
mod credentials_file;
mod doctor;
mod dropin;
mod endpoint;
mod exec;
mod fault_matrix;
mod file_keys;
mod fuzz;
mod generate;
mod hardware_faults;
mod hostile;
mod metrics;
mod mldsa;
mod package;
mod pkcs11;
mod process;
mod real_clients;
mod refresh;
mod s3;
mod sdnotify;
mod serve;
#[cfg(feature = "tpm")]
mod tpm;
#[cfg(feature = "tpm")]
mod tpm_build;
mod trust_policy;
mod update;
