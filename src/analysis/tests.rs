//! Table-driven tests of the per-cell analysis: source → reads, writes, may-mutate, barrier.

use super::*;

/// Renders the parts of an analysis a table row checks, one compact line.
fn render(source: &str) -> String {
    let analysis = analyze_cell(source);
    let join = |names: &NameSet| names.iter().cloned().collect::<Vec<_>>().join(",");
    let mut out = format!(
        "r[{}] w[{}] m[{}]",
        join(&analysis.reads),
        join(&analysis.writes),
        join(&analysis.may_mutate)
    );
    // Soft candidates: `name` (a read-only method's receiver), `name*` (an argument of one),
    // `name(root)` (through a dotted callee whose root must be a module), `name(root?)` (a
    // module, or a read-only method of that object).
    if !analysis.soft_mutations.is_empty() {
        let soft: Vec<String> = analysis
            .soft_mutations
            .iter()
            .map(|(name, soft)| {
                let mut roots: Vec<String> = soft.modules.iter().cloned().collect();
                roots.extend(
                    soft.modules_or_objects
                        .iter()
                        .map(|root| format!("{root}?")),
                );
                let star = if soft.argument { "*" } else { "" };
                if roots.is_empty() {
                    format!("{name}{star}")
                } else {
                    format!("{name}{star}({})", roots.join(","))
                }
            })
            .collect();
        out.push_str(&format!(" s[{}]", soft.join(" ")));
    }
    if !analysis.functions.is_empty() {
        let functions: Vec<String> = analysis
            .functions
            .iter()
            .map(|(name, summary)| {
                let mut text = format!("{name}:r[{}]", join(&summary.reads));
                if !summary.writes.is_empty() {
                    text.push_str(&format!("w[{}]", join(&summary.writes)));
                }
                if !summary.mutates.is_empty() {
                    text.push_str(&format!("m[{}]", join(&summary.mutates)));
                }
                if summary.dynamic {
                    text.push('!');
                }
                text
            })
            .collect();
        out.push_str(&format!(" f[{}]", functions.join(" ")));
    }
    if analysis.is_barrier() {
        let barriers: Vec<String> = analysis.barriers.iter().map(ToString::to_string).collect();
        out.push_str(&format!(" barrier[{}]", barriers.join("; ")));
    }
    out
}

/// Checks every row of a table and reports all mismatches at once.
fn check(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (source, expected) in cases {
        let actual = render(source);
        if actual != *expected {
            failures.push(format!(
                "source:\n{source}\n  expected: {expected}\n  actual:   {actual}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn assignments_and_reads() {
    check(&[
        ("x = 1", "r[] w[x] m[]"),
        ("y = x + 1", "r[x] w[y] m[]"),
        ("x = x + 1", "r[x] w[x] m[]"),
        ("x = 1\ny = x", "r[] w[x,y] m[]"),
        ("a, (b, *c) = t", "r[t] w[a,b,c] m[]"),
        ("a = b = c", "r[c] w[a,b] m[]"),
        ("x += 1", "r[x] w[x] m[]"),
        ("print(x)", "r[print,x] w[] m[]"),
        ("x: int", "r[int] w[] m[]"),
        ("x: int = 5", "r[int] w[x] m[]"),
        ("del x", "r[x] w[x] m[]"),
        ("x = 1\ndel x", "r[] w[x] m[]"),
        ("x = 1\ndel x\nprint(x)", "r[print,x] w[x] m[]"),
        ("(y := f(1))\nprint(y)", "r[f,print] w[y] m[f]"),
        ("type Alias = list[T]", "r[T,list] w[Alias] m[]"),
    ]);
}

#[test]
fn control_flow() {
    check(&[
        ("if c:\n    x = 1\nprint(x)", "r[c,print,x] w[x] m[]"),
        (
            "if c:\n    x = 1\nelse:\n    x = 2\nprint(x)",
            "r[c,print] w[x] m[]",
        ),
        (
            "if c:\n    x = 1\nelif d:\n    x = 2\nprint(x)",
            "r[c,d,print,x] w[x] m[]",
        ),
        ("if c:\n    x = 1\n    print(x)", "r[c,print] w[x] m[]"),
        (
            "for i in range(3):\n    total = i\nprint(total)",
            "r[print,range,total] w[i,total] m[]",
        ),
        (
            "for i in items:\n    t = i * 2\n    print(t)",
            "r[items,print] w[i,t] m[]",
        ),
        ("while n > 0:\n    n -= 1", "r[n] w[n] m[]"),
        (
            "try:\n    x = f()\nexcept ValueError:\n    x = None\nprint(x)",
            "r[ValueError,f,print] w[x] m[f]",
        ),
        (
            "try:\n    x = f()\nexcept ValueError:\n    pass\nprint(x)",
            "r[ValueError,f,print,x] w[x] m[f]",
        ),
        (
            "try:\n    f()\nexcept Exception as e:\n    print(e)",
            "r[Exception,e,f,print] w[e] m[f]",
        ),
        (
            "try:\n    f()\nfinally:\n    y = 1\nprint(y)",
            "r[f,print] w[y] m[f]",
        ),
        (
            "with open(p) as fh:\n    data = fh.read()\nprint(data)",
            "r[@files,open,p,print] w[@files,data,fh] m[open,p]",
        ),
        (
            "match cmd:\n    case [a, b]:\n        r = a\n    case {'k': v, **rest}:\n        r = v\n    case Point(x=px) as pt:\n        r = px\n    case _:\n        r = 0\nprint(r)",
            "r[Point,cmd,print] w[a,b,pt,px,r,rest,v] m[]",
        ),
        (
            "match cmd:\n    case 1:\n        r = 0\nprint(r)",
            "r[cmd,print,r] w[r] m[]",
        ),
        (
            "ok = a and (m := g())\nprint(m)",
            "r[a,g,m,print] w[m,ok] m[g]",
        ),
        (
            "v = (z := 1) if c else 2\nprint(z)",
            "r[c,print,z] w[v,z] m[]",
        ),
    ]);
}

#[test]
fn scopes() {
    check(&[
        ("ys = [x * k for x in xs]", "r[k,xs] w[ys] m[]"),
        ("ys = [x for x in xs]\nprint(x)", "r[print,x,xs] w[ys] m[]"),
        (
            "d = {k: v for k, v in pairs if v > lim}",
            "r[lim,pairs] w[d] m[]",
        ),
        ("g = (a for row in rows for a in row)", "r[rows] w[g] m[]"),
        ("s = {n for n in range(m)}", "r[m,range] w[s] m[]"),
        ("[y := v for v in vs]\nprint(y)", "r[print,vs,y] w[y] m[]"),
        (
            "total = sum(w for w in ws if (last := w))",
            "r[sum,ws] w[last,total] m[]",
        ),
        (
            "def f(a, b=default):\n    return a + b + scale",
            "r[default] w[f] m[] f[f:r[scale]]",
        ),
        (
            "def f(a: Annot) -> Ret:\n    return a",
            "r[Annot,Ret] w[f] m[] f[f:r[]]",
        ),
        (
            "@decorate\ndef f():\n    pass",
            "r[decorate] w[f] m[] f[f:r[]]",
        ),
        ("def f():\n    x = 1\n    return x", "r[] w[f] m[] f[f:r[]]"),
        (
            "def f():\n    global counter\n    counter += 1",
            "r[] w[counter,f] m[] f[f:r[counter]w[counter]]",
        ),
        (
            "def outer():\n    n = 0\n    def inner():\n        nonlocal n\n        n += step\n    return inner",
            "r[] w[outer] m[] f[outer:r[step]]",
        ),
        (
            "def outer():\n    def inner():\n        return g\n    return inner",
            "r[] w[outer] m[] f[outer:r[g]]",
        ),
        (
            "def f():\n    return [i * k for i in range(n)]",
            "r[] w[f] m[] f[f:r[k,n,range]]",
        ),
        (
            "def f(xs):\n    xs.append(1)\n    log.append(2)",
            "r[] w[f] m[] f[f:r[log]m[log]]",
        ),
        (
            "def f():\n    return y\ny = 2\nf()",
            "r[] w[f,y] m[] f[f:r[y]]",
        ),
        (
            "def f():\n    return y\nf()\ny = 2",
            "r[y] w[f,y] m[] f[f:r[y]]",
        ),
        (
            "def f():\n    return g()\ndef g():\n    return z\nf()",
            "r[z] w[f,g] m[] f[f:r[g]m[g] g:r[z]]",
        ),
        (
            "def f():\n    return f()\nf()",
            "r[] w[f] m[] f[f:r[f]m[f]]",
        ),
        ("f = lambda v: v * k", "r[] w[f] m[] f[f:r[k]]"),
        (
            "out = sorted(xs, key=lambda v: v[col])",
            "r[col,sorted,xs] w[out] m[] f[<lambda>:r[col]]",
        ),
        (
            "class C(Base):\n    n = size\n    def m(self):\n        return helper(self.n)",
            "r[Base,size] w[C] m[] f[C:r[helper]m[helper]]",
        ),
        (
            "class C:\n    x = 1\n    y = x + 1",
            "r[] w[C] m[] f[C:r[]]",
        ),
        (
            "class C:\n    y = x + 1\n    x = 2",
            "r[x] w[C] m[] f[C:r[]]",
        ),
        (
            "class C:\n    def m(self):\n        return C",
            "r[] w[C] m[] f[C:r[C]]",
        ),
        (
            "import numpy as np\nimport os.path\nfrom a.b import c as d, e",
            "r[] w[d,e,np,os] m[]",
        ),
        (
            "def f():\n    import json\n    return json.dumps(v)",
            "r[] w[f] m[] f[f:r[v]m[v]]",
        ),
    ]);
}

#[test]
fn mutation_candidates() {
    check(&[
        ("items.append(3)", "r[items] w[] m[items]"),
        ("obj.a.b.append(3)", "r[obj] w[] m[obj]"),
        ("d['k'] = 1", "r[d] w[] m[d]"),
        ("d['k'] += 1", "r[d] w[] m[d]"),
        ("obj.count += 1", "r[obj] w[] m[obj]"),
        ("obj.attr = v", "r[obj,v] w[] m[obj]"),
        ("del d['k']", "r[d] w[] m[d]"),
        ("grid[0][1] = 5", "r[grid] w[] m[grid]"),
        ("add(items, 3)", "r[add,items] w[] m[add,items]"),
        ("f(*args, key=opts)", "r[args,f,opts] w[] m[args,f,opts]"),
        ("f([a, b], {'k': c})", "r[a,b,c,f] w[] m[a,b,c,f]"),
        ("f(x + 1)", "r[f,x] w[] m[f]"),
        ("print(len(items))", "r[items,len,print] w[] m[]"),
        ("print(df.head())", "r[df,print] w[] m[df] s[df]"),
        ("np.array(x)", "r[np,x] w[] m[np,x] s[x(np)]"),
        (
            "import numpy as np\ny = np.array(x)",
            "r[x] w[np,y] m[x] s[x(np)]",
        ),
        ("items = []\nitems.append(1)", "r[] w[items] m[]"),
        (
            "def len(x):\n    x.clear()\nlen(items)",
            "r[items] w[len] m[items] f[len:r[]]",
        ),
        (
            "def f():\n    cache.clear()\nf()",
            "r[cache] w[f] m[cache] f[f:r[cache]m[cache]]",
        ),
    ]);
}

#[test]
fn soft_uses_of_candidates() {
    check(&[
        // Read-only methods of pandas and numpy objects, chained or not.
        (
            "by = df.groupby('k').agg(['sum'])",
            "r[df] w[by] m[df] s[df]",
        ),
        (
            "t = df['a'].astype(str)",
            "r[df,str] w[t] m[df,str] s[df str*]",
        ),
        ("c = pivot.T.corr()", "r[pivot] w[c] m[pivot] s[pivot]"),
        // In place, or not in the list, or a mutating method further down the chain.
        ("df.fillna(0, inplace=True)", "r[df] w[] m[df]"),
        ("a.sort()", "r[a] w[] m[a]"),
        ("df.head().fillna(0, inplace=True)", "r[df] w[] m[df]"),
        ("df.groupby('k')\ndf.append(x)", "r[df,x] w[] m[df,x]"),
        ("x = df.astype(int, copy=False)", "r[df,int] w[x] m[df,int]"),
        ("x = df.sum(**opts)", "r[df,opts] w[x] m[df,opts]"),
        // Arguments of functions reached through a (module) root, or of read-only methods.
        (
            "X = np.column_stack([a, b['u']])",
            "r[a,b,np] w[X] m[a,b,np] s[a(np) b(np)]",
        ),
        (
            "s = df.isin(vals)",
            "r[df,vals] w[s] m[df,vals] s[df vals(df?)]",
        ),
        (
            "s = df['c'].isin(vals)",
            "r[df,vals] w[s] m[df,vals] s[df vals*]",
        ),
        (
            "np.random.shuffle(a)",
            "r[@numpy.random,a,np] w[@numpy.random] m[a,np]",
        ),
        ("np.add(a, b, out=a)", "r[a,b,np] w[] m[a,b,np]"),
        ("np.add.at(a, i, 1)", "r[a,i,np] w[] m[a,i,np]"),
        ("torch.nn.init.normal_(w)", "r[torch,w] w[] m[torch,w]"),
        // Through an object's method: soft only if `model` turns out to be a module.
        (
            "model.fit(X, y)",
            "r[X,model,y] w[] m[X,model,y] s[X(model) y(model)]",
        ),
        ("heapq.heappush(h, 3)", "r[h,heapq] w[] m[h,heapq]"),
        // A function called by name may change its arguments.
        ("f(df.head())", "r[df,f] w[] m[df,f]"),
        // Writing through a view a method returned.
        ("df.to_numpy()[0, 0] = 1", "r[df] w[] m[df]"),
        ("v = df.to_numpy()\nv[0] = 1\ndel v", "r[df] w[v] m[df]"),
        (
            "v = df.to_numpy()\nprint(v.sum())",
            "r[df,print] w[v] m[df] s[df]",
        ),
        ("f(df)", "r[df,f] w[] m[df,f]"),
    ]);
}

#[test]
fn barriers() {
    check(&[
        ("exec('x = 1')", "r[exec] w[] m[] barrier[calls `exec()`]"),
        ("y = eval(s)", "r[eval,s] w[y] m[s] barrier[calls `eval()`]"),
        (
            "g = globals()",
            "r[globals] w[g] m[] barrier[calls `globals()`]",
        ),
        (
            "print(locals())",
            "r[locals,print] w[] m[] barrier[calls `locals()`]",
        ),
        ("v = vars()", "r[vars] w[v] m[] barrier[calls `vars()`]"),
        ("v = vars(obj)", "r[obj,vars] w[v] m[obj]"),
        (
            "def f():\n    return eval(s)\nf()",
            "r[eval,s] w[f] m[s] f[f:r[eval,s]m[s]!] barrier[calls `f()`]",
        ),
        (
            "from os.path import *",
            "r[] w[] m[] barrier[star import `from os.path import *`]",
        ),
        ("!ls -la", "r[] w[] m[] barrier[shell escape `!ls -la`]"),
        (
            "files = !ls",
            "r[] w[files] m[] barrier[shell escape `!ls`]",
        ),
        ("%run other.py", "r[] w[] m[] barrier[magic `%run`]"),
        ("%pip install numpy", "r[] w[] m[] barrier[magic `%pip`]"),
        (
            "%%bash\necho hi",
            "r[] w[] m[] barrier[cell magic `%%bash`]",
        ),
        ("x = (", "r[] w[] m[] barrier[syntax error]"),
        ("%matplotlib inline\nx = 1", "r[] w[x] m[]"),
        ("%time y = f(x)", "r[f,x] w[y] m[f,x]"),
        ("%timeit -n 3 g(z)", "r[g,z] w[] m[g,z]"),
        ("%%time\ny = f(x)", "r[f,x] w[y] m[f,x]"),
        ("%%capture out\nprint(a)", "r[a,print] w[out] m[]"),
        ("obj?", "r[obj] w[] m[]"),
        ("exec = print\nexec(1)", "r[print] w[exec] m[print]"),
    ]);
}

#[test]
fn two_syntax_errors_are_both_reported() {
    let analysis = analyze_cell("x = (1,\ny = 2 +\nz = 3\ndef f(:\n    pass\n");
    assert!(
        analysis.syntax_errors.len() >= 2,
        "{:?}",
        analysis.syntax_errors
    );
    let first = &analysis.syntax_errors[0];
    assert!(first.line >= 1 && first.column >= 1);
    assert!(
        analysis.syntax_errors.iter().any(|err| err.line == 4),
        "{:?}",
        analysis.syntax_errors
    );
}

#[test]
fn syntax_errors_in_cell_magic_bodies_keep_cell_line_numbers() {
    let analysis = analyze_cell("%%time\nx = 1\ny = (\n");
    assert_eq!(analysis.barriers, vec![Barrier::SyntaxError]);
    assert_eq!(
        analysis.syntax_errors[0].line, 4,
        "{:?}",
        analysis.syntax_errors
    );
}

#[test]
fn normalized_code_ignores_comments_blank_lines_and_layout() {
    let base = analyze_cell("x = f(a, b)\ny = x + 1\n").code_hash;
    for variant in [
        "# a comment\nx = f(a, b)  # trailing\n\n\ny = x + 1",
        "x = f(\n    a,\n    b,\n)\ny = x + 1\n",
        "x = f(a, b)\n\ny = x + 1\n\n",
    ] {
        assert_eq!(analyze_cell(variant).code_hash, base, "{variant}");
    }
    for different in [
        "x = f(a, c)\ny = x + 1\n",
        "x = f(a, b)\ny = x + 2\n",
        "x = f(a, b)\ny = x + 1;\n",
    ] {
        assert_ne!(analyze_cell(different).code_hash, base, "{different}");
    }
}

#[test]
fn trailing_semicolon_changes_the_hash_but_not_a_comment_after_it() {
    let quiet = analyze_cell("plot(x);").code_hash;
    assert_eq!(analyze_cell("plot(x);  # no output").code_hash, quiet);
    assert_ne!(analyze_cell("plot(x)").code_hash, quiet);
}

#[test]
fn plain_aliasing_statements_are_recorded() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("alias = items", &[("alias", "items")]),
        ("cfg = obj.settings.main", &[("cfg", "obj")]),
        ("a, b = x, y", &[("a", "x"), ("b", "y")]),
        ("for row in rows:\n    pass", &[("row", "rows")]),
        ("first = rows[0]", &[]),
        ("copy = list(items)", &[]),
        ("c: list = items", &[("c", "items")]),
    ];
    for (source, expected) in cases {
        let aliases: Vec<(String, String)> = analyze_cell(source).aliases.into_iter().collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(aliases, expected, "{source}");
    }
}

#[test]
fn mutating_an_alias_bound_in_the_cell_mutates_its_source() {
    check(&[
        (
            "alias = items\nalias.append(4)",
            "r[items] w[alias] m[items]",
        ),
        ("a = b = items\nb.clear()", "r[items] w[a,b] m[items]"),
        ("fresh = []\nfresh.append(1)", "r[] w[fresh] m[]"),
    ]);
}
