//! Backbones. Only the CIFAR ResNet of the official code for now.

pub mod resnet;
pub mod safetensors;

pub use resnet::{ResNet, ResNetConfig};
