//! Small things a user trips over at the command line: odd spec files, huge or overflowing
//! values, long names, `help --help`, and the same exit code from `status` and `report`.

mod common;

use common::cli::{assay, mnist_data_section, repo, write_spec};

fn base() -> String {
    format!(
        "name = \"edges\"\n{}\n[model]\narchitecture = \"mlp\"\nlayers = []\n",
        mnist_data_section()
    )
}

#[test]
fn odd_spec_files_are_refused_with_a_position_or_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"name = \"ok\"\nseed = \"a\xffb\"\n").unwrap();
    let r = assay(dir.path(), &["validate", "bad.toml"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "error: bad.toml:2:10: the spec is not valid UTF-8 (byte 0xff)\n"
    );
    let r = assay(dir.path(), &["validate", "/dev/zero"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "error: spec file /dev/zero is not a regular file\n"
    );
    let r = assay(dir.path(), &["run", "/dev/zero"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    std::fs::write(dir.path().join("big.toml"), vec![b'#'; 2 << 20]).unwrap();
    let r = assay(dir.path(), &["validate", "big.toml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("is larger than 1024 KiB"), "{}", r.stderr);
}

#[test]
fn overflowing_huge_and_long_values_get_short_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &base());
    let spec = spec.to_str().unwrap();
    let r = assay(
        dir.path(),
        &[
            "validate",
            spec,
            "--set",
            "train.epochs=99999999999999999999",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with(
            "error: integer 99999999999999999999 is out of range: at most 9223372036854775807\n"
        ),
        "{}",
        r.stderr
    );
    let r = assay(
        dir.path(),
        &["validate", spec, "--set", "optimizer.kind=adamm"],
    );
    assert!(r.stderr.contains("did you mean \"adam\"?"), "{}", r.stderr);

    let long = "x".repeat(300);
    let r = assay(
        dir.path(),
        &["validate", spec, "--set", &format!("name={long}")],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("use at most 100 letters"), "{}", r.stderr);

    let huge = "y".repeat(100_000);
    let text = base().replace(
        "name = \"edges\"",
        &format!("name = \"edges\"\nseed = \"{huge}\""),
    );
    let s = write_spec(dir.path(), &text);
    let r = assay(dir.path(), &["validate", s.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with("error: expected "),
        "{}",
        &r.stderr[..200]
    );
    assert!(
        r.stderr.len() < 2_000,
        "a 100 kB value is not echoed: {} bytes",
        r.stderr.len()
    );
    assert!(r.stderr.contains("= key: seed"), "{}", r.stderr);
}

#[test]
fn help_of_help_and_of_each_command() {
    let r = assay(&repo(), &["help", "--help"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Usage: assay help [COMMAND]"),
        "{}",
        r.stdout
    );
    let r = assay(&repo(), &["help", "run"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("Usage: assay run [OPTIONS] <SPEC>"),
        "{}",
        r.stdout
    );
    let r = assay(&repo(), &["help", "nope"]);
    assert_eq!(r.code, 2);
}

#[test]
fn status_and_report_agree_on_a_folder_that_is_not_an_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let s = assay(dir.path(), &["status", "."]);
    let r = assay(dir.path(), &["report", "."]);
    assert_eq!((s.code, r.code), (2, 2), "{}\n{}", s.stderr, r.stderr);
    assert_eq!(s.stderr, r.stderr);
}

#[test]
fn sizes_that_cannot_run_are_refused_at_validation_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let cnn = base().replace(
        "architecture = \"mlp\"\nlayers = []",
        "architecture = \"cnn\"\nlayers = [{ type = \"conv\", filters = 8, kernel = 3, padding = 1 }]",
    );
    let spec = write_spec(dir.path(), &cnn);
    let spec = spec.to_str().unwrap();
    let ok = assay(dir.path(), &["validate", spec, "--data"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    // conv 1→8 3×3: 80; head 8·28·28·10 + 10 = 62,730
    assert!(
        ok.stderr.contains("model: 62810 parameters, "),
        "{}",
        ok.stderr
    );
    for (set, needle) in [
        (
            "model.layers[0].padding=9223372036854775807",
            "9223372036854775807 is out of range: must be between 0 and 64",
        ),
        (
            "model.layers[0].filters=9223372036854775807",
            "must be between 1 and 16384",
        ),
        ("train.batch_size=100000", "must be between 1 and 65536"),
    ] {
        let r = assay(dir.path(), &["run", spec, "--set", set]);
        assert_eq!(r.code, 2, "{set}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{set}: {}", r.stderr);
    }
    let r = assay(
        dir.path(),
        &[
            "run",
            spec,
            "--set",
            "model.layers[0].filters=16384",
            "--set",
            "data.image_size=[2048, 2048]",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("error: the model cannot train in this machine's memory: about "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("at train.batch_size = 64 ("),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("runs").exists());
    let sweep = format!("{cnn}\n[split]\nfolds = 10\n[sweep]\nmethod = \"random\"\ntrials = 100000\nrepeats = 1000\n[sweep.parameters]\n\"optimizer.lr\" = {{ loguniform = [1e-4, 1e-2] }}\n");
    let s = write_spec(dir.path(), &sweep);
    let r = assay(dir.path(), &["plan", s.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with("error: the sweep plans 1000000000 jobs (100000 point(s) × 1000 repeat(s) × 10 fold(s)); at most 50000 are allowed"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_duplicate_key_is_shown_at_both_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}[train]\nepochs = 1\nbatch_size = 8\nepochs = 2\n",
        base()
    );
    let spec = write_spec(dir.path(), &text);
    let r = assay(dir.path(), &["validate", spec.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let second = text.lines().position(|l| l == "epochs = 2").unwrap() + 1;
    let first = text.lines().position(|l| l == "epochs = 1").unwrap() + 1;
    assert!(
        r.stderr.contains("error: invalid TOML: duplicate key"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&format!(":{second}:1")), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "= help: `epochs` is first defined at line {first}, column 1"
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn an_os_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &base());
    // A runs folder under a regular file cannot be created.
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let r = assay(
        dir.path(),
        &["run", spec.to_str().unwrap(), "--runs-dir", "file/runs"],
    );
    assert_ne!(r.code, 0);
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(line.contains("(os error"), "{}", r.stderr);
    assert_eq!(line.matches("(os error").count(), 1, "{line}");
}
