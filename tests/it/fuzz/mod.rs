//! Fuzz targets that run on stable Rust, in the ordinary test suite, with a fixed budget:
//! each target replays its seed corpus (`tests/fuzz-corpus/<target>/`) unchanged, then feeds
//! its parser byte-level mutations of those seeds (bit flips, truncation, insertion of random
//! bytes or of the format's own tokens, splicing two seeds, duplicating or deleting a chunk)
//! and purely random inputs, and checks properties of what comes back: no panic, errors
//! that are one line with no control character, accepted values that are valid.
//!
//! The run is deterministic (a fixed RNG seed and case count) so that CI sees the same
//! inputs every time. `RA_SIGNER_FUZZ_CASES=N` sets every target's
//! case count, and `RA_SIGNER_FUZZ_SEED=N` picks other inputs, for a longer local hunt:
//!
//! ```text
//! RA_SIGNER_FUZZ_CASES=200000 RA_SIGNER_FUZZ_SEED=$RANDOM \
//!   cargo test --release --features pkcs11,tpm --test it -- fuzz::
//! ```
//!
//! A failing input is shrunk, written to `target/tmp/fuzz-failures/<target>/`, and named in
//! the panic message; copied into `tests/fuzz-corpus/<target>/` as `regress-<what>` it is
//! replayed by every later run, and the fix gets a named test beside the target.

mod certs;
mod create_session;
mod keys;
#[cfg(feature = "pkcs11")]
mod pkcs11_uri;
mod rfc3339;
#[cfg(feature = "tpm")]
mod tss2;

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{
    Config, RngAlgorithm, TestCaseError, TestCaseResult, TestError, TestRng, TestRunner,
};

/// The largest input a target is given: every parser is fed bounded input, so a case that
/// allocates or loops in proportion to something other than its input shows up as slow.
pub(crate) const MAX_INPUT: usize = 64 * 1024;

/// The longest one case may take in the debug build: far above any parse of a seed-sized
/// input, far below a hang (an unbounded key-derivation cost, a quadratic loop gone wild).
const SLOW_CASE: Duration = Duration::from_secs(10);

/// The RNG seed when `RA_SIGNER_FUZZ_SEED` is not set.
const DEFAULT_SEED: u64 = 0x7261_2d73_6967_6e72;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?} is not a number"),
    }
}

/// The case count of a target: `default` unless `RA_SIGNER_FUZZ_CASES` says otherwise.
pub(crate) fn cases(default: u32) -> u32 {
    env_u64("RA_SIGNER_FUZZ_CASES").map_or(default, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target)
}

/// The seed corpus of `target`, in name order: (file name, bytes).
pub(crate) fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(bytes.len() <= MAX_INPUT, "{name} is larger than MAX_INPUT");
            (name, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no seed", dir.display());
    files
}

/// One edit of a seed. Positions are [`Index`]es so that they fit whatever length the input
/// has reached by then, and shrink towards the start.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    InsertToken(Index, Index),
    Delete(Index, Index),
    Duplicate(Index, Index, Index),
    Splice(Index, Index, Index),
}

/// Bytes that make parsers take their rarer branches: DER length forms and tags, sign bits,
/// NUL, and the control characters an error message must not echo raw.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x07, 0x0a, 0x0d, 0x1b, 0x30, 0x7f, 0x80, 0x81, 0x82, 0x83,
    0x84, 0x88, 0xa0, 0xff,
];

fn mutation(tokens: usize) -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![
        3 => proptest::sample::select(INTERESTING),
        1 => any::<u8>(),
    ];
    let mut choices = vec![
        (
            4,
            (any::<Index>(), 0u8..8)
                .prop_map(|(i, b)| Mutation::FlipBit(i, b))
                .boxed(),
        ),
        (
            2,
            (any::<Index>(), byte)
                .prop_map(|(i, b)| Mutation::SetByte(i, b))
                .boxed(),
        ),
        (1, any::<Index>().prop_map(Mutation::Truncate).boxed()),
        (
            2,
            (any::<Index>(), vec(any::<u8>(), 1..16))
                .prop_map(|(i, b)| Mutation::Insert(i, b))
                .boxed(),
        ),
        (
            1,
            (any::<Index>(), any::<Index>())
                .prop_map(|(a, b)| Mutation::Delete(a, b))
                .boxed(),
        ),
        (
            1,
            (any::<Index>(), any::<Index>(), any::<Index>())
                .prop_map(|(a, b, c)| Mutation::Duplicate(a, b, c))
                .boxed(),
        ),
        (
            1,
            (any::<Index>(), any::<Index>(), any::<Index>())
                .prop_map(|(a, b, c)| Mutation::Splice(a, b, c))
                .boxed(),
        ),
    ];
    if tokens > 0 {
        choices.push((
            3,
            (any::<Index>(), any::<Index>())
                .prop_map(|(at, t)| Mutation::InsertToken(at, t))
                .boxed(),
        ));
    }
    proptest::strategy::Union::new_weighted(choices)
}

/// A position in `0..=len`.
fn pos(i: &Index, len: usize) -> usize {
    i.index(len + 1)
}

fn apply(input: &mut Vec<u8>, m: &Mutation, seeds: &[Vec<u8>], tokens: &[&[u8]]) {
    let len = input.len();
    match m {
        Mutation::FlipBit(i, bit) if len > 0 => input[i.index(len)] ^= 1 << bit,
        Mutation::SetByte(i, b) if len > 0 => input[i.index(len)] = *b,
        Mutation::Truncate(i) => input.truncate(pos(i, len)),
        Mutation::Insert(i, bytes) => {
            let at = pos(i, len);
            input.splice(at..at, bytes.iter().copied());
        }
        Mutation::InsertToken(i, t) if !tokens.is_empty() => {
            let at = pos(i, len);
            input.splice(at..at, tokens[t.index(tokens.len())].iter().copied());
        }
        Mutation::Delete(a, n) if len > 0 => {
            let start = a.index(len);
            let end = start + n.index((len - start).min(64) + 1);
            input.drain(start..end);
        }
        Mutation::Duplicate(a, n, at) if len > 0 => {
            let start = a.index(len);
            let end = start + n.index((len - start).min(256) + 1);
            let chunk = input[start..end].to_vec();
            let at = pos(at, len);
            input.splice(at..at, chunk);
        }
        Mutation::Splice(other, cut, from) => {
            let other = &seeds[other.index(seeds.len())];
            let cut = pos(cut, len);
            let from = pos(from, other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        _ => {}
    }
    input.truncate(MAX_INPUT);
}

/// Inputs for a target: its seeds mutated one to eight times (nine in ten cases), or random
/// bytes. `tokens` are the format's own words (PEM armour lines, URI separators, JSON
/// punctuation), inserted whole, as a dictionary-driven fuzzer does.
pub(crate) fn inputs(
    seeds: Vec<Vec<u8>>,
    tokens: &'static [&'static [u8]],
) -> BoxedStrategy<Vec<u8>> {
    let mutated =
        (any::<Index>(), vec(mutation(tokens.len()), 1..8)).prop_map(move |(which, edits)| {
            let mut input = seeds[which.index(seeds.len())].clone();
            for edit in &edits {
                apply(&mut input, edit, &seeds, tokens);
            }
            input
        });
    prop_oneof![
        9 => mutated,
        1 => vec(any::<u8>(), 0..512),
    ]
    .boxed()
}

/// Runs `property` on every seed of `target` as it is, then on `cases` generated inputs with
/// the fixed RNG seed. On failure the shrunk input is saved and named in the panic.
pub(crate) fn fuzz<S>(
    target: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(&[u8]) -> TestCaseResult,
) where
    S: Strategy,
    S::Value: AsRef<[u8]> + Debug,
{
    for (name, bytes) in corpus(target) {
        if let Err(e) = timed(&property, &bytes) {
            panic!("fuzz target {target}: seed {name} fails: {e}");
        }
    }
    let (mut runner, seed) = runner(cases);
    let started = Instant::now();
    let result = runner.run(&strategy, |input| timed(&property, input.as_ref()));
    match result {
        Ok(()) => eprintln!(
            "fuzz target {target}: {cases} cases (seed {seed}) in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
        Err(TestError::Fail(why, input)) => {
            let saved = save_failure(target, input.as_ref());
            panic!(
                "fuzz target {target} (RA_SIGNER_FUZZ_SEED={seed}): {why}\n\
                 shrunk input ({} bytes) saved as {}: {:?}\n\
                 copy it to tests/fuzz-corpus/{target}/regress-<what> and add a named test",
                input.as_ref().len(),
                saved.display(),
                String::from_utf8_lossy(input.as_ref()),
            );
        }
        Err(TestError::Abort(why)) => panic!("fuzz target {target} aborted: {why}"),
    }
}

/// A proptest runner with `cases` cases, no failure files in the source tree, and the RNG
/// seeded from `RA_SIGNER_FUZZ_SEED` (or the fixed default); returns the seed too.
pub(crate) fn runner(cases: u32) -> (TestRunner, u64) {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let seed = env_u64("RA_SIGNER_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed));
    (TestRunner::new_with_rng(config, rng), seed)
}

fn timed(property: &impl Fn(&[u8]) -> TestCaseResult, input: &[u8]) -> TestCaseResult {
    let started = Instant::now();
    property(input)?;
    let took = started.elapsed();
    if took > SLOW_CASE {
        return Err(TestCaseError::fail(format!(
            "one case took {:.1} s (bounded input, unbounded work?)",
            took.as_secs_f64()
        )));
    }
    Ok(())
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes(),
        );
    }
    bytes
}

fn save_failure(target: &str, input: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-failures")
        .join(target);
    let _ = std::fs::create_dir_all(&dir);
    let digest = ring::digest::digest(&ring::digest::SHA256, input);
    let name: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = dir.join(name);
    let _ = std::fs::write(&path, input);
    path
}

/// An error message as ra-signer prints it: one line, no control character (a hostile file
/// or URI must not be able to forge a second `ra-signer:` line or move the cursor).
pub(crate) fn check_message(what: &str, message: &str) -> TestCaseResult {
    match message.chars().find(|c| c.is_control()) {
        Some(c) => Err(TestCaseError::fail(format!(
            "{what} holds the control character {c:?}: {message:?}"
        ))),
        None => Ok(()),
    }
}
