//! Names a cell reads, writes and may mutate, with Python's real scoping rules.
//!
//! One [`Scope`] walks one Python scope. The module scope (the cell itself) is analysed
//! flow-sensitively: it tracks which names are *definitely* bound at each point, so a name
//! loaded before it is (definitely) bound is a read of the value from an earlier cell. Branches
//! are analysed from a copy of the state and merged by intersection; loop bodies and handlers
//! may not run, so what they bind is never definite afterwards.
//!
//! Function and lambda bodies are not executed when they are defined: their free global names
//! become a [`FunctionSummary`] that the graph charges to the cells that call the function.
//! Class bodies run at once (their loads are reads now) while their methods are summarised like
//! functions. Comprehensions have their own scope for their targets; a walrus inside one binds
//! in the enclosing scope.

use std::collections::{BTreeMap, BTreeSet};

use ruff_python_ast::visitor::{Visitor, walk_expr};
use ruff_python_ast::{
    self as ast, Comprehension, ExceptHandler, Expr, ExprContext, IpyEscapeKind, Parameters,
    Pattern, Stmt,
};
use rustc_hash::FxHashSet;

use super::magics::{self, LineMagic};
use super::probes;
use super::{Barrier, NameSet};

/// What calling a notebook-defined function (or using a class's methods) touches at module level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FunctionSummary {
    /// Global names the body reads when it runs (free names and `global` declarations).
    pub reads: NameSet,
    /// Global names the body rebinds through a `global` declaration.
    pub writes: NameSet,
    /// Global names the body may mutate (method receiver, attribute or subscript store, argument).
    pub mutates: NameSet,
    /// The body uses `exec`, `eval`, `globals()`, `locals()` or `vars()`: calling it is a barrier.
    pub dynamic: bool,
    /// Calling it may change the function object itself: it is decorated (a cache, a
    /// counter…) or has a default argument that is not a literal constant (`acc=[]`).
    pub stateful: bool,
    /// Names in `mutates` only because the body calls them.
    pub calls: NameSet,
}

impl FunctionSummary {
    fn merge(&mut self, other: &FunctionSummary) {
        self.reads.extend(other.reads.iter().cloned());
        self.writes.extend(other.writes.iter().cloned());
        self.mutates.extend(other.mutates.iter().cloned());
        self.dynamic |= other.dynamic;
        self.stateful |= other.stateful;
        self.calls.extend(other.calls.iter().cloned());
    }
}

/// The key under which a cell's anonymous functions (lambdas not bound to a name) are summarised.
pub const ANONYMOUS: &str = "<lambda>";

/// Builtins that never mutate their arguments: their arguments are not may-mutate candidates.
const NON_MUTATING_BUILTINS: &[&str] = &[
    "abs",
    "all",
    "any",
    "ascii",
    "bin",
    "bool",
    "bytes",
    "callable",
    "chr",
    "complex",
    "dict",
    "dir",
    "divmod",
    "enumerate",
    "float",
    "format",
    "frozenset",
    "getattr",
    "hasattr",
    "hash",
    "hex",
    "id",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "list",
    "max",
    "min",
    "oct",
    "ord",
    "pow",
    "print",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "slice",
    "sorted",
    "str",
    "sum",
    "tuple",
    "type",
    "zip",
];

/// Methods that return a new object (or a view nobody writes through) and leave their receiver
/// and arguments as they were, on the types data notebooks pass around: pandas DataFrame, Series,
/// Index and their group-by, rolling and resampling objects, and numpy arrays; called without a
/// keyword in [`MUTATING_KEYWORDS`]. A call of one of these is a *soft* use of its receiver: the
/// graph does not order later readers after it, the worker skips checking the value when it is
/// a pandas or numpy object, and checks anything else (a change re-runs the readers). Names that
/// mutate builtins (`add`, `update`, `sort`, `fill`, `pop`…) are deliberately absent.
const READ_ONLY_METHODS: &[&str] = &[
    "abs",
    "agg",
    "aggregate",
    "align",
    "all",
    "any",
    "argmax",
    "argmin",
    "argsort",
    "astype",
    "between",
    "clip",
    "copy",
    "corr",
    "corrwith",
    "count",
    "cov",
    "cumcount",
    "cummax",
    "cummin",
    "cumprod",
    "cumsum",
    "describe",
    "diff",
    "div",
    "dot",
    "drop",
    "drop_duplicates",
    "dropna",
    "duplicated",
    "eq",
    "equals",
    "ewm",
    "expanding",
    "explode",
    "fillna",
    "filter",
    "first",
    "flatten",
    "floordiv",
    "ge",
    "get",
    "groupby",
    "gt",
    "head",
    "idxmax",
    "idxmin",
    "isin",
    "isna",
    "isnull",
    "items",
    "join",
    "keys",
    "kurt",
    "last",
    "le",
    "lt",
    "max",
    "mean",
    "median",
    "melt",
    "memory_usage",
    "merge",
    "min",
    "mode",
    "mul",
    "ne",
    "ngroup",
    "nlargest",
    "notna",
    "notnull",
    "nsmallest",
    "nth",
    "nunique",
    "pct_change",
    "pivot",
    "pivot_table",
    "pow",
    "prod",
    "quantile",
    "rank",
    "ravel",
    "reindex",
    "rename",
    "reset_index",
    "resample",
    "reshape",
    "rolling",
    "round",
    "sample",
    "select_dtypes",
    "sem",
    "set_index",
    "shift",
    "size",
    "skew",
    "sort_index",
    "sort_values",
    "squeeze",
    "stack",
    "std",
    "sub",
    "sum",
    "tail",
    "take",
    "to_dict",
    "to_frame",
    "to_list",
    "to_numpy",
    "to_string",
    "tolist",
    "transpose",
    "truediv",
    "unique",
    "unstack",
    "value_counts",
    "var",
    "where",
];

/// Read-only methods whose result may share memory with their receiver (numpy views, pandas
/// frames over the same blocks): binding the result aliases the receiver.
const VIEW_METHODS: &[&str] = &[
    "head",
    "ravel",
    "reshape",
    "squeeze",
    "tail",
    "to_numpy",
    "transpose",
    "view",
];

/// Keywords with which a library call may write into its receiver or arguments.
const MUTATING_KEYWORDS: &[&str] = &["copy", "inplace", "out", "output", "target"];

/// Function names that write into an argument, also when reached through a module
/// (`np.random.shuffle(a)`, `np.copyto(dst, src)`, `np.add.at(a, i, 1)`).
/// Names ending in `_` (`torch.nn.init.normal_(w)`) work in place by convention and count too.
const MUTATING_FUNCTIONS: &[&str] = &[
    "append",
    "at",
    "clear",
    "copyto",
    "delitem",
    "extend",
    "fill",
    "fill_diagonal",
    "heapify",
    "heappop",
    "heappush",
    "heappushpop",
    "heapreplace",
    "insert",
    "insort",
    "insort_left",
    "insort_right",
    "itemset",
    "partition",
    "place",
    "pop",
    "put",
    "put_along_axis",
    "putmask",
    "remove",
    "resize",
    "reverse",
    "setattr",
    "setflags",
    "setitem",
    "shuffle",
    "sort",
    "update",
];

/// Whether a function reached through a module may write into its arguments.
fn mutating_function(name: &str) -> bool {
    MUTATING_FUNCTIONS.contains(&name) || (name.ends_with('_') && !name.starts_with('_'))
}

/// Whether a call passes a keyword with which it may write into what it is given.
fn has_mutating_keyword(call: &ast::ExprCall) -> bool {
    call.arguments
        .keywords
        .iter()
        .any(|keyword| match &keyword.arg {
            Some(arg) => {
                MUTATING_KEYWORDS.contains(&arg.as_str()) || arg.as_str().starts_with("overwrite")
            }
            // `**options` may hold any of them.
            None => true,
        })
}

/// The top-level package of a dotted module name (`sklearn.linear_model` → `sklearn`).
fn top_package(module: &str) -> &str {
    module.split('.').next().unwrap_or(module)
}

/// The name a chain of attributes, subscripts and method calls starts from
/// (`df.groupby("k")["v"].sum` → `df`).
fn chain_root(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Name(name) => Some(name.id.as_str()),
        Expr::Attribute(ast::ExprAttribute { value, .. })
        | Expr::Subscript(ast::ExprSubscript { value, .. })
        | Expr::Starred(ast::ExprStarred { value, .. }) => chain_root(value),
        Expr::Call(ast::ExprCall { func, .. }) => match func.as_ref() {
            Expr::Attribute(attribute) => chain_root(&attribute.value),
            _ => None,
        },
        _ => None,
    }
}

/// The root of a plain dotted callee (`np.linalg.lstsq` → `np`), if it is one.
fn dotted_root(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Name(name) => Some(name.id.as_str()),
        Expr::Attribute(ast::ExprAttribute { value, .. }) => dotted_root(value),
        _ => None,
    }
}

/// A use of a name that changes nothing if the library behaves as documented (see
/// [`READ_ONLY_METHODS`]).
#[derive(Debug, Clone)]
enum Soft {
    /// The receiver of a read-only method.
    Receiver,
    /// An argument of a read-only method of some other object.
    Argument,
    /// An argument of a function reached through `root` (`np.column_stack([a, b])`): soft when
    /// `root` is a module, or, when `read_only_method`, an argument of a read-only method.
    Through {
        root: String,
        read_only_method: bool,
    },
}

/// How a may-mutate candidate of a cell is used when every use of it is soft: the graph orders
/// no later reader after the cell (as for a candidate an earlier run refuted) when every root is
/// a module; the worker still checks the value unless [`SoftUse::unchecked`] holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SoftUse {
    /// Passed to a read-only method of another object (whose type only the run knows).
    pub argument: bool,
    /// Roots of dotted callees it was passed to, which must be modules.
    pub modules: NameSet,
    /// Roots of dotted read-only-method callees it was passed to: a module, or another object
    /// (then it is an argument of a read-only method).
    pub modules_or_objects: NameSet,
}

impl SoftUse {
    fn add(&mut self, soft: &Soft) {
        match soft {
            Soft::Receiver => {}
            Soft::Argument => self.argument = true,
            Soft::Through {
                root,
                read_only_method: false,
            } => {
                self.modules.insert(root.clone());
            }
            Soft::Through {
                root,
                read_only_method: true,
            } => {
                self.modules_or_objects.insert(root.clone());
            }
        }
    }
}

/// Calls that make a cell unanalysable: they see or change the namespace by name at run time.
const DYNAMIC_CALLS: &[&str] = &["exec", "eval", "globals", "locals", "vars"];

/// The result of walking a cell's module scope.
#[derive(Debug, Default)]
pub(crate) struct ModuleSymbols {
    pub(crate) reads: NameSet,
    pub(crate) writes: NameSet,
    pub(crate) definite: NameSet,
    pub(crate) deletes: NameSet,
    pub(crate) may_mutate: NameSet,
    pub(crate) imports: NameSet,
    pub(crate) functions: BTreeMap<String, FunctionSummary>,
    pub(crate) aliases: BTreeSet<(String, String)>,
    pub(crate) called_only: NameSet,
    pub(crate) soft: BTreeMap<String, SoftUse>,
    pub(crate) packages: NameSet,
    pub(crate) barriers: Vec<Barrier>,
}

/// Analyses the statements of a cell (already parsed) at module scope.
pub(crate) fn analyze_module(suite: &[Stmt], extra_stores: &[String]) -> ModuleSymbols {
    let mut scope = Scope::new(Kind::Module);
    scope.body(suite);
    for name in extra_stores {
        scope.store(name);
    }
    let called_only = scope
        .called_only
        .intersection(&scope.mutated)
        .cloned()
        .collect();
    let soft = scope
        .soft_uses
        .into_iter()
        .filter(|(name, _)| scope.mutated.contains(name) && !scope.strict.contains(name))
        .collect();
    ModuleSymbols {
        reads: scope.loads,
        writes: scope.stores,
        definite: scope.bound.into_iter().collect(),
        deletes: scope.dels,
        may_mutate: scope.mutated,
        imports: scope.imports,
        functions: scope.functions,
        aliases: scope.aliases,
        called_only,
        soft,
        packages: scope.packages,
        barriers: scope.barriers,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Module,
    Class,
    Function,
}

/// What a nested function scope hands to the scope that defines it.
#[derive(Debug, Default)]
struct Deferred {
    /// Free names not resolved inside the function: the enclosing scope resolves them.
    free: NameSet,
    /// Free names the function may mutate, resolved like `free`.
    free_mutated: NameSet,
    /// Names declared `global` and loaded, assigned or mutated: module names whatever encloses.
    global_reads: NameSet,
    global_writes: NameSet,
    global_mutated: NameSet,
    dynamic: bool,
    stateful: bool,
    /// Free names mutated only because the body calls them.
    called: NameSet,
}

impl Deferred {
    fn merge(&mut self, other: Deferred) {
        self.free.extend(other.free);
        self.free_mutated.extend(other.free_mutated);
        self.global_reads.extend(other.global_reads);
        self.global_writes.extend(other.global_writes);
        self.global_mutated.extend(other.global_mutated);
        self.dynamic |= other.dynamic;
        self.stateful |= other.stateful;
        self.called.extend(other.called);
    }

    /// The summary seen from module level, where every unresolved name is a global.
    fn into_summary(self) -> FunctionSummary {
        let mut reads = self.free;
        reads.extend(self.global_reads);
        let mut mutates = self.free_mutated;
        mutates.extend(self.global_mutated);
        FunctionSummary {
            reads,
            writes: self.global_writes,
            mutates,
            dynamic: self.dynamic,
            stateful: self.stateful,
            calls: self.called,
        }
    }
}

struct Scope {
    kind: Kind,
    /// Module and class scopes: names definitely bound at the current point.
    bound: FxHashSet<String>,
    /// Depth of expression-level conditionals (`and`/`or`, `x if c else y`, comprehensions).
    conditional: u32,
    /// Module: names read from earlier cells. Class, function: loads not resolved here.
    loads: NameSet,
    /// Every name bound in this scope.
    stores: NameSet,
    dels: NameSet,
    /// Module: may-mutate candidates. Class, function: possibly mutated names.
    mutated: NameSet,
    imports: NameSet,
    global_decl: NameSet,
    nonlocal_decl: NameSet,
    /// Module: functions and classes defined here. Class: unused (methods go to `deferred`).
    functions: BTreeMap<String, FunctionSummary>,
    /// Function and class: what nested function bodies defer to call time.
    deferred: Deferred,
    barriers: Vec<Barrier>,
    /// Module: `(bound, source)` pairs of plain aliasing statements (`b = a`, `c = obj.attr`).
    aliases: BTreeSet<(String, String)>,
    /// Candidates only because the cell calls them (`f(x)` makes `f` one).
    called_only: NameSet,
    /// Set while recording the callee of a call as a candidate.
    calling: bool,
    /// Set while recording a soft use (see [`READ_ONLY_METHODS`]).
    soft: Option<Soft>,
    /// Module: soft uses of each candidate.
    soft_uses: BTreeMap<String, SoftUse>,
    /// Module: candidates with at least one use that is not soft.
    strict: FxHashSet<String>,
    /// Top-level packages of the absolute imports in this scope.
    packages: NameSet,
    /// Names local to the comprehensions being walked, innermost last.
    comprehensions: Vec<FxHashSet<String>>,
    /// Set while walking comprehension targets, whose names are comprehension-local.
    binding_comprehension_target: bool,
    /// Functions whose summary is being applied (guards against recursion).
    applying: Vec<String>,
}

impl Scope {
    fn new(kind: Kind) -> Self {
        Scope {
            kind,
            bound: FxHashSet::default(),
            conditional: 0,
            loads: NameSet::new(),
            stores: NameSet::new(),
            dels: NameSet::new(),
            mutated: NameSet::new(),
            imports: NameSet::new(),
            global_decl: NameSet::new(),
            nonlocal_decl: NameSet::new(),
            functions: BTreeMap::new(),
            deferred: Deferred::default(),
            barriers: Vec::new(),
            aliases: BTreeSet::new(),
            called_only: NameSet::new(),
            calling: false,
            soft: None,
            soft_uses: BTreeMap::new(),
            strict: FxHashSet::default(),
            packages: NameSet::new(),
            comprehensions: Vec::new(),
            binding_comprehension_target: false,
            applying: Vec::new(),
        }
    }

    fn comprehension_local(&self, name: &str) -> bool {
        self.comprehensions.iter().any(|names| names.contains(name))
    }

    // ---- names -------------------------------------------------------------------------

    fn load(&mut self, name: &str) {
        if self.comprehension_local(name) {
            return;
        }
        match self.kind {
            Kind::Module => {
                if !self.bound.contains(name) {
                    self.loads.insert(name.to_string());
                }
                if let Some(summary) = self.functions.get(name).cloned() {
                    self.apply_summary(name, &summary);
                }
            }
            Kind::Class => {
                if !self.bound.contains(name) {
                    self.loads.insert(name.to_string());
                }
            }
            Kind::Function => {
                self.loads.insert(name.to_string());
            }
        }
    }

    /// A module-level use of a function defined earlier in the same cell: what its body
    /// touches is touched here.
    fn apply_summary(&mut self, name: &str, summary: &FunctionSummary) {
        if self.applying.iter().any(|applying| applying == name) {
            return;
        }
        self.applying.push(name.to_string());
        for read in &summary.reads {
            self.load(read);
        }
        for write in &summary.writes {
            self.stores.insert(write.clone());
        }
        for mutated in &summary.mutates {
            self.mutate_name(mutated);
        }
        if summary.dynamic {
            self.barriers
                .push(Barrier::DynamicCall(format!("{name}()")));
        }
        self.applying.pop();
    }

    fn store(&mut self, name: &str) {
        if self.binding_comprehension_target
            && let Some(names) = self.comprehensions.last_mut()
        {
            names.insert(name.to_string());
            return;
        }
        self.stores.insert(name.to_string());
        if self.kind != Kind::Function && self.conditional == 0 {
            self.bound.insert(name.to_string());
        }
        if self.kind == Kind::Module && self.conditional == 0 {
            self.functions.remove(name);
        }
    }

    /// A walrus target: binds in the nearest enclosing non-comprehension scope.
    fn store_walrus(&mut self, name: &str) {
        self.stores.insert(name.to_string());
        if self.kind != Kind::Function && self.conditional == 0 && self.comprehensions.is_empty() {
            self.bound.insert(name.to_string());
        }
    }

    fn delete(&mut self, name: &str) {
        if self.comprehension_local(name) {
            return;
        }
        // `del x` needs `x` bound: when it may come from an earlier cell, it is read, so the
        // worker can tell "deleted" from "never bound here".
        self.load(name);
        self.stores.insert(name.to_string());
        self.dels.insert(name.to_string());
        self.bound.remove(name);
        self.functions.remove(name);
    }

    fn mutate_name(&mut self, name: &str) {
        if self.comprehension_local(name) {
            return;
        }
        if self.calling {
            if !self.mutated.contains(name) {
                self.called_only.insert(name.to_string());
            }
        } else {
            self.called_only.remove(name);
        }
        match self.kind {
            Kind::Module => {
                if !self.bound.contains(name) && !self.imports.contains(name) {
                    self.mutated.insert(name.to_string());
                    match &self.soft {
                        Some(soft) => self
                            .soft_uses
                            .entry(name.to_string())
                            .or_default()
                            .add(soft),
                        None => {
                            self.strict.insert(name.to_string());
                        }
                    }
                }
                // `alias = items` then `alias.append(…)`: the object came from `items`.
                let sources: Vec<String> = self
                    .aliases
                    .iter()
                    .filter(|(bound, source)| {
                        bound == name
                            && (!self.mutated.contains(source)
                                || (self.soft.is_none() && !self.strict.contains(source)))
                    })
                    .map(|(_, source)| source.clone())
                    .collect();
                for source in sources {
                    self.mutate_name(&source);
                }
            }
            Kind::Class => {
                if !self.bound.contains(name) {
                    self.mutated.insert(name.to_string());
                }
            }
            Kind::Function => {
                self.mutated.insert(name.to_string());
            }
        }
    }

    /// The object an expression's value lives in, if it is reached from a name, also through
    /// method calls (`df.to_numpy()[0, 0] = 1` writes into `df`: the method returned a view).
    fn mutate_base(&mut self, expr: &Expr) {
        if let Some(name) = chain_root(expr) {
            self.mutate_name(name);
        }
    }

    /// A call argument may be mutated by the callee, and so may anything a display holds.
    fn mutate_argument(&mut self, expr: &Expr) {
        match expr {
            Expr::List(ast::ExprList { elts, .. })
            | Expr::Tuple(ast::ExprTuple { elts, .. })
            | Expr::Set(ast::ExprSet { elts, .. }) => {
                for elt in elts {
                    self.mutate_argument(elt);
                }
            }
            Expr::Dict(dict) => {
                for item in &dict.items {
                    self.mutate_argument(&item.value);
                }
            }
            Expr::Starred(ast::ExprStarred { value, .. }) => self.mutate_argument(value),
            _ => self.mutate_base(expr),
        }
    }

    /// Records that `target = value` makes names share an object, when it plainly does.
    fn alias(&mut self, target: &Expr, value: &Expr) {
        match (target, value) {
            (Expr::Name(name), value) => {
                if let Some(source) = alias_source(value) {
                    self.record_alias(name.id.as_str(), source);
                }
            }
            (
                Expr::Tuple(ast::ExprTuple { elts: targets, .. })
                | Expr::List(ast::ExprList { elts: targets, .. }),
                Expr::Tuple(ast::ExprTuple { elts: values, .. })
                | Expr::List(ast::ExprList { elts: values, .. }),
            ) if targets.len() == values.len() => {
                for (target, value) in targets.iter().zip(values) {
                    self.alias(target, value);
                }
            }
            _ => {}
        }
    }

    fn record_alias(&mut self, name: &str, source: &str) {
        if self.kind == Kind::Module && name != source && !self.comprehension_local(source) {
            self.aliases.insert((name.to_string(), source.to_string()));
        }
    }

    /// Library state an attribute chain may change (`np.random.seed`, `plt.style.use`): the
    /// probe is read and (possibly) written, here or, inside a function, when it is called.
    fn probes(&mut self, expr: &Expr) {
        let mut chain = Vec::new();
        if !attribute_chain(expr, &mut chain) {
            return;
        }
        for probe in probes::touched_by(&chain) {
            match self.kind {
                Kind::Module | Kind::Class => {
                    self.loads.insert(probe.to_string());
                    self.stores.insert(probe.to_string());
                }
                Kind::Function => {
                    self.deferred.global_reads.insert(probe.to_string());
                    self.deferred.global_writes.insert(probe.to_string());
                }
            }
        }
    }

    /// A call that may read or write files (`open(…)`, `df.to_csv(…)`, `os.listdir(…)`): the
    /// cell is marked with [`probes::FILES`], here or, inside a function, when it is called.
    fn file_call(&mut self, func: &Expr) {
        let mut chain = Vec::new();
        if !attribute_chain(func, &mut chain) {
            chain.clear();
            let Expr::Attribute(attribute) = func else {
                return;
            };
            chain.extend(["", attribute.attr.id.as_str()]);
        }
        if !probes::touches_files(&chain) {
            return;
        }
        let mark = probes::FILES.to_string();
        match self.kind {
            Kind::Module | Kind::Class => {
                self.loads.insert(mark.clone());
                self.stores.insert(mark);
            }
            Kind::Function => {
                self.deferred.global_reads.insert(mark.clone());
                self.deferred.global_writes.insert(mark);
            }
        }
    }

    fn barrier(&mut self, barrier: Barrier) {
        if self.kind == Kind::Module || self.kind == Kind::Class {
            self.barriers.push(barrier);
        } else {
            self.deferred.dynamic = true;
        }
    }

    // ---- statements --------------------------------------------------------------------

    fn body(&mut self, suite: &[Stmt]) {
        for stmt in suite {
            self.stmt(stmt);
        }
    }

    /// Walks `suite` from a copy of the current state and returns the state at its end.
    fn branch(&mut self, start: &FxHashSet<String>, suite: &[Stmt]) -> FxHashSet<String> {
        let saved_functions = self.functions.clone();
        self.bound = start.clone();
        self.body(suite);
        // A function defined in only one branch may or may not be the binding afterwards: keep
        // the union of the candidates (what `store` removed stays removed only if definite).
        for (name, summary) in saved_functions {
            self.functions.entry(name).or_insert(summary);
        }
        std::mem::take(&mut self.bound)
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::FunctionDef(def) => self.function_def(def),
            Stmt::ClassDef(class) => self.class_def(class),
            Stmt::Return(ast::StmtReturn { value, .. }) => {
                if let Some(value) = value {
                    self.visit_expr(value);
                }
            }
            Stmt::Delete(ast::StmtDelete { targets, .. }) => {
                for target in targets {
                    self.visit_expr(target);
                }
            }
            Stmt::TypeAlias(alias) => {
                self.visit_expr(&alias.value);
                self.visit_expr(&alias.name);
            }
            Stmt::Assign(assign) => {
                if let ([Expr::Name(target)], Expr::Lambda(lambda)) =
                    (assign.targets.as_slice(), assign.value.as_ref())
                {
                    // `f = lambda …` is a function definition by another name.
                    self.named_lambda(target.id.as_str(), lambda);
                    return;
                }
                self.visit_expr(&assign.value);
                for target in &assign.targets {
                    self.visit_expr(target);
                    self.alias(target, &assign.value);
                }
            }
            Stmt::AugAssign(aug) => {
                self.visit_expr(&aug.value);
                match aug.target.as_ref() {
                    Expr::Name(name) => {
                        self.load(name.id.as_str());
                        self.store(name.id.as_str());
                    }
                    target => self.visit_expr(target),
                }
            }
            Stmt::AnnAssign(ann) => {
                if self.kind != Kind::Function {
                    self.visit_expr(&ann.annotation);
                }
                if let Some(value) = &ann.value {
                    self.visit_expr(value);
                    self.visit_expr(&ann.target);
                    self.alias(&ann.target, value);
                } else if !matches!(ann.target.as_ref(), Expr::Name(_)) {
                    // `obj.attr: int` evaluates `obj` without binding anything.
                    self.visit_expr(&ann.target);
                }
            }
            Stmt::For(for_stmt) => {
                self.visit_expr(&for_stmt.iter);
                let before = self.bound.clone();
                self.visit_expr(&for_stmt.target);
                if let (Expr::Name(target), Some(source)) =
                    (for_stmt.target.as_ref(), alias_source(&for_stmt.iter))
                {
                    // The loop variable is left bound to an element of the iterable.
                    self.record_alias(target.id.as_str(), source);
                }
                let start = std::mem::take(&mut self.bound);
                self.branch(&start, &for_stmt.body);
                self.branch(&before, &for_stmt.orelse);
                self.bound = before;
            }
            Stmt::While(while_stmt) => {
                self.visit_expr(&while_stmt.test);
                let before = self.bound.clone();
                self.branch(&before, &while_stmt.body);
                self.branch(&before, &while_stmt.orelse);
                self.bound = before;
            }
            Stmt::If(if_stmt) => {
                self.visit_expr(&if_stmt.test);
                let mut before = self.bound.clone();
                let mut ends = vec![self.branch(&before, &if_stmt.body)];
                let mut has_else = false;
                for clause in &if_stmt.elif_else_clauses {
                    self.bound = before.clone();
                    if let Some(test) = &clause.test {
                        self.visit_expr(test);
                        before = std::mem::take(&mut self.bound);
                    } else {
                        has_else = true;
                    }
                    ends.push(self.branch(&before, &clause.body));
                }
                if !has_else {
                    ends.push(before);
                }
                self.bound = intersect(ends);
            }
            Stmt::With(with) => {
                for item in &with.items {
                    self.visit_expr(&item.context_expr);
                    if let Some(vars) = &item.optional_vars {
                        self.visit_expr(vars);
                    }
                }
                self.body(&with.body);
            }
            Stmt::Match(match_stmt) => {
                self.visit_expr(&match_stmt.subject);
                let before = self.bound.clone();
                let mut ends = Vec::new();
                let mut exhaustive = false;
                for case in &match_stmt.cases {
                    self.bound = before.clone();
                    self.pattern(&case.pattern);
                    if let Some(guard) = &case.guard {
                        self.visit_expr(guard);
                    } else if is_irrefutable(&case.pattern) {
                        exhaustive = true;
                    }
                    let start = std::mem::take(&mut self.bound);
                    ends.push(self.branch(&start, &case.body));
                }
                if !exhaustive {
                    ends.push(before);
                }
                self.bound = intersect(ends);
            }
            Stmt::Raise(raise) => {
                if let Some(exc) = &raise.exc {
                    self.visit_expr(exc);
                }
                if let Some(cause) = &raise.cause {
                    self.visit_expr(cause);
                }
            }
            Stmt::Try(try_stmt) => self.try_stmt(try_stmt),
            Stmt::Assert(assert) => {
                self.visit_expr(&assert.test);
                if let Some(msg) = &assert.msg {
                    self.visit_expr(msg);
                }
            }
            Stmt::Import(import) => {
                for alias in &import.names {
                    self.packages
                        .insert(top_package(alias.name.id.as_str()).to_string());
                    let bound = match &alias.asname {
                        Some(asname) => asname.id.as_str(),
                        None => alias.name.id.as_str().split('.').next().unwrap_or_default(),
                    };
                    self.store(bound);
                    self.imports.insert(bound.to_string());
                }
            }
            Stmt::ImportFrom(import) => {
                if import.level == 0
                    && let Some(module) = &import.module
                {
                    self.packages
                        .insert(top_package(module.id.as_str()).to_string());
                }
                for alias in &import.names {
                    if alias.name.id.as_str() == "*" {
                        let module = import.module.as_ref().map_or("", |m| m.id.as_str());
                        let dots = ".".repeat(import.level as usize);
                        self.barrier(Barrier::StarImport(format!("{dots}{module}")));
                        continue;
                    }
                    let bound = alias.asname.as_ref().unwrap_or(&alias.name).id.as_str();
                    self.store(bound);
                    self.imports.insert(bound.to_string());
                }
            }
            Stmt::Global(global) => {
                for name in &global.names {
                    self.global_decl.insert(name.id.to_string());
                }
            }
            Stmt::Nonlocal(nonlocal) => {
                for name in &nonlocal.names {
                    self.nonlocal_decl.insert(name.id.to_string());
                }
            }
            Stmt::Expr(expr) => self.visit_expr(&expr.value),
            Stmt::Pass(_) | Stmt::Break(_) | Stmt::Continue(_) => {}
            Stmt::IpyEscapeCommand(command) => self.escape_command(command.kind, &command.value),
        }
    }

    fn try_stmt(&mut self, try_stmt: &ast::StmtTry) {
        let before = self.bound.clone();
        self.bound = before.clone();
        self.body(&try_stmt.body);
        self.body(&try_stmt.orelse);
        let mut ends = vec![std::mem::take(&mut self.bound)];
        for handler in &try_stmt.handlers {
            let ExceptHandler::ExceptHandler(handler) = handler;
            self.bound = before.clone();
            if let Some(type_) = &handler.type_ {
                self.visit_expr(type_);
            }
            if let Some(name) = &handler.name {
                // The handler binds the name and deletes it at its end: reading it first lets
                // the worker tell a deletion from a handler that did not run.
                self.load(name.id.as_str());
                self.store(name.id.as_str());
            }
            self.body(&handler.body);
            if let Some(name) = &handler.name {
                self.dels.insert(name.id.to_string());
                self.bound.remove(name.id.as_str());
            }
            ends.push(std::mem::take(&mut self.bound));
        }
        self.bound = intersect(ends);
        self.body(&try_stmt.finalbody);
    }

    fn pattern(&mut self, pattern: &Pattern) {
        match pattern {
            Pattern::MatchValue(value) => self.visit_expr(&value.value),
            Pattern::MatchSingleton(_) => {}
            Pattern::MatchSequence(seq) => {
                for pattern in &seq.patterns {
                    self.pattern(pattern);
                }
            }
            Pattern::MatchMapping(mapping) => {
                for key in &mapping.keys {
                    self.visit_expr(key);
                }
                for pattern in &mapping.patterns {
                    self.pattern(pattern);
                }
                if let Some(rest) = &mapping.rest {
                    self.store(rest.id.as_str());
                }
            }
            Pattern::MatchClass(class) => {
                self.visit_expr(&class.cls);
                for pattern in &class.arguments.patterns {
                    self.pattern(pattern);
                }
                for keyword in &class.arguments.keywords {
                    self.pattern(&keyword.pattern);
                }
            }
            Pattern::MatchStar(star) => {
                if let Some(name) = &star.name {
                    self.store(name.id.as_str());
                }
            }
            Pattern::MatchAs(as_pattern) => {
                if let Some(pattern) = &as_pattern.pattern {
                    self.pattern(pattern);
                }
                if let Some(name) = &as_pattern.name {
                    self.store(name.id.as_str());
                }
            }
            Pattern::MatchOr(or) => {
                for pattern in &or.patterns {
                    self.pattern(pattern);
                }
            }
        }
    }

    /// Decorators, defaults and annotations run when the function is defined; the body later.
    fn function_def(&mut self, def: &ast::StmtFunctionDef) {
        for decorator in &def.decorator_list {
            self.visit_expr(&decorator.expression);
        }
        self.parameters_at_definition(&def.parameters);
        if let Some(returns) = &def.returns {
            self.visit_expr(returns);
        }
        let mut child = Scope::new(Kind::Function);
        child.bind_parameters(&def.parameters);
        child.body(&def.body);
        let mut deferred = child.finish_function();
        deferred.stateful =
            !def.decorator_list.is_empty() || has_state_in_defaults(&def.parameters);
        self.define(def.name.id.as_str(), deferred);
    }

    fn named_lambda(&mut self, name: &str, lambda: &ast::ExprLambda) {
        if let Some(parameters) = &lambda.parameters {
            self.parameters_at_definition(parameters);
        }
        let mut deferred = Self::lambda_body(lambda);
        deferred.stateful = lambda
            .parameters
            .as_deref()
            .is_some_and(has_state_in_defaults);
        self.define(name, deferred);
    }

    fn lambda_body(lambda: &ast::ExprLambda) -> Deferred {
        let mut child = Scope::new(Kind::Function);
        if let Some(parameters) = &lambda.parameters {
            child.bind_parameters(parameters);
        }
        child.visit_expr(&lambda.body);
        child.finish_function()
    }

    /// Binds a defined function (or class) named `name` whose deferred body is `deferred`.
    fn define(&mut self, name: &str, deferred: Deferred) {
        self.store(name);
        match self.kind {
            Kind::Module => {
                let summary = deferred.into_summary();
                // A `global` declaration in the body: the name is written when the function
                // runs; the definition itself is counted as a (possible) writer, as SPEC says.
                self.stores.extend(summary.writes.iter().cloned());
                if self.conditional == 0 {
                    self.functions.insert(name.to_string(), summary);
                } else {
                    self.functions
                        .entry(name.to_string())
                        .or_default()
                        .merge(&summary);
                }
            }
            Kind::Class | Kind::Function => self.deferred.merge(deferred),
        }
    }

    fn parameters_at_definition(&mut self, parameters: &Parameters) {
        for parameter in parameters.iter_non_variadic_params() {
            if let Some(default) = &parameter.default {
                self.visit_expr(default);
            }
        }
        for parameter in parameters {
            if let Some(annotation) = parameter.annotation() {
                self.visit_expr(annotation);
            }
        }
    }

    fn bind_parameters(&mut self, parameters: &Parameters) {
        for parameter in parameters {
            self.store(parameter.name().id.as_str());
        }
    }

    /// The deferred effects of a function body, resolved against its own locals.
    fn finish_function(mut self) -> Deferred {
        let nested = std::mem::take(&mut self.deferred);
        self.loads.extend(nested.free);
        self.mutated.extend(nested.free_mutated);
        let locals: NameSet = self
            .stores
            .iter()
            .filter(|name| !self.global_decl.contains(*name) && !self.nonlocal_decl.contains(*name))
            .cloned()
            .collect();
        let free = |names: &NameSet| -> NameSet {
            names
                .iter()
                .filter(|name| !locals.contains(*name) && !self.global_decl.contains(*name))
                .cloned()
                .collect()
        };
        let declared = |names: &NameSet| -> NameSet {
            names.intersection(&self.global_decl).cloned().collect()
        };
        let mut deferred = Deferred {
            free: free(&self.loads),
            free_mutated: free(&self.mutated),
            global_reads: declared(&self.loads),
            global_writes: declared(&self.stores),
            global_mutated: declared(&self.mutated),
            dynamic: nested.dynamic || !self.barriers.is_empty(),
            stateful: false,
            called: NameSet::new(),
        };
        deferred.called = self
            .called_only
            .iter()
            .chain(&nested.called)
            .filter(|name| deferred.free_mutated.contains(*name))
            .cloned()
            .collect();
        deferred.global_reads.extend(nested.global_reads);
        deferred.global_writes.extend(nested.global_writes);
        deferred.global_mutated.extend(nested.global_mutated);
        deferred
    }

    fn class_def(&mut self, class: &ast::StmtClassDef) {
        for decorator in &class.decorator_list {
            self.visit_expr(&decorator.expression);
        }
        if let Some(arguments) = &class.arguments {
            for arg in &arguments.args {
                self.visit_expr(arg);
            }
            for keyword in &arguments.keywords {
                self.visit_expr(&keyword.value);
            }
        }
        let mut child = Scope::new(Kind::Class);
        child.body(&class.body);
        // The class body ran just now: what it loaded from outside is loaded here.
        for name in std::mem::take(&mut child.loads) {
            self.load(&name);
        }
        for name in std::mem::take(&mut child.mutated) {
            self.mutate_name(&name);
        }
        for barrier in std::mem::take(&mut child.barriers) {
            self.barrier(barrier);
        }
        let methods = std::mem::take(&mut child.deferred);
        self.define(class.name.id.as_str(), methods);
    }

    fn escape_command(&mut self, kind: IpyEscapeKind, value: &str) {
        match kind {
            IpyEscapeKind::Shell | IpyEscapeKind::ShCap => {
                self.barrier(Barrier::Shell(value.trim().to_string()));
            }
            IpyEscapeKind::Help | IpyEscapeKind::Help2 => {
                // `obj?` shows help about `obj`: it needs the value, and changes nothing.
                let name: String = value
                    .trim()
                    .chars()
                    .take_while(|ch| ch.is_alphanumeric() || *ch == '_')
                    .collect();
                if !name.is_empty() {
                    self.load(&name);
                }
            }
            IpyEscapeKind::Magic | IpyEscapeKind::Magic2 => match magics::classify_line(value) {
                LineMagic::NoEffect => {}
                LineMagic::Code(code) => {
                    let parsed = super::parse::parse_cell(&code);
                    if parsed.errors.is_empty() {
                        self.body(&parsed.suite);
                    } else {
                        self.barrier(Barrier::Magic(format!("%{}", value.trim())));
                    }
                }
                LineMagic::Barrier(name) => self.barrier(Barrier::Magic(name)),
            },
            IpyEscapeKind::Quote | IpyEscapeKind::Quote2 | IpyEscapeKind::Paren => {
                self.barrier(Barrier::Magic(value.trim().to_string()));
            }
        }
    }

    // ---- comprehensions ----------------------------------------------------------------

    fn comprehension(&mut self, generators: &[Comprehension], elements: &[&Expr]) {
        let Some((first, rest)) = generators.split_first() else {
            return;
        };
        // The first iterable is evaluated in the enclosing scope, before the comprehension's.
        self.visit_expr(&first.iter);
        self.comprehensions.push(FxHashSet::default());
        self.conditional += 1;
        for (index, generator) in std::iter::once(first).chain(rest).enumerate() {
            if index > 0 {
                self.visit_expr(&generator.iter);
            }
            self.binding_comprehension_target = true;
            self.visit_expr(&generator.target);
            self.binding_comprehension_target = false;
            for condition in &generator.ifs {
                self.visit_expr(condition);
            }
        }
        for element in elements {
            self.visit_expr(element);
        }
        self.conditional -= 1;
        self.comprehensions.pop();
    }

    fn lambda(&mut self, lambda: &ast::ExprLambda) {
        if let Some(parameters) = &lambda.parameters {
            self.parameters_at_definition(parameters);
        }
        let deferred = Self::lambda_body(lambda);
        match self.kind {
            Kind::Module => {
                // An anonymous function may be called right away (`sorted(xs, key=lambda …)`)
                // or kept inside some value: what it touches is touched now, and the cell's
                // lambdas are also summarised together, so whatever holds one carries them.
                let summary = deferred.into_summary();
                self.apply_summary(ANONYMOUS, &summary);
                self.functions
                    .entry(ANONYMOUS.to_string())
                    .or_default()
                    .merge(&summary);
            }
            Kind::Class | Kind::Function => self.deferred.merge(deferred),
        }
    }

    fn call(&mut self, call: &ast::ExprCall) {
        let callee = match call.func.as_ref() {
            Expr::Name(name) => Some(name.id.as_str()),
            _ => None,
        };
        let locally_bound =
            callee.is_some_and(|name| self.stores.contains(name) || self.comprehension_local(name));
        if let Some(name) = callee {
            let dynamic = DYNAMIC_CALLS.contains(&name)
                && !locally_bound
                && (name != "vars" || call.arguments.is_empty());
            if dynamic {
                self.barrier(Barrier::DynamicCall(format!("{name}()")));
            }
        }
        let mutating_keyword = has_mutating_keyword(call);
        // `df.groupby(…)`, `a.astype(…)`: a read-only method leaves its receiver as it was.
        let read_only_method = match call.func.as_ref() {
            Expr::Attribute(attribute) => {
                READ_ONLY_METHODS.contains(&attribute.attr.as_str()) && !mutating_keyword
            }
            _ => false,
        };
        if let Expr::Attribute(attribute) = call.func.as_ref() {
            // Through the methods called on the way (`df.head().fillna(0, inplace=True)`): what
            // a read-only method returns may be a view of its receiver.
            if let Some(root) = chain_root(&attribute.value) {
                self.soft = read_only_method.then_some(Soft::Receiver);
                self.mutate_name(root);
                self.soft = None;
            }
        }
        // Calling a function may change the function itself: a closure over `nonlocal` state,
        // a mutable default argument, a class attribute counting instances.
        if let Some(name) = callee {
            let builtin = NON_MUTATING_BUILTINS.contains(&name) || DYNAMIC_CALLS.contains(&name);
            if !builtin || locally_bound {
                self.calling = true;
                self.mutate_name(name);
                self.calling = false;
            }
        }
        let pure =
            callee.is_some_and(|name| NON_MUTATING_BUILTINS.contains(&name)) && !locally_bound;
        if !pure {
            // What the arguments of a library function or a read-only method go through.
            self.soft = match call.func.as_ref() {
                Expr::Attribute(attribute)
                    if !mutating_keyword && !mutating_function(attribute.attr.as_str()) =>
                {
                    match dotted_root(&attribute.value) {
                        Some(root) => Some(Soft::Through {
                            root: root.to_string(),
                            read_only_method,
                        }),
                        None => read_only_method.then_some(Soft::Argument),
                    }
                }
                _ => None,
            };
            for arg in &call.arguments.args {
                self.mutate_argument(arg);
            }
            for keyword in &call.arguments.keywords {
                self.mutate_argument(&keyword.value);
            }
            self.soft = None;
        }
    }
}

impl<'a> Visitor<'a> for Scope {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        self.stmt(stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(name) => match name.ctx {
                ExprContext::Load => self.load(name.id.as_str()),
                ExprContext::Store => self.store(name.id.as_str()),
                ExprContext::Del => self.delete(name.id.as_str()),
                ExprContext::Invalid => {}
            },
            Expr::Named(named) => {
                self.visit_expr(&named.value);
                if let Expr::Name(target) = named.target.as_ref() {
                    self.store_walrus(target.id.as_str());
                }
            }
            Expr::BoolOp(bool_op) => {
                if let Some((first, rest)) = bool_op.values.split_first() {
                    self.visit_expr(first);
                    self.conditional += 1;
                    for value in rest {
                        self.visit_expr(value);
                    }
                    self.conditional -= 1;
                }
            }
            Expr::If(if_exp) => {
                self.visit_expr(&if_exp.test);
                self.conditional += 1;
                self.visit_expr(&if_exp.body);
                self.visit_expr(&if_exp.orelse);
                self.conditional -= 1;
            }
            Expr::Lambda(lambda) => self.lambda(lambda),
            Expr::ListComp(comp) => self.comprehension(&comp.generators, &[&comp.elt]),
            Expr::SetComp(comp) => self.comprehension(&comp.generators, &[&comp.elt]),
            Expr::Generator(comp) => self.comprehension(&comp.generators, &[&comp.elt]),
            Expr::DictComp(comp) => match &comp.key {
                Some(key) => self.comprehension(&comp.generators, &[key, &comp.value]),
                None => self.comprehension(&comp.generators, &[&comp.value]),
            },
            Expr::Call(call) => {
                self.call(call);
                self.file_call(&call.func);
                walk_expr(self, expr);
            }
            Expr::Attribute(attribute) => {
                if matches!(attribute.ctx, ExprContext::Store | ExprContext::Del) {
                    self.mutate_base(&attribute.value);
                }
                self.probes(expr);
                // The chain's inner attributes are loads whose probes the whole chain already
                // names: visit only its base (walking each prefix is quadratic on `a.b.b.b…`).
                let mut base = &*attribute.value;
                while let Expr::Attribute(inner) = base {
                    base = &inner.value;
                }
                self.visit_expr(base);
            }
            Expr::Subscript(subscript) => {
                if matches!(subscript.ctx, ExprContext::Store | ExprContext::Del) {
                    self.mutate_base(&subscript.value);
                }
                // `rcParams[k] = v` on a name bound by `from matplotlib import rcParams`.
                if matches!(&*subscript.value, Expr::Name(_)) {
                    self.probes(&subscript.value);
                }
                walk_expr(self, expr);
            }
            Expr::IpyEscapeCommand(command) => self.escape_command(command.kind, &command.value),
            _ => walk_expr(self, expr),
        }
    }
}

/// The names of an attribute chain rooted in a name, root first (`np.random.seed` →
/// `["np", "random", "seed"]`); `false` when the chain is rooted in something else.
fn attribute_chain<'a>(expr: &'a Expr, chain: &mut Vec<&'a str>) -> bool {
    match expr {
        Expr::Name(name) => {
            chain.push(name.id.as_str());
            true
        }
        Expr::Attribute(attribute) => {
            if !attribute_chain(&attribute.value, chain) {
                return false;
            }
            chain.push(attribute.attr.id.as_str());
            true
        }
        _ => false,
    }
}

/// Whether a function's defaults may hold state: anything but literal constants.
fn has_state_in_defaults(parameters: &Parameters) -> bool {
    parameters.iter_non_variadic_params().any(|parameter| {
        parameter.default.as_deref().is_some_and(|default| {
            !matches!(
                default,
                Expr::NumberLiteral(_)
                    | Expr::StringLiteral(_)
                    | Expr::BytesLiteral(_)
                    | Expr::BooleanLiteral(_)
                    | Expr::NoneLiteral(_)
                    | Expr::EllipsisLiteral(_)
                    | Expr::Name(_)
                    | Expr::Attribute(_)
                    | Expr::UnaryOp(_)
            )
        })
    })
}

/// The name a plain alias expression refers into: `a` for `a` or `a.b.c` (not subscripts or
/// calls, whose sharing is left to run-time refinement).
fn alias_source(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Name(name) => Some(name.id.as_str()),
        Expr::Attribute(ast::ExprAttribute { value, .. }) => alias_source(value),
        // `v = df.to_numpy()`: a method that may return a view of its receiver.
        Expr::Call(ast::ExprCall { func, .. }) => match func.as_ref() {
            Expr::Attribute(attribute) if VIEW_METHODS.contains(&attribute.attr.as_str()) => {
                alias_source(&attribute.value)
            }
            _ => None,
        },
        _ => None,
    }
}

fn is_irrefutable(pattern: &Pattern) -> bool {
    match pattern {
        Pattern::MatchAs(as_pattern) => as_pattern.pattern.as_deref().is_none_or(is_irrefutable),
        Pattern::MatchOr(or) => or.patterns.iter().any(is_irrefutable),
        _ => false,
    }
}

fn intersect(mut sets: Vec<FxHashSet<String>>) -> FxHashSet<String> {
    let Some(mut result) = sets.pop() else {
        return FxHashSet::default();
    };
    for set in &sets {
        result.retain(|name| set.contains(name));
    }
    result
}
