//! Seeded mutations of every example spec (bytes deleted, tokens inserted, lines duplicated
//! or swapped, numbers replaced by extreme ones): loading never panics, and every error it
//! reports names a position in the file.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MUTATIONS: usize = 10_000;

const TOKENS: &[&str] = &[
    "=",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\"",
    "\n",
    "0",
    "-1",
    "1e400",
    "99999999999999999999",
    "nan",
    "inf",
    "true",
    "[[model.layers]]",
    "[model]",
    "x",
    ".",
    "#",
    "'",
    "\"\"\"",
    "\u{fffd}",
    " ",
];

const NUMBERS: &[&str] = &[
    "0",
    "-5",
    "1e308",
    "4294967297",
    "0.0",
    "65536",
    "-0.5",
    "1.5",
];

fn boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

fn mutate(text: &str, rng: &mut ChaCha8Rng) -> String {
    let mut t = text.to_string();
    for _ in 0..rng.random_range(1..=3) {
        let lines: Vec<&str> = t.lines().collect();
        t = match rng.random_range(0..5) {
            0 if !t.is_empty() => {
                let a = boundary(&t, rng.random_range(0..t.len()));
                let b = boundary(&t, a + rng.random_range(1..10));
                format!("{}{}", &t[..a], &t[b.max(a)..])
            }
            1 => {
                let a = boundary(&t, rng.random_range(0..=t.len()));
                let tok = TOKENS[rng.random_range(0..TOKENS.len())];
                format!("{}{tok}{}", &t[..a], &t[a..])
            }
            2 if !lines.is_empty() => {
                let i = rng.random_range(0..lines.len());
                let mut l: Vec<&str> = lines.clone();
                l.insert(i, lines[i]);
                l.join("\n")
            }
            3 if lines.len() > 1 => {
                let (i, j) = (
                    rng.random_range(0..lines.len()),
                    rng.random_range(0..lines.len()),
                );
                let mut l = lines.clone();
                l.swap(i, j);
                l.join("\n")
            }
            _ => {
                // Replace the first number after a random point.
                let a = boundary(&t, rng.random_range(0..=t.len()));
                match t[a..].find(|c: char| c.is_ascii_digit()) {
                    Some(k) => {
                        let start = a + k;
                        let end = t[start..]
                            .find(|c: char| {
                                !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-')
                            })
                            .map_or(t.len(), |e| start + e);
                        let n = NUMBERS[rng.random_range(0..NUMBERS.len())];
                        format!("{}{n}{}", &t[..start], &t[end..])
                    }
                    None => t,
                }
            }
        };
    }
    t
}

#[test]
fn mutated_specs_never_panic_and_every_error_has_a_position() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut examples = Vec::new();
    for entry in std::fs::read_dir(repo.join("experiments")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            examples.push(std::fs::read_to_string(&path).unwrap());
        }
    }
    assert!(examples.len() >= 6);
    let dir = tempfile::tempdir().unwrap();
    // The specs' relative data paths resolve as they do next to the examples.
    std::os::unix::fs::symlink(repo.join("experiments/data"), dir.path().join("data")).unwrap();
    let spec = dir.path().join("spec.toml");
    let mut rng = ChaCha8Rng::seed_from_u64(20261202);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..MUTATIONS {
        let text = mutate(&examples[i % examples.len()], &mut rng);
        std::fs::write(&spec, &text).unwrap();
        let loaded = std::panic::catch_unwind(|| assay::spec::load(&spec, &[]));
        let Ok(loaded) = loaded else {
            panic!("mutation {i} panicked; the spec was:\n{text}");
        };
        match loaded {
            Ok(_) => accepted += 1,
            Err(e) => {
                refused += 1;
                for d in &e.diagnostics {
                    assert!(
                        d.span.is_some(),
                        "mutation {i}: `{}` has no position; the spec was:\n{text}",
                        d.message
                    );
                }
            }
        }
    }
    eprintln!("{MUTATIONS} mutations: {accepted} accepted, {refused} refused with positions");
    assert!(refused > MUTATIONS / 4 && accepted > 0);
}
