//! Pretrained weights and freezing: the real ImageNet EfficientNet-Lite0 (fetched by
//! scripts/fetch-pretrained.sh) gives PyTorch's logits and top-1 on foolbox's 20 ImageNet images
//! (tests/fixtures/pretrained, written by scripts/make-pretrained-fixtures.py); spec errors for a
//! weights file that does not fit and unknown part names; pretrained jobs record the file's hash
//! and replace a head that does not fit; frozen parts do not move.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use assay::model::{self, parts, pretrained, Mode, Model};
use assay::spec::*;
use assay::train::optim::{Adam, Optimizer, Sgd};
use candle_core::{DType, Device, Tensor};
use common::cli::{only_job, run_spec, small_mnist, write_spec};

fn cache() -> PathBuf {
    match std::env::var_os("ASSAY_PRETRAINED_CACHE") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/assay/pretrained")
        }
    }
}

/// The fetched ImageNet EfficientNet-Lite0 weights; `None` (the test skips) when they are not
/// in the cache, a failure instead under `ASSAY_REQUIRE_PRETRAINED=1`.
fn fetched_weights() -> Option<PathBuf> {
    let weights = cache().join("efficientnet-lite0.safetensors");
    if weights.is_file() {
        return Some(weights);
    }
    assert!(
        std::env::var("ASSAY_REQUIRE_PRETRAINED").as_deref() != Ok("1"),
        "ASSAY_REQUIRE_PRETRAINED=1 but {} is missing: run scripts/fetch-pretrained.sh",
        weights.display()
    );
    eprintln!("skipped: {} not fetched", weights.display());
    None
}

fn lite0() -> ModelSpec {
    ModelSpec::EfficientnetLite(EfficientNetLiteSpec {
        variant: 0,
        width: 1.0,
        dropout: 0.2,
        drop_path: 0.2,
    })
}

fn largest(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn top1(logits: &Tensor) -> Vec<u32> {
    logits.argmax(1).unwrap().to_vec1::<u32>().unwrap()
}

#[test]
fn imported_lite0_gives_pytorchs_imagenet_logits() {
    let Some(weights) = fetched_weights() else {
        return;
    };
    let dev = Device::Cpu;
    let fixture = candle_core::safetensors::load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pretrained/lite0_imagenet.safetensors"),
        &dev,
    )
    .unwrap();
    let mut rng = assay::train::rng::stream(0, "init", 0);
    let net = model::build(&lite0(), (3, 224, 224), 1000, &mut rng, &dev).unwrap();
    let spec = PretrainedSpec {
        sha256: pretrained::inspect(&weights).unwrap().sha256,
        path: weights,
        layout: PretrainedLayout::EfficientnetLite,
    };
    let loaded = pretrained::load(net.as_ref(), &spec).unwrap();
    assert!(loaded.head_from_file(), "{:?}", loaded.report);
    assert_eq!(loaded.comparison.loaded.len(), 247);
    assert_eq!(loaded.comparison.ignored, 49);
    let images = fixture["images"].to_dtype(DType::F32).unwrap();
    let labels: Vec<u32> = fixture["labels"]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let mean = Tensor::new(&[0.485f32 * 255.0, 0.456 * 255.0, 0.406 * 255.0], &dev)
        .unwrap()
        .reshape((1, 3, 1, 1))
        .unwrap();
    let std = Tensor::new(&[0.229f32 * 255.0, 0.224 * 255.0, 0.225 * 255.0], &dev)
        .unwrap()
        .reshape((1, 3, 1, 1))
        .unwrap();
    let inputs = [
        ("tflite", ((&images - 127.0).unwrap() / 128.0).unwrap()),
        (
            "imagenet",
            images
                .broadcast_sub(&mean)
                .unwrap()
                .broadcast_div(&std)
                .unwrap(),
        ),
    ];
    for (name, x) in inputs {
        let mut drop = assay::train::rng::stream(0, "dropout", 0);
        let logits = net.forward(&x, Mode::Eval, &mut drop).unwrap();
        let theirs = &fixture[&format!("logits.{name}")];
        let diff = largest(&(&logits - theirs).unwrap());
        let bound = 1e-3 * largest(theirs);
        let ours_top = top1(&logits);
        let correct = ours_top.iter().zip(&labels).filter(|(a, b)| a == b).count();
        eprintln!(
            "{name}: max |ours - PyTorch| = {diff:.3e} (bound {bound:.3e}), {correct}/20 correct top-1"
        );
        assert_eq!(ours_top, top1(theirs), "{name}: top-1 differs from PyTorch");
        assert!(diff <= bound, "{name}: logits differ by {diff} > {bound}");
    }
}

/// A small EfficientNet-Lite in the file layout of the published weights (with PyTorch's
/// `num_batches_tracked` counters), written from assay's own build: it loads back exactly.
#[test]
fn a_lite_layout_file_loads_and_gives_the_same_logits() {
    let dev = Device::Cpu;
    let spec = ModelSpec::EfficientnetLite(EfficientNetLiteSpec {
        variant: 0,
        width: 0.25,
        dropout: 0.0,
        drop_path: 0.0,
    });
    let mut rng = assay::train::rng::stream(3, "init", 0);
    let source = model::build(&spec, (3, 32, 32), 5, &mut rng, &dev).unwrap();
    let mut state: HashMap<String, Tensor> = source.state().unwrap().into_iter().collect();
    let bns: Vec<String> = state
        .keys()
        .filter_map(|k| k.strip_suffix(".running_mean").map(str::to_string))
        .collect();
    for bn in bns {
        state.insert(
            format!("{bn}.num_batches_tracked"),
            Tensor::new(&[7i64], &dev).unwrap().squeeze(0).unwrap(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lite.safetensors");
    candle_core::safetensors::save(&state, &path).unwrap();
    let mut rng = assay::train::rng::stream(4, "init", 0);
    let target = model::build(&spec, (3, 32, 32), 5, &mut rng, &dev).unwrap();
    let p = PretrainedSpec {
        sha256: pretrained::inspect(&path).unwrap().sha256,
        path: path.clone(),
        layout: PretrainedLayout::EfficientnetLite,
    };
    pretrained::load(target.as_ref(), &p).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &dev).unwrap();
    let mut r = assay::train::rng::stream(0, "dropout", 0);
    let a = source.forward(&x, Mode::Eval, &mut r).unwrap();
    let b = target.forward(&x, Mode::Eval, &mut r).unwrap();
    assert_eq!(largest(&(a - b).unwrap()), 0.0);
    // In the assay layout the counters are unexpected, and named.
    let assay_layout = PretrainedSpec {
        layout: PretrainedLayout::Assay,
        ..p
    };
    let err = pretrained::load(target.as_ref(), &assay_layout)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not in the model: _bn0.num_batches_tracked")
            || err.contains("num_batches_tracked"),
        "{err}"
    );
}

fn resnet20() -> ModelSpec {
    ModelSpec::Resnet(ResnetSpec {
        depth: 20,
        width: 0.25,
        stem: ResnetStem::Small,
        zero_init_residual: false,
        dropout: 0.0,
        drop_path: 0.0,
    })
}

fn values(net: &dyn Model) -> HashMap<String, Vec<f32>> {
    net.state()
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

fn train_step(net: &dyn Model, opt: &mut dyn Optimizer, seed: u64) {
    let dev = Device::Cpu;
    let (c, h, w) = (1, 16, 16);
    let n = 4 * c * h * w;
    let x = Tensor::arange(0u32, n as u32, &dev)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let x = (x * (0.37 * (seed as f64 + 1.0)))
        .unwrap()
        .sin()
        .unwrap()
        .reshape((4, c, h, w))
        .unwrap();
    let y = Tensor::new(&[0u32, 1, 2, 1], &dev).unwrap();
    let mut r = assay::train::rng::stream(seed, "dropout", 0);
    let logits = net.forward(&x, Mode::Train, &mut r).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
    let grads = loss.backward().unwrap();
    opt.step(net.params(), &grads, 0.1).unwrap();
}

#[test]
fn frozen_parts_and_their_batch_norms_do_not_move() {
    let dev = Device::Cpu;
    let mut rng = assay::train::rng::stream(1, "init", 0);
    let net = model::build(&resnet20(), (1, 16, 16), 3, &mut rng, &dev).unwrap();
    let transfer = TransferSpec {
        freeze: vec!["stem".into(), "stages.0".into()],
        unfreeze_at_epoch: Some(3),
        ..TransferSpec::default()
    };
    parts::apply(net.params(), &transfer, 2);
    let before = values(net.as_ref());
    let mut opt = Sgd::new(0.9, 0.0, false, 0.01);
    train_step(net.as_ref(), &mut opt, 0);
    let after = values(net.as_ref());
    let frozen =
        |n: &str| n.starts_with("conv1.") || n.starts_with("bn1.") || n.starts_with("layer1.");
    for (name, v) in &after {
        if frozen(name) {
            assert_eq!(v, &before[name], "{name} moved while frozen");
        } else {
            assert_ne!(v, &before[name], "{name} did not move");
        }
    }
    let with_state: Vec<String> = opt
        .state()
        .into_iter()
        .filter_map(|(k, _)| k.strip_prefix("sgd.momentum.").map(str::to_string))
        .collect();
    assert!(!with_state.is_empty());
    assert!(
        !with_state.iter().any(|n| frozen(n)),
        "frozen parameters got optimizer state: {with_state:?}"
    );
    // From unfreeze_at_epoch on, everything trains.
    parts::apply(net.params(), &transfer, 3);
    train_step(net.as_ref(), &mut opt, 1);
    let later = values(net.as_ref());
    assert_ne!(later["conv1.weight"], after["conv1.weight"]);
    assert_ne!(later["bn1.running_mean"], after["bn1.running_mean"]);
}

#[test]
fn a_zero_backbone_learning_rate_equals_freezing_the_backbone() {
    let dev = Device::Cpu;
    let vit = ModelSpec::Vit(VitSpec {
        patch: 4,
        depth: 2,
        width: 16,
        heads: 2,
        mlp_ratio: 2.0,
        dropout: 0.0,
        drop_path: 0.0,
    });
    let build = || {
        let mut rng = assay::train::rng::stream(5, "init", 0);
        model::build(&vit, (1, 16, 16), 3, &mut rng, &dev).unwrap()
    };
    let (a, b) = (build(), build());
    let names = parts::names(&vit, (1, 16, 16)).unwrap();
    assert_eq!(names, ["stem", "blocks.0", "blocks.1", "top", "head"]);
    parts::apply(
        a.params(),
        &TransferSpec {
            backbone_lr_scale: 0.0,
            ..TransferSpec::default()
        },
        1,
    );
    parts::apply(
        b.params(),
        &TransferSpec {
            freeze: names[..4].to_vec(),
            ..TransferSpec::default()
        },
        1,
    );
    let start = values(a.as_ref());
    let (mut oa, mut ob) = (
        Adam::adamw(0.9, 0.999, 1e-8, 0.05),
        Adam::adamw(0.9, 0.999, 1e-8, 0.05),
    );
    for seed in 0..3 {
        train_step(a.as_ref(), &mut oa, seed);
        train_step(b.as_ref(), &mut ob, seed);
    }
    let (va, vb) = (values(a.as_ref()), values(b.as_ref()));
    let differ: Vec<&String> = va.keys().filter(|k| va[*k] != vb[*k]).collect();
    assert!(differ.is_empty(), "differ: {differ:?}");
    assert_ne!(va["head.weight"], start["head.weight"]);
    assert_eq!(
        va["blocks.0.mlp.fc1.weight"],
        start["blocks.0.mlp.fc1.weight"]
    );
}

fn save_resnet(path: &Path, seed: u64, classes: usize) {
    let mut rng = assay::train::rng::stream(seed, "init", 0);
    let net = model::build(&resnet20(), (1, 28, 28), classes, &mut rng, &Device::Cpu).unwrap();
    let state: HashMap<String, Tensor> = net.state().unwrap().into_iter().collect();
    candle_core::safetensors::save(&state, path).unwrap();
}

fn spec_text(data: &str, model_extra: &str) -> String {
    format!(
        "name = \"pre\"\n{data}\n[model]\narchitecture = \"resnet\"\ndepth = 20\nwidth = 0.25\nstem = \"small\"\n{model_extra}\n[train]\nepochs = 1\nbatch_size = 32\n"
    )
}

#[test]
fn spec_errors_name_unknown_parts_and_mismatched_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 64, 32);
    let spec = write_spec(
        dir.path(),
        &spec_text(&data, "freeze = [\"stem\", \"stage.1\"]"),
    );
    let err = load(&spec, &[]).unwrap_err().to_string();
    assert!(
        err.contains("model.freeze[1]") && err.contains("unknown value \"stage.1\""),
        "{err}"
    );
    assert!(
        err.contains("\"stages.0\", \"stages.1\", \"stages.2\", \"head\", \"backbone\""),
        "{err}"
    );
    assert!(err.contains("spec.toml:"), "{err}");

    let spec = write_spec(
        dir.path(),
        &spec_text(&data, "pretrained = \"nowhere.safetensors\""),
    );
    let err = load(&spec, &[]).unwrap_err().to_string();
    assert!(
        err.contains("spec.toml:")
            && err.contains("model.pretrained")
            && err.contains("nowhere.safetensors"),
        "{err}"
    );

    // A ResNet-20 of another width: every convolution has the wrong shape, and is named.
    let wide = dir.path().join("wide.safetensors");
    let mut rng = assay::train::rng::stream(1, "init", 0);
    let mut other = resnet20();
    if let ModelSpec::Resnet(r) = &mut other {
        r.width = 0.5;
    }
    let net = model::build(&other, (1, 28, 28), 10, &mut rng, &Device::Cpu).unwrap();
    let state: HashMap<String, Tensor> = net.state().unwrap().into_iter().collect();
    candle_core::safetensors::save(&state, &wide).unwrap();
    let spec = write_spec(
        dir.path(),
        &spec_text(&data, "pretrained = \"wide.safetensors\""),
    );
    let err = load(&spec, &[]).unwrap_err().to_string();
    assert!(
        err.contains(
            "of the wrong shape: conv1.weight (8×1×3×3 in the file, 4×1×3×3 in the model)"
        ),
        "{err}"
    );
}

#[test]
fn pretrained_jobs_record_the_hash_and_replace_a_head_that_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 64, 32);
    save_resnet(&dir.path().join("a.safetensors"), 1, 10);
    save_resnet(&dir.path().join("b.safetensors"), 2, 10);
    save_resnet(&dir.path().join("c.safetensors"), 3, 7);
    let ids = |file: &str| {
        let spec = write_spec(
            dir.path(),
            &spec_text(&data, &format!("pretrained = \"{file}\"")),
        );
        let e = load(&spec, &[]).unwrap();
        assay::plan::expand(&e).jobs[0].id.clone()
    };
    let (a, b) = (ids("a.safetensors"), ids("b.safetensors"));
    assert_ne!(a, b, "another weights file must make another job");
    std::fs::copy(
        dir.path().join("a.safetensors"),
        dir.path().join("a2.safetensors"),
    )
    .unwrap();
    assert_eq!(
        a,
        ids("a2.safetensors"),
        "the same weights elsewhere are the same job"
    );

    let spec = write_spec(
        dir.path(),
        &spec_text(
            &data,
            "pretrained = \"c.safetensors\"\nfreeze = \"backbone\"\nunfreeze_at_epoch = 2",
        ),
    );
    let run = run_spec(dir.path(), &spec, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let job = only_job(&dir.path().join("runs/pre"));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(job.join("job.json")).unwrap()).unwrap();
    let want = pretrained::inspect(&dir.path().join("c.safetensors"))
        .unwrap()
        .sha256;
    assert_eq!(record["pretrained_hash"], want.as_str());
    assert_eq!(record["pretrained_head"], "replaced");
    assert!(!pretrained::job_head_from_file(&job.join("job.json")).unwrap());
    let log = std::fs::read_to_string(job.join("log.txt")).unwrap();
    assert!(log.contains("wrong shape: fc.weight (7×16 in the file, 10×16 in the model), fc.bias (7 in the file, 10 in the model)"), "{log}");
    assert!(
        log.contains(
            "replaced by a fresh head seeded from the job's seed (fc.weight 10×16, fc.bias 10)"
        ),
        "{log}"
    );
    let resolved = std::fs::read_to_string(job.join("spec.toml")).unwrap();
    assert!(
        resolved.contains("pretrained_layout = \"assay\""),
        "{resolved}"
    );
    assert!(
        resolved.contains("freeze = [\"stem\", \"stages.0\", \"stages.1\", \"stages.2\"]"),
        "{resolved}"
    );
}

/// A torchvision ResNet-18 at 1/8 of its channels, random weights, its own state dict (written
/// by scripts/make-pretrained-fixtures.py): it loads in the torchvision layout and gives
/// PyTorch's evaluation logits.
#[test]
fn a_torchvision_resnet_loads_and_gives_pytorchs_logits() {
    let spec = ModelSpec::Resnet(ResnetSpec {
        depth: 18,
        width: 0.125,
        stem: ResnetStem::Imagenet,
        zero_init_residual: false,
        dropout: 0.0,
        drop_path: 0.0,
    });
    let loaded = torchvision_fixture_matches_pytorch("resnet18_w0125_torchvision", &spec, 7);
    assert_eq!(
        loaded.comparison.ignored, 20,
        "num_batches_tracked counters"
    );
}

/// Loads the committed torchvision state dict `<name>.safetensors` into `spec` (32×32 RGB input,
/// `classes` outputs) in the torchvision layout, head included, and checks the evaluation logits
/// against PyTorch's in `<name>_io.safetensors`.
fn torchvision_fixture_matches_pytorch(
    name: &str,
    spec: &ModelSpec,
    classes: usize,
) -> pretrained::Loaded {
    let dev = Device::Cpu;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pretrained");
    let path = dir.join(format!("{name}.safetensors"));
    let io =
        candle_core::safetensors::load(dir.join(format!("{name}_io.safetensors")), &dev).unwrap();
    let mut rng = assay::train::rng::stream(0, "init", 0);
    let net = model::build(spec, (3, 32, 32), classes, &mut rng, &dev).unwrap();
    let p = PretrainedSpec {
        sha256: pretrained::inspect(&path).unwrap().sha256,
        path,
        layout: PretrainedLayout::Torchvision,
    };
    let loaded = pretrained::load(net.as_ref(), &p).unwrap();
    assert!(loaded.head_from_file());
    let mut r = assay::train::rng::stream(0, "dropout", 0);
    let logits = net.forward(&io["input"], Mode::Eval, &mut r).unwrap();
    let d = largest(&(&logits - &io["logits"]).unwrap()) / largest(&io["logits"]);
    eprintln!("{name}: relative logit difference {d:.2e}");
    assert!(d < 1e-4, "logits differ by {d}");
    loaded
}

/// A job grown from 1 to 3 epochs across `unfreeze_at_epoch = 2` (resumed from its epoch-1
/// checkpoint) ends with the same weights and losses as one trained 3 epochs straight.
#[test]
fn resuming_across_unfreeze_at_epoch_is_exact() {
    let run = |epochs_first: Option<usize>| {
        let dir = tempfile::tempdir().unwrap();
        let data = small_mnist(dir.path(), 64, 32);
        let extra = "freeze = \"backbone\"\nunfreeze_at_epoch = 2";
        let text = spec_text(&data, extra);
        if let Some(e) = epochs_first {
            let first = text.replace("epochs = 1", &format!("epochs = {e}"));
            let spec = write_spec(dir.path(), &first);
            let r = run_spec(dir.path(), &spec, &[]);
            assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        }
        let spec = write_spec(dir.path(), &text.replace("epochs = 1", "epochs = 3"));
        let r = run_spec(dir.path(), &spec, &[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let job = only_job(&dir.path().join("runs/pre"));
        let weights = std::fs::read(job.join("model.safetensors")).unwrap();
        let m = common::cli::metrics(&job);
        let losses: Vec<f64> = m["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["train"]["loss"].as_f64().unwrap())
            .collect();
        let log = std::fs::read_to_string(job.join("log.txt")).unwrap();
        (weights, losses, log)
    };
    let (straight, straight_losses, _) = run(None);
    let (grown, grown_losses, out) = run(Some(1));
    assert!(
        out.contains("after epoch 1"),
        "the job did not resume: {out}"
    );
    assert_eq!(straight_losses.len(), 3);
    assert_eq!(straight_losses, grown_losses, "{out}");
    assert!(straight == grown, "the weights differ after resuming");
}

/// A small torchvision VisionTransformer, random weights, its own state dict (written by
/// scripts/make-pretrained-fixtures.py): its names map onto assay's ViT in the torchvision
/// layout, every tensor loads, and the evaluation logits are PyTorch's.
#[test]
fn a_torchvision_vit_loads_and_gives_pytorchs_logits() {
    let spec = ModelSpec::Vit(VitSpec {
        patch: 8,
        depth: 2,
        width: 32,
        heads: 2,
        mlp_ratio: 4.0,
        dropout: 0.0,
        drop_path: 0.0,
    });
    torchvision_fixture_matches_pytorch("vit_tiny_torchvision", &spec, 5);
}

/// `assay predict SPEC IMAGES`: a spec whose model is the fetched ImageNet EfficientNet-Lite0
/// with its own head predicts, untrained, PyTorch's top-1 for each of foolbox's 20 ImageNet
/// images (written as PNG files), named by the ImageNet class list beside the weights.
#[test]
fn predict_with_the_imagenet_weights_names_pytorchs_top1() {
    let Some(weights) = fetched_weights() else {
        return;
    };
    let names: Vec<String> = std::fs::read_to_string(cache().join("imagenet-classes.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let dev = Device::Cpu;
    let fixture = candle_core::safetensors::load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pretrained/lite0_imagenet.safetensors"),
        &dev,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pixels = fixture["images"]
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap();
    let plane = 224 * 224;
    let mut files = Vec::new();
    for (i, chw) in pixels.chunks(3 * plane).enumerate() {
        let img = image::RgbImage::from_fn(224, 224, |x, y| {
            let at = (y * 224 + x) as usize;
            image::Rgb([chw[at], chw[plane + at], chw[2 * plane + at]])
        });
        let file = dir.path().join(format!("{i:02}.png"));
        img.save(&file).unwrap();
        files.push(file);
    }
    let spec = format!(
        r#"name = "imagenet"
[data]
format = "image-folder"
train = "no-training-data"
image_size = [224, 224]
[preprocess]
normalize = {{ mean = [{m}, {m}, {m}], std = [{s}, {s}, {s}] }}
[model]
architecture = "efficientnet_lite"
pretrained = "{}"
pretrained_layout = "efficientnet-lite"
"#,
        weights.display(),
        m = 127.0 / 255.0,
        s = 128.0 / 255.0,
    );
    let spec_path = write_spec(dir.path(), &spec);
    let mut args = vec![
        "predict".to_string(),
        spec_path.display().to_string(),
        "--json".into(),
        "--top-k".into(),
        "1".into(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = common::cli::assay(dir.path(), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("with its own head, untrained (1000 classes"),
        "{}",
        r.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let torch = top1(&fixture["logits.tflite"]);
    for (item, &t) in v.as_array().unwrap().iter().zip(&torch) {
        assert_eq!(item["predicted"], names[t as usize].as_str(), "{item}");
    }
    assert_eq!(v.as_array().unwrap().len(), 20);
}
