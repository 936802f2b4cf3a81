//! Everything nbmemo shows the user: the plan in its three formats, diagnostics, and the
//! printer that owns stdout and stderr.
//!
//! **Invariant:** only [`printer`] writes to the terminal. stdout carries data (a plan, JSON);
//! logs and diagnostics go to stderr.

pub mod cache;
pub mod diagnostic;
pub mod junit;
pub mod plan;
pub mod printer;
pub mod progress;
pub mod run;

pub use diagnostic::Diagnostic;
pub use printer::Printer;
