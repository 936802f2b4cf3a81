//! Graph cases: redefinition, mutation, function free globals, carried functions, barriers.

use super::*;
use crate::analysis::analyze_cell;

/// Builds the graph of cells given as one percent-style string (`# %%` separates cells) and
/// renders, per cell, its dependencies with the names that tie them, and its wave.
fn render(fixture: &str) -> String {
    let sources: Vec<&str> = fixture
        .split("# %%\n")
        .filter(|cell| !cell.trim().is_empty())
        .collect();
    let analyses: Vec<CellAnalysis> = sources.iter().map(|source| analyze_cell(source)).collect();
    let refs: Vec<&CellAnalysis> = analyses.iter().collect();
    let graph = Graph::build(&refs);
    let mut out = String::new();
    for (idx, cell) in graph.cells.iter().enumerate() {
        let deps: Vec<String> = cell
            .depends_on
            .iter()
            .map(|(dep, names)| {
                // Library-state probes are checked by their own tests.
                let names: Vec<&String> =
                    names.iter().filter(|name| !name.starts_with('@')).collect();
                if names.is_empty() {
                    format!("{dep}")
                } else {
                    format!(
                        "{dep}({})",
                        names
                            .iter()
                            .map(|name| name.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                }
            })
            .collect();
        out.push_str(&format!("{idx}: [{}] w{}", deps.join(" "), cell.wave));
        if !cell.may_mutate.is_empty() {
            out.push_str(&format!(
                " m[{}]",
                cell.may_mutate
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        // Candidates that order nothing (here: used softly), `!` when the worker may skip them.
        if !cell.refuted.is_empty() {
            let soft: Vec<String> = cell
                .refuted
                .iter()
                .map(|name| {
                    let bang = if cell.unchecked.contains_key(name) {
                        "!"
                    } else {
                        ""
                    };
                    format!("{name}{bang}")
                })
                .collect();
            out.push_str(&format!(" s[{}]", soft.join(",")));
        }
        if cell.is_barrier() {
            out.push_str(" barrier");
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "waves={} critical={:?}\n",
        graph.waves(),
        graph.critical_path()
    ));
    out
}

fn check(fixture: &str, expected: &str) {
    let actual = render(fixture);
    assert_eq!(
        actual.trim(),
        expected.trim(),
        "\nfixture:\n{fixture}\nactual:\n{actual}"
    );
}

#[test]
fn independent_cells_share_a_wave() {
    check(
        "# %%\nimport time\n# %%\na = 1\n# %%\nb = 2\n# %%\nprint(a + b)\n",
        "0: [] w0\n1: [] w0\n2: [] w0\n3: [1(a) 2(b)] w1\nwaves=2 critical=[2, 3]",
    );
}

fn graph_of(fixture: &str) -> Graph {
    let analyses: Vec<CellAnalysis> = fixture
        .split("# %%\n")
        .filter(|cell| !cell.trim().is_empty())
        .map(analyze_cell)
        .collect();
    let refs: Vec<&CellAnalysis> = analyses.iter().collect();
    Graph::build(&refs)
}

#[test]
fn the_widest_wave_counts_cells_that_may_run_at_once_across_notebooks() {
    let branches =
        graph_of("seed = 1\n# %%\na = seed\n# %%\nb = seed\n# %%\nc = seed\n# %%\nd = a + b + c\n");
    let chain = graph_of("x = 1\n# %%\ny = x\n# %%\nz = y\n");
    assert_eq!(Graph::widest_wave(&[&branches]), 3);
    assert_eq!(Graph::widest_wave(&[&chain]), 1);
    // Notebooks run side by side: their waves add up (`y` with `a`, `b` and `c`).
    assert_eq!(Graph::widest_wave(&[&chain, &branches]), 4);
    assert_eq!(Graph::widest_wave(&[&chain, &chain]), 2);
    assert_eq!(Graph::widest_wave(&[]), 0);
}

#[test]
fn redefinition_uses_the_most_recent_writer() {
    check(
        "# %%\nx = 1\n# %%\ny = x + 1\n# %%\nx = 10\n# %%\nz = x + y\n",
        "0: [] w0\n1: [0(x)] w1\n2: [] w0\n3: [1(y) 2(x)] w2\nwaves=3 critical=[0, 1, 3]",
    );
}

#[test]
fn mutation_orders_later_readers_after_the_mutator() {
    check(
        "# %%\nitems = []\n# %%\nitems.append(1)\n# %%\nprint(len(items))\n# %%\nitems = [0]\n# %%\nprint(items)\n",
        "0: [] w0\n1: [0(items)] w1 m[items]\n2: [0(items) 1(items)] w2\n3: [] w0\n4: [3(items)] w1\nwaves=3 critical=[0, 1, 2]",
    );
}

#[test]
fn mutation_through_a_function_argument() {
    check(
        "# %%\ndef add(xs, v):\n    xs.append(v)\n# %%\nitems = [1]\n# %%\nadd(items, 2)\n# %%\nprint(items)\n",
        "0: [] w0\n1: [] w0\n2: [0(add) 1(items)] w1 m[items]\n3: [1(items) 2(items)] w2\nwaves=3 critical=[1, 2, 3]",
    );
}

#[test]
fn imported_modules_are_not_mutation_candidates() {
    check(
        "# %%\nimport json\n# %%\nd = {}\n# %%\ns = json.dumps(d)\n",
        "0: [] w0\n1: [] w0\n2: [0(json) 1(d)] w1 s[d!]\nwaves=2 critical=[1, 2]",
    );
}

#[test]
fn readers_using_a_frame_softly_do_not_wait_for_each_other() {
    // Read-only methods and numpy functions: the three readers of `df` are one wave; the
    // graph lets the worker skip checking `df` in 2 and 4 (receiver, numpy module), not `keys`
    // in 3 (an argument of `df.isin`: the method of an object whose type only the run knows).
    // (`!`: the worker still checks the value unless it is a numpy or pandas object and the
    // roots are numpy or pandas modules: `json.dumps(d)` above is checked.)
    check(
        "# %%\nimport numpy as np\nimport pandas as pd\n# %%\ndf = pd.DataFrame({'k': [1, 2], 'v': [3, 4]})\nkeys = [1]\n# %%\nby = df.groupby('k')['v'].sum()\n# %%\nsub = df[df['k'].isin(keys)]\n# %%\nX = np.column_stack([df['v'], df['k'].to_numpy()])\n# %%\nprint(by, sub, X)\n",
        "0: [] w0\n1: [0(pd)] w1\n2: [1(df)] w2 s[df!]\n3: [1(df,keys)] w2 s[df!,keys]\n4: [0(np) 1(df)] w2 s[df!]\n5: [2(by) 3(sub) 4(X)] w3\nwaves=4 critical=[0, 1, 4, 5]",
    );
}

#[test]
fn a_mutating_use_or_a_non_module_callee_keeps_the_order() {
    // `df.head().fillna(…, inplace=True)` may write through a view; `model.fit(X)` may
    // change `X`; a name that an object, not a module, receives is not soft.
    check(
        "# %%\ndf = make()\nmodel = Model()\nX = [1]\n# %%\ndf.head().fillna(0, inplace=True)\n# %%\nmodel.fit(X)\n# %%\nprint(df.sum(), X)\n",
        "0: [] w0\n1: [0(df)] w1 m[df]\n2: [0(X,model)] w1 m[X,model]\n3: [0(X,df) 1(df) 2(X)] w2 s[df!]\nwaves=3 critical=[0, 2, 3]",
    );
}

#[test]
fn function_free_globals_resolve_at_the_calling_cell() {
    check(
        "# %%\nscale = 2\n# %%\ndef f(v):\n    return v * scale\n# %%\nprint(f(3))\n# %%\nscale = 10\n# %%\nprint(f(3))\n",
        "0: [] w0\n1: [] w0\n2: [0(scale) 1(f)] w1\n3: [] w0\n4: [1(f) 3(scale)] w1\nwaves=2 critical=[3, 4]",
    );
}

#[test]
fn functions_calling_functions_are_followed_transitively() {
    check(
        "# %%\nk = 3\n# %%\ndef g():\n    return k\n# %%\ndef f():\n    return g() + 1\n# %%\nprint(f())\n",
        "0: [] w0\n1: [] w0\n2: [] w0\n3: [0(k) 1(g) 2(f)] w1\nwaves=2 critical=[2, 3]",
    );
}

#[test]
fn values_carry_the_functions_of_their_class() {
    check(
        "# %%\nunit = 'g'\n# %%\nclass P:\n    def label(self):\n        return unit\n# %%\np = P()\n# %%\nunit = 'kg'\n# %%\nprint(p.label())\n",
        "0: [] w0\n1: [] w0\n2: [0(unit) 1(P)] w1\n3: [] w0\n4: [2(p) 3(unit)] w2 m[p]\nwaves=3 critical=[1, 2, 4]",
    );
}

#[test]
fn global_declarations_write_when_called() {
    check(
        "# %%\ncount = 0\n# %%\ndef bump():\n    global count\n    count += 1\n# %%\nbump()\n# %%\nprint(count)\n",
        "0: [] w0\n1: [] w0\n2: [0(count) 1(bump,count)] w1\n3: [0(count) 1(count) 2(count)] w2\nwaves=3 critical=[1, 2, 3]",
    );
}

#[test]
fn conditional_writes_keep_the_earlier_provider() {
    check(
        "# %%\nx = 1\n# %%\nif flag:\n    x = 2\n# %%\nprint(x)\n",
        "0: [] w0\n1: [] w0\n2: [0(x) 1(x)] w1\nwaves=2 critical=[1, 2]",
    );
}

#[test]
fn barriers_run_alone_in_order() {
    // After a barrier every name may come from it, builtins included: `print` shows up as a
    // read of the barrier's namespace (the executor falls back to builtins when it is absent).
    check(
        "# %%\na = 1\n# %%\nb = 2\n# %%\nexec('c = a + b')\n# %%\nd = 4\n# %%\nprint(c)\n",
        "0: [] w0\n1: [] w0\n2: [0(a) 1(b)] w1 barrier\n3: [2] w2\n4: [2(c,print)] w2\nwaves=3 critical=[1, 2, 4]",
    );
}

#[test]
fn a_syntax_error_is_a_barrier() {
    check(
        "# %%\na = 1\n# %%\nb = (\n# %%\nprint(a)\n",
        "0: [] w0\n1: [0(a)] w1 barrier\n2: [1(a,print)] w2\nwaves=3 critical=[0, 1, 2]",
    );
}

#[test]
fn calling_a_function_that_uses_eval_is_a_barrier() {
    check(
        "# %%\ndef f(s):\n    return eval(s)\n# %%\nx = 1\n# %%\nf('x')\n",
        "0: [] w0\n1: [] w0\n2: [0(f) 1(x)] w1 barrier\nwaves=2 critical=[1, 2]",
    );
}

#[test]
fn a_mutation_through_an_alias_orders_readers_of_the_original() {
    check(
        "# %%\nitems = [1]\n# %%\nalias = items\n# %%\nalias.append(2)\n# %%\nprint(items)\n",
        "0: [] w0\n1: [0(items)] w1\n2: [0(items) 1(alias)] w2 m[alias,items]\n3: [0(items) 2(items)] w3\nwaves=4 critical=[0, 1, 2, 3]",
    );
}

#[test]
fn rebinding_ends_an_alias() {
    check(
        "# %%\nitems = [1]\n# %%\nalias = items\n# %%\nalias = []\n# %%\nalias.append(2)\n# %%\nprint(items)\n",
        "0: [] w0\n1: [0(items)] w1\n2: [] w0\n3: [2(alias)] w1 m[alias]\n4: [0(items)] w1\nwaves=2 critical=[0, 4]",
    );
}

#[test]
fn seeded_generators_order_the_cells_that_draw() {
    check(
        "# %%\nimport numpy as np\nnp.random.seed(0)\n# %%\na = np.random.rand(3)\n# %%\nb = 2\n# %%\nc = np.random.rand(3)\n",
        "0: [] w0\n1: [0(np)] w1\n2: [] w0\n3: [0(np) 1] w2\nwaves=3 critical=[0, 1, 3]",
    );
}

#[test]
fn ambient_settings_are_read_by_every_later_cell() {
    let fixture = "# %%\nx = 1\n# %%\nimport os\nos.chdir('sub')\n# %%\ny = open('f').read()\n";
    let analyses: Vec<CellAnalysis> = fixture
        .split("# %%\n")
        .filter(|cell| !cell.trim().is_empty())
        .map(analyze_cell)
        .collect();
    let refs: Vec<&CellAnalysis> = analyses.iter().collect();
    let graph = Graph::build(&refs);
    assert!(!graph.cells[0].reads.contains("@cwd"));
    assert!(graph.cells[1].writes.contains("@cwd"));
    assert_eq!(
        graph.cells[2]
            .depends_on
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![1]
    );
    assert!(graph.cells[2].reads.contains("@cwd"));
}

#[test]
fn ipython_history_is_a_barrier_unless_a_cell_binds_the_name() {
    check(
        "# %%\n1 + 1\n# %%\nprint(_ * 2)\n",
        "0: [] w0\n1: [0] w1 barrier\nwaves=2 critical=[0, 1]",
    );
    check(
        "# %%\nfor _ in range(3):\n    pass\n# %%\nprint(_)\n",
        "0: [] w0\n1: [0(_)] w1\nwaves=2 critical=[0, 1]",
    );
}

#[test]
fn calling_a_function_with_state_may_change_it() {
    // A mutable default: the second call sees what the first appended.
    check(
        "# %%\ndef f(x, acc=[]):\n    acc.append(x)\n    return acc\n# %%\nf(1)\n# %%\nprint(f(2))\n",
        "0: [] w0\n1: [0(f)] w1 m[f]\n2: [0(f) 1(f)] w2 m[f]\nwaves=3 critical=[0, 1, 2]",
    );
    // A plain function: calls stay independent.
    check(
        "# %%\ndef g(x):\n    return x + 1\n# %%\ng(1)\n# %%\nprint(g(2))\n",
        "0: [] w0\n1: [0(g)] w1\n2: [0(g)] w1\nwaves=2 critical=[0, 2]",
    );
    // A value returned by a factory may be a closure with state.
    check(
        "# %%\ndef make():\n    n = 0\n    def inc():\n        nonlocal n\n        n += 1\n        return n\n    return inc\n# %%\ncounter = make()\n# %%\ncounter()\n# %%\nprint(counter())\n",
        "0: [] w0\n1: [0(make)] w1\n2: [1(counter)] w2 m[counter]\n3: [1(counter) 2(counter)] w3 m[counter]\nwaves=4 critical=[0, 1, 2, 3]",
    );
}
