//! The inverted residual block of MobileNetV2 and EfficientNet-Lite (placeholder).
