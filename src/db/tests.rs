//! Incrementality: which queries salsa re-executes after an edit (salsa's calc pattern).

use std::path::PathBuf;

use salsa::Setter;

use super::*;

fn percent(cells: &[&str]) -> Vec<u8> {
    cells
        .iter()
        .map(|cell| format!("# %%\n{cell}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Runs the graph query and returns the executed queries, by name, in a compact form.
fn executed(db: &Database, log: &ExecutionLog, file: NotebookFile) -> Vec<String> {
    let _ = notebook_graph(db, file);
    let mut log = log.lock().expect("log lock");
    let mut names: Vec<String> = log
        .drain(..)
        .map(|entry| entry.split('(').next().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

fn count(names: &[String], query: &str) -> usize {
    names.iter().filter(|name| name.as_str() == query).count()
}

#[test]
fn editing_one_cell_reanalyses_only_that_cell() {
    let log = ExecutionLog::default();
    let mut db = Database::with_execution_log(log.clone());
    let cells = ["a = 1", "b = a + 1", "c = 3", "print(b, c)"];
    let file = NotebookFile::new(
        &db,
        PathBuf::from("nb.py"),
        percent(&cells),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );

    let first = executed(&db, &log, file);
    assert_eq!(count(&first, "cell_analysis"), 4, "{first:?}");

    file.set_contents(&mut db)
        .to(percent(&["a = 1", "b = a + 2", "c = 3", "print(b, c)"]));
    let second = executed(&db, &log, file);
    assert_eq!(count(&second, "cell_analysis"), 1, "{second:?}");
    assert_eq!(count(&second, "notebook_graph"), 1, "{second:?}");
}

#[test]
fn a_comment_edit_changes_no_analysis_result() {
    let log = ExecutionLog::default();
    let mut db = Database::with_execution_log(log.clone());
    let file = NotebookFile::new(
        &db,
        PathBuf::from("nb.py"),
        percent(&["a = 1", "b = a + 1"]),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let _ = executed(&db, &log, file);
    let before = notebook_graph(&db, file).clone();
    let hash_before = cell_analysis(&db, code_cells(&db, file)[1]).code_hash;

    file.set_contents(&mut db)
        .to(percent(&["a = 1", "# explain\nb = a + 1  # why"]));
    let after_edit = executed(&db, &log, file);
    assert_eq!(count(&after_edit, "cell_analysis"), 1, "{after_edit:?}");
    assert_eq!(notebook_graph(&db, file), &before);
    assert_eq!(
        cell_analysis(&db, code_cells(&db, file)[1]).code_hash,
        hash_before
    );
}

#[test]
fn nothing_changed_executes_nothing() {
    let log = ExecutionLog::default();
    let mut db = Database::with_execution_log(log.clone());
    let contents = percent(&["a = 1", "b = a"]);
    let file = NotebookFile::new(
        &db,
        PathBuf::from("nb.py"),
        contents.clone(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let _ = executed(&db, &log, file);
    file.set_contents(&mut db).to(contents);
    let again = executed(&db, &log, file);
    // The file is parsed again (its input was set), but every cell text is the same.
    assert_eq!(count(&again, "cell_analysis"), 0, "{again:?}");
}
