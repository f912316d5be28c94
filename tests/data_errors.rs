//! Integration tests of the data layer (`assay::data`): loading each source kind and every error case on bad input.

use std::path::{Path, PathBuf};

use assay::data::{
    channel_mean_std, load, read_idx_images, write_idx_images_gz, write_idx_labels_gz, DataError,
    LoadOptions, ResizeMethod, Source,
};

fn opts(channels: usize, h: usize, w: usize) -> LoadOptions {
    LoadOptions {
        channels,
        height: h,
        width: w,
        resize: ResizeMethod::Bilinear,
        skip_corrupt: false,
        classes: None,
    }
}

fn save_gray(path: &Path, w: u32, h: u32, value: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_pixel(w, h, image::Luma([value]))
        .save(path)
        .unwrap();
}

fn save_rgb(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

/// root/cat/{a.png, sub/b.PNG}, root/dog/c.bmp, root/stray.png (ignored), root/.hidden/x.png (ignored)
fn make_folder(root: &Path) {
    save_gray(&root.join("cat/a.png"), 4, 4, 10);
    save_gray(&root.join("cat/sub/b.PNG"), 4, 4, 20);
    save_rgb(&root.join("dog/c.bmp"), 4, 4, [255, 0, 0]);
    save_gray(&root.join("stray.png"), 4, 4, 99);
    save_gray(&root.join(".hidden/x.png"), 4, 4, 99);
    std::fs::write(root.join("cat/notes.txt"), "not an image").unwrap();
}

fn err_string(r: Result<impl std::fmt::Debug, DataError>) -> (DataError, String) {
    let e = r.unwrap_err();
    let s = e.to_string();
    (e, s)
}

#[test]
fn image_folder_loads_in_order() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let src = Source::ImageFolder {
        root: dir.path().to_path_buf(),
    };
    let (set, report) = load(&src, &opts(1, 4, 4)).unwrap();
    assert_eq!(set.classes, vec!["cat", "dog"]);
    assert_eq!(set.labels, vec![0, 0, 1]);
    assert_eq!(set.groups, None);
    assert_eq!(set.image(0), &[10; 16]);
    assert_eq!(set.image(1), &[20; 16]);
    assert_eq!(set.image(2), &[76; 16]); // Pillow luma of pure red
    assert_eq!(report.decoded, 3);
    assert!(report.skipped.is_empty());

    let (rgb, _) = load(&src, &opts(3, 2, 3)).unwrap();
    assert_eq!(
        (rgb.channels, rgb.height, rgb.width, rgb.pixels.len()),
        (3, 2, 3, 3 * 18)
    );
    assert_eq!(rgb.image(0), &[10; 18]); // gray replicated
    let red = rgb.image(2);
    assert_eq!(&red[..6], &[255; 6]);
    assert_eq!(&red[6..], &[0; 12]);
    let (m, _) = channel_mean_std(&rgb);
    assert_eq!(m.len(), 3);

    // a fixed class list changes the label numbering
    let mut o = opts(1, 4, 4);
    o.classes = Some(vec!["dog".into(), "cat".into(), "bird".into()]);
    let (set, _) = load(&src, &o).unwrap();
    assert_eq!(set.labels, vec![0, 1, 1]);
    assert_eq!(set.class_counts(), vec![1, 2, 0]);
    assert_eq!(set.image(0), &[76; 16]);
}

#[test]
fn corrupt_png_names_the_file_and_skip_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let bad = dir.path().join("dog/broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n this is not really a png").unwrap();
    let src = Source::ImageFolder {
        root: dir.path().to_path_buf(),
    };
    let (e, s) = err_string(load(&src, &opts(1, 4, 4)));
    assert!(
        matches!(e, DataError::CorruptImage { ref path, .. } if *path == bad),
        "{s}"
    );
    assert!(s.contains("broken.png"), "{s}");

    let mut o = opts(1, 4, 4);
    o.skip_corrupt = true;
    let (set, report) = load(&src, &o).unwrap();
    assert_eq!(set.len(), 3);
    assert_eq!(report.decoded, 3);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].0, bad);
    assert!(!report.skipped[0].1.is_empty());
    assert_eq!(set.labels, vec![0, 0, 1]);
    assert_eq!(set.image(2), &[76; 16]); // the image after the skipped one moved into place
}

#[test]
fn empty_class_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let empty = dir.path().join("emu");
    std::fs::create_dir_all(empty.join("deeper")).unwrap();
    std::fs::write(empty.join("readme.txt"), "x").unwrap();
    let (e, s) = err_string(load(
        &Source::ImageFolder {
            root: dir.path().to_path_buf(),
        },
        &opts(1, 4, 4),
    ));
    assert!(
        matches!(e, DataError::EmptyClass { ref path } if *path == empty),
        "{s}"
    );
    assert!(s.contains("emu"), "{s}");
}

#[test]
fn missing_root_and_no_images() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let (e, s) = err_string(load(
        &Source::ImageFolder {
            root: missing.clone(),
        },
        &opts(1, 4, 4),
    ));
    assert!(
        matches!(e, DataError::Missing { ref path } if *path == missing),
        "{s}"
    );
    assert!(s.contains("nope"), "{s}");

    save_gray(&dir.path().join("only_files/a.png"), 2, 2, 0);
    let root = dir.path().join("only_files");
    let (e, s) = err_string(load(
        &Source::ImageFolder { root: root.clone() },
        &opts(1, 2, 2),
    ));
    assert!(
        matches!(e, DataError::NoImages { ref path } if *path == root),
        "{s}"
    );

    let (e, _) = err_string(load(
        &Source::ImageFolder {
            root: root.join("a.png"),
        },
        &opts(1, 2, 2),
    ));
    assert!(matches!(e, DataError::NotADirectory { .. }));
}

#[test]
fn unknown_class_folder_with_fixed_classes() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let mut o = opts(1, 4, 4);
    o.classes = Some(vec!["cat".into()]);
    let (e, s) = err_string(load(
        &Source::ImageFolder {
            root: dir.path().to_path_buf(),
        },
        &o,
    ));
    assert!(
        matches!(e, DataError::UnknownClassFolder { ref class, .. } if class == "dog"),
        "{s}"
    );
}

#[test]
fn size_mismatch_without_resize() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let mut o = opts(1, 8, 8);
    o.resize = ResizeMethod::None;
    // skip_corrupt must not hide a size mismatch
    o.skip_corrupt = true;
    let (e, s) = err_string(load(
        &Source::ImageFolder {
            root: dir.path().to_path_buf(),
        },
        &o,
    ));
    assert!(
        matches!(
            e,
            DataError::SizeMismatch {
                width: 4,
                height: 4,
                expected_width: 8,
                expected_height: 8,
                ..
            }
        ),
        "{s}"
    );
    assert!(
        s.contains("a.png") && s.contains("4x4") && s.contains("8x8"),
        "{s}"
    );
}

#[test]
fn invalid_options() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let src = Source::ImageFolder {
        root: dir.path().to_path_buf(),
    };
    for o in [opts(2, 4, 4), opts(1, 0, 4)] {
        assert!(matches!(
            load(&src, &o).unwrap_err(),
            DataError::InvalidOptions(_)
        ));
    }
    let mut o = opts(1, 4, 4);
    o.classes = Some(vec!["a".into(), "a".into()]);
    assert!(matches!(
        load(&src, &o).unwrap_err(),
        DataError::InvalidOptions(_)
    ));
}

fn write_manifest(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("manifest.csv");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn csv_manifest_loads() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(&dir.path().join("imgs"));
    save_gray(&dir.path().join("imgs/with, comma.png"), 4, 4, 30);
    let m = write_manifest(
        dir.path(),
        "id,label,path\n1,zebra,imgs/cat/a.png\n\n2,ant,\"imgs/with, comma.png\"\r\n3,zebra,imgs/dog/c.bmp\n",
    );
    let (set, report) = load(&Source::Csv { manifest: m }, &opts(1, 4, 4)).unwrap();
    assert_eq!(set.classes, vec!["ant", "zebra"]);
    assert_eq!(set.labels, vec![1, 0, 1]); // manifest order
    assert_eq!(set.image(1), &[30; 16]);
    assert_eq!(report.decoded, 3);
    assert_eq!(set.groups, None); // no group column
}

#[test]
fn csv_groups_load_in_order_and_follow_skips() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let bad = dir.path().join("dog/broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n this is not really a png").unwrap();
    let m = write_manifest(
        dir.path(),
        "Label, GROUP ,path\ncat, p2 ,cat/a.png\ndog,p9,dog/broken.png\ndog,\"p,1\",dog/c.bmp\ncat,p2,cat/sub/b.PNG\n",
    );
    let src = Source::Csv { manifest: m };
    let mut o = opts(1, 4, 4);
    o.skip_corrupt = true;
    let (set, report) = load(&src, &o).unwrap();
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(set.labels, vec![0, 1, 0]);
    assert_eq!(
        set.groups,
        Some(vec!["p2".to_string(), "p,1".into(), "p2".into()])
    );
    assert_eq!(set.image(1), &[76; 16]);
    // subsets carry the groups; the hash covers them
    let sub = set.subset(&[1, 0]);
    assert_eq!(sub.groups, Some(vec!["p,1".to_string(), "p2".into()]));
    let mut without = set.clone();
    without.groups = None;
    assert_ne!(set.content_hash(), without.content_hash());
    // and group k-fold keeps each group in one fold
    let groups = set.groups.as_deref().unwrap();
    let folds = assay::data::group_kfold(groups, 2, 0).unwrap();
    assert_eq!(folds.validation.len(), 2);
    assert!(folds.validation.iter().any(|f| f.as_slice() == [0, 2]));
}

#[test]
fn csv_group_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let o = opts(1, 4, 4);
    let m = write_manifest(
        dir.path(),
        "path,label,group\ncat/a.png,cat,p1\n\ndog/c.bmp,dog,  \n",
    );
    let (e, s) = err_string(load(
        &Source::Csv {
            manifest: m.clone(),
        },
        &o,
    ));
    assert!(matches!(e, DataError::CsvSyntax { line: 4, .. }), "{s}");
    assert!(s.starts_with(&format!("{}:4:", m.display())), "{s}");
    assert!(s.contains("empty group"), "{s}");
    let m = write_manifest(dir.path(), "path,group,label,Group\ncat/a.png,a,cat,b\n");
    let (e, s) = err_string(load(&Source::Csv { manifest: m }, &o));
    assert!(matches!(e, DataError::CsvSyntax { line: 1, .. }), "{s}");
    assert!(s.contains("more than one \"group\" column"), "{s}");
}

#[test]
fn csv_unknown_label_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let m = write_manifest(dir.path(), "path,label\ncat/a.png,cat\n\ndog/c.bmp,dgo\n");
    let mut o = opts(1, 4, 4);
    o.classes = Some(vec!["cat".into(), "dog".into()]);
    let (e, s) = err_string(load(
        &Source::Csv {
            manifest: m.clone(),
        },
        &o,
    ));
    assert!(
        matches!(e, DataError::UnknownLabel { line: 4, ref label, .. } if label == "dgo"),
        "{s}"
    );
    assert!(s.contains(&format!("{}:4:", m.display())), "{s}");
    assert!(s.contains("cat, dog"), "{s}");
}

#[test]
fn csv_errors() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let src = |text: &str| Source::Csv {
        manifest: write_manifest(dir.path(), text),
    };
    let o = opts(1, 4, 4);
    let (e, s) = err_string(load(&src("file,label\ncat/a.png,cat\n"), &o));
    assert!(matches!(e, DataError::CsvSyntax { line: 1, .. }), "{s}");
    let (e, s) = err_string(load(&src("path,label\ncat/a.png,cat,extra\n"), &o));
    assert!(matches!(e, DataError::CsvSyntax { line: 2, .. }), "{s}");
    let (e, s) = err_string(load(
        &src("path,label\ncat/a.png,cat\ncat/missing.png,cat\n"),
        &o,
    ));
    assert!(
        matches!(e, DataError::CsvMissingImage { line: 3, .. }),
        "{s}"
    );
    assert!(s.contains("missing.png"), "{s}");
    let (e, _) = err_string(load(&src("path,label\n"), &o));
    assert!(matches!(e, DataError::NoImages { .. }));
    let (e, _) = err_string(load(&src(""), &o));
    assert!(matches!(e, DataError::CsvSyntax { .. }));
    let (e, _) = err_string(load(
        &Source::Csv {
            manifest: dir.path().join("none.csv"),
        },
        &o,
    ));
    assert!(matches!(e, DataError::Missing { .. }));
}

fn write_idx(dir: &Path, n: usize, h: usize, w: usize, labels: &[u8]) -> (PathBuf, PathBuf) {
    let images = dir.join("images.gz");
    let lab = dir.join("labels.gz");
    let px: Vec<u8> = (0..n * h * w).map(|i| (i % 251) as u8).collect();
    write_idx_images_gz(&images, n, h, w, &px).unwrap();
    write_idx_labels_gz(&lab, labels).unwrap();
    (images, lab)
}

#[test]
fn idx_loads_resizes_and_replicates() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = write_idx(dir.path(), 3, 2, 2, &[0, 2, 2]);
    let src = Source::Idx {
        images: images.clone(),
        labels,
    };
    let (set, report) = load(&src, &opts(1, 2, 2)).unwrap();
    assert_eq!(set.classes, vec!["0", "1", "2"]);
    assert_eq!(set.labels, vec![0, 2, 2]);
    assert_eq!(set.groups, None);
    assert_eq!(set.pixels, read_idx_images(&images).unwrap().3);
    assert_eq!(report.decoded, 3);

    let (rgb, _) = load(&src, &opts(3, 4, 4)).unwrap();
    assert_eq!(rgb.pixels.len(), 3 * 3 * 16);
    let img = rgb.image(1);
    assert_eq!(&img[..16], &img[16..32]);
    assert_eq!(&img[..16], &img[32..]);

    let mut o = opts(1, 4, 4);
    o.resize = ResizeMethod::None;
    let (e, s) = err_string(load(&src, &o));
    assert!(matches!(e, DataError::SizeMismatch { .. }), "{s}");
    assert!(s.contains("images.gz"), "{s}");
}

#[test]
fn idx_count_mismatch_and_label_range() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = write_idx(dir.path(), 3, 2, 2, &[0, 1]);
    let (e, s) = err_string(load(
        &Source::Idx {
            images: images.clone(),
            labels: labels.clone(),
        },
        &opts(1, 2, 2),
    ));
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{s}"
    );
    assert!(s.contains("images.gz") && s.contains("labels.gz"), "{s}");

    write_idx_labels_gz(&labels, &[0, 1, 7]).unwrap();
    let mut o = opts(1, 2, 2);
    o.classes = Some(vec!["a".into(), "b".into()]);
    let (e, s) = err_string(load(
        &Source::Idx {
            images: images.clone(),
            labels: labels.clone(),
        },
        &o,
    ));
    assert!(
        matches!(
            e,
            DataError::LabelOutOfRange {
                index: 2,
                label: 7,
                num_classes: 2,
                ..
            }
        ),
        "{s}"
    );

    let (e, _) = err_string(load(
        &Source::Idx {
            images: labels.clone(),
            labels: labels.clone(),
        },
        &opts(1, 2, 2),
    ));
    assert!(matches!(e, DataError::IdxMagic { .. }));
    let (e, _) = err_string(load(
        &Source::Idx {
            images: dir.path().join("x"),
            labels,
        },
        &opts(1, 2, 2),
    ));
    assert!(matches!(e, DataError::Missing { .. }));
}

#[test]
fn jpeg_and_subfolders_decode() {
    let dir = tempfile::tempdir().unwrap();
    save_rgb(&dir.path().join("a/deep/er/x.JPG"), 8, 8, [0, 0, 255]);
    save_gray(&dir.path().join("b/y.jpeg"), 8, 8, 200);
    let (set, _) = load(
        &Source::ImageFolder {
            root: dir.path().to_path_buf(),
        },
        &opts(3, 8, 8),
    )
    .unwrap();
    assert_eq!(set.labels, vec![0, 1]);
    let blue = set.image(0);
    assert!(blue[128..].iter().all(|&v| v > 240), "{:?}", &blue[128..]);
    assert!(set.image(1).iter().all(|&v| (198..=202).contains(&v)));
}

/// The MNIST subset committed under experiments/data/mnist-subset loads with the documented counts.
#[test]
fn committed_mnist_subset_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/data/mnist-subset");
    let load_part = |prefix: &str| {
        let src = Source::Idx {
            images: dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            labels: dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
        };
        load(&src, &opts(1, 28, 28)).unwrap().0
    };
    let train = load_part("train");
    assert_eq!(train.len(), 10_000);
    assert_eq!(
        train.classes,
        (0..10).map(|d| d.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(
        train.class_counts(),
        vec![1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    );
    let (mean, std) = channel_mean_std(&train);
    assert!(
        (mean[0] - 0.1307).abs() < 0.005 && (std[0] - 0.3081).abs() < 0.005,
        "{mean:?} {std:?}"
    );
    let test = load_part("test");
    assert_eq!(test.len(), 2_000);
    assert_eq!(
        test.class_counts(),
        vec![175, 234, 219, 207, 217, 179, 178, 205, 192, 194]
    );
    // pins the exact content (pixels, labels, classes, shape) of the committed training part
    assert_eq!(
        train.content_hash(),
        "3d4aa327e9d72bf5c53b0ce2fc5837e26df06b9d48fb16c5315f97c51b525b2c"
    );
}
