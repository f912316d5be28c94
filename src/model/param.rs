//! A trainable tensor with its checkpoint name and weight-decay group.

use candle_core::Var;

/// A trainable tensor with a stable name (used for checkpoints) and whether weight decay applies to it.
#[derive(Clone)]
pub struct Param {
    pub name: String,
    pub var: Var,
    pub decay: bool,
}

impl Param {
    pub fn new(name: impl Into<String>, var: Var, decay: bool) -> Self {
        Self {
            name: name.into(),
            var,
            decay,
        }
    }
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Param")
            .field("name", &self.name)
            .field("shape", self.var.as_tensor().shape())
            .field("dtype", &self.var.as_tensor().dtype())
            .field("decay", &self.decay)
            .finish()
    }
}
