//! The validated spec: what the user wrote, with every default filled in. Pure data.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use super::launch::{Backend, LaunchSpec, SlurmSpec};
pub use crate::augment::{AugmentSpec, EraseValue, MixSpec, Transform, TransformSpec};
pub use crate::data::folds::FoldMethod;
pub use crate::data::resize::ResizeMethod;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub name: String,
    pub seed: u64,
    pub task: Task,
    pub data: DataSpec,
    pub split: SplitSpec,
    pub preprocess: PreprocessSpec,
    pub model: ModelSpec,
    /// `[model]`'s starting weights and freezing keys; left out of the resolved spec's JSON
    /// (and so of job ids) when unused.
    #[serde(default, skip_serializing_if = "TransferSpec::is_default")]
    pub transfer: TransferSpec,
    pub optimizer: OptimizerSpec,
    pub schedule: ScheduleSpec,
    pub train: TrainSpec,
    /// `[augment]`; left out of the resolved spec (and so of job ids) when empty.
    #[serde(default, skip_serializing_if = "AugmentSpec::is_empty")]
    pub augment: AugmentSpec,
    /// `[run]` and `[slurm]`: where the jobs run; not part of what a job computes, so left out
    /// of the resolved spec, job ids and the plan's fingerprint.
    #[serde(skip)]
    pub launch: LaunchSpec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Multiclass,
    Binary,
    Multilabel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    ImageFolder,
    Idx,
    Csv,
}

/// Where one split's data lives; paths are absolute after validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SourceSpec {
    Idx { images: PathBuf, labels: PathBuf },
    Path(PathBuf),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnCorrupt {
    Error,
    Skip,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    pub format: DataFormat,
    pub train: SourceSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<SourceSpec>,
    pub channels: usize,
    /// `[height, width]` every image is brought to when it is decoded.
    pub image_size: [usize; 2],
    pub on_corrupt: OnCorrupt,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// The binary task's positive class; `None`: the class whose name is an obvious positive
    /// (see [`crate::spec::positive`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive_class: Option<String>,
    /// Multilabel CSV manifests with one 0/1 column per label: the label columns, in class
    /// order; `None`: every column but `path` and `group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// Held out of the training data for validation; 0 with cross-validation.
    pub validation_fraction: f64,
    /// Held out of the training data as the test set; 0 when `data.test` is given or no test set is wanted.
    pub test_fraction: f64,
    pub stratify: bool,
    /// Cross-validation folds; 0 means a single validation split.
    pub folds: usize,
    pub fold_method: FoldMethod,
    /// Retrain the best trial on all training data and evaluate it on the test set.
    pub refit: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreprocessSpec {
    pub resize: ResizeMethod,
    pub normalize: Normalize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// Per-channel mean and std computed on the training split only.
    Auto,
    None,
    Fixed {
        mean: Vec<f64>,
        std: Vec<f64>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Mlp,
    Cnn,
}

/// `[model]`: a hand-written layer list (`mlp`, `cnn`) or one of the built-in architectures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "architecture", rename_all = "snake_case")]
pub enum ModelSpec {
    Mlp { layers: Vec<LayerSpec> },
    Cnn { layers: Vec<LayerSpec> },
    Resnet(ResnetSpec),
    EfficientnetLite(EfficientNetLiteSpec),
    MobilenetV2(MobileNetV2Spec),
    Vit(VitSpec),
}

impl ModelSpec {
    /// The layer list and how it sees its input, for `mlp` and `cnn`.
    pub fn layer_list(&self) -> Option<(Architecture, &[LayerSpec])> {
        match self {
            ModelSpec::Mlp { layers } => Some((Architecture::Mlp, layers)),
            ModelSpec::Cnn { layers } => Some((Architecture::Cnn, layers)),
            _ => None,
        }
    }
}

/// `[model] pretrained`, `freeze`, `unfreeze_at_epoch`, `backbone_lr_scale`: where training
/// starts from and which parts of the model train, at what rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PretrainedSpec>,
    /// Part names (see [`crate::model::parts`]), `backbone` expanded, in the model's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// The frozen parts train from this epoch on (1-based); `None`: they stay frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfreeze_at_epoch: Option<usize>,
    /// Multiplies the learning rate of every parameter but the head's.
    #[serde(default = "unit_width", skip_serializing_if = "is_unit")]
    pub backbone_lr_scale: f64,
}

impl Default for TransferSpec {
    fn default() -> Self {
        Self {
            pretrained: None,
            freeze: Vec::new(),
            unfreeze_at_epoch: None,
            backbone_lr_scale: 1.0,
        }
    }
}

impl TransferSpec {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn is_unit(v: &f64) -> bool {
    *v == 1.0
}

/// A weights file the model starts from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainedSpec {
    /// Absolute after validation.
    pub path: PathBuf,
    pub layout: PretrainedLayout,
    /// SHA-256 of the file (hex), read at validation: new weights make new jobs.
    pub sha256: String,
}

/// How the tensors in a weights file are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PretrainedLayout {
    /// assay's own names (a job's `model.safetensors`).
    Assay,
    /// torchvision's state dicts (ResNet, MobileNetV2, ViT).
    Torchvision,
    /// The lukemelas EfficientNet-PyTorch names of the published EfficientNet-Lite weights.
    EfficientnetLite,
}

impl PretrainedLayout {
    pub const NAMES: &'static [&'static str] = &["assay", "torchvision", "efficientnet-lite"];

    pub fn name(self) -> &'static str {
        match self {
            PretrainedLayout::Assay => "assay",
            PretrainedLayout::Torchvision => "torchvision",
            PretrainedLayout::EfficientnetLite => "efficientnet-lite",
        }
    }
}

/// The first convolution of a ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResnetStem {
    /// 7×7 stride-2 convolution and 3×3 stride-2 max-pool (torchvision's ImageNet ResNets).
    Imagenet,
    /// One 3×3 stride-1 convolution, no pool (for small images such as CIFAR's).
    Small,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResnetSpec {
    /// 20, 32, 44, 56, 110 (three stages of basic blocks) or 18, 34 (basic), 50 (bottleneck).
    pub depth: usize,
    /// Multiplies every stage's channels (16-32-64 or 64-128-256-512).
    pub width: f64,
    pub stem: ResnetStem,
    /// Starts the last batch norm of every residual branch at zero.
    pub zero_init_residual: bool,
    /// Dropout before the head.
    pub dropout: f64,
    /// Drop-path rate of the last block (rising linearly from 0 over the blocks).
    pub drop_path: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EfficientNetLiteSpec {
    /// 0 to 4: lite0 … lite4.
    pub variant: usize,
    /// Multiplies the variant's width coefficient (the blocks' channels; the stem and head keep
    /// 32 and 1280). 1 is the published network.
    #[serde(default = "unit_width")]
    pub width: f64,
    pub dropout: f64,
    pub drop_path: f64,
}

fn unit_width() -> f64 {
    1.0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MobileNetV2Spec {
    pub width: f64,
    pub dropout: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VitSpec {
    pub patch: usize,
    pub depth: usize,
    pub width: usize,
    pub heads: usize,
    pub mlp_ratio: f64,
    pub dropout: f64,
    pub drop_path: f64,
}

/// One layer; the classification head (a dense layer sized to the classes) is appended after these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    Conv {
        filters: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        /// Channel groups (1: an ordinary convolution; the input channels: depthwise).
        #[serde(default = "one", skip_serializing_if = "is_one")]
        groups: usize,
    },
    BatchNorm {
        momentum: f64,
        eps: f64,
    },
    /// Over the features of a flat input, over the channels at each position of an image.
    LayerNorm {
        eps: f64,
    },
    Relu,
    Relu6,
    Silu,
    HardSwish,
    Gelu,
    MaxPool {
        size: usize,
        stride: usize,
    },
    AvgPool {
        size: usize,
        stride: usize,
    },
    GlobalAvgPool,
    Dropout {
        rate: f64,
    },
    Flatten,
    Dense {
        units: usize,
        bias: bool,
    },
    /// `layers` applied to the input and added to it (through a projection when the shape
    /// changes).
    Residual {
        layers: Vec<LayerSpec>,
    },
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerSpec {
    Sgd {
        lr: f64,
        momentum: f64,
        dampening: f64,
        nesterov: bool,
        weight_decay: f64,
    },
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
    AdamW {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
}

impl OptimizerSpec {
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerSpec::Sgd { lr, .. }
            | OptimizerSpec::Adam { lr, .. }
            | OptimizerSpec::AdamW { lr, .. } => *lr,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub kind: ScheduleKind,
    /// Epochs of linear warm-up from 0 to the schedule's rate at the end of the warm-up.
    pub warmup_epochs: f64,
}

/// `[schedule] type`: how the learning rate moves. Rates are those of torch.optim.lr_scheduler
/// where it has the schedule (see `crate::train::schedule`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScheduleKind {
    Constant,
    Cosine {
        min_lr: f64,
    },
    Step {
        every_epochs: usize,
        gamma: f64,
    },
    /// torch's OneCycleLR (`three_phase = false`), per step.
    OneCycle {
        max_lr: f64,
        pct_start: f64,
        div_factor: f64,
        final_div_factor: f64,
        anneal: Anneal,
    },
    /// The rate times `gamma` at each milestone epoch.
    Multistep {
        milestones: Vec<usize>,
        gamma: f64,
    },
    /// The rate times `gamma` every epoch.
    Exponential {
        gamma: f64,
    },
    /// torch's CosineAnnealingWarmRestarts, per step with fractional epochs.
    CosineRestarts {
        t0: usize,
        t_mult: usize,
        min_lr: f64,
    },
    /// torch's ReduceLROnPlateau on the validation best metric, decided after each epoch.
    ReduceOnPlateau {
        patience: usize,
        factor: f64,
        threshold: f64,
        cooldown: usize,
        min_lr: f64,
    },
}

/// One-cycle annealing: a half cosine, or a straight line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anneal {
    Cos,
    Linear,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    /// The validation metric that picks the best epoch.
    pub best_metric: String,
    /// Stop after this many epochs without a better best metric; 0 = never.
    pub patience: usize,
    /// Loss weights per class (multiclass) or per positive/negative (binary, multilabel).
    #[serde(default, skip_serializing_if = "ClassWeights::is_none")]
    pub class_weights: ClassWeights,
    /// How each epoch's training order is drawn.
    #[serde(default, skip_serializing_if = "Sampler::is_shuffle")]
    pub sampler: Sampler,
    /// Multiclass label smoothing ε in [0, 1).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_smoothing: f64,
    /// Clip the global L2 norm of the gradients to this before each optimizer step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    /// Decay of the exponential moving average of the weights (validation, best epoch, test
    /// and `model.safetensors` use the average).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
    /// What a job that runs out of GPU memory does.
    #[serde(default, skip_serializing_if = "OnOom::is_fail")]
    pub on_oom: OnOom,
    /// The dtype of the forward and backward pass (parameters and optimizer state stay f32).
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

/// `train.precision`: f32, or mixed precision in bf16 or f16 (f16 with dynamic loss scaling);
/// reduced precision needs a GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl Precision {
    pub const NAMES: &'static [&'static str] = &["f32", "bf16", "f16"];

    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }
}

/// `train.on_oom`: a job out of GPU memory fails, or starts again once with half the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOom {
    #[default]
    Fail,
    HalveBatch,
}

impl OnOom {
    pub fn is_fail(&self) -> bool {
        *self == OnOom::Fail
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// `train.class_weights`: none, "balanced" (n / (k · count)), or one weight per class.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeights {
    #[default]
    None,
    Balanced,
    Fixed(Vec<f64>),
}

impl ClassWeights {
    pub fn is_none(&self) -> bool {
        *self == ClassWeights::None
    }
}

/// `train.sampler`: a shuffle of the training set, or draws with replacement weighted by
/// inverse class frequency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    #[default]
    Shuffle,
    Balanced,
}

impl Sampler {
    pub fn is_shuffle(&self) -> bool {
        *self == Sampler::Shuffle
    }
}
