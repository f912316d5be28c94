//! Vision Transformers with timm's (DeiT's) structure and parameter names: a patch-embedding
//! convolution, a class token and learned position embedding, pre-norm blocks of multi-head
//! self-attention and a GELU MLP (each branch behind drop-path), a final layer norm and a
//! linear head on the class token.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use super::super::builder::{Builder, Fill};
use super::super::layers::regularize::{drop_path, dropout};
use super::super::layers::{
    shape_error, Activation, Chw, Conv2d, ConvConfig, LayerNorm, Linear, Padding, SelfAttention,
};
use super::super::ops;
use super::super::Mode;
use super::{drop_path_rate, Forward};
use crate::spec::VitSpec;

const LN_EPS: f64 = 1e-6;
/// timm's initialisation of the Linear weights, the class token and the position embedding.
const INIT: Fill = Fill::TruncNormal(0.02);

/// x + drop_path(attn(norm1(x))), then x + drop_path(mlp(norm2(x))).
struct Block {
    norm1: LayerNorm,
    attn: SelfAttention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    drop_path: f64,
}

impl Block {
    fn new(
        b: &mut Builder,
        name: &str,
        spec: &VitSpec,
        tokens: usize,
        drop_path: f64,
    ) -> Result<Self> {
        let w = spec.width;
        let hidden = ((w as f64 * spec.mlp_ratio).round() as usize).max(1);
        let block = Self {
            norm1: LayerNorm::new(b, &format!("{name}.norm1"), w, LN_EPS)?,
            attn: SelfAttention::new(b, &format!("{name}.attn"), w, spec.heads, Some(INIT))?,
            norm2: LayerNorm::new(b, &format!("{name}.norm2"), w, LN_EPS)?,
            fc1: Linear::new(b, &format!("{name}.mlp.fc1"), w, hidden, true, Some(INIT))?,
            fc2: Linear::new(b, &format!("{name}.mlp.fc2"), hidden, w, true, Some(INIT))?,
            drop_path,
        };
        let (t, h) = (tokens, hidden);
        let scores = spec.heads * t * t;
        // norm1, qkv, scores and their softmax, the heads' output, proj, the sum; norm2, fc1,
        // its GELU, fc2, the sum.
        b.activation(t * w * 6 + 2 * scores + 2 * t * h + t * w * 3);
        b.flops(2 * t * w * 3 * w + 2 * 2 * t * t * w + 2 * t * w * w + 2 * 2 * t * w * h);
        Ok(block)
    }

    fn forward(&self, x: &Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let train = mode == Mode::Train;
        let mut y = self.attn.forward(&self.norm1.forward(x)?)?;
        if train {
            y = drop_path(&y, self.drop_path, rng)?;
        }
        let x = (x + y)?;
        let h = Activation::Gelu.apply(&self.fc1.forward(&self.norm2.forward(&x)?)?)?;
        let mut y = self.fc2.forward(&h)?;
        if train {
            y = drop_path(&y, self.drop_path, rng)?;
        }
        x + y
    }
}

pub struct Vit {
    patch_embed: Conv2d,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
    dropout: f64,
    head: Linear,
}

impl Vit {
    pub fn new(b: &mut Builder, spec: &VitSpec, input: Chw, classes: usize) -> Result<Self> {
        let (_, h, w) = input;
        let p = spec.patch;
        if p == 0 || h % p != 0 || w % p != 0 {
            return Err(shape_error(
                "patch_embed",
                format!(
                    "the images are {h}×{w}, not a whole number of {p}×{p} patches (height and width must be multiples of patch = {p}; resize the images or choose another patch)"
                ),
            ));
        }
        let cfg = ConvConfig::new(spec.width, p)
            .stride(p)
            .padding(Padding::Symmetric(0))
            .bias(true);
        b.part("stem");
        let (patch_embed, (_, gh, gw)) = Conv2d::new(b, "patch_embed.proj", cfg, input)?;
        let tokens = gh * gw + 1;
        let cls_token = b.param("cls_token", &[1, 1, spec.width], INIT, false)?;
        let pos_embed = b.param("pos_embed", &[1, tokens, spec.width], INIT, false)?;
        b.activation(tokens * spec.width);
        let blocks = (0..spec.depth)
            .map(|i| {
                let rate = drop_path_rate(spec.drop_path, i, spec.depth);
                b.part(format!("blocks.{i}"));
                Block::new(b, &format!("blocks.{i}"), spec, tokens, rate)
            })
            .collect::<Result<Vec<_>>>()?;
        b.part("top");
        let norm = LayerNorm::new(b, "norm", spec.width, LN_EPS)?;
        b.activation(tokens * spec.width);
        b.part("head");
        let head = Linear::new(b, "head", spec.width, classes, true, Some(INIT))?;
        b.flops(2 * spec.width * classes);
        Ok(Self {
            patch_embed,
            cls_token: cls_token.as_tensor().clone(),
            pos_embed: pos_embed.as_tensor().clone(),
            blocks,
            norm,
            dropout: spec.dropout,
            head,
        })
    }
}

impl Forward for Vit {
    fn forward(&self, x: &Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let n = x.dim(0)?;
        // n × width × gh × gw → n × (gh·gw) × width, patches in row-major order.
        let patches = self
            .patch_embed
            .forward(x)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let width = patches.dim(2)?;
        let cls = ops::cast_like(&self.cls_token, &patches)?.broadcast_as((n, 1, width))?;
        let pos_embed = ops::cast_like(&self.pos_embed, &patches)?;
        let mut y = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&pos_embed)?;
        for block in &self.blocks {
            y = block.forward(&y, mode, rng)?;
        }
        let mut features = self.norm.forward(&y)?.narrow(1, 0, 1)?.squeeze(1)?;
        if mode == Mode::Train {
            features = dropout(&features, self.dropout, rng)?;
        }
        self.head.forward(&features)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch::build;
    use crate::model::Init;
    use crate::spec::ModelSpec;
    use candle_core::Device;

    fn spec(patch: usize, depth: usize, width: usize, heads: usize) -> VitSpec {
        VitSpec {
            patch,
            depth,
            width,
            heads,
            mlp_ratio: 4.0,
            dropout: 0.0,
            drop_path: 0.0,
        }
    }

    #[test]
    fn parameter_counts_equal_deit() {
        // DeiT-tiny and -small (timm vit_tiny/small_patch16_224, 1000 classes).
        for (width, heads, want) in [(192, 3, 5_717_416), (384, 6, 22_050_664)] {
            let s = crate::model::summary(
                &ModelSpec::Vit(spec(16, 12, width, heads)),
                (3, 224, 224),
                1000,
            )
            .unwrap();
            assert_eq!(s.parameters, want, "width {width}");
        }
    }

    #[test]
    fn every_parameter_receives_a_gradient() {
        let mut s = spec(4, 3, 24, 3);
        s.dropout = 0.1;
        s.drop_path = 0.1;
        let dev = Device::Cpu;
        let mut rng = crate::train::rng::stream(1, "init", 0);
        let (model, _) = build(
            &ModelSpec::Vit(s),
            (3, 16, 12),
            3,
            Init::Seeded(&mut rng),
            &dev,
        )
        .unwrap();
        let names: Vec<&str> = model.params().iter().map(|p| p.name.as_str()).collect();
        for want in [
            "patch_embed.proj.weight",
            "cls_token",
            "pos_embed",
            "blocks.2.attn.qkv.weight",
            "blocks.2.mlp.fc2.bias",
            "norm.weight",
            "head.weight",
        ] {
            assert!(names.contains(&want), "no parameter {want} in {names:?}");
        }
        let no_decay: Vec<&str> = model
            .params()
            .iter()
            .filter(|p| !p.decay)
            .map(|p| p.name.as_str())
            .collect();
        for name in &names {
            let exempt = name.ends_with(".bias")
                || name.contains("norm")
                || *name == "cls_token"
                || *name == "pos_embed";
            assert_eq!(no_decay.contains(name), exempt, "weight decay of {name}");
        }
        crate::model::arch::tests::assert_every_parameter_learns(model.as_ref(), (3, 16, 12), 3);
    }

    #[test]
    fn an_image_size_that_is_not_a_multiple_of_the_patch_is_an_error() {
        let err =
            crate::model::check(&ModelSpec::Vit(spec(16, 12, 192, 3)), (3, 224, 200)).unwrap_err();
        assert!(
            err.contains("patch_embed") && err.contains("224×200") && err.contains("patch = 16"),
            "{err}"
        );
        assert!(crate::model::check(&ModelSpec::Vit(spec(16, 12, 192, 3)), (3, 32, 48)).is_ok());
        let err =
            crate::model::check(&ModelSpec::Vit(spec(8, 2, 100, 3)), (3, 32, 32)).unwrap_err();
        assert!(err.contains("heads"), "{err}");
    }

    #[test]
    fn the_generic_kernels_match_the_fast_ones() {
        let mut s = spec(4, 2, 32, 2);
        s.dropout = 0.1;
        s.drop_path = 0.1;
        crate::model::arch::tests::assert_generic_matches_fast(
            &crate::spec::ModelSpec::Vit(s),
            (3, 16, 12),
            3,
        );
    }
}
