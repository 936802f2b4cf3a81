//! The salsa database: notebook text in, cells, analyses and the graph out, incrementally.
//!
//! **Invariant:** queries are pure. They do no I/O and never run Python; file contents enter
//! only as inputs ([`NotebookFile`]), set by the driver (or the watcher) in one batch per
//! revision. Cell analyses are memoized per distinct cell text ([`CellSource`] is interned), so
//! editing one cell re-analyses that cell only, and a re-analysis that yields an equal result
//! (a comment edit) stops there: salsa backdates it and the graph is not rebuilt.

#[allow(missing_docs, reason = "salsa macros generate undocumented items")]
mod inputs;
#[allow(missing_docs, reason = "salsa macros generate undocumented items")]
mod queries;

use std::sync::{Arc, Mutex};

pub use inputs::NotebookFile;
pub use queries::{CellSource, cell_analysis, code_cells, notebook_graph, parsed_notebook};

/// The database trait every query takes.
#[salsa::db]
pub trait Db: salsa::Database {}

/// The database.
#[salsa::db]
#[derive(Clone, Default)]
pub struct Database {
    storage: salsa::Storage<Self>,
}

#[salsa::db]
impl salsa::Database for Database {}

#[salsa::db]
impl Db for Database {}

/// A log of the queries salsa executed, for tests and `-vv` tracing.
pub type ExecutionLog = Arc<Mutex<Vec<String>>>;

impl Database {
    /// A database that records every query execution (salsa's `WillExecute` events) in `log`.
    pub fn with_execution_log(log: ExecutionLog) -> Self {
        let storage = salsa::Storage::new(Some(Box::new(move |event: salsa::Event| {
            if let salsa::EventKind::WillExecute { database_key } = event.kind
                && let Ok(mut log) = log.lock()
            {
                log.push(format!("{database_key:?}"));
            }
        })));
        Database { storage }
    }
}

#[cfg(test)]
mod tests;
