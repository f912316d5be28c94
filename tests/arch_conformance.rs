//! assay's architectures equal PyTorch's layer for layer: with the weights of the fixtures that
//! `scripts/make-arch-fixtures.py` wrote (torchvision models, or short reference modules), the
//! logits in training and evaluation mode, the gradient of every parameter after one backward
//! pass and the batch-norm running statistics after the step agree to within 1e-4 of each
//! tensor's largest magnitude (a bias gradient that is zero in exact arithmetic: of its layer's
//! weight gradient), and the parameter counts are equal. The reference is computed in
//! float64; where PyTorch's own float32 run is further than 1e-4 from it (deep models with batch
//! norm over small batches), the bound is twice PyTorch's float32 error, which the fixture records.

use std::collections::HashMap;
use std::path::Path;

use assay::model::{self, Mode};
use assay::spec::*;
use candle_core::{DType, Device, Tensor};

const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/arch")
        .join(format!("{name}.safetensors"));
    candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn largest_magnitude(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// max |ours − theirs| / max |theirs|.
fn relative_difference(ours: &Tensor, theirs: &Tensor) -> f32 {
    let scale = largest_magnitude(theirs);
    difference_over(ours, theirs, scale)
}

/// max |ours − theirs| / `scale`.
fn difference_over(ours: &Tensor, theirs: &Tensor, scale: f32) -> f32 {
    assert_eq!(ours.dims(), theirs.dims());
    let diff = (ours - theirs)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    diff / scale.max(1e-12)
}

fn with_prefix<'a>(
    f: &'a HashMap<String, Tensor>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a str, &'a Tensor)> {
    f.iter()
        .filter_map(move |(k, v)| k.strip_prefix(prefix).map(|n| (n, v)))
}

/// The relative difference of the gradient of `name`. A bias gradient that is zero in exact
/// arithmetic (a batch norm's shift that reaches the loss only through a 1×1 convolution and a
/// batch norm in training, which removes any shift: MobileNetV2, EfficientNet-Lite) holds only
/// rounding noise, so it is measured against its layer's weight gradient instead (as the
/// fixture script measures PyTorch's float32 error).
fn gradient_difference(f: &HashMap<String, Tensor>, name: &str, ours: &Tensor) -> f32 {
    let theirs = &f[&format!("grad.{name}")];
    let own = largest_magnitude(theirs);
    let weight = name
        .strip_suffix(".bias")
        .and_then(|layer| f.get(&format!("grad.{layer}.weight")))
        .map(largest_magnitude);
    match weight {
        Some(w) if own < 1e-6 * w => difference_over(ours, theirs, w),
        _ => relative_difference(ours, theirs),
    }
}

/// Loads the fixture `name` into the model `spec` builds and compares everything it holds.
pub fn conforms(name: &str, spec: ModelSpec) {
    let f = fixture(name);
    let torch_f32 = f["reference.float32_error"].to_vec1::<f32>().unwrap()[0];
    let bound = TOLERANCE.max(2.0 * torch_f32);
    eprintln!("{name}: bound {bound:.1e} (PyTorch float32 is off by {torch_f32:.1e})");
    let input = &f["input"];
    let (_, c, h, w) = input.dims4().unwrap();
    let classes = f["logits.train"].dim(1).unwrap();
    let mut rng = assay::train::rng::stream(0, "init", 0);
    let net = model::build(&spec, (c, h, w), classes, &mut rng, &Device::Cpu).unwrap();

    let mut state: HashMap<String, Tensor> = with_prefix(&f, "param.")
        .chain(with_prefix(&f, "buffer."))
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    let ours: Vec<String> = net.state().unwrap().into_iter().map(|(n, _)| n).collect();
    let mut theirs: Vec<&String> = state.keys().collect();
    theirs.sort();
    let mut ours_sorted: Vec<&String> = ours.iter().collect();
    ours_sorted.sort();
    assert_eq!(
        ours_sorted, theirs,
        "{name}: parameter and buffer names differ from PyTorch's"
    );
    let torch_count: usize = with_prefix(&f, "param.").map(|(_, t)| t.elem_count()).sum();
    assert_eq!(
        net.parameter_count(),
        torch_count,
        "{name}: parameter count"
    );
    net.load_state(&state).unwrap();
    state.clear();

    let target = f["target"].to_dtype(DType::U32).unwrap();
    let mut dropout = assay::train::rng::stream(0, "dropout", 0);
    let logits = net.forward(input, Mode::Train, &mut dropout).unwrap();
    let d = relative_difference(&logits, &f["logits.train"]);
    assert!(d < bound, "{name}: training logits differ by {d}");
    let loss = candle_nn::loss::cross_entropy(&logits, &target).unwrap();
    let grads = loss.backward().unwrap();
    let mut worst = (0f32, String::new());
    for p in net.params() {
        let g = grads
            .get(p.var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient reaches {}", p.name));
        let d = gradient_difference(&f, &p.name, g);
        if std::env::var_os("ASSAY_CONFORMANCE_VERBOSE").is_some() {
            eprintln!("{name}: {} {d:.2e}", p.name);
        }
        if d > worst.0 {
            worst = (d, p.name.clone());
        }
    }
    assert!(
        worst.0 < bound,
        "{name}: the gradient of {} differs by {}",
        worst.1,
        worst.0
    );
    for (buffer, var) in net.buffers() {
        let d = relative_difference(var.as_tensor(), &f[&format!("after.{buffer}")]);
        assert!(d < bound, "{name}: {buffer} after the step differs by {d}");
    }
    let logits = net.forward(input, Mode::Eval, &mut dropout).unwrap();
    let d = relative_difference(&logits, &f["logits.eval"]);
    assert!(d < bound, "{name}: evaluation logits differ by {d}");
}

fn resnet(depth: usize, width: f64, stem: ResnetStem) -> ModelSpec {
    ModelSpec::Resnet(ResnetSpec {
        depth,
        width,
        stem,
        zero_init_residual: false,
        dropout: 0.0,
        drop_path: 0.0,
    })
}

#[test]
fn resnet20_equals_pytorch() {
    conforms("resnet20", resnet(20, 1.0, ResnetStem::Small));
}

#[test]
fn resnet18_equals_torchvision() {
    conforms("resnet18_w0125", resnet(18, 0.125, ResnetStem::Imagenet));
}

#[test]
fn resnet50_equals_torchvision() {
    conforms("resnet50_w0125", resnet(50, 0.125, ResnetStem::Imagenet));
}

#[test]
fn vit_tiny_equals_pytorch() {
    // DeiT-tiny's structure reduced: patch 8 on 3×32×24, depth 2, width 96, 3 heads.
    conforms(
        "vit_tiny_reduced",
        ModelSpec::Vit(VitSpec {
            patch: 8,
            depth: 2,
            width: 96,
            heads: 3,
            mlp_ratio: 4.0,
            dropout: 0.0,
            drop_path: 0.0,
        }),
    );
}

#[test]
fn mobilenet_v2_equals_torchvision() {
    conforms(
        "mobilenet_v2_w025",
        ModelSpec::MobilenetV2(MobileNetV2Spec {
            width: 0.25,
            dropout: 0.0,
        }),
    );
}

#[test]
fn efficientnet_lite0_equals_pytorch() {
    // lite0 at a quarter of its block width (the stem, head and depth are lite0's): the full
    // network's weights and gradients would make a 37 MB fixture.
    conforms(
        "efficientnet_lite0_w025",
        ModelSpec::EfficientnetLite(EfficientNetLiteSpec {
            variant: 0,
            width: 0.25,
            dropout: 0.0,
            drop_path: 0.0,
        }),
    );
}
