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
