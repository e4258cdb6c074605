//! Node configuration: the files containerd and CRI-O/podman read to pull images from a mirror
//! (a registry `ferry push` filled, or `ferry serve` on the node) under their original names.

pub mod mirror_config;
