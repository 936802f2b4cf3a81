//! Issue #4: library state probes, views, aliases and identity. Each test runs a small notebook
//! with the real `nbmemo` and real Python, compares every cell's stdout with sequential
//! execution (`sequential.py`), and asserts what proves the mechanism: the probe edges in the
//! plan, cells that touch no probe overlapping in time, a run-time-learned dependency, a
//! fully cached second run, and an edit re-running exactly the cells that depend on it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{Project, machine, sequential_cells, statuses, stdouts};

/// Per-cell stdout of sequential top-to-bottom execution; none of these references may raise.
fn sequential(notebook: &Path) -> Vec<String> {
    let cells = sequential_cells(notebook);
    for cell in &cells {
        assert!(cell["error"].is_null(), "the reference raised: {cells:?}");
    }
    cells
        .iter()
        .map(|cell| cell["stdout"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A jupytext percent notebook with the given code cells.
fn percent(cells: &[&str]) -> String {
    cells
        .iter()
        .map(|cell| format!("# %%\n{cell}\n\n"))
        .collect()
}

/// Writes the notebook (`.py` as percent, else `.ipynb`) and returns its path.
fn write(project: &Project, name: &str, cells: &[&str]) -> PathBuf {
    if name.ends_with(".py") {
        project.ctx.write(name, percent(cells))
    } else {
        project.write_notebook(name, cells)
    }
}

/// `nbmemo plan NB --format json`; with the project's Python it also uses what runs learned.
fn plan(project: &Project, name: &str) -> Value {
    let python = project.python.display().to_string();
    let run = project
        .ctx
        .nbmemo(&["plan", name, "--format", "json", "--python", &python]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    run.json()
}

fn reads(plan: &Value, idx: usize) -> Vec<String> {
    plan["cells"][idx]["reads"]
        .as_array()
        .expect("reads")
        .iter()
        .map(|name| name.as_str().unwrap_or("?").to_string())
        .collect()
}

/// The cells that may provide `name` to cell `idx`, according to the plan.
fn providers(plan: &Value, idx: usize, name: &str) -> Vec<usize> {
    plan["cells"][idx]["inputs"][name]
        .as_array()
        .map(|cells| {
            cells
                .iter()
                .map(|cell| usize::try_from(cell.as_u64().expect("a cell index")).expect("index"))
                .collect()
        })
        .unwrap_or_default()
}

/// When a cell that executed started and finished (seconds since the run started).
fn interval(report: &Value, idx: usize) -> (f64, f64) {
    let cell = &report["cells"][idx];
    (
        cell["started_at"].as_f64().expect("start"),
        cell["finished_at"].as_f64().expect("end"),
    )
}

fn overlap(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// The cold run: every cell ran, none failed, stdout equals sequential execution. Then the
/// second run: every cell cached, the same stdout. Returns the cold report.
fn cold_then_cached(project: &Project, name: &str, notebook: &Path, args: &[&str]) -> Value {
    let expected = sequential(notebook);
    let mut full = vec![name];
    full.extend_from_slice(args);
    let cold = project.run_json(&full);
    assert_eq!(cold["summary"]["failed"], 0, "{cold:#}");
    assert_eq!(statuses(&cold), vec!["ran"; expected.len()], "{cold:#}");
    assert_eq!(stdouts(&cold), expected, "cold run: {cold:#}");
    let warm = project.run_json(&full);
    assert_eq!(
        statuses(&warm),
        vec!["cached"; expected.len()],
        "second run: {warm:#}"
    );
    assert_eq!(stdouts(&warm), expected, "second run: {warm:#}");
    cold
}

/// Rewrites the notebook, runs it: the given statuses, and stdout equal to sequential.
fn edit_and_run(project: &Project, name: &str, cells: &[&str], expected: &[&str]) -> Value {
    let notebook = write(project, name, cells);
    let report = project.run_json(&[name]);
    assert_eq!(statuses(&report), expected, "after the edit: {report:#}");
    assert_eq!(
        stdouts(&report),
        sequential(&notebook),
        "after the edit: {report:#}"
    );
    report
}

const NUMPY_DRAWS: &[&str] = &[
    "import time\nimport numpy as np\nnp.random.seed(0)",
    "time.sleep(0.2)\nprint(np.random.rand(3))",
    "time.sleep(0.3)\nprint('free a')",
    "time.sleep(0.2)\nprint(np.random.randint(0, 100, size=5))",
    "time.sleep(0.3)\nprint('free b')",
    "time.sleep(0.2)\nprint(np.random.normal(size=2))",
    "u = np.random.rand()\nprint(round(u, 6))",
    "print(np.random.randint(10))",
];

/// `np.random.seed(0)` then draws in five cells: the sequential numbers; the draws form one
/// chain through `@numpy.random`, and the cells that touch no probe run beside it.
#[test]
fn numpy_global_generator_gives_sequential_draws_and_free_cells_overlap() {
    let _machine = machine();
    let project = Project::new();
    let notebook = write(&project, "nb.py", NUMPY_DRAWS);

    let static_plan = plan(&project, "nb.py");
    for draw in [1, 3, 5, 6, 7] {
        assert!(
            reads(&static_plan, draw).contains(&"@numpy.random".to_string()),
            "cell {draw} draws: {static_plan:#}"
        );
    }
    for free in [2, 4] {
        assert!(
            reads(&static_plan, free)
                .iter()
                .all(|name| !name.starts_with('@')),
            "cell {free} touches no probe: {static_plan:#}"
        );
    }
    // Each draw starts from the state the previous one left; no free cell is in the chain.
    for pair in [1, 3, 5, 6, 7].windows(2) {
        let chain = providers(&static_plan, pair[1], "@numpy.random");
        assert!(
            chain.contains(&pair[0]) && !chain.contains(&2) && !chain.contains(&4),
            "cell {}: {chain:?}",
            pair[1]
        );
    }

    let cold = cold_then_cached(&project, "nb.py", &notebook, &["-j", "4"]);
    // The draws ran one after another, in notebook order.
    let draws = [1, 3, 5, 6, 7];
    for pair in draws.windows(2) {
        let (before, after) = (interval(&cold, pair[0]), interval(&cold, pair[1]));
        assert!(
            before.1 <= after.0,
            "draw {} started before draw {} finished: {cold:#}",
            pair[1],
            pair[0]
        );
    }
    // The cells that touch no probe ran beside the draws and beside each other.
    let (free_a, free_b) = (interval(&cold, 2), interval(&cold, 4));
    assert!(overlap(free_a, free_b), "{free_a:?} {free_b:?}: {cold:#}");
    for (idx, free) in [(2, free_a), (4, free_b)] {
        assert!(
            draws
                .iter()
                .any(|&draw| overlap(free, interval(&cold, draw))),
            "free cell {idx} overlapped no draw: {cold:#}"
        );
    }

    // One more draw in cell 3: it and the later draws run again, nothing else.
    let mut cells = NUMPY_DRAWS.to_vec();
    cells[3] = "time.sleep(0.2)\nprint(np.random.randint(0, 100, size=6))";
    edit_and_run(
        &project,
        "nb.py",
        &cells,
        &[
            "cached", "cached", "cached", "ran", "cached", "ran", "ran", "ran",
        ],
    );
}

const PYTHON_DRAWS: &[&str] = &[
    "import random\nimport time\nrandom.seed(1234)",
    "time.sleep(0.2)\nprint(random.random())",
    "time.sleep(0.2)\nprint(random.randint(0, 1000))",
    "time.sleep(0.2)\nxs = list(range(10))\nrandom.shuffle(xs)\nprint(xs)",
    "time.sleep(0.2)\nprint(random.choice('abcdefgh'), random.gauss(0, 1))",
    "time.sleep(0.2)\nprint(random.sample(range(100), 3))",
    "time.sleep(0.3)\nprint('free')",
];

/// `random.seed` then draws in five cells: the sequential numbers; the free cell runs beside
/// the draws.
#[test]
fn python_random_generator_gives_sequential_draws() {
    let _machine = machine();
    let project = Project::new();
    let notebook = write(&project, "nb.ipynb", PYTHON_DRAWS);
    let static_plan = plan(&project, "nb.ipynb");
    for draw in 1..=5 {
        assert!(
            reads(&static_plan, draw).contains(&"@random".to_string()),
            "cell {draw} draws: {static_plan:#}"
        );
    }
    assert!(
        reads(&static_plan, 6)
            .iter()
            .all(|name| !name.starts_with('@')),
        "{static_plan:#}"
    );

    let cold = cold_then_cached(&project, "nb.ipynb", &notebook, &["-j", "4"]);
    // The free cell, last in the notebook, did not wait for the chain of draws.
    let free = interval(&cold, 6);
    assert!(
        (1..=5).any(|draw| overlap(free, interval(&cold, draw))),
        "the free cell overlapped no draw: {cold:#}"
    );

    // A different seed: every draw runs again, the free cell stays cached.
    let mut cells = PYTHON_DRAWS.to_vec();
    cells[0] = "import random\nimport time\nrandom.seed(99)";
    edit_and_run(
        &project,
        "nb.ipynb",
        &cells,
        &["ran", "ran", "ran", "ran", "ran", "ran", "cached"],
    );
}

const SKLEARN: &[&str] = &[
    "import numpy as np\nfrom sklearn.model_selection import train_test_split\nnp.random.seed(0)",
    "data = list(range(12))",
    "train, test = train_test_split(data, test_size=4, random_state=None)\nprint(train, test)",
    "print(np.random.randint(1000))",
];

/// A scikit-learn function with `random_state=None` draws from numpy's global generator
/// internally, which the analysis cannot see: the run learns it (the cell re-runs with the
/// seeded state), the result is sequential, and the learned dependency persists.
#[test]
fn scikit_learn_drawing_internally_is_learned_at_run_time() {
    let project = Project::new();
    let notebook = write(&project, "nb.py", SKLEARN);
    let static_plan = plan(&project, "nb.py");
    assert!(
        !reads(&static_plan, 2).contains(&"@numpy.random".to_string()),
        "the analysis alone does not see the draw: {static_plan:#}"
    );

    let cold = cold_then_cached(&project, "nb.py", &notebook, &[]);
    assert_ne!(
        cold["cells"][2]["stdout"], cold["cells"][3]["stdout"],
        "{cold:#}"
    );
    let learned = plan(&project, "nb.py");
    assert_eq!(
        providers(&learned, 2, "@numpy.random"),
        [0],
        "the run learned that cell 2 uses the seeded generator: {learned:#}"
    );
    assert!(
        providers(&learned, 3, "@numpy.random").contains(&2),
        "the later draw starts from the state cell 2 left: {learned:#}"
    );

    // Another seed: the learned edge re-runs the scikit-learn cell, not the data cell.
    let mut cells = SKLEARN.to_vec();
    cells[0] = "import numpy as np\nfrom sklearn.model_selection import train_test_split\nnp.random.seed(1)";
    edit_and_run(&project, "nb.py", &cells, &["ran", "cached", "ran", "ran"]);
}

const MATPLOTLIB: &[&str] = &[
    "import time\nimport matplotlib as mpl\nimport matplotlib.pyplot as plt",
    "time.sleep(0.3)\nlate = 1",
    "fig, ax = plt.subplots()\nprint(late, mpl.colors.to_hex(ax.get_facecolor()))\nplt.close(fig)",
    "print(plt.rcParams['lines.linewidth'])",
    "plt.style.use('ggplot')",
    "mpl.rcParams['lines.linewidth'] = 3",
    "fig, ax = plt.subplots()\nprint(plt.rcParams['lines.linewidth'], mpl.colors.to_hex(ax.get_facecolor()))\nplt.close(fig)",
];

/// A style and an rcParams assignment reach later cells, and not earlier ones (cell 2 waits
/// for a sleeping cell, so it may well run on a worker that already applied the style).
#[test]
fn matplotlib_style_and_rc_params_reach_later_cells() {
    let project = Project::new();
    let notebook = write(&project, "nb.ipynb", MATPLOTLIB);
    let static_plan = plan(&project, "nb.ipynb");
    // The last cell starts from the rcParams the assignment left; the early figure from none.
    assert!(
        providers(&static_plan, 6, "@matplotlib.rcParams").contains(&5),
        "{static_plan:#}"
    );
    assert!(
        !reads(&static_plan, 2)
            .iter()
            .any(|name| name.starts_with('@')),
        "{static_plan:#}"
    );
    let cold = cold_then_cached(&project, "nb.ipynb", &notebook, &["-j", "2"]);
    assert_eq!(cold["cells"][2]["stdout"], "1 #ffffff\n", "{cold:#}");
    assert_eq!(cold["cells"][3]["stdout"], "1.5\n", "{cold:#}");
    assert_eq!(cold["cells"][6]["stdout"], "3.0 #e5e5e5\n", "{cold:#}");

    let mut cells = MATPLOTLIB.to_vec();
    cells[5] = "mpl.rcParams['lines.linewidth'] = 4";
    let report = edit_and_run(
        &project,
        "nb.ipynb",
        &cells,
        &[
            "cached", "cached", "cached", "cached", "cached", "ran", "ran",
        ],
    );
    assert_eq!(report["cells"][6]["stdout"], "4.0 #e5e5e5\n", "{report:#}");
}

const CHDIR: &[&str] = &[
    "import os\nimport time",
    "time.sleep(0.3)\nlate = 1",
    "print(late, open('data.txt').read().strip(), os.environ.get('FIDELITY_X'))",
    "os.chdir('sub')",
    "os.environ['FIDELITY_X'] = '1'",
    "print(open('data.txt').read().strip())",
    "print(os.environ.get('FIDELITY_X'), os.path.basename(os.getcwd()))",
];

/// `os.chdir` and `os.environ` reach later cells (a relative `open` reads the file in the new
/// folder) and not earlier ones, even one that may run after them (cell 2 waits for a sleeping
/// cell, the settings don't).
#[test]
fn working_directory_and_environment_reach_later_cells_only() {
    let project = Project::new();
    project.ctx.write("data.txt", "top\n");
    project.ctx.write("sub/data.txt", "in sub\n");
    let notebook = write(&project, "nb.py", CHDIR);
    let cold = cold_then_cached(&project, "nb.py", &notebook, &["-j", "2"]);
    assert_eq!(cold["cells"][2]["stdout"], "1 top None\n", "{cold:#}");
    assert_eq!(cold["cells"][5]["stdout"], "in sub\n", "{cold:#}");
    assert_eq!(cold["cells"][6]["stdout"], "1 sub\n", "{cold:#}");

    // Another environment value: the cells after it run again.
    let mut cells = CHDIR.to_vec();
    cells[4] = "os.environ['FIDELITY_X'] = '2'";
    let report = edit_and_run(
        &project,
        "nb.py",
        &cells,
        &["cached", "cached", "cached", "cached", "ran", "ran", "ran"],
    );
    assert_eq!(report["cells"][6]["stdout"], "2 sub\n", "{report:#}");
}

const SETTINGS: &[&str] = &[
    "import os\nimport sys\nimport warnings\nimport numpy as np\nimport pandas as pd",
    "sys.path.append(os.path.abspath('libdir'))",
    "import helper_mod\nprint(helper_mod.VALUE, sys.path[-1].endswith('libdir'))",
    "pd.set_option('display.max_rows', 5)",
    "print(pd.DataFrame({'a': range(20)}))",
    "np.set_printoptions(precision=2)",
    "print(np.array([1 / 3, 2 / 3]))",
    "warnings.simplefilter('error')",
    "try:\n    warnings.warn('boom')\n    print('no error')\nexcept UserWarning as err:\n    print('raised', err)",
];

/// `sys.path`, pandas options, numpy print options and warnings filters set in one cell are
/// in force in the later cells.
#[test]
fn sys_path_pandas_numpy_and_warnings_settings_reach_later_cells() {
    let project = Project::new();
    project.ctx.write("libdir/helper_mod.py", "VALUE = 42\n");
    let notebook = write(&project, "nb.py", SETTINGS);
    let static_plan = plan(&project, "nb.py");
    for (setter, probe) in [
        (1, "@sys.path"),
        (3, "@pandas.options"),
        (5, "@numpy.printoptions"),
        (7, "@warnings.filters"),
    ] {
        assert!(
            providers(&static_plan, 8, probe).contains(&setter),
            "{probe}: {static_plan:#}"
        );
    }
    let cold = cold_then_cached(&project, "nb.py", &notebook, &[]);
    assert_eq!(cold["cells"][2]["stdout"], "42 True\n", "{cold:#}");
    assert!(
        cold["cells"][4]["stdout"]
            .as_str()
            .unwrap_or("")
            .contains("[20 rows x 1 columns]"),
        "{cold:#}"
    );
    assert_eq!(cold["cells"][6]["stdout"], "[0.33 0.67]\n", "{cold:#}");
    assert_eq!(cold["cells"][8]["stdout"], "raised boom\n", "{cold:#}");

    let mut cells = SETTINGS.to_vec();
    cells[5] = "np.set_printoptions(precision=3)";
    let report = edit_and_run(
        &project,
        "nb.py",
        &cells,
        &[
            "cached", "cached", "cached", "cached", "cached", "ran", "ran", "ran", "ran",
        ],
    );
    assert_eq!(
        report["cells"][6]["stdout"], "[0.333 0.667]\n",
        "{report:#}"
    );
}

const ALIASES: &[&str] = &[
    "a = []\nb = a",
    "b.append(1)",
    "print(a, a is b)",
    "x = {'k': [1]}",
    "y = x",
    "print(y is x)",
    "y['k'].append(2)",
    "print(x, x is y)",
];

/// Aliases are stored and loaded together: a change through one name is seen through the
/// other, and `is` stays true in later cells.
#[test]
fn aliases_keep_identity_and_share_mutations() {
    let project = Project::new();
    let notebook = write(&project, "nb.ipynb", ALIASES);
    let cold = cold_then_cached(&project, "nb.ipynb", &notebook, &[]);
    assert_eq!(cold["cells"][2]["stdout"], "[1] True\n", "{cold:#}");
    assert_eq!(cold["cells"][5]["stdout"], "True\n", "{cold:#}");
    assert_eq!(
        cold["cells"][7]["stdout"], "{'k': [1, 2]} True\n",
        "{cold:#}"
    );

    let mut cells = ALIASES.to_vec();
    cells[1] = "b.append(10)";
    let report = edit_and_run(
        &project,
        "nb.ipynb",
        &cells,
        &[
            "cached", "ran", "ran", "cached", "cached", "cached", "cached", "cached",
        ],
    );
    assert_eq!(report["cells"][2]["stdout"], "[10] True\n", "{report:#}");
}

const VIEWS: &[&str] = &[
    "import numpy as np\nx = np.arange(9).reshape(3, 3)",
    "sub = x[:2, :2]",
    "sub[0, 0] = 99",
    "print(x)",
    "print(np.shares_memory(x, sub), sub[0, 0])",
    "l = [1]\nd = {'l': l}",
    "l.append(2)",
    "print(d, d['l'] is l)",
];

/// A numpy view travels with its base, so a write through the view changes the base a later
/// cell prints; a list inside a dict stays shared with its own name. Neither write is visible
/// to the analysis (cell 3 reads only `x`, cell 7 only `d`): the run discovers the sharing,
/// runs the readers on the new value, and the next plan orders them after the writer.
#[test]
fn views_and_contained_objects_share_mutations() {
    let project = Project::new();
    let notebook = write(&project, "nb.py", VIEWS);
    let static_plan = plan(&project, "nb.py");
    assert_eq!(providers(&static_plan, 3, "x"), [0], "{static_plan:#}");
    assert_eq!(providers(&static_plan, 7, "d"), [5], "{static_plan:#}");

    let expected = sequential(&notebook);
    let cold = project.run_json(&["nb.py", "-j", "4"]);
    assert_eq!(cold["summary"]["failed"], 0, "{cold:#}");
    assert_eq!(stdouts(&cold), expected, "{cold:#}");
    assert_eq!(
        cold["cells"][3]["stdout"], "[[99  1  2]\n [ 3  4  5]\n [ 6  7  8]]\n",
        "{cold:#}"
    );
    assert_eq!(cold["cells"][4]["stdout"], "True 99\n", "{cold:#}");
    assert_eq!(
        cold["cells"][7]["stdout"], "{'l': [1, 2]} True\n",
        "{cold:#}"
    );
    let learned = plan(&project, "nb.py");
    assert!(
        providers(&learned, 3, "x").contains(&2),
        "the write through the view orders the base's reader: {learned:#}"
    );
    assert!(
        providers(&learned, 7, "d").contains(&6),
        "the append to the contained list orders the dict's reader: {learned:#}"
    );

    // The second run replays everything (what the first learned kept the keys' records
    // valid: they were carried over), with the same outputs, and so does the third.
    let warm = project.run_json(&["nb.py"]);
    assert_eq!(statuses(&warm), vec!["cached"; VIEWS.len()], "{warm:#}");
    assert_eq!(stdouts(&warm), expected, "{warm:#}");
    let settled = project.run_json(&["nb.py"]);
    assert_eq!(
        statuses(&settled),
        vec!["cached"; VIEWS.len()],
        "{settled:#}"
    );
    assert_eq!(stdouts(&settled), expected, "{settled:#}");

    // Another value written through the view: the base's readers see it, the rest is cached.
    let mut cells = VIEWS.to_vec();
    cells[2] = "sub[0, 0] = 77";
    edit_and_run(
        &project,
        "nb.py",
        &cells,
        &[
            "cached", "cached", "ran", "ran", "ran", "cached", "cached", "cached",
        ],
    );
}

const SIBLINGS: &[&str] = &[
    "import numpy as np\nx = np.zeros(4)",
    "a = x[:2]",
    "b = x[1:]",
    "a[1] = 5\nprint(b[0], np.shares_memory(a, b))",
    "print(x)",
    "l = [0]",
    "m = {'first': l}",
    "n = {'second': l}",
    "m['first'].append(1)\nprint(n, m['first'] is n['second'])",
];

/// Two views of one base made in different cells, and one list held by two dicts made in
/// different cells, are still one object when a later cell reads both names.
#[test]
fn objects_shared_by_values_of_different_cells_stay_shared() {
    let project = Project::new();
    let notebook = write(&project, "nb.ipynb", SIBLINGS);
    let expected = sequential(&notebook);
    let cold = project.run_json(&["nb.ipynb", "-j", "4"]);
    assert_eq!(cold["summary"]["failed"], 0, "{cold:#}");
    assert_eq!(stdouts(&cold), expected, "{cold:#}");
    assert_eq!(cold["cells"][3]["stdout"], "5.0 True\n", "{cold:#}");
    assert_eq!(cold["cells"][4]["stdout"], "[0. 5. 0. 0.]\n", "{cold:#}");
    assert_eq!(
        cold["cells"][8]["stdout"], "{'second': [0, 1]} True\n",
        "{cold:#}"
    );
    let warm = project.run_json(&["nb.ipynb", "-j", "4"]);
    assert_eq!(statuses(&warm), vec!["cached"; SIBLINGS.len()], "{warm:#}");
    assert_eq!(stdouts(&warm), expected, "{warm:#}");
    let settled = project.run_json(&["nb.ipynb"]);
    assert_eq!(
        statuses(&settled),
        vec!["cached"; SIBLINGS.len()],
        "{settled:#}"
    );
    assert_eq!(stdouts(&settled), expected, "{settled:#}");
}

/// Settings changed where the analysis cannot see it (a helper module's function) reach every
/// later cell in the very first run: the run learns the change and re-runs what already read
/// the old settings.
#[test]
fn settings_changed_inside_a_helper_module_reach_later_cells_on_the_first_run() {
    let project = Project::new();
    project.ctx.write("data.txt", "top\n");
    project.ctx.write("sub/data.txt", "sub\n");
    project.ctx.write(
        "helper.py",
        "import os\nimport pandas as pd\n\ndef configure():\n    pd.set_option('display.max_rows', 5)\n    os.chdir('sub')\n",
    );
    let cells = [
        "import pandas as pd\nimport helper",
        "helper.configure()",
        "print(pd.get_option('display.max_rows'))",
        "print(open('data.txt').read())",
    ];
    let notebook = write(&project, "nb.py", &cells);
    let cold = cold_then_cached(&project, "nb.py", &notebook, &["-j", "2"]);
    assert_eq!(stdouts(&cold)[2], "5\n");
    assert_eq!(stdouts(&cold)[3], "sub\n\n");
}

/// `from matplotlib import rcParams` and `from os import environ` bind the state objects
/// themselves: writes through them travel like writes through `mpl.rcParams`/`os.environ`.
/// A Cython function (`np.random.rand`) is a value like any other.
#[test]
fn state_objects_imported_by_name_and_cython_functions() {
    let project = Project::new();
    let cells = [
        "from matplotlib import rcParams\nrcParams['lines.linewidth'] = 3",
        "from os import environ\nenviron['NBMEMO_FIDELITY'] = '1'",
        "import matplotlib as mpl, os\nprint(mpl.rcParams['lines.linewidth'], os.environ.get('NBMEMO_FIDELITY'))",
        "import numpy as np\nnp.random.seed(1)\ndraw = np.random.rand",
        "print(round(float(draw()), 6))",
    ];
    let notebook = write(&project, "nb.py", &cells);
    let cold = cold_then_cached(&project, "nb.py", &notebook, &[]);
    assert_eq!(stdouts(&cold)[2], "3.0 1\n");
}

const SOFT_READERS: &[&str] = &[
    "import time\nimport numpy as np\nimport pandas as pd",
    "df = pd.DataFrame({'k': [1, 2, 1, 3], 'v': [1.0, 2.0, 3.0, 4.0]})",
    "time.sleep(1.0)\nby = df.groupby('k')['v'].sum()\nprint(by.to_dict())",
    "time.sleep(1.0)\nsub = df[df['k'].isin([1])]\nprint(len(sub))",
    "time.sleep(1.0)\nX = np.column_stack([df['v'], df['k'].to_numpy()])\nprint(X.shape)",
    "df['w'] = df['v'] * 2\nprint(df['w'].sum())",
    "print(by.sum(), len(sub), X.sum(), df.shape)",
];

/// Cells that only read a DataFrame through read-only methods and numpy functions do not wait
/// for each other on the first run (they overlap in time), and every cell prints what
/// sequential execution prints.
#[test]
fn soft_readers_of_a_frame_overlap_on_the_first_run() {
    let _machine = machine();
    let project = Project::new();
    let notebook = write(&project, "nb.py", SOFT_READERS);
    let static_plan = plan(&project, "nb.py");
    for reader in [3, 4] {
        assert_eq!(
            static_plan["cells"][reader]["depends_on"],
            serde_json::json!([0, 1]),
            "cell {reader} waits for no other reader: {static_plan:#}"
        );
    }
    let cold = cold_then_cached(&project, "nb.py", &notebook, &["-j", "3"]);
    let readers = [interval(&cold, 2), interval(&cold, 3), interval(&cold, 4)];
    assert!(
        overlap(readers[0], readers[1]) && overlap(readers[1], readers[2]),
        "{readers:?}: {cold:#}"
    );
    // The cell writing into the frame works on its own copy (it need not wait for the
    // readers); the last cell reads the frame it left.
    assert!(
        providers(&static_plan, 6, "df").contains(&5),
        "{static_plan:#}"
    );
    assert!(
        interval(&cold, 5).1 <= interval(&cold, 6).0,
        "cell 6 started before the writer finished: {cold:#}"
    );
}

const LOOKALIKE: &[&str] = &[
    "class Box:\n    def __init__(self):\n        self.items = []\n    def sum(self):\n        self.items.append(1)\n        return len(self.items)",
    "b = Box()",
    "import time\ntime.sleep(0.3)\nn1 = b.sum()\nprint(n1)",
    "n2 = b.sum()\nprint(n2)",
    "print(n1, n2, len(b.items))",
];

/// A method that shares its name with a read-only pandas method but changes its object: the
/// cells calling it are not ordered at first, the worker checks the value (no pandas or numpy
/// object) and finds it changed, and the reader that ran on the old value runs again: every
/// cell prints what sequential execution prints, the next run orders them and is cached.
#[test]
fn a_lookalike_method_that_mutates_is_caught_at_run_time() {
    let _machine = machine();
    let project = Project::new();
    let notebook = write(&project, "nb.py", LOOKALIKE);
    let expected = sequential(&notebook);
    assert_eq!(expected[4], "1 2 2\n");
    let static_plan = plan(&project, "nb.py");
    assert_eq!(
        providers(&static_plan, 3, "b"),
        vec![1],
        "before a run, `b.sum()` looks read-only: {static_plan:#}"
    );
    let cold = project.run_json(&["nb.py", "-j", "2"]);
    assert_eq!(cold["summary"]["failed"], 0, "{cold:#}");
    assert_eq!(stdouts(&cold), expected, "cold run: {cold:#}");
    let learned = plan(&project, "nb.py");
    assert!(
        providers(&learned, 3, "b").contains(&2),
        "the run learned that cell 2 changes `b`: {learned:#}"
    );
    let warm = project.run_json(&["nb.py", "-j", "2"]);
    assert_eq!(statuses(&warm), vec!["cached"; 5], "{warm:#}");
    assert_eq!(stdouts(&warm), expected, "{warm:#}");
}

const WRITES_THROUGH_VIEWS: &[&str] = &[
    "import numpy as np\nimport pandas as pd",
    "a = np.arange(4.0)\ndf = pd.DataFrame({'x': [1.0, 2.0], 'y': [3.0, 4.0]})",
    "a.reshape(2, 2)[0, 0] = 7.0\nv = df.to_numpy()\nv[1, 1] = 9.0\ndel v",
    "print(a.tolist(), df.to_numpy().tolist())",
];

/// A method that returns a view (`reshape`, `to_numpy`) is read-only, but writing into its
/// result writes into the receiver: the cell doing so orders the later readers, which print
/// what sequential execution prints.
#[test]
fn writes_through_views_of_read_only_methods_order_later_readers() {
    let _machine = machine();
    let project = Project::new();
    let notebook = write(&project, "nb.py", WRITES_THROUGH_VIEWS);
    let static_plan = plan(&project, "nb.py");
    for name in ["a", "df"] {
        assert!(
            providers(&static_plan, 3, name).contains(&2),
            "cell 3 takes `{name}` from cell 2: {static_plan:#}"
        );
    }
    cold_then_cached(&project, "nb.py", &notebook, &["-j", "2"]);
}
