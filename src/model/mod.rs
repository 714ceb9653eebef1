//! Backbones. Only the CIFAR ResNet of the official code for now.

pub mod resnet;

pub use resnet::{ResNet, ResNetConfig};
