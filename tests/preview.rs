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
