//! Integration tests: the real `nbmemo` binary on real notebooks.

mod common;
mod examples;
mod plan;
mod run;
