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
        r.stderr
            .contains("0 is out of range: must be between 1 and 100000"),
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

/// Asserts the first error of `stderr`: its message, where (at `needle` in `text`, column of
/// `value` on that line) and key path, and optionally its help.
#[allow(clippy::too_many_arguments)]
fn first_error(
    r: &Run,
    spec: &str,
    text: &str,
    needle: &str,
    value: &str,
    message: &str,
    key: &str,
    help: Option<&str>,
) {
    let line = line_of(text, needle);
    let col = text.lines().nth(line - 1).unwrap().find(value).unwrap() + 1;
    assert!(
        r.stderr.starts_with(&format!(
            "error: {message}\n{}--> {spec}:{line}:{col}\n",
            " ".repeat(line.to_string().len())
        )),
        "expected `{message}` at {line}:{col}, got\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("= key: {key}\n")),
        "{}",
        r.stderr
    );
    if let Some(h) = help {
        assert!(r.stderr.contains(&format!("= help: {h}\n")), "{}", r.stderr);
    }
}

fn with_task(task: &str, train_extra: &str) -> String {
    base()
        .replace(
            "name = \"bad\"\n",
            &format!("name = \"bad\"\ntask = \"{task}\"\n"),
        )
        .replace("epochs = 1\n", &format!("epochs = 1\n{train_extra}\n"))
}

#[test]
fn best_metric_must_be_one_of_the_tasks_metrics() {
    let text = with_task("binary", "best_metric = \"f1_macro\"");
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "best_metric",
        "\"f1_macro\"",
        "unknown metric \"f1_macro\" for task \"binary\"",
        "train.best_metric",
        Some("allowed for task \"binary\": \"loss\", \"accuracy\", \"precision\", \"recall\", \"f1\", \"roc_auc\", \"pr_auc\", \"f1_at_threshold\""),
    );
    let text = with_task("multiclass", "best_metric = \"hamming_loss\"");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr
            .starts_with("error: unknown metric \"hamming_loss\" for task \"multiclass\"\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn label_smoothing_is_multiclass_only_and_below_one() {
    let text = with_task("binary", "label_smoothing = 0.1");
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "label_smoothing",
        "0.1",
        "label_smoothing applies only to task = \"multiclass\", not \"binary\"",
        "train.label_smoothing",
        Some("remove it, or set it to 0"),
    );
    let text = with_task("multiclass", "label_smoothing = 1.0");
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "label_smoothing",
        "1.0",
        "1 is out of range: must be at least 0 and below 1",
        "train.label_smoothing",
        None,
    );
}

#[test]
fn class_weights_and_sampler_values() {
    let text = with_task("binary", "class_weights = [1.0, 2.0, 3.0]");
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "class_weights",
        "[1.0",
        "3 weights for 2 classes",
        "train.class_weights",
        Some("give one weight per class, in the order of the class list"),
    );
    let text = with_task("multiclass", "class_weights = [1.0, -2.0]");
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "class_weights",
        "-2.0",
        "-2 is out of range: must be at least 0",
        "train.class_weights[1]",
        None,
    );
    let text = with_task("multiclass", "class_weights = \"balance\"");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.starts_with("error: unknown value \"balance\"\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("did you mean \"balanced\"?"),
        "{}",
        r.stderr
    );
    let text = with_task("multiclass", "sampler = \"weighted\"");
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "sampler",
        "\"weighted\"",
        "unknown value \"weighted\"",
        "train.sampler",
        Some("allowed: \"shuffle\", \"balanced\""),
    );
}

#[test]
fn task_specific_data_keys() {
    let text = with_task("multiclass", "").replace(
        "image_size = [28, 28]\n",
        "image_size = [28, 28]\npositive_class = \"7\"\n",
    );
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "positive_class",
        "\"7\"",
        "positive_class applies only to task = \"binary\"",
        "data.positive_class",
        None,
    );
    let text = with_task("binary", "").replace(
        "image_size = [28, 28]\n",
        "image_size = [28, 28]\nclasses = [\"a\", \"b\", \"c\"]\n",
    );
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "classes = ",
        "[\"a\"",
        "task \"binary\" needs exactly 2 classes, found 3",
        "data.classes",
        None,
    );
    let text = with_task("binary", "").replace(
        "image_size = [28, 28]\n",
        "image_size = [28, 28]\nclasses = [\"a\", \"b\"]\npositive_class = \"c\"\n",
    );
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.starts_with("error: unknown value \"c\"\n"),
        "{}",
        r.stderr
    );
    let text = with_task("multilabel", "");
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "format = \"idx\"",
        "\"idx\"",
        "task \"multilabel\" needs a CSV manifest, not format \"idx\"",
        "data.format",
        None,
    );
}

#[test]
fn binary_data_with_ten_classes_is_refused_before_training() {
    // the classes are only known once the data is loaded: still exit 2, nothing written
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &with_task("binary", ""));
    let r = assay(dir.path(), &["run", spec.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "task \"binary\" needs exactly 2 classes, but the data has 10: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
        ),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("runs").exists());
}

/// `assay validate` on `text`: its exit code and stderr.
fn validate(text: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), text);
    assay(dir.path(), &["validate", spec.to_str().unwrap()])
}

#[test]
fn seeds_only_sweeps_and_no_validation_split_with_folds() {
    // repeats without parameters: the spec with 5 seeds
    let v = validate(&format!("{}\n[sweep]\nrepeats = 5\n", base()));
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(
        v.stderr
            .contains("is valid: 1 trial(s) × 1 fold(s) × 5 repeat(s) = 5 job(s)\n"),
        "{}",
        v.stderr
    );
    // a sweep of nothing is still an error, with the way out
    let (r, _) = rejected(&format!("{}\n[sweep]\nmethod = \"grid\"\n", base()), &[]);
    assert!(
        r.stderr
            .starts_with("error: nothing to sweep: no parameters and a single repeat\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("or repeats = 5 to run the spec with 5 seeds"),
        "{}",
        r.stderr
    );
    let (r, _) = rejected(
        &format!(
            "{}\n[sweep]\nmethod = \"random\"\ntrials = 3\nrepeats = 2\n",
            base()
        ),
        &[],
    );
    assert!(
        r.stderr
            .starts_with("error: a random sweep needs parameters to draw\n"),
        "{}",
        r.stderr
    );

    // validation_fraction = 0 means no split, which is what folds want
    let v = validate(&base().replace(
        "[train]",
        "[split]\nfolds = 3\nvalidation_fraction = 0\n\n[train]",
    ));
    assert_eq!(v.code, 0, "{}", v.stderr);
    let (r, _) = rejected(
        &base().replace(
            "[train]",
            "[split]\nfolds = 3\nvalidation_fraction = 0.2\n\n[train]",
        ),
        &[],
    );
    assert!(
        r.stderr
            .starts_with("error: validation_fraction conflicts with folds"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_valid_keys_hint_names_each_key_once() {
    let text = base().replace("[train]", "[schedule]\nzzzzzzzz = 1\n\n[train]");
    let (r, _) = rejected(&text, &[]);
    let help = r
        .stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("= help: valid keys here: "))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    let keys: Vec<&str> = help.split(", ").collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(keys.len(), unique.len(), "{help}");
    assert!(keys.contains(&"warmup_epochs"), "{help}");
}

#[test]
fn data_labels_only_for_multilabel_csv_and_not_beside_classes() {
    // multiclass IDX data has no label columns
    let text = with_task("multiclass", "").replace(
        "image_size = [28, 28]\n",
        "image_size = [28, 28]\nlabels = [\"cat\", \"dog\"]\n",
    );
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "labels = [",
        "labels",
        "labels applies only to task = \"multilabel\" with format = \"csv\" (a manifest with one 0/1 column per label)",
        "data.labels",
        None,
    );
    // with one column per label, the label columns are the classes
    let manifest = common::cli::repo().join("Cargo.toml");
    let text = with_task("multilabel", "").replace(
        &mnist_data_section(),
        &format!(
            "[data]\nformat = \"csv\"\ntrain = \"{}\"\nimage_size = [28, 28]\nclasses = [\"cat\", \"dog\"]\nlabels = [\"cat\", \"dog\"]\n",
            manifest.display()
        ),
    );
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "labels = [",
        "labels",
        "labels conflicts with classes: the label columns are the classes",
        "data.labels",
        Some("remove classes; the order of labels is the class order"),
    );
    // a label listed twice
    let text = text
        .replace("classes = [\"cat\", \"dog\"]\n", "")
        .replace("labels = [\"cat\", \"dog\"]", "labels = [\"cat\", \"cat\"]");
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "labels = [",
        "\"cat\"]",
        "label \"cat\" is listed twice",
        "data.labels[1]",
        None,
    );
}

fn with_model(model: &str) -> String {
    base().replace(MODEL, model)
}

#[test]
fn architecture_keys_are_checked_with_positions_and_suggestions() {
    let text = with_model("\n[model]\narchitecture = \"resnet\"\ndepth = 19\n");
    let (r, spec) = rejected(&text, &[]);
    assert!(
        r.stderr.contains("error: 19 is not an available depth"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("{spec}:{}:9", line_of(&text, "depth = 19"))),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("allowed: 18, 34, 50, 20, 32, 44, 56, 110"),
        "{}",
        r.stderr
    );

    let text = with_model("\n[model]\narchitecture = \"resnet\"\ndepth = 20\nlayers = []\n");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.contains("unknown key `layers` in [model]"),
        "{}",
        r.stderr
    );

    let text = with_model("\n[model]\narchitecture = \"vit\"\nwidth = 100\nheads = 3\npatch = 7\n");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr
            .contains("width = 100 is not a multiple of heads = 3"),
        "{}",
        r.stderr
    );

    let text = with_model("\n[model]\narchitecture = \"resnet_50\"\n");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.contains("did you mean \"resnet\"?"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_image_too_small_for_the_architecture_names_the_block() {
    // MNIST's 28×28 does not tile into 16×16 patches; 16×16 images are too small for
    // MobileNetV2's five stride-2 stages.
    let text = with_model("\n[model]\narchitecture = \"vit\"\n");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr
            .contains("impossible model for 1×28×28 images: patch_embed:"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("= key: model\n"), "{}", r.stderr);
    let text = with_model("\n[model]\narchitecture = \"mobilenet_v2\"\n");
    let (r, _) = rejected(&text, &["--set", "data.image_size=[16, 16]"]);
    assert!(
        r.stderr
            .contains("impossible model for 1×16×16 images: features."),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("needs images of at least 32×32"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_residual_block_that_cannot_be_added_is_an_error() {
    let text = with_model(
        "\n[model]\narchitecture = \"cnn\"\nlayers = [\n  { type = \"residual\", layers = [{ type = \"conv\", filters = 4, kernel = 3 }] },\n]\n",
    );
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.contains("layers[0]: layers[0]:") || r.stderr.contains("1×28×28 into 4×26×26"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("no strided 1×1 projection"),
        "{}",
        r.stderr
    );
}

#[test]
fn missing_data_points_at_the_command_the_spec_says_makes_it() {
    let data =
        "[data]\nformat = \"csv\"\ntrain = \"data/mosaic/train.csv\"\nimage_size = [28, 28]\n";
    let text = format!(
        "# Made by:\n#   python3 scripts/make-mosaic.py --small    # writes data/mosaic/ (~10 s)\nname = \"bad\"\n{data}{MODEL}\n[train]\nepochs = 1\n"
    );
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.contains("= help: the spec's comment says `python3 scripts/make-mosaic.py --small` writes data/mosaic/: run it first\n"),
        "{}",
        r.stderr
    );
    // a missing path the comment says nothing of keeps the plain help
    let (r, _) = rejected(
        &text.replace("data/mosaic/train.csv", "other/train.csv"),
        &[],
    );
    assert!(
        r.stderr
            .contains("= help: relative paths start from the spec file's folder\n"),
        "{}",
        r.stderr
    );
}

/// `base()` with `[schedule]` holding `schedule` and `train.epochs = 10`.
fn with_schedule(schedule: &str) -> String {
    base()
        .replace("epochs = 1\n", "epochs = 10\n")
        .replace("[train]", &format!("[schedule]\n{schedule}\n\n[train]"))
}

#[test]
fn milestones_must_rise_and_end_before_training_does() {
    let text = with_schedule("type = \"multistep\"\nmilestones = [3, 3]");
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "milestones = [3, 3]",
        "3]",
        "milestone 3 does not come after 3",
        "schedule.milestones[1]",
        Some("list the milestones in strictly increasing order"),
    );
    let text = with_schedule("type = \"multistep\"\nmilestones = [2, 10]");
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "milestones = [2, 10]",
        "10]",
        "milestone 10 is not before the end of training (train.epochs = 10)",
        "schedule.milestones[1]",
        None,
    );
    let text = with_schedule("type = \"multistep\"\nmilestones = [0, 4]");
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "milestones = [0, 4]",
        "0,",
        "0 is out of range: must be at least 1",
        "schedule.milestones[0]",
        None,
    );
    let text = with_schedule("type = \"multistep\"\ngamma = 0.5");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr
            .starts_with("error: missing key `milestones` in [schedule]\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn schedule_keys_of_another_type_and_out_of_range_values_are_refused() {
    let text = with_schedule("type = \"exponential\"\ngamma = 0.9\nt0 = 5");
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "t0 = 5",
        "t0",
        "`t0` applies only to type = \"cosine_restarts\", not to type = \"exponential\"",
        "schedule.t0",
        None,
    );
    let text = with_schedule("type = \"step\"\nevery_epochs = 2\nmin_lr = 0.001");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.starts_with("error: `min_lr` applies only to type = \"cosine\" or type = \"cosine_restarts\" or type = \"reduce_on_plateau\", not to type = \"step\"\n"),
        "{}",
        r.stderr
    );
    let text = with_schedule("type = \"one_cycle\"\nfactor = 0.5");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.starts_with("error: `factor` applies only to type = \"reduce_on_plateau\", not to type = \"one_cycle\"\n"),
        "{}",
        r.stderr
    );
    for (schedule, needle, value, message, key) in [
        (
            "type = \"exponential\"\ngamma = 1.5",
            "gamma",
            "1.5",
            "1.5 is out of range: must be above 0 and at most 1",
            "schedule.gamma",
        ),
        (
            "type = \"one_cycle\"\npct_start = 1.0",
            "pct_start",
            "1.0",
            "1 is out of range: must be above 0 and below 1",
            "schedule.pct_start",
        ),
        (
            "type = \"one_cycle\"\nanneal = \"cosine\"",
            "anneal",
            "\"cosine\"",
            "unknown value \"cosine\"",
            "schedule.anneal",
        ),
        (
            "type = \"cosine_restarts\"\nt0 = 2\nt_mult = 0",
            "t_mult",
            "0",
            "0 is out of range: must be at least 1",
            "schedule.t_mult",
        ),
        (
            "type = \"reduce_on_plateau\"\nfactor = 1.0",
            "factor",
            "1.0",
            "1 is out of range: must be above 0 and below 1",
            "schedule.factor",
        ),
    ] {
        let text = with_schedule(schedule);
        let (r, spec) = rejected(&text, &[]);
        first_error(&r, &spec, &text, needle, value, message, key, None);
    }
    let text = with_schedule("type = \"exponential\"");
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr
            .starts_with("error: missing key `gamma` in [schedule]\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn reduce_on_plateau_needs_a_validation_split() {
    let text = with_schedule("type = \"reduce_on_plateau\"").replace(
        "[schedule]",
        "[split]\nvalidation_fraction = 0\n\n[schedule]",
    );
    let (r, spec) = rejected(&text, &[]);
    first_error(
        &r,
        &spec,
        &text,
        "type = \"reduce_on_plateau\"",
        "\"reduce_on_plateau\"",
        "reduce_on_plateau decides on the validation metric, but the spec has no validation split",
        "schedule.type",
        Some("set split.validation_fraction above 0 (or split.folds), without split.refit, or choose another schedule"),
    );
    let text = with_schedule("type = \"reduce_on_plateau\"").replace(
        "[schedule]",
        "[split]\nfolds = 3\nvalidation_fraction = 0\nrefit = true\n\n[schedule]",
    );
    let (r, _) = rejected(&text, &[]);
    assert!(
        r.stderr.starts_with("error: reduce_on_plateau decides on the validation metric, but its refit job retrains on all training data, without validation\n"),
        "{}",
        r.stderr
    );
    // With folds (each fold validates) or a validation fraction it is valid.
    let text = with_schedule("type = \"reduce_on_plateau\"\npatience = 2").replace(
        "[schedule]",
        "[split]\nfolds = 3\nvalidation_fraction = 0\n\n[schedule]",
    );
    let v = validate(&text);
    assert_eq!(v.code, 0, "{}", v.stderr);
    let v = validate(&with_schedule("type = \"reduce_on_plateau\""));
    assert_eq!(v.code, 0, "{}", v.stderr);
}

#[test]
fn clip_grad_norm_and_ema_decay_ranges() {
    for (extra, value, message, key) in [
        (
            "clip_grad_norm = 0",
            "0",
            "0 is out of range: must be above 0",
            "train.clip_grad_norm",
        ),
        (
            "ema_decay = 1.0",
            "1.0",
            "1 is out of range: must be above 0 and below 1",
            "train.ema_decay",
        ),
        (
            "ema_decay = \"high\"",
            "\"high\"",
            "expected a number, found the string \"high\"",
            "train.ema_decay",
        ),
    ] {
        let text = base().replace("epochs = 1\n", &format!("epochs = 1\n{extra}\n"));
        let (r, spec) = rejected(&text, &[]);
        first_error(&r, &spec, &text, extra, value, message, key, None);
    }
    let text = base().replace(
        "epochs = 1\n",
        "epochs = 1\nclip_grad_norm = 1.5\nema_decay = 0.99\n",
    );
    let v = validate(&text);
    assert_eq!(v.code, 0, "{}", v.stderr);
}
