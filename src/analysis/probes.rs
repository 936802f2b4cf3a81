//! Library state that travels like a variable: which cells may touch which *state probe*.
//!
//! A probe is a pseudo-variable named with a leading `@` (never a Python identifier), such as
//! `@numpy.random`; the worker captures and restores the state behind it (`PROTOCOL.md`, "State
//! probes"). Here, static rules name the cells that may change a probe, from the attribute
//! chains they use (`np.random.seed(0)`, `plt.style.use("ggplot")`, `os.chdir(path)`).
//!
//! Two kinds:
//! - *generators* (`@numpy.random`, `@random`): read and written by the cells that draw from
//!   them; a library drawing internally (a scikit-learn estimator) is caught at run time.
//! - *ambient* settings (rcParams, pandas options, warnings filters, print options, the working
//!   directory, `sys.path`, `os.environ`): written by the cells the rules name, and read by
//!   every later cell, because any output may depend on them (the graph adds those reads).
//!
//! Adding a kind of state: a probe in the runner's `PROBES` and a rule in [`touched_by`].

/// The numpy global generator.
pub const NUMPY_RANDOM: &str = "@numpy.random";
/// Python's `random` module generator.
pub const RANDOM: &str = "@random";
/// matplotlib's rcParams (styles).
pub const RC_PARAMS: &str = "@matplotlib.rcParams";
/// pandas' global options.
pub const PANDAS_OPTIONS: &str = "@pandas.options";
/// The `warnings` filters.
pub const WARNINGS: &str = "@warnings.filters";
/// numpy's print options.
pub const PRINT_OPTIONS: &str = "@numpy.printoptions";
/// The working directory.
pub const CWD: &str = "@cwd";
/// `sys.path`.
pub const SYS_PATH: &str = "@sys.path";
/// `os.environ`.
pub const ENVIRON: &str = "@os.environ";

/// Files under the project root. Not state the worker captures: a mark for cells the rules
/// below suspect of reading or writing files, which the graph keeps in notebook order among
/// themselves until a run has seen which files each touches (`crate::files`).
pub const FILES: &str = "@files";

/// Probes that every cell after a writer reads.
pub const AMBIENT: &[&str] = &[
    RC_PARAMS,
    PANDAS_OPTIONS,
    WARNINGS,
    PRINT_OPTIONS,
    CWD,
    SYS_PATH,
    ENVIRON,
];

/// Whether `name` is a probe rather than a Python name.
pub fn is_probe(name: &str) -> bool {
    name.starts_with('@')
}

/// The probes an attribute chain (`["np", "random", "seed"]`, root name first) may change.
pub fn touched_by(chain: &[&str]) -> Vec<&'static str> {
    let mut probes = Vec::new();
    let Some((&root, rest)) = chain.split_first() else {
        return probes;
    };
    let has = |part: &str| rest.contains(&part);
    // `np.random.seed`, `numpy.random.rand`, `self.np.random…`: the numpy global generator.
    if rest.len() >= 2 && rest[0] == "random" {
        probes.push(NUMPY_RANDOM);
    }
    if root == "random" && !rest.is_empty() {
        probes.push(RANDOM);
        // `from numpy import random` binds `random` too.
        probes.push(NUMPY_RANDOM);
    }
    if root == "npr" && !rest.is_empty() {
        probes.push(NUMPY_RANDOM);
    }
    // `from matplotlib import rcParams` / `from os import environ` bind the objects themselves.
    let styling = root == "rcParams"
        || has("rcParams")
        || has("rcdefaults")
        || has("xkcd")
        || rest.windows(2).any(|pair| pair == ["style", "use"])
        || (rest.last() == Some(&"rc") && matches!(root, "plt" | "mpl" | "matplotlib" | "pyplot"))
        || (matches!(root, "sns" | "seaborn")
            && rest.first().is_some_and(|first| first.starts_with("set")));
    if styling {
        probes.push(RC_PARAMS);
    }
    if has("set_option")
        || has("reset_option")
        || (matches!(root, "pd" | "pandas") && has("options"))
    {
        probes.push(PANDAS_OPTIONS);
    }
    if root == "warnings"
        && rest.first().is_some_and(|first| {
            matches!(
                *first,
                "filterwarnings" | "simplefilter" | "resetwarnings" | "filters"
            )
        })
    {
        probes.push(WARNINGS);
    }
    if has("set_printoptions") {
        probes.push(PRINT_OPTIONS);
    }
    if root == "os" && rest.first() == Some(&"chdir") {
        probes.push(CWD);
    }
    if root == "sys" && rest.first() == Some(&"path") {
        probes.push(SYS_PATH);
    }
    if root == "environ"
        || (root == "os"
            && rest
                .first()
                .is_some_and(|first| matches!(*first, "environ" | "putenv" | "unsetenv")))
    {
        probes.push(ENVIRON);
    }
    probes
}

/// Method or function names that read or write files whatever they are called on
/// (`df.to_csv`, `pd.read_csv`, `np.save`, `Path(…).write_text`, `fig.savefig`).
const FILE_CALLS: &[&str] = &[
    "open",
    "load",
    "save",
    "savez",
    "savez_compressed",
    "savetxt",
    "loadtxt",
    "genfromtxt",
    "fromfile",
    "tofile",
    "dump",
    "savefig",
    "imsave",
    "imread",
    "imwrite",
    "read_text",
    "read_bytes",
    "write_text",
    "write_bytes",
    "touch",
    "unlink",
    "mkdir",
    "iterdir",
    "rglob",
    "load_dataset",
    "load_workbook",
    "to_csv",
    "to_excel",
    "to_parquet",
    "to_pickle",
    "to_feather",
    "to_hdf",
    "to_stata",
    "to_json",
    "to_orc",
    "to_xml",
    "to_sql",
    "to_netcdf",
    "open_dataset",
    "read",
    "readline",
    "readlines",
    "write",
    "writelines",
    "load_model",
    "save_model",
    "from_file",
    "to_file",
    "connect",
];

/// Modules whose every call may touch files (`shutil.copy`, `glob.glob`, `tempfile…`).
const FILE_MODULES: &[&str] = &[
    "shutil", "glob", "pathlib", "tempfile", "zipfile", "tarfile",
];

/// `os` functions that touch files (`os.listdir`, `os.path.exists`…).
const OS_FILE_CALLS: &[&str] = &[
    "listdir",
    "scandir",
    "walk",
    "mkdir",
    "makedirs",
    "remove",
    "unlink",
    "rmdir",
    "removedirs",
    "rename",
    "renames",
    "replace",
    "open",
    "stat",
    "truncate",
    "link",
    "symlink",
    "exists",
    "isfile",
    "isdir",
    "getsize",
    "getmtime",
    "lexists",
];

/// Whether calling the attribute chain `chain` (root name first; an empty root for a call on
/// something else, `Path(p).read_text`) may read or write files.
pub fn touches_files(chain: &[&str]) -> bool {
    let Some((&last, _)) = chain.split_last() else {
        return false;
    };
    let root = chain[0];
    last.starts_with("read_")
        || FILE_CALLS.contains(&last)
        || (chain.len() > 1 && FILE_MODULES.contains(&root))
        || (root == "os" && chain.len() > 1 && OS_FILE_CALLS.contains(&last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["np", "random", "seed"], &[NUMPY_RANDOM]),
            (&["numpy", "random", "rand"], &[NUMPY_RANDOM]),
            (&["np", "random"], &[]),
            (&["random", "randint"], &[RANDOM, NUMPY_RANDOM]),
            (&["rng", "random"], &[]),
            (&["plt", "style", "use"], &[RC_PARAMS]),
            (&["mpl", "rcParams"], &[RC_PARAMS]),
            (&["plt", "rc"], &[RC_PARAMS]),
            (&["sns", "set_theme"], &[RC_PARAMS]),
            (&["pd", "set_option"], &[PANDAS_OPTIONS]),
            (&["pd", "options", "display", "max_rows"], &[PANDAS_OPTIONS]),
            (&["warnings", "filterwarnings"], &[WARNINGS]),
            (&["warnings", "warn"], &[]),
            (&["np", "set_printoptions"], &[PRINT_OPTIONS]),
            (&["os", "chdir"], &[CWD]),
            (&["os", "path", "join"], &[]),
            (&["sys", "path", "append"], &[SYS_PATH]),
            (&["os", "environ", "update"], &[ENVIRON]),
            (&["df", "plot"], &[]),
            (&["rcParams"], &[RC_PARAMS]),
            (&["rcParams", "update"], &[RC_PARAMS]),
            (&["environ"], &[ENVIRON]),
            (&["environ", "get"], &[ENVIRON]),
        ];
        for (chain, expected) in cases {
            assert_eq!(touched_by(chain), expected.to_vec(), "{chain:?}");
        }
    }

    #[test]
    fn file_rules() {
        let touching: &[&[&str]] = &[
            &["open"],
            &["pd", "read_csv"],
            &["df", "to_csv"],
            &["np", "save"],
            &["np", "load"],
            &["plt", "savefig"],
            &["", "write_text"],
            &["os", "makedirs"],
            &["os", "path", "exists"],
            &["shutil", "rmtree"],
            &["glob", "glob"],
            &["json", "dump"],
        ];
        for chain in touching {
            assert!(touches_files(chain), "{chain:?}");
        }
        let not_touching: &[&[&str]] = &[
            &["print"],
            &["df", "head"],
            &["np", "arange"],
            &["os", "path", "join"],
            &["s", "replace"],
            &["df", "to_numpy"],
            &["os", "getcwd"],
        ];
        for chain in not_touching {
            assert!(!touches_files(chain), "{chain:?}");
        }
    }
}
