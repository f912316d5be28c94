"""A reference ViT in PyTorch with timm's (DeiT's) structure and parameter names, for the
fixtures of tests/arch_conformance.rs: patch-embedding convolution, class token, learned
position embedding, pre-norm blocks (packed-qkv multi-head attention, GELU MLP), final layer
norm, linear head on the class token. Imported by scripts/make-arch-fixtures.py."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        b, n, c = x.shape
        dh = c // self.heads
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, dh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1) * dh ** -0.5).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, width, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width, round(width * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, channels, width, patch):
        super().__init__()
        self.proj = nn.Conv2d(channels, width, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    def __init__(self, image, patch, depth, width, heads, classes, mlp_ratio=4.0, channels=3):
        super().__init__()
        h, w = image
        tokens = (h // patch) * (w // patch) + 1
        self.patch_embed = PatchEmbed(channels, width, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, width))
        self.blocks = nn.Sequential(*[Block(width, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, classes)
        # timm's initialisation (the patch convolution keeps PyTorch's default).
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def randomize(model, gen):
    """Weights that exercise every part: the Linear weights at 1/√inputs (timm's 0.02 leaves the
    attention almost uniform), the class token and position embedding comparable to the patch
    embeddings, and random layer-norm scales and shifts and biases (timm starts them at 1
    and 0), so that a swapped, ignored or misscaled parameter shows in the logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in ("cls_token", "pos_embed"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif "norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)


def vit_fixtures():
    from __main__ import write  # scripts/make-arch-fixtures.py, which imports this module

    # DeiT-tiny's structure (3 heads of 64 → here 3 heads of 32, mlp_ratio 4) reduced so the
    # fixture stays small: patch 8 on non-square 3×32×24 images (4×3 patches, so a swapped
    # height and width shows), depth 2, width 96.
    torch.manual_seed(4)
    m = VisionTransformer((32, 24), patch=8, depth=2, width=96, heads=3, classes=10)
    randomize(m, torch.Generator().manual_seed(14))
    write("vit_tiny_reduced", m, (3, 32, 24), 10)


def deit_parameter_counts():
    """The counts assay's unit test expects (timm's vit_tiny/small_patch16_224)."""
    for width, heads in ((192, 3), (384, 6)):
        m = VisionTransformer((224, 224), patch=16, depth=12, width=width, heads=heads, classes=1000)
        print(f"ViT width {width}: {sum(p.numel() for p in m.parameters())} parameters")


FIXTURES = {"vit": vit_fixtures, "vit_counts": deit_parameter_counts}
