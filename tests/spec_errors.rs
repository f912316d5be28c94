//! Every class of bad spec exits 2 with file:line:col, the key path and a suggestion, and
//! writes nothing under the runs folder.

mod common;

use common::cli::{assay, mnist_data_section, write_spec, Run};

const MODEL: &str = r#"
[model]
architecture = "cnn"
layers = [
  { type = "conv", filters = 4, kernel = 3, padding = 1 },
  { type = "relu" },
  { type = "max_pool", size = 2 },
]
"#;

fn base() -> String {
    format!("name = \"bad\"\n{}{MODEL}\n[optimizer]\nkind = \"adam\"\nlr = 0.001\n\n[train]\nepochs = 1\n", mnist_data_section())
}

/// Validates (and tries to run) `text` with `extra` args; asserts exit 2 and no runs folder.
fn rejected(text: &str, extra: &[&str]) -> (Run, String) {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), text);
    let spec = spec.to_str().unwrap();
    let mut args = vec!["run", spec];
    args.extend_from_slice(extra);
    let r = assay(dir.path(), &args);
    assert_eq!(r.code, 2, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        !dir.path().join("runs").exists(),
        "nothing may be written under runs/"
    );
    let mut vargs = vec!["validate", spec];
    vargs.extend_from_slice(extra);
    let v = assay(dir.path(), &vargs);
    assert_eq!(v.code, 2);
    assert_eq!(
        v.stderr, r.stderr,
        "validate and run report the same errors"
    );
    (r, spec.to_string())
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in spec")
        + 1
}

#[test]
fn misspelled_key_names_position_path_and_suggestion() {
    let text = base().replace("lr = 0.001", "lrr = 0.001");
    let (r, spec) = rejected(&text, &[]);
    let line = line_of(&text, "lrr = 0.001");
    let expected = format!(
        "error: unknown key `lrr` in [optimizer]\n  --> {spec}:{line}:1\n   |\n{line} | lrr = 0.001\n   | ^^^\n   = key: optimizer.lrr\n   = help: did you mean `lr`?\n"
    );
    assert_eq!(r.stderr, expected);
}

#[test]
fn string_where_a_number_belongs() {
    let text = base().replace("lr = 0.001", "lr = \"fast\"");
    let (r, spec) = rejected(&text, &[]);
    let line = line_of(&text, "lr = \"fast\"");
    assert!(
        r.stderr
            .starts_with("error: expected a number, found the string \"fast\"\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("--> {spec}:{line}:6\n")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("= key: optimizer.lr\n"), "{}", r.stderr);
}

#[test]
fn impossible_conv_stack_names_the_layer() {
    let text = base()
        .replace("image_size = [28, 28]", "image_size = [4, 4]")
        .replace("{ type = \"max_pool\", size = 2 },", "{ type = \"max_pool\", size = 2 },\n  { type = \"max_pool\", size = 2 },\n  { type = \"conv\", filters = 4, kernel = 3 },");
    let (r, spec) = rejected(&text, &[]);
    let line = line_of(&text, "{ type = \"conv\", filters = 4, kernel = 3 },");
    assert!(
        r.stderr.starts_with("error: impossible model: layers[4]: this conv (size 3, padding 0) receives a 4×1×1 feature map, smaller than its window, so nothing would be left (shapes so far: 1×4×4 → 4×4×4 → 4×4×4 → 4×2×2 → 4×1×1)\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("--> {spec}:{line}:3\n")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("= key: model.layers[4]\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("= help: use padding, a smaller kernel"),
        "{}",
        r.stderr
    );
}

#[test]
fn override_errors_name_the_override() {
    let (r, _) = rejected(&base(), &["--set", "train.epochs=abc"]);
    let expected = "error: expected an integer, found the string \"abc\"\n     --> --set train.epochs=abc (column 14)\n      |\n--set | train.epochs=abc\n      |              ^^^\n      = key: train.epochs\n";
    assert_eq!(r.stderr, expected);
    let (r, _) = rejected(&base(), &["--set", "optimizer.lrr=0.1"]);
    assert!(
        r.stderr
            .starts_with("error: unknown key `lrr` in [optimizer]\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("--> --set optimizer.lrr=0.1 (column 1)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("= help: did you mean `lr`?"),
        "{}",
        r.stderr
    );
    let (r, _) = rejected(&base(), &["--set", "model.layers[9].filters=3"]);
    assert!(
        r.stderr
            .contains("error: `model.layers` has 3 entries, so index [9] does not exist"),
        "{}",
        r.stderr
    );
    let (r, _) = rejected(&base(), &["--set", "optimizer.lr"]);
    assert!(
        r.stderr
            .contains("error: an override must look like key.path=value"),
        "{}",
        r.stderr
    );
}

#[test]
fn overrides_apply_when_valid() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &base());
    let r = assay(
        dir.path(),
        &[
            "validate",
            spec.to_str().unwrap(),
            "--set",
            "optimizer.kind=sgd",
            "--set",
            "optimizer.momentum=0.9",
            "--set",
            "model.layers[0].filters=8",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("kind = \"sgd\""), "{}", r.stdout);
    assert!(r.stdout.contains("momentum = 0.9"), "{}", r.stdout);
    assert!(r.stdout.contains("filters = 8"), "{}", r.stdout);
}

#[test]
fn unknown_values_suggest_the_closest() {
    let text = base().replace("type = \"max_pool\"", "type = \"maxpool\"");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.starts_with("error: unknown value \"maxpool\"\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("= key: model.layers[2].type\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("= help: did you mean \"max_pool\"?"),
        "{}",
        r.stderr
    );
}

#[test]
fn cross_field_conflicts() {
    let text = base().replace(
        "[train]",
        "[preprocess]\nnormalize = { mean = [0.5, 0.5, 0.5], std = [0.2, 0.2, 0.2] }\n\n[train]",
    );
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr
            .starts_with("error: normalize.mean has 3 values but data.channels is 1\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("= key: preprocess.normalize.mean\n"),
        "{}",
        r.stderr
    );

    let text = base().replace("[train]", "[split]\ntest_fraction = 0.2\n\n[train]");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr
            .starts_with("error: test_fraction conflicts with data.test"),
        "{}",
        r.stderr
    );

    let text = base().replace("lr = 0.001", "lr = 0.001\nmomentum = 0.9");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.starts_with(
            "error: `momentum` applies only to kind = \"sgd\", not to kind = \"adam\"\n"
        ),
        "{}",
        r.stderr
    );

    // Pooling windows may overlap (stride < size, as ResNet's stem)...
    let text = base().replace(
        "{ type = \"max_pool\", size = 2 }",
        "{ type = \"max_pool\", size = 3, stride = 2 }",
    );
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &text);
    let v = assay(dir.path(), &["validate", spec.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    // ...but the stride must be positive.
    let text = base().replace(
        "{ type = \"max_pool\", size = 2 }",
        "{ type = \"max_pool\", size = 3, stride = 0 }",
    );
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.contains("= key: model.layers[2].stride\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn ranges_sections_syntax_and_paths() {
    let text = base().replace("[train]", "[split]\nvalidation_fraction = 1.5\n\n[train]");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr
            .starts_with("error: 1.5 is out of range: must be at least 0 and below 1\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("= key: split.validation_fraction\n"),
        "{}",
        r.stderr
    );

    let text = base().replace(MODEL, "");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.starts_with("error: missing section [model]\n"),
        "{}",
        r.stderr
    );

    let text = base().replace("lr = 0.001", "lr = = 0.001");
    let (r, spec) = rejected(&text, &[]);
    let line = line_of(&text, "lr = = 0.001");
    assert!(r.stderr.starts_with("error: invalid TOML:"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("--> {spec}:{line}:")),
        "{}",
        r.stderr
    );

    let text = base().replace("test-images-idx3-ubyte.gz", "no-such-file.gz");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.starts_with("error: no such file or folder: "),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("no-such-file.gz"), "{}", r.stderr);
    assert!(
        r.stderr.contains("= key: data.test.images\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn several_errors_are_reported_at_once() {
    let text = base()
        .replace("lr = 0.001", "lrr = 0.001")
        .replace("epochs = 1", "epochs = 0");
    let (r, _) = rejected(&text, &[]);
    assert!(r.stderr.contains("unknown key `lrr`"), "{}", r.stderr);
    assert!(
        r.stderr.contains("0 is out of range: must be at least 1"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.ends_with("2 errors in the spec\n"), "{}", r.stderr);
}

#[test]
fn unreadable_spec_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = assay(dir.path(), &["validate", "missing.toml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("error: cannot read spec file missing.toml:"),
        "{}",
        r.stderr
    );
}
