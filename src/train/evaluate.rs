//! Evaluation of a network on one split: mean loss and the classification metrics.

use candle_core::{Result, D};

use super::batches::{make_batch, Normalizer};
use super::metrics::{ConfusionMatrix, MulticlassMetrics};
use crate::data::image_set::ImageSet;
use crate::model::{Mode, Network};

/// Loss and metrics of `net` on every image of `set`, in batches of `batch_size`.
pub fn evaluate(
    net: &Network,
    set: &ImageSet,
    norm: &Normalizer,
    batch_size: usize,
) -> Result<MulticlassMetrics> {
    let mut cm = ConfusionMatrix::new(set.classes.len());
    let mut loss_sum = 0.0;
    let indices: Vec<usize> = (0..set.len()).collect();
    let mut unused_rng = crate::train::rng::stream(0, "eval", 0);
    for chunk in indices.chunks(batch_size.max(1)) {
        let (x, y) = make_batch(set, chunk, norm, net.device())?;
        let logits = net.forward(&x, Mode::Eval, &mut unused_rng)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()? as f64;
        loss_sum += loss * chunk.len() as f64;
        record(
            &mut cm,
            &logits,
            chunk.iter().map(|&i| set.labels[i] as usize),
        )?;
    }
    let loss = if set.is_empty() {
        0.0
    } else {
        loss_sum / set.len() as f64
    };
    Ok(MulticlassMetrics::from_confusion(&cm, loss, &set.classes))
}

/// Adds each row's arg-max prediction against its target to `cm`.
pub fn record(
    cm: &mut ConfusionMatrix,
    logits: &candle_core::Tensor,
    targets: impl Iterator<Item = usize>,
) -> Result<()> {
    let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    for (p, t) in predicted.into_iter().zip(targets) {
        cm.add(t, p as usize);
    }
    Ok(())
}
