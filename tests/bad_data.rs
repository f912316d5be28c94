//! Bad data through the binary: a corrupt image names the file (or is skipped and counted when
//! asked), an empty class folder and a label outside the class list are clear errors (exit 2).

mod common;

use std::path::Path;

use common::cli::{assay, run_spec, write_spec};

fn png(path: &Path, shade: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_fn(8, 8, |x, y| {
        image::Luma([shade.wrapping_add((x * y) as u8)])
    })
    .save(path)
    .unwrap();
}

/// An image folder with classes a and b, 6 images each.
fn folder(root: &Path) {
    for (class, shade) in [("a", 10u8), ("b", 200u8)] {
        for i in 0..6 {
            png(&root.join(class).join(format!("{i}.png")), shade + i as u8);
        }
    }
}

fn spec(data: &str) -> String {
    format!(
        "name = \"data\"\n[data]\n{data}\nimage_size = [8, 8]\nchannels = 1\n\n[split]\nvalidation_fraction = 0.25\n\n[model]\narchitecture = \"mlp\"\nlayers = []\n\n[train]\nepochs = 1\nbatch_size = 4\n"
    )
}

#[test]
fn a_corrupt_image_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    folder(&root);
    std::fs::write(root.join("b/broken.png"), b"not a png at all").unwrap();
    let s = write_spec(
        dir.path(),
        &spec("format = \"image-folder\"\ntrain = \"images\""),
    );
    let r = assay(
        dir.path(),
        &["run", s.to_str().unwrap(), "--runs-dir", "runs"],
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("broken.png"), "{}", r.stderr);
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn a_corrupt_image_can_be_skipped_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    folder(&root);
    std::fs::write(root.join("b/broken.png"), b"not a png at all").unwrap();
    let s = write_spec(
        dir.path(),
        &spec("format = \"image-folder\"\ntrain = \"images\"\non_corrupt = \"skip\""),
    );
    let r = run_spec(dir.path(), &s, &["--threads", "1"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("warning: skipped corrupt image") && r.stdout.contains("broken.png"),
        "{}",
        r.stdout
    );
}

#[test]
fn an_empty_class_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    folder(&root);
    std::fs::create_dir_all(root.join("c")).unwrap();
    let s = write_spec(
        dir.path(),
        &spec("format = \"image-folder\"\ntrain = \"images\""),
    );
    let r = assay(
        dir.path(),
        &["run", s.to_str().unwrap(), "--runs-dir", "runs"],
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("images/c"), "{}", r.stderr);
}

#[test]
fn a_csv_label_outside_the_class_list_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    folder(&root);
    let mut csv = String::from("path,label\n");
    for i in 0..6 {
        csv.push_str(&format!("images/a/{i}.png,a\nimages/b/{i}.png,b\n"));
    }
    csv.push_str("images/b/0.png,z\n");
    std::fs::write(dir.path().join("train.csv"), csv).unwrap();
    let s = write_spec(
        dir.path(),
        &spec("format = \"csv\"\ntrain = \"train.csv\"\nclasses = [\"a\", \"b\"]"),
    );
    let r = assay(
        dir.path(),
        &["run", s.to_str().unwrap(), "--runs-dir", "runs"],
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("train.csv:14"), "{}", r.stderr);
    assert!(
        r.stderr.contains("\"z\"") || r.stderr.contains("`z`") || r.stderr.contains(" z"),
        "{}",
        r.stderr
    );
}

#[test]
fn validate_and_plan_with_data_report_what_run_reports() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    folder(&root);
    let mut csv = String::from("path,label\n");
    for i in 0..6 {
        csv.push_str(&format!("images/a/{i}.png,a\nimages/b/{i}.png,b\n"));
    }
    std::fs::write(dir.path().join("good.csv"), &csv).unwrap();
    std::fs::write(
        dir.path().join("header.csv"),
        csv.replace("path,label", "file,class"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("outside.csv"),
        format!("{csv}images/b/0.png,z\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("corrupt/a")).unwrap();
    folder(&dir.path().join("corrupt"));
    std::fs::write(dir.path().join("corrupt/a/broken.png"), b"not a png").unwrap();
    let cases = [
        (
            "a corrupt image",
            spec("format = \"image-folder\"\ntrain = \"corrupt\""),
            "broken.png",
        ),
        (
            "a wrong CSV header",
            spec("format = \"csv\"\ntrain = \"header.csv\""),
            "header.csv",
        ),
        (
            "a label outside the classes",
            spec("format = \"csv\"\ntrain = \"outside.csv\"\nclasses = [\"a\", \"b\"]"),
            "outside.csv:14",
        ),
        (
            "a positive class the data does not have",
            spec("format = \"image-folder\"\ntrain = \"images\"\npositive_class = \"c\"")
                .replace("name = \"data\"", "name = \"data\"\ntask = \"binary\""),
            "positive_class \"c\"",
        ),
    ];
    for (what, text, needle) in cases {
        let s = write_spec(dir.path(), &text);
        let s = s.to_str().unwrap();
        let plain = assay(dir.path(), &["validate", s]);
        assert_eq!(
            plain.code, 0,
            "{what}: the spec itself is valid: {}",
            plain.stderr
        );
        let checked = assay(dir.path(), &["validate", "--data", s]);
        assert_eq!(checked.code, 2, "{what}: {}", checked.stderr);
        assert!(
            checked.stderr.contains(needle),
            "{what}: {}",
            checked.stderr
        );
        let planned = assay(dir.path(), &["plan", "--data", s]);
        assert_eq!(planned.code, 2, "{what}: {}", planned.stderr);
        assert!(!dir.path().join("runs").exists(), "{what}: nothing written");
        let run = assay(dir.path(), &["run", s, "--runs-dir", "runs"]);
        assert_eq!(run.code, 2, "{what}: {}", run.stderr);
        let error = |stderr: &str| {
            stderr
                .lines()
                .find(|l| l.starts_with("error:"))
                .map(String::from)
        };
        assert_eq!(
            error(&checked.stderr),
            error(&run.stderr),
            "{what}: the same message"
        );
        assert_eq!(
            error(&planned.stderr),
            error(&run.stderr),
            "{what}: the same message"
        );
        assert!(
            !dir.path().join("runs").exists(),
            "{what}: nothing written by run"
        );
    }

    // good data: a summary of what was loaded
    let s = write_spec(dir.path(), &spec("format = \"csv\"\ntrain = \"good.csv\""));
    let ok = assay(dir.path(), &["validate", "--data", s.to_str().unwrap()]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stderr.contains("data: 12 images to train and validate on (8 train + 4 validation in the first job), 0 test; 2 classes [a, b]; 1×8×8; data hash "),
        "{}",
        ok.stderr
    );
}

/// `assay run` on `text` in `dir`: exit 2 with `needle` in the error, nothing written; and
/// `assay validate --data` says the same.
fn refused_before_running(dir: &Path, text: &str, needle: &str) {
    let s = write_spec(dir, text);
    let r = run_spec(dir, &s, &[]);
    assert_eq!(r.code, 2, "{needle}: {}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(needle), "{}", r.stderr);
    assert!(!dir.join("runs").exists(), "{needle}: nothing written");
    let v = assay(dir, &["validate", "--data", s.to_str().unwrap()]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert!(v.stderr.contains(needle), "{}", v.stderr);
}

#[test]
fn data_that_cannot_make_a_classifier_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // one class folder
    for i in 0..6 {
        png(&dir.path().join("one/a").join(format!("{i}.png")), i as u8);
    }
    refused_before_running(
        dir.path(),
        &spec("format = \"image-folder\"\ntrain = \"one\""),
        "error: the training data has images of only one class (\"a\"): a classifier needs at least 2",
    );
    // a single image
    png(&dir.path().join("single/a/0.png"), 3);
    refused_before_running(
        dir.path(),
        &spec("format = \"image-folder\"\ntrain = \"single\""),
        "only one class",
    );
    // classes listed, but the images are all of one
    let rows: String = (0..6).map(|i| format!("one/a/{i}.png,a\n")).collect();
    std::fs::write(
        dir.path().join("onelabel.csv"),
        format!("path,label\n{rows}"),
    )
    .unwrap();
    refused_before_running(
        dir.path(),
        &spec("format = \"csv\"\ntrain = \"onelabel.csv\"\nclasses = [\"a\", \"b\"]"),
        "only one class (\"a\")",
    );
}

#[test]
fn duplicate_and_conflicting_manifest_rows_are_refused_with_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    folder(&dir.path().join("images"));
    let mut csv = String::from("path,label\n");
    for i in 0..6 {
        csv.push_str(&format!("images/a/{i}.png,a\nimages/b/{i}.png,b\n"));
    }
    std::fs::write(
        dir.path().join("dup.csv"),
        format!("{csv}images/a/3.png,a\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("conflict.csv"),
        format!("{csv}./images/a/3.png,b\n"),
    )
    .unwrap();
    refused_before_running(
        dir.path(),
        &spec("format = \"csv\"\ntrain = \"dup.csv\""),
        "dup.csv:14: image ",
    );
    let s = write_spec(dir.path(), &spec("format = \"csv\"\ntrain = \"dup.csv\""));
    let r = run_spec(dir.path(), &s, &[]);
    assert!(
        r.stderr
            .contains("images/a/3.png is listed again (first on line 8)\n"),
        "{}",
        r.stderr
    );
    refused_before_running(
        dir.path(),
        &spec("format = \"csv\"\ntrain = \"conflict.csv\""),
        "is listed again (first on line 8) with another label: \"a\" there, \"b\" here",
    );
}

#[test]
fn empty_splits_are_refused_and_small_classes_warned_of() {
    let dir = tempfile::tempdir().unwrap();
    // three classes of one image each: a stratified split holds none of them out
    for class in ["a", "b", "c"] {
        png(&dir.path().join("tiny").join(class).join("0.png"), 7);
    }
    let tiny = spec("format = \"image-folder\"\ntrain = \"tiny\"");
    refused_before_running(
        dir.path(),
        &tiny.replace(
            "validation_fraction = 0.25",
            "validation_fraction = 0\ntest_fraction = 0.3",
        ),
        "error: split.test_fraction = 0.3 of 3 images holds out no test image",
    );
    refused_before_running(
        dir.path(),
        &tiny,
        "error: split.validation_fraction = 0.25 of 3 images holds out no validation image",
    );
    // a class of 2 images and 3 folds: allowed, with a warning
    for i in 0..6 {
        png(
            &dir.path().join("rare/common").join(format!("{i}.png")),
            i as u8,
        );
    }
    for i in 0..2 {
        png(
            &dir.path().join("rare/rare").join(format!("{i}.png")),
            200 + i as u8,
        );
    }
    let s = write_spec(
        dir.path(),
        &spec("format = \"image-folder\"\ntrain = \"rare\"")
            .replace("validation_fraction = 0.25", "folds = 3"),
    );
    let v = assay(dir.path(), &["validate", "--data", s.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    let warning = "warning: class \"rare\" has 2 image(s), fewer than the 3 folds: the validation sets of 1 fold(s) have none of it";
    assert!(v.stderr.contains(warning), "{}", v.stderr);
    let r = run_spec(dir.path(), &s, &["--threads", "1"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(warning), "{}", r.stdout);
}

#[test]
fn data_too_large_to_hold_in_memory_is_refused_before_it_is_decoded() {
    let dir = tempfile::tempdir().unwrap();
    // Tiny IDX images asked for at 1000×1000 in colour: 3 MB each once decoded, and enough of
    // them that two copies (the run's and a job's) pass 90% of this machine's memory.
    let memory = assay::machine::memory().expect("/proc/meminfo is readable");
    let n = (memory / 10 * 9 / 2 / 3_000_000 + 1) as usize;
    let (images, labels) = (
        dir.path().join("big-images.gz"),
        dir.path().join("big-labels.gz"),
    );
    let pixels: Vec<u8> = (0..n * 16).map(|i| (i % 251) as u8).collect();
    assay::data::idx::write_idx_images_gz(&images, n, 4, 4, &pixels).unwrap();
    let classes: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
    assay::data::idx::write_idx_labels_gz(&labels, &classes).unwrap();
    let text = format!(
        "name = \"big\"\n[data]\nformat = \"idx\"\ntrain = {{ images = \"{}\", labels = \"{}\" }}\nimage_size = [1000, 1000]\nchannels = 3\n\n[preprocess]\nresize = \"bilinear\"\n\n[model]\narchitecture = \"cnn\"\nlayers = [{{ type = \"conv\", filters = 2, kernel = 5, stride = 5 }}, {{ type = \"max_pool\", size = 8 }}]\n\n[train]\nepochs = 1\nbatch_size = 1\n",
        images.display(),
        labels.display()
    );
    refused_before_running(
        dir.path(),
        &text,
        &format!("big-images.gz: {n} images of 1000×1000×3 take "),
    );
    let r = run_spec(dir.path(), &write_spec(dir.path(), &text), &[]);
    assert!(
        r.stderr.contains("can hold twice (the run keeps one copy of the data and each job another); use a smaller data.image_size or fewer images"),
        "{}",
        r.stderr
    );
}
