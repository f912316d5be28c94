//! A trainable tensor with its checkpoint name, weight-decay group, the part of the model it
//! belongs to, and its training flags (frozen, learning-rate scale).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::Var;

/// Whether a parameter trains and how fast, shared by every clone of it (and by the batch norm
/// whose scale and shift it is, which stays in evaluation mode while they are frozen).
#[derive(Debug)]
pub struct Training {
    frozen: AtomicBool,
    lr_scale: AtomicU64,
}

impl Default for Training {
    fn default() -> Self {
        Self {
            frozen: AtomicBool::new(false),
            lr_scale: AtomicU64::new(1f64.to_bits()),
        }
    }
}

impl Training {
    pub fn frozen(&self) -> bool {
        self.frozen.load(Ordering::Relaxed)
    }

    pub fn set_frozen(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::Relaxed)
    }

    /// The multiplier of the learning rate (1 unless set).
    pub fn lr_scale(&self) -> f64 {
        f64::from_bits(self.lr_scale.load(Ordering::Relaxed))
    }

    pub fn set_lr_scale(&self, scale: f64) {
        self.lr_scale.store(scale.to_bits(), Ordering::Relaxed)
    }
}

/// A trainable tensor with a stable name (used for checkpoints) and whether weight decay applies to it.
#[derive(Clone)]
pub struct Param {
    pub name: String,
    pub var: Var,
    pub decay: bool,
    /// The part of the architecture it belongs to (`stem`, `stages.2`, `head`, …), the names
    /// `[model] freeze` takes; empty where the model names none.
    pub part: String,
    pub training: Arc<Training>,
}

impl Param {
    pub fn new(name: impl Into<String>, var: Var, decay: bool) -> Self {
        Self {
            name: name.into(),
            var,
            decay,
            part: String::new(),
            training: Arc::default(),
        }
    }

    /// In part `part`, sharing `training` with other parameters.
    pub fn in_part(mut self, part: &str, training: Arc<Training>) -> Self {
        self.part = part.to_string();
        self.training = training;
        self
    }

    /// Frozen parameters get no update: no gradient step, no weight decay, no optimizer state.
    pub fn frozen(&self) -> bool {
        self.training.frozen()
    }

    /// The multiplier of the learning rate for this parameter.
    pub fn lr_scale(&self) -> f64 {
        self.training.lr_scale()
    }
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Param")
            .field("name", &self.name)
            .field("shape", self.var.as_tensor().shape())
            .field("dtype", &self.var.as_tensor().dtype())
            .field("decay", &self.decay)
            .field("part", &self.part)
            .field("frozen", &self.frozen())
            .field("lr_scale", &self.lr_scale())
            .finish()
    }
}
