//! `assay preview` writes a PNG grid (one row per sample: the original, then augmented
//! versions) of the expected size, the same for the same seed; a bad spec exits 2.

mod common;

use common::cli::{assay, small_mnist, write_spec};

fn spec(data: &str) -> String {
    format!(
        "name = \"preview\"\nseed = 3\n{data}\n[model]\narchitecture = \"mlp\"\nlayers = [{{ type = \"dense\", units = 8 }}]\n\n[augment]\ntrain = [\n  {{ type = \"random_crop\", size = 24, padding = 2 }},\n  {{ type = \"rotation\", degrees = 15, p = 0.5 }},\n  {{ type = \"random_erasing\" }},\n]\neval = [{{ type = \"center_crop\", size = 24 }}]\n"
    )
}

#[test]
fn preview_writes_a_grid_of_the_expected_size() {
    let dir = tempfile::tempdir().unwrap();
    let text = spec(&small_mnist(dir.path(), 20, 5));
    let path = write_spec(dir.path(), &text);
    let path = path.to_str().unwrap();
    let out = dir.path().join("out/grid.png");
    let out_s = out.to_str().unwrap();
    let r = assay(
        dir.path(),
        &[
            "preview",
            path,
            "--out",
            out_s,
            "--samples",
            "3",
            "--variants",
            "4",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let img = image::open(&out).expect("a PNG").to_luma8();
    // 3 rows × 5 columns of 24×24 cells, 2-pixel separators around and between
    assert_eq!((img.width(), img.height()), (5 * 26 + 2, 3 * 26 + 2));
    assert_eq!(img.get_pixel(0, 0).0[0], 255);
    let first = std::fs::read(&out).unwrap();

    // the same seed draws the same grid; another seed another one
    let again = dir.path().join("again.png");
    let r = assay(
        dir.path(),
        &[
            "preview",
            path,
            "--out",
            again.to_str().unwrap(),
            "--samples",
            "3",
            "--variants",
            "4",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read(&again).unwrap(), first);
    let r = assay(
        dir.path(),
        &[
            "preview",
            path,
            "--out",
            again.to_str().unwrap(),
            "--samples",
            "3",
            "--variants",
            "4",
            "--seed",
            "99",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_ne!(std::fs::read(&again).unwrap(), first);

    // defaults: 8 samples × (1 + 5)
    let r = assay(dir.path(), &["preview", path, "--out", out_s]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (6 * 26 + 2, 8 * 26 + 2));
}

#[test]
fn preview_of_a_bad_spec_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let text = spec(&small_mnist(dir.path(), 20, 5)).replace("\"rotation\"", "\"rotate\"");
    let path = write_spec(dir.path(), &text);
    let out = dir.path().join("grid.png");
    let r = assay(
        dir.path(),
        &[
            "preview",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("did you mean \"rotation\"?"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
}

/// `(width, height)` of every image logged as `tag` in the event files under `dir`.
fn logged_images(dir: &std::path::Path, tag: &str) -> Vec<(i32, i32)> {
    use assay::report::tensorboard::proto::{event, summary};
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("events.out.tfevents.") {
            continue;
        }
        for e in assay::report::tensorboard::read_events(entry.path()).unwrap() {
            let Some(event::What::Summary(s)) = &e.what else {
                continue;
            };
            for v in &s.value {
                if let (true, Some(summary::value::Value::Image(img))) = (v.tag == tag, &v.value) {
                    found.push((img.width, img.height));
                }
            }
        }
    }
    found
}

#[test]
fn run_logs_the_preview_to_tensorboard_only_with_a_train_list() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 40, 10);
    let keep_size = "train = [{ type = \"random_crop\", size = 28, padding = 2 }]\n";
    let with = format!(
        "name = \"tb-preview\"\n{data}\n[model]\narchitecture = \"mlp\"\nlayers = [{{ type = \"dense\", units = 8 }}]\n\n[train]\nepochs = 1\nbatch_size = 16\n\n[augment]\n{keep_size}"
    );
    let path = write_spec(dir.path(), &with);
    let r = assay(dir.path(), &["run", path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // 8 rows × (original + 5 versions) of 28×28 cells with 2-pixel separators
    assert_eq!(
        logged_images(&dir.path().join("runs/tb-preview"), "augment/preview"),
        vec![(6 * 30 + 2, 8 * 30 + 2)]
    );
    let without = with
        .replace(keep_size, "")
        .replace("tb-preview", "tb-plain");
    let path = write_spec(dir.path(), &without);
    let r = assay(dir.path(), &["run", path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let plain = dir.path().join("runs/tb-plain");
    assert!(logged_images(&plain, "augment/preview").is_empty());
    assert_eq!(logged_images(&plain, "samples").len(), 1);
}
