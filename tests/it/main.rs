//! Integration tests: the real `nbmemo` binary on real notebooks.

mod cache;
mod check;
mod common;
mod corpus;
mod examples;
mod fidelity;
mod files;
mod plan;
mod reliability;
mod run;
mod watch;
