//! `[augment]` errors exit 2 with file:line:col, the key path and a suggestion; valid lists are
//! accepted in both TOML forms, and the model is checked at the augmented size.

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

fn spec(augment: &str) -> String {
    format!(
        "name = \"aug\"\n{}{MODEL}\n[train]\nepochs = 1\n\n[augment]\n{augment}",
        mnist_data_section()
    )
}

/// Validates (and tries to run) `text`; asserts exit 2, no runs folder and one error.
fn rejected(text: &str) -> (Run, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_spec(dir.path(), text);
    let path = path.to_str().unwrap();
    let r = assay(dir.path(), &["run", path]);
    assert_eq!(r.code, 2, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(!dir.path().join("runs").exists());
    let v = assay(dir.path(), &["validate", path]);
    assert_eq!(v.code, 2);
    assert_eq!(v.stderr, r.stderr);
    (r, path.to_string())
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in spec")
        + 1
}

/// Asserts the whole rendered error: one diagnostic pointing at `target`, the first occurrence
/// of it on the first line containing `needle`.
fn expect_one(
    text: &str,
    needle: &str,
    target: &str,
    message: &str,
    key: &str,
    help: Option<&str>,
) {
    let (r, path) = rejected(text);
    let line = line_of(text, needle);
    let src = text.lines().nth(line - 1).unwrap();
    let col = src.find(target).expect("target on the line") + 1;
    let pad = " ".repeat(line.to_string().len());
    let mut expected = format!(
        "error: {message}\n{pad}--> {path}:{line}:{col}\n{pad} |\n{line} | {src}\n{pad} | {}{}\n{pad} = key: {key}\n",
        " ".repeat(col - 1),
        "^".repeat(target.chars().count())
    );
    if let Some(h) = help {
        expected.push_str(&format!("{pad} = help: {h}\n"));
    }
    assert_eq!(r.stderr, expected);
}

#[test]
fn unknown_transform_type_suggests_the_nearest() {
    let text = spec(
        "train = [\n  { type = \"horizontal_flip\" },\n  { type = \"rotate\", degrees = 10 },\n]\n",
    );
    let (r, path) = rejected(&text);
    let line = line_of(&text, "\"rotate\"");
    assert!(
        r.stderr.starts_with(&format!(
            "error: unknown value \"rotate\"\n  --> {path}:{line}:12\n   |\n{line} |   {{ type = \"rotate\", degrees = 10 }},\n   |            ^^^^^^^^\n   = key: augment.train[1].type\n   = help: did you mean \"rotation\"? allowed: \"resize\", \"center_crop\""
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn unknown_key_in_a_transform() {
    let text = spec("[[augment.train]]\ntype = \"rotation\"\ndegrees = 10\nfil = 3\n");
    expect_one(
        &text,
        "fil = 3",
        "fil",
        "unknown key `fil` in [augment.train[0]]",
        "augment.train[0].fil",
        Some("did you mean `fill`?"),
    );
}

#[test]
fn crop_larger_than_the_padded_image() {
    let text = spec("train = [{ type = \"random_crop\", size = [32, 32], padding = 1 }]\n");
    expect_one(
        &text,
        "random_crop",
        "[32, 32]",
        "a 32×32 crop is larger than the 30×30 padded image (28×28 with padding 1)",
        "augment.train[0].size",
        Some("use a smaller size or more padding"),
    );
    // the size at that point of the list counts: after a resize to 20×20, 24 does not fit
    let text = spec("train = [\n  { type = \"resize\", size = 20 },\n  { type = \"center_crop\", size = 24 },\n]\n");
    expect_one(
        &text,
        "center_crop",
        "24",
        "a 24×24 crop is larger than the 20×20 image at this point of the list",
        "augment.train[1].size",
        None,
    );
}

#[test]
fn probability_outside_zero_one() {
    let text = spec("train = [{ type = \"rotation\", degrees = 10, p = 1.5 }]\n");
    expect_one(
        &text,
        "p = 1.5",
        "1.5",
        "1.5 is out of range: must be between 0 and 1",
        "augment.train[0].p",
        None,
    );
}

#[test]
fn negative_noise_and_even_blur_kernel() {
    let text = spec("train = [{ type = \"gaussian_noise\", std = -0.1 }]\n");
    expect_one(
        &text,
        "std = -0.1",
        "-0.1",
        "-0.1 is out of range: must be at least 0",
        "augment.train[0].std",
        None,
    );
    let text = spec("train = [{ type = \"gaussian_blur\", kernel_size = 4 }]\n");
    expect_one(
        &text,
        "kernel_size = 4",
        "4",
        "the blur kernel size must be odd, found 4",
        "augment.train[0].kernel_size",
        Some("use 3 or 5"),
    );
}

#[test]
fn shear_angles_stay_below_90_degrees() {
    // at 90° the warp divides by cos 90° and every pixel reads the fill
    let text = spec("train = [{ type = \"affine\", degrees = 0, shear = [0, 0, -10, 90] }]\n");
    expect_one(
        &text,
        "shear",
        "90",
        "90 is out of range: must be above -90 and below 90 (degrees)",
        "augment.train[0].shear[3]",
        None,
    );
    let text = spec("train = [{ type = \"affine\", degrees = 0, shear = 90 }]\n");
    expect_one(
        &text,
        "shear",
        "90",
        "90 is out of range: must be at least 0 and below 90 (degrees)",
        "augment.train[0].shear",
        None,
    );
}

#[test]
fn colour_transforms_need_three_channels() {
    let text = spec("train = [{ type = \"saturation\", factor = 0.3 }]\n");
    expect_one(
        &text,
        "saturation",
        "\"saturation\"",
        "`saturation` needs 3-channel (RGB) images, but these have 1 channel",
        "augment.train[0].type",
        Some("set data.channels = 3, or leave it out for grayscale data"),
    );
}

#[test]
fn train_and_eval_must_end_at_one_size() {
    let text = spec("train = [{ type = \"random_crop\", size = 24 }]\neval = [{ type = \"resize\", size = 26 }]\n");
    expect_one(
        &text,
        "eval = ",
        "[{ type = \"resize\", size = 26 }]",
        "the train list gives 24×24 images but the eval list gives 26×26: the model takes one input size",
        "augment.eval",
        Some("end both lists at the same size, e.g. random_crop in train and center_crop in eval"),
    );
    // an empty eval list keeps the decoded size
    let text = spec("train = [{ type = \"random_crop\", size = 24 }]\n");
    let (r, _) = rejected(&text);
    assert!(
        r.stderr.contains("the eval list gives 28×28"),
        "{}",
        r.stderr
    );
}

#[test]
fn random_transforms_are_refused_in_eval() {
    let text = spec("eval = [{ type = \"horizontal_flip\" }]\n");
    expect_one(
        &text,
        "eval = ",
        "{ type = \"horizontal_flip\" }",
        "`horizontal_flip` here is random, but the eval list must give the same image every time",
        "augment.eval[0]",
        Some("move it to augment.train, or make it fixed (p = 1 and a single value, not a range)"),
    );
}

#[test]
fn mix_parameters_are_checked() {
    let text = spec("[augment.mixup]\nalpha = 0\n");
    expect_one(
        &text,
        "alpha = 0",
        "0",
        "0 is out of range: must be above 0",
        "augment.mixup.alpha",
        None,
    );
}

#[test]
fn the_model_is_checked_at_the_augmented_size() {
    let text = spec(
        "train = [{ type = \"resize\", size = 1 }]\neval = [{ type = \"resize\", size = 1 }]\n",
    );
    let (r, _) = rejected(&text);
    assert!(
        r.stderr.starts_with("error: impossible model: layers[2]:"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("shapes so far: 1×1×1 → 4×1×1"),
        "{}",
        r.stderr
    );
}

#[test]
fn both_list_forms_validate_and_print_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let text = spec(
        "eval = [{ type = \"center_crop\", size = 24 }]\n\n[[augment.train]]\ntype = \"random_crop\"\nsize = [24, 24]\npadding = 2\n\n[[augment.train]]\ntype = \"rotation\"\ndegrees = 10\np = 0.5\n\n[augment.mixup]\nalpha = 0.2\n\n[augment.cutmix]\n",
    );
    let path = write_spec(dir.path(), &text);
    let v = assay(dir.path(), &["validate", path.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    for needle in [
        "train = [\n  { type = \"random_crop\", size = [24, 24], padding = 2, fill = 0, p = 1.0 },\n  { type = \"rotation\", degrees = [-10.0, 10.0], fill = 0, p = 0.5 },\n]",
        "eval = [\n  { type = \"center_crop\", size = [24, 24], p = 1.0 },\n]",
        "[augment.mixup]\nalpha = 0.2\np = 1.0",
        "[augment.cutmix]\nalpha = 1.0\np = 1.0",
    ] {
        assert!(v.stdout.contains(needle), "{needle}\n{}", v.stdout);
    }
    // sweeps and overrides reach into the lists
    let v = assay(
        dir.path(),
        &[
            "validate",
            path.to_str().unwrap(),
            "--set",
            "augment.train[1].degrees=[-5, 20]",
        ],
    );
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(v.stdout.contains("degrees = [-5.0, 20.0]"), "{}", v.stdout);
}

#[test]
fn size_changing_transforms_always_apply() {
    let text = spec("train = [{ type = \"random_crop\", size = 28, p = 0.5 }]\n");
    expect_one(
        &text,
        "p = 0.5",
        "0.5",
        "`random_crop` changes the image size, so it always applies: p must be 1",
        "augment.train[0].p",
        None,
    );
}
