//! Using a trained model: `assay evaluate` on a job's own test data gives back its
//! `metrics.json` test metrics exactly, and `assay predict` on the same images gives the rows of
//! its `predictions.csv`, for the multiclass, binary and multilabel tasks.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::cli::{assay, metrics, mnist_subset, only_job, run_spec, write_spec};
use common::predictions;
use serde_json::Value;

/// The first `n` images of the shipped MNIST subset's `split`, with their digits.
fn digits(split: &str, n: usize) -> Vec<(image::GrayImage, u8)> {
    use assay::data::idx::{read_idx_images, read_idx_labels};
    let (_, h, w, pixels) =
        read_idx_images(mnist_subset(&format!("{split}-images-idx3-ubyte.gz"))).unwrap();
    let labels = read_idx_labels(mnist_subset(&format!("{split}-labels-idx1-ubyte.gz"))).unwrap();
    (0..n)
        .map(|i| {
            let px = pixels[i * h * w..(i + 1) * h * w].to_vec();
            let img = image::GrayImage::from_raw(w as u32, h as u32, px).unwrap();
            (img, labels[i])
        })
        .collect()
}

/// Writes `root/<class>/<i>.png`, the class of each image given by `class_of`.
fn image_folder(root: &Path, images: &[(image::GrayImage, u8)], class_of: impl Fn(u8) -> String) {
    for (i, (img, digit)) in images.iter().enumerate() {
        let dir = root.join(class_of(*digit));
        std::fs::create_dir_all(&dir).unwrap();
        img.save(dir.join(format!("{i:04}.png"))).unwrap();
    }
}

/// Writes the images as `root/img/<i>.png` with a `root.csv`-style manifest `manifest`, each
/// image's label cell given by `labels_of`.
fn manifest(
    root: &Path,
    name: &str,
    images: &[(image::GrayImage, u8)],
    labels_of: impl Fn(u8) -> String,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::from("path,label\n");
    for (i, (img, digit)) in images.iter().enumerate() {
        img.save(dir.join(format!("{i:04}.png"))).unwrap();
        text.push_str(&format!("{name}/{i:04}.png,{}\n", labels_of(*digit)));
    }
    let path = root.join(format!("{name}.csv"));
    std::fs::write(&path, text).unwrap();
    path
}

fn spec(task: &str, format: &str, train: &Path, test: &Path) -> String {
    format!(
        r#"name = "use"
task = "{task}"

[data]
format = "{format}"
train = "{}"
test = "{}"
channels = 1
image_size = [28, 28]

[split]
validation_fraction = 0.2

[model]
architecture = "cnn"
layers = [
  {{ type = "conv", filters = 8, kernel = 3, padding = 1 }},
  {{ type = "relu" }},
  {{ type = "max_pool", size = 2 }},
  {{ type = "dense", units = 32 }},
  {{ type = "relu" }},
]

[optimizer]
lr = 3e-3

[train]
epochs = 2
batch_size = 32
eval_batch_size = 64
"#,
        train.display(),
        test.display()
    )
}

/// Trains the multiclass spec on `n_train` digits in `d/train/<digit>/` with `n_test` in
/// `d/test/` (experiment `runs/use`), with `extra` arguments to `assay run`.
fn digit_job(d: &Path, n_train: usize, n_test: usize, extra: &[&str]) {
    image_folder(&d.join("train"), &digits("train", n_train), |l| {
        l.to_string()
    });
    image_folder(&d.join("test"), &digits("test", n_test), |l| l.to_string());
    let text = spec(
        "multiclass",
        "image-folder",
        &d.join("train"),
        &d.join("test"),
    );
    let r = run_spec(d, &write_spec(d, &text), extra);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `assay evaluate` on the test data equals `final.test`; `assay predict --csv` on the test
/// images equals the test rows of predictions.csv (but for `split` and `true`), matched by the
/// image's path below the test data's folder.
fn check_job(dir: &Path, eval_data: &Path, images: &Path, strip: &Path) {
    let experiment = dir.join("runs/use");
    let job = only_job(&experiment);
    let out = dir.join("eval.json");
    let r = assay(
        dir,
        &[
            "evaluate",
            job.to_str().unwrap(),
            "--data",
            eval_data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("| metric | value |"), "{}", r.stdout);
    let evaluated: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(evaluated, metrics(&job)["final"]["test"]);

    // From the experiment folder: the best trial's best job, said on stderr.
    let r = assay(
        dir,
        &[
            "predict",
            experiment.to_str().unwrap(),
            images.to_str().unwrap(),
            "--csv",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = job.file_name().unwrap().to_str().unwrap();
    assert!(
        r.stderr
            .contains(&format!("model: job {id} of the best trial 0")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("images/s"), "{}", r.stderr);
    let mut reader = csv::Reader::from_reader(r.stdout.as_bytes());
    let head: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let predicted: BTreeMap<String, BTreeMap<String, String>> = reader
        .records()
        .map(|rec| {
            let row: BTreeMap<String, String> = head
                .iter()
                .cloned()
                .zip(rec.unwrap().iter().map(str::to_string))
                .collect();
            let rel = Path::new(&row["path"])
                .strip_prefix(strip)
                .unwrap()
                .display()
                .to_string();
            (rel, row)
        })
        .collect();
    let (job_head, rows) = predictions::read(&job, "test");
    let expected_head: Vec<&String> = job_head
        .iter()
        .filter(|c| *c != "split" && *c != "true")
        .collect();
    assert_eq!(head.iter().collect::<Vec<_>>(), expected_head);
    assert_eq!(predicted.len(), rows.len());
    for row in &rows {
        let rel = row["path"].strip_prefix("test/").unwrap();
        let mine = predicted
            .get(rel)
            .unwrap_or_else(|| panic!("{rel} not predicted"));
        for col in head.iter().filter(|c| *c != "path") {
            assert_eq!(mine[col], row[col], "{rel}: {col}");
        }
    }
}

#[test]
fn multiclass_evaluate_and_predict_reproduce_the_jobs_test_results() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    digit_job(d, 600, 150, &[]);
    check_job(d, &d.join("test"), &d.join("test"), &d.join("test"));

    // Text and JSON: the top-k classes, most probable first, as the CSV's probabilities say.
    let job = only_job(&d.join("runs/use"));
    let one = d.join("test/7/0000.png");
    let r = assay(
        d,
        &[
            "predict",
            job.to_str().unwrap(),
            one.to_str().unwrap(),
            "--json",
            "--top-k",
            "2",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let top = v[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    assert_eq!(v[0]["predicted"], top[0]["class"]);
    assert!(top[0]["probability"].as_f64() >= top[1]["probability"].as_f64());
    let r = assay(
        d,
        &["predict", job.to_str().unwrap(), one.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let first = top[0]["class"].as_str().unwrap();
    assert!(
        r.stdout
            .starts_with(&format!("{}  {first} ", one.display())),
        "{}",
        r.stdout
    );
    // A glob that the shell did not expand.
    let pattern = format!("{}/7/*.png", d.join("test").display());
    let r = assay(d, &["predict", job.to_str().unwrap(), &pattern, "--csv"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let sevens = std::fs::read_dir(d.join("test/7")).unwrap().count();
    assert_eq!(r.stdout.lines().count(), sevens + 1);
}

#[test]
fn binary_predict_applies_the_validation_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let name = |l: u8| if l == 7 { "seven" } else { "other" }.to_string();
    image_folder(&d.join("train"), &digits("train", 600), name);
    image_folder(&d.join("test"), &digits("test", 150), name);
    let text = spec("binary", "image-folder", &d.join("train"), &d.join("test"))
        .replace("channels = 1", "channels = 1\npositive_class = \"seven\"");
    let s = write_spec(d, &text);
    let r = run_spec(d, &s, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    check_job(d, &d.join("test"), &d.join("test"), &d.join("test"));
    let job = only_job(&d.join("runs/use"));
    let threshold = metrics(&job)["final"]["val"]["threshold"].as_f64().unwrap();
    let r = assay(
        d,
        &[
            "predict",
            job.to_str().unwrap(),
            d.join("test").to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    for item in v.as_array().unwrap() {
        assert_eq!(item["threshold"].as_f64(), Some(threshold));
        let p = item["probability"].as_f64().unwrap();
        let want = if p >= threshold { "seven" } else { "other" };
        assert_eq!(item["predicted"], want, "{item}");
    }
}

#[test]
fn multilabel_predict_lists_every_label_over_its_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let labels = |l: u8| {
        let mut v = Vec::new();
        if l.is_multiple_of(2) {
            v.push("even");
        }
        if l < 5 {
            v.push("small");
        }
        if l == 0 || l == 8 {
            v.push("round");
        }
        v.join(";")
    };
    let train = manifest(d, "train", &digits("train", 600), labels);
    let test = manifest(d, "test", &digits("test", 150), labels);
    let s = write_spec(d, &spec("multilabel", "csv", &train, &test));
    let r = run_spec(d, &s, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // predictions.csv names images relative to the manifest's folder, `test/<i>.png`.
    check_job(d, &test, &d.join("test"), d);
    let job = only_job(&d.join("runs/use"));
    let r = assay(
        d,
        &[
            "predict",
            job.to_str().unwrap(),
            d.join("test").to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    for item in v.as_array().unwrap() {
        let over: Vec<&str> = item["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["probability"].as_f64().unwrap() >= 0.5)
            .map(|p| p["label"].as_str().unwrap())
            .collect();
        let predicted: Vec<&str> = item["predicted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert_eq!(predicted, over);
    }
}

#[test]
fn what_cannot_be_used_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("empty")).unwrap();
    let r = assay(d, &["predict", d.join("empty").to_str().unwrap(), "x.png"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("no such file or folder: x.png"),
        "{}",
        r.stderr
    );
    std::fs::write(d.join("a.png"), b"not a png").unwrap();
    let r = assay(d, &["predict", d.join("empty").to_str().unwrap(), "a.png"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("is neither a job folder (with job.json) nor an experiment folder"),
        "{}",
        r.stderr
    );

    // A trained job: a corrupt image and data of another class are named.
    digit_job(d, 200, 50, &["--set", "train.epochs=1"]);
    let job = only_job(&d.join("runs/use"));
    let r = assay(d, &["predict", job.to_str().unwrap(), "a.png"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("a.png"), "{}", r.stderr);
    image_folder(&d.join("other"), &digits("test", 3), |_| "cat".into());
    let r = assay(
        d,
        &[
            "evaluate",
            job.to_str().unwrap(),
            "--data",
            d.join("other").to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cat"), "{}", r.stderr);
    let r = assay(
        d,
        &[
            "evaluate",
            job.to_str().unwrap(),
            "--data",
            "x.gz",
            "--format",
            "idx",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--labels"), "{}", r.stderr);
    // The job's training data may be gone: the model is still usable.
    std::fs::remove_dir_all(d.join("train")).unwrap();
    let r = assay(
        d,
        &[
            "predict",
            job.to_str().unwrap(),
            d.join("test").to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_model_started_from_another_jobs_weights_is_usable_without_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    digit_job(d, 300, 60, &["--set", "train.epochs=1"]);
    let first = only_job(&d.join("runs/use"));
    let weights = d.join("start.safetensors");
    std::fs::copy(first.join("model.safetensors"), &weights).unwrap();
    let text = spec(
        "multiclass",
        "image-folder",
        &d.join("train"),
        &d.join("test"),
    )
    .replace("name = \"use\"", "name = \"again\"")
    .replace(
        "architecture = \"cnn\"",
        &format!(
            "architecture = \"cnn\"\npretrained = \"{}\"",
            weights.display()
        ),
    );
    let s = write_spec(d, &text);
    let r = run_spec(d, &s, &["--set", "train.epochs=1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let job = only_job(&d.join("runs/again"));
    let log = std::fs::read_to_string(job.join("log.txt")).unwrap();
    assert!(log.contains("pretrained weights"), "{log}");
    let job_json: Value =
        serde_json::from_str(&std::fs::read_to_string(job.join("job.json")).unwrap()).unwrap();
    assert_eq!(job_json["pretrained_head"], "file");
    std::fs::remove_file(&weights).unwrap();
    let r = assay(
        d,
        &[
            "predict",
            job.to_str().unwrap(),
            d.join("test").to_str().unwrap(),
            "--csv",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 61);
    assert!(
        r.stdout.starts_with("path,predicted,confidence,p_0,p_1,"),
        "{}",
        r.stdout
    );
    // A head kept from the weights file is named by the class list beside it (the ImageNet
    // names that scripts/fetch-pretrained.sh puts beside the ImageNet weights).
    let names = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    std::fs::write(d.join("imagenet-classes.txt"), names.join("\n") + "\n").unwrap();
    let r = assay(
        d,
        &[
            "predict",
            job.to_str().unwrap(),
            d.join("test").to_str().unwrap(),
            "--csv",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("path,predicted,confidence,p_zero,p_one,"),
        "{}",
        r.stdout
    );
}
