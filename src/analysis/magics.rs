//! IPython magics: which ones nbmemo can see through, which make a cell a barrier.
//!
//! A magic nbmemo cannot analyse makes its cell a barrier (it reads and writes everything and
//! runs alone). A small allow-list has no effect on the namespace (`%matplotlib`, `%config`,
//! …), and the timing and capture magics run Python code that is analysed like the rest of the
//! cell.

/// How a line magic (`%name args`) affects the analysis.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineMagic {
    /// No effect on the namespace.
    NoEffect,
    /// Runs this Python code in the namespace (`%time x = f()`).
    Code(String),
    /// Unanalysable: the cell is a barrier. Carries the magic as written (`%run`).
    Barrier(String),
}

/// Line magics that do not touch the user namespace (display and configuration only).
const NO_EFFECT: &[&str] = &[
    "matplotlib",
    "config",
    "load_ext",
    "reload_ext",
    "unload_ext",
    "autoreload",
    "aimport",
    "precision",
    "pprint",
    "xmode",
    "colors",
    "autocall",
    "automagic",
    "doctest_mode",
];

/// Line magics whose argument is Python code run in the user namespace.
const CODE: &[&str] = &["time", "timeit", "prun"];

/// Cell magics whose body is Python code run in the user namespace.
const CELL_CODE: &[&str] = &["time", "timeit", "capture", "prun"];

/// Classifies the text of a line magic, without its leading `%`.
pub(crate) fn classify_line(value: &str) -> LineMagic {
    let value = value.trim();
    let (name, args) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let name = name.trim_start_matches('%');
    if NO_EFFECT.contains(&name) {
        LineMagic::NoEffect
    } else if CODE.contains(&name) {
        LineMagic::Code(strip_options(args).to_string())
    } else {
        LineMagic::Barrier(format!("%{name}"))
    }
}

/// A cell that starts with a cell magic (`%%time`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CellMagic {
    /// The magic's name, without `%%`.
    pub(crate) name: String,
    /// The rest of the first line.
    pub(crate) args: String,
    /// The cell body after the magic line.
    pub(crate) body: String,
    /// How many lines precede the body (to map body lines back to cell lines).
    pub(crate) body_line_offset: usize,
}

impl CellMagic {
    /// Whether the body is Python run in the user namespace, so it can be analysed.
    pub(crate) fn runs_python(&self) -> bool {
        CELL_CODE.contains(&self.name.as_str())
    }

    /// Names the magic itself binds: `%%capture out` binds `out`.
    pub(crate) fn binds(&self) -> Vec<String> {
        if self.name != "capture" {
            return Vec::new();
        }
        self.args
            .split_whitespace()
            .find(|arg| !arg.starts_with('-'))
            .filter(|name| is_identifier(name))
            .map(|name| vec![name.to_string()])
            .unwrap_or_default()
    }
}

/// Recognises a cell magic on the first non-blank line of a cell.
pub(crate) fn cell_magic(source: &str) -> Option<CellMagic> {
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            offset += 1;
            continue;
        }
        let rest = trimmed.strip_prefix("%%")?;
        let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let header_end = source
            .lines()
            .take(offset + 1)
            .map(|l| l.len() + 1)
            .sum::<usize>();
        let body = source
            .get(header_end.min(source.len())..)
            .unwrap_or_default();
        return Some(CellMagic {
            name: name.to_string(),
            args: args.trim().to_string(),
            body: body.to_string(),
            body_line_offset: offset + 1,
        });
    }
    None
}

/// Drops leading `-x`-style options of `%timeit -n 10 code`.
fn strip_options(args: &str) -> &str {
    let mut rest = args.trim_start();
    while let Some(option) = rest.strip_prefix('-') {
        let (flag, after) = option
            .split_once(char::is_whitespace)
            .unwrap_or((option, ""));
        rest = after.trim_start();
        // Options that take a value: `-n 10`, `-r 3`.
        if matches!(flag, "n" | "r" | "p" | "s" | "T" | "D" | "l") {
            rest = rest
                .split_once(char::is_whitespace)
                .map_or("", |(_, after)| after)
                .trim_start();
        }
    }
    rest
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_alphabetic() || first == '_')
        && chars.all(|ch| ch.is_alphanumeric() || ch == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_magics() {
        assert_eq!(classify_line("matplotlib inline"), LineMagic::NoEffect);
        assert_eq!(
            classify_line("time x = f()"),
            LineMagic::Code("x = f()".into())
        );
        assert_eq!(
            classify_line("timeit -n 10 -r 3 g(y)"),
            LineMagic::Code("g(y)".into())
        );
        assert_eq!(
            classify_line("run other.py"),
            LineMagic::Barrier("%run".into())
        );
        assert_eq!(
            classify_line("pip install x"),
            LineMagic::Barrier("%pip".into())
        );
    }

    #[test]
    fn cell_magics() {
        let magic = cell_magic("\n%%capture out --no-stderr\nprint(1)\n").expect("a cell magic");
        assert_eq!(magic.name, "capture");
        assert_eq!(magic.body, "print(1)\n");
        assert_eq!(magic.body_line_offset, 2);
        assert_eq!(magic.binds(), vec!["out".to_string()]);
        assert!(magic.runs_python());
        assert!(cell_magic("x = 1\n%%time\n").is_none());
        let bash = cell_magic("%%bash\necho hi").expect("a cell magic");
        assert!(!bash.runs_python());
        assert_eq!(bash.body, "echo hi");
    }
}
