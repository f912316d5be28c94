//! The parts of a model that `[model] freeze` names, and the training flags each epoch sets
//! from `freeze`, `unfreeze_at_epoch` and `backbone_lr_scale`.
//!
//! Parts are recorded as the parameters are created: `stem`, `stages.N` (ResNet,
//! EfficientNet-Lite, MobileNetV2) or `blocks.N` (ViT), `top` (the layer between the last stage
//! and the classifier: EfficientNet-Lite's and MobileNetV2's 1×1 convolution to 1280 channels,
//! ViT's final layer norm), `head` (the classifier); a layer list's parts are its top-level
//! layers with parameters, `layers.N`, and `head`. `backbone` in `freeze` means every part but
//! the head.

use super::{Init, Param};
use crate::spec::{LayerSpec, ModelSpec, TransferSpec};

pub const HEAD: &str = super::pretrained::HEAD;
/// Every part but the head.
pub const BACKBONE: &str = "backbone";

/// The part names of the model `spec` builds for `input` images, in the model's order.
pub fn names(spec: &ModelSpec, input: (usize, usize, usize)) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = match spec.layer_list() {
        Some((_, layers)) => layers
            .iter()
            .enumerate()
            .filter(|(_, l)| has_params(l))
            .map(|(i, _)| format!("layers.{i}"))
            .chain(std::iter::once(HEAD.to_string()))
            .collect(),
        None => {
            let (model, _) =
                super::arch::build(spec, input, 2, Init::Dry, &candle_core::Device::Cpu)
                    .map_err(|e| super::without_backtrace(e).to_string())?;
            model.params().iter().map(|p| p.part.clone()).collect()
        }
    };
    names.dedup();
    Ok(names)
}

fn has_params(layer: &LayerSpec) -> bool {
    matches!(
        layer,
        LayerSpec::Conv { .. }
            | LayerSpec::BatchNorm { .. }
            | LayerSpec::LayerNorm { .. }
            | LayerSpec::Dense { .. }
            | LayerSpec::Residual { .. }
    )
}

/// Sets every parameter's flags for `epoch` (1-based): the parts in `freeze` are frozen until
/// `unfreeze_at_epoch` (for good without it), and every parameter but the head's learns at
/// `backbone_lr_scale` times the learning rate. Depends only on the epoch, so a resumed run
/// sets the same flags.
pub fn apply(params: &[Param], transfer: &TransferSpec, epoch: usize) {
    let frozen_now = transfer.unfreeze_at_epoch.is_none_or(|n| epoch < n);
    for p in params {
        let frozen = frozen_now && transfer.freeze.contains(&p.part);
        p.training.set_frozen(frozen);
        let scale = if p.part == HEAD {
            1.0
        } else {
            transfer.backbone_lr_scale
        };
        p.training.set_lr_scale(scale);
    }
}
