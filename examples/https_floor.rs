//! The floor of the HTTPS call a credential costs, alone: see `floor/https.rs`. No key, no
//! signature, no CLI. `bench/instructions.sh` counts it so that the handshake's own share of
//! a credential is measured, not estimated.
//!
//! Usage: `https_floor https://HOST:PORT CA-FILE`. Prints the answer's status line.

#[path = "floor/https.rs"]
mod https;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, tail @ ..] = args.as_slice() else {
        return Err("usage: https_floor https://HOST:PORT CA-FILE".into());
    };
    if tail.len() != 2 {
        return Err("usage: https_floor https://HOST:PORT CA-FILE".into());
    }
    https::post_if_asked(tail)
}
