//! The cell dependency graph: which earlier cell each value a cell reads comes from.
//!
//! Built from the per-cell analyses in notebook order with Vizier's *most recent writer* rule:
//! a read of `x` depends on the most recent earlier cell that binds `x`, and on every later cell
//! that may have changed it since (a conditional binding, a may-mutate candidate). Those cells
//! are the value's *providers*; the executor takes the value from the last provider that
//! actually produced it.
//!
//! Values can share objects across names: a mutation through one name may change what another
//! name sees. Plain aliasing statements (`alias = items`, `cfg = obj.config`) are seen here: a
//! may-mutate candidate also may mutate every name it shares with, so later readers of those
//! names wait for it too. Sharing that only execution reveals (`first = rows[0]`, numpy views,
//! `a.append(b)`) is left to run-time refinement, which re-runs a reader that ran on a stale
//! value.
//!
//! Functions are read when called, not when defined: a cell that uses a notebook-defined
//! function (or class) also reads the globals its body reads, as bound at that cell. Values can
//! hold functions too (an instance of a notebook class, a list of lambdas): every value a cell
//! writes *carries* the functions the cell defined or received, and whoever reads the value is
//! charged with their globals as well. Barriers read and write everything and run alone.
//!
//! From the graph: parallel waves (levels) and the critical path.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::analysis::{ANONYMOUS, Barrier, CellAnalysis, FunctionSummary, NameSet, probes};
use crate::files::FileAccess;
use crate::hash::ContentHash;

/// A function known to the graph, interned: see [`Builder::function_id`].
type FunctionId = u32;

/// The functions a value may hold, sorted and shared between the names one cell writes.
type Carried = Arc<[FunctionId]>;

/// One code cell in the graph. Indices are positions among the notebook's code cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphCell {
    /// Names whose values the cell needs: its own reads plus the globals of the notebook
    /// functions it uses. For a barrier, every name bound before it.
    pub reads: NameSet,
    /// Names the cell may bind or delete (including through functions with `global`).
    pub writes: NameSet,
    /// Names read from earlier cells whose value the cell may change in place (import-bound
    /// names excluded).
    pub may_mutate: NameSet,
    /// Candidates a previous run of this code refuted: they order no later cell, but the worker
    /// still checks them (a confirmed one makes the scheduler re-run readers that ran on the
    /// old value).
    pub refuted: NameSet,
    /// Candidates among `refuted` that are only used softly (read-only pandas or numpy methods,
    /// arguments of numpy or pandas functions; [`crate::analysis::SoftUse`]), with the roots
    /// of the dotted callees they were passed to: the worker may skip checking such a value when
    /// it is a pandas or numpy object and every root is bound to a numpy or pandas module.
    pub unchecked: BTreeMap<String, NameSet>,
    /// Why the cell is a barrier; empty when it is not.
    pub barriers: Vec<Barrier>,
    /// The cells this one waits for, each with the names that tie them (empty names: ordering
    /// around a barrier).
    pub depends_on: BTreeMap<usize, NameSet>,
    /// For each name read, the cells that may provide its value, oldest first.
    pub inputs: BTreeMap<String, Vec<usize>>,
    /// Parallel level: 0 for cells that depend on nothing, else one more than the deepest
    /// dependency.
    pub wave: usize,
}

impl GraphCell {
    /// Whether the cell is a barrier.
    pub fn is_barrier(&self) -> bool {
        !self.barriers.is_empty()
    }
}

/// The dependency graph of a notebook's code cells.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Graph {
    /// One entry per code cell, in notebook order.
    pub cells: Vec<GraphCell>,
}

impl Graph {
    /// The number of parallel waves.
    pub fn waves(&self) -> usize {
        self.cells
            .iter()
            .map(|cell| cell.wave + 1)
            .max()
            .unwrap_or(0)
    }

    /// The most cells of one parallel wave, over notebooks whose waves run side by side: how
    /// many cells of a cold run may run at once.
    pub fn widest_wave(graphs: &[&Graph]) -> usize {
        let mut per_wave: Vec<usize> = Vec::new();
        for cell in graphs.iter().flat_map(|graph| &graph.cells) {
            if per_wave.len() <= cell.wave {
                per_wave.resize(cell.wave + 1, 0);
            }
            per_wave[cell.wave] += 1;
        }
        per_wave.into_iter().max().unwrap_or(0)
    }

    /// One longest chain of dependent cells, first cell first.
    pub fn critical_path(&self) -> Vec<usize> {
        let Some(mut current) =
            (0..self.cells.len()).max_by_key(|&idx| (self.cells[idx].wave, idx))
        else {
            return Vec::new();
        };
        let mut path = vec![current];
        while let Some(&previous) = self.cells[current]
            .depends_on
            .keys()
            .filter(|&&dep| self.cells[dep].wave + 1 == self.cells[current].wave)
            .max()
        {
            path.push(previous);
            current = previous;
        }
        path.reverse();
        path
    }

    /// The graphs of several notebooks as one: the cells of the first, then of the second…
    /// (indices shifted; notebooks never depend on each other).
    pub fn concat(graphs: &[&Graph]) -> Graph {
        let mut cells = Vec::new();
        for graph in graphs {
            let offset = cells.len();
            for cell in &graph.cells {
                let mut cell = cell.clone();
                cell.depends_on = cell
                    .depends_on
                    .into_iter()
                    .map(|(dep, names)| (dep + offset, names))
                    .collect();
                for providers in cell.inputs.values_mut() {
                    for provider in providers.iter_mut() {
                        *provider += offset;
                    }
                }
                cells.push(cell);
            }
        }
        Graph { cells }
    }

    /// Builds the graph from the analyses of the code cells, in notebook order.
    pub fn build(analyses: &[&CellAnalysis]) -> Graph {
        Graph::build_refined(
            analyses,
            &FxHashSet::default(),
            &FxHashSet::default(),
            &FxHashMap::default(),
        )
    }

    /// Builds the graph with what earlier runs learned: may-mutate candidates they refuted are
    /// dropped, and state probes they saw a cell touch (`(code hash, "@numpy.random")` in
    /// `learned`) become reads and writes of that code, and what they saw its code do to files
    /// (`files`) orders it among the cells touching the same files.
    pub fn build_refined(
        analyses: &[&CellAnalysis],
        refuted: &FxHashSet<(ContentHash, String)>,
        learned: &FxHashSet<(ContentHash, String)>,
        files: &FxHashMap<ContentHash, FileAccess>,
    ) -> Graph {
        let mut builder = Builder::new(analyses, refuted, learned, files);
        let cells = (0..analyses.len()).map(|idx| builder.add(idx)).collect();
        Graph { cells }
    }
}

/// The state of the notebook's namespace after the cells added so far.
struct Builder<'a> {
    analyses: &'a [&'a CellAnalysis],
    /// `(code hash, name)`: candidates refuted by an earlier run.
    refuted: &'a FxHashSet<(ContentHash, String)>,
    /// `(code hash, probe)`: state an earlier run saw the code touch.
    learned: &'a FxHashSet<(ContentHash, String)>,
    /// What an earlier run saw each code do to files.
    files: &'a FxHashMap<ContentHash, FileAccess>,
    /// Cells since the last barrier that touch files, with what they touch (`None`: the static
    /// rules say it may, and no run has told what).
    file_cells: Vec<(usize, Option<&'a FileAccess>)>,
    /// For each name, the cells that may provide its current value, oldest first.
    providers: FxHashMap<String, Vec<usize>>,
    /// For each name, the functions its current value may hold.
    carried: FxHashMap<String, Carried>,
    /// What the values provided by the last barrier may hold: any function seen before it.
    barrier_carried: Carried,
    /// Interned functions: the cell that defines one and its name there.
    functions: Vec<(usize, &'a str)>,
    function_ids: FxHashMap<(usize, &'a str), FunctionId>,
    /// The most recent barrier: it provides every name not bound since.
    last_barrier: Option<usize>,
    /// Cells since the most recent barrier (the next barrier waits for all of them).
    since_barrier: Vec<usize>,
    /// The wave of every cell added so far.
    waves: Vec<usize>,
    /// May-share relation between the current bindings (symmetric).
    shares: FxHashMap<String, FxHashSet<String>>,
    /// Cells after the last barrier that may have mutated a value the barrier provided: every
    /// name the barrier provides may share with every other, so they provide them all.
    barrier_mutators: Vec<usize>,
}

impl<'a> Builder<'a> {
    fn new(
        analyses: &'a [&'a CellAnalysis],
        refuted: &'a FxHashSet<(ContentHash, String)>,
        learned: &'a FxHashSet<(ContentHash, String)>,
        files: &'a FxHashMap<ContentHash, FileAccess>,
    ) -> Self {
        Builder {
            analyses,
            refuted,
            learned,
            files,
            file_cells: Vec::new(),
            providers: FxHashMap::default(),
            carried: FxHashMap::default(),
            barrier_carried: Arc::from([]),
            functions: Vec::new(),
            function_ids: FxHashMap::default(),
            last_barrier: None,
            since_barrier: Vec::new(),
            waves: Vec::new(),
            shares: FxHashMap::default(),
            barrier_mutators: Vec::new(),
        }
    }

    fn providers_of(&self, name: &str) -> Cow<'_, [usize]> {
        let providers: Cow<'_, [usize]> = match self.providers.get(name) {
            Some(providers) => Cow::Borrowed(providers),
            None => Cow::Owned(self.last_barrier.into_iter().collect()),
        };
        let Some(barrier) = self.last_barrier else {
            return providers;
        };
        if self.barrier_mutators.is_empty() || !providers.contains(&barrier) {
            return providers;
        }
        let mut providers = providers.into_owned();
        for &mutator in &self.barrier_mutators {
            if !providers.contains(&mutator) {
                providers.push(mutator);
            }
        }
        Cow::Owned(providers)
    }

    fn carried_by(&self, name: &str) -> Option<&Carried> {
        match self.carried.get(name) {
            Some(carried) => Some(carried),
            None if self.last_barrier.is_some() && !self.providers.contains_key(name) => {
                Some(&self.barrier_carried)
            }
            None => None,
        }
    }

    fn function_id(&mut self, cell: usize, name: &'a str) -> FunctionId {
        if let Some(&id) = self.function_ids.get(&(cell, name)) {
            return id;
        }
        let id = FunctionId::try_from(self.functions.len()).unwrap_or(FunctionId::MAX);
        self.functions.push((cell, name));
        self.function_ids.insert((cell, name), id);
        id
    }

    fn summary(&self, id: FunctionId) -> Option<(&'a str, &'a FunctionSummary)> {
        let &(cell, name) = self.functions.get(id as usize)?;
        self.analyses[cell]
            .functions
            .get(name)
            .map(|summary| (name, summary))
    }

    /// `names` and every name that may share an object with one of them (transitively).
    fn sharing_closure(&self, names: &NameSet) -> NameSet {
        let mut closure = names.clone();
        let mut queue: Vec<&String> = names.iter().collect();
        while let Some(name) = queue.pop() {
            if let Some(shared) = self.shares.get(name) {
                for other in shared {
                    if closure.insert(other.clone()) {
                        queue.push(other);
                    }
                }
            }
        }
        closure
    }

    fn add(&mut self, idx: usize) -> GraphCell {
        let analyses = self.analyses;
        let analysis = analyses[idx];
        let mut barriers = analysis.barriers.clone();
        let mut reads = NameSet::new();
        let mut writes = analysis.writes.clone();
        let mut mutates = analysis.may_mutate.clone();
        let mut carried_here: FxHashSet<FunctionId> = FxHashSet::default();
        // Candidates only because a function body called them.
        let mut called_in_bodies = NameSet::new();
        let mut mutated_otherwise = NameSet::new();
        for name in analysis.functions.keys() {
            let id = self.function_id(idx, name);
            carried_here.insert(id);
        }

        // Expand reads through the functions they name or carry, as bound at this cell.
        let mut queue: Vec<&str> = analysis.reads.iter().map(String::as_str).collect();
        // Ambient library settings (styles, options, the working directory…) set by an earlier
        // cell shape every later cell's output.
        for probe in probes::AMBIENT {
            if !self.providers_of(probe).is_empty() {
                queue.push(probe);
            }
        }
        // What an earlier run saw this code change though the analysis did not: library state
        // (a probe: read and written) or a value reached through a shared object (a
        // may-mutate candidate from now on).
        let mut learned_here = NameSet::new();
        for (code, name) in self.learned {
            if *code != analysis.code_hash {
                continue;
            }
            learned_here.insert(name.clone());
            queue.push(name);
            if probes::is_probe(name) {
                writes.insert(name.clone());
            } else {
                mutates.insert(name.clone());
            }
        }
        let mut seen_names: FxHashSet<&str> = FxHashSet::default();
        let mut expanded: FxHashSet<FunctionId> = FxHashSet::default();
        while let Some(name) = queue.pop() {
            if !seen_names.insert(name) {
                continue;
            }
            let providers = self.providers_of(name).into_owned();
            if providers.is_empty() {
                // A builtin, or a name nothing defines (the cell will fail as it would in order).
                continue;
            }
            reads.insert(name.to_string());
            let mut functions: Vec<FunctionId> = Vec::new();
            for provider in providers {
                if let Some((defined, _)) = analyses[provider].functions.get_key_value(name) {
                    functions.push(self.function_id(provider, defined));
                }
            }
            if let Some(carried) = self.carried_by(name) {
                functions.extend(carried.iter().copied());
            }
            for id in functions {
                carried_here.insert(id);
                if !expanded.insert(id) {
                    continue;
                }
                let Some((function, summary)) = self.summary(id) else {
                    continue;
                };
                queue.extend(summary.reads.iter().map(String::as_str));
                writes.extend(summary.writes.iter().cloned());
                for name in &summary.mutates {
                    if summary.calls.contains(name) {
                        called_in_bodies.insert(name.clone());
                    } else {
                        mutated_otherwise.insert(name.clone());
                    }
                    mutates.insert(name.clone());
                }
                if summary.dynamic {
                    let shown = if function == ANONYMOUS {
                        "a lambda".to_string()
                    } else {
                        format!("{function}()")
                    };
                    barriers.push(Barrier::DynamicCall(shown));
                }
            }
        }

        // The static rules' mark for file access is not a value: it orders cells below.
        let suspected = reads.remove(probes::FILES) | writes.remove(probes::FILES);

        // IPython's output history (`_`, `Out[3]`, `_i2`…) is not a variable any cell binds:
        // a cell reading it, when no cell defines the name, cannot be analysed.
        for name in &analysis.reads {
            if is_ipython_history(name) && self.providers_of(name).is_empty() {
                barriers.push(Barrier::History(name.clone()));
            }
        }
        let is_barrier = !barriers.is_empty();
        let mut depends_on: BTreeMap<usize, NameSet> = BTreeMap::new();
        let mut inputs = BTreeMap::new();
        if is_barrier {
            // Reads and writes everything; runs after every earlier cell and before every later one.
            reads.extend(self.providers.keys().cloned());
            for &earlier in self.since_barrier.iter().chain(self.last_barrier.iter()) {
                depends_on.entry(earlier).or_default();
            }
            for carried in self.carried.values() {
                carried_here.extend(carried.iter().copied());
            }
            carried_here.extend(self.barrier_carried.iter().copied());
        } else if let Some(barrier) = self.last_barrier {
            depends_on.entry(barrier).or_default();
        }
        for name in &reads {
            let providers = self.providers_of(name).into_owned();
            for &provider in &providers {
                depends_on.entry(provider).or_default().insert(name.clone());
            }
            inputs.insert(name.clone(), providers);
        }

        // Import-bound names are not candidates: modules are the state probes' business.
        let is_module = |name: &String| {
            let providers = self.providers_of(name);
            !providers.is_empty()
                && providers
                    .iter()
                    .all(|&provider| analyses[provider].imports.contains(name))
        };
        let all_candidates: NameSet = mutates
            .into_iter()
            .filter(|name| {
                // A name the cell binds afresh before touching it holds no earlier value.
                let fresh =
                    analysis.definite_writes.contains(name) && !analysis.reads.contains(name);
                // Calling a plainly defined function or class with no state of its own
                // changes nothing of it (what its body changes is in its summary).
                let changed_in_cell =
                    analysis.may_mutate.contains(name) && !analysis.called_only.contains(name);
                let only_called = (analysis.called_only.contains(name)
                    || called_in_bodies.contains(name))
                    && !changed_in_cell
                    && !mutated_otherwise.contains(name);
                let plain_call = only_called && {
                    let providers = self.providers_of(name);
                    !providers.is_empty()
                        && providers.iter().all(|&provider| {
                            analyses[provider]
                                .functions
                                .get(name)
                                .is_some_and(|summary| !summary.stateful)
                        })
                };
                !fresh && !plain_call && !self.providers_of(name).is_empty() && !is_module(name)
            })
            .collect();
        // Candidates only used softly (`df.groupby(…)`, `np.column_stack([a, b])`) order
        // nothing, as long as the dotted callees they went through are modules and no run saw
        // this code change them (nor do functions it calls change them).
        let soft: BTreeMap<String, &crate::analysis::SoftUse> = all_candidates
            .iter()
            .filter_map(|name| {
                let soft = analysis.soft_mutations.get(name)?;
                let summaries = mutated_otherwise.contains(name) || called_in_bodies.contains(name);
                let modules = soft.modules.iter().all(&is_module);
                (!summaries && !learned_here.contains(name) && modules)
                    .then(|| (name.clone(), soft))
            })
            .collect();
        let unchecked: BTreeMap<String, NameSet> = soft
            .iter()
            .filter(|(_, soft)| !soft.argument && soft.modules_or_objects.iter().all(&is_module))
            .map(|(name, soft)| {
                let roots = soft
                    .modules
                    .iter()
                    .chain(&soft.modules_or_objects)
                    .cloned()
                    .collect();
                (name.clone(), roots)
            })
            .collect();
        // Candidates an earlier run of this very code refuted order nothing (the worker still
        // checks them; a confirmed one re-runs its readers).
        let (refuted, candidates): (NameSet, NameSet) =
            all_candidates.into_iter().partition(|name| {
                soft.contains_key(name)
                    || self.refuted.contains(&(analysis.code_hash, name.clone()))
            });
        // A mutation through one name is seen through every name sharing the object.
        let closure = |names: &NameSet| -> NameSet {
            if is_barrier {
                return names.clone();
            }
            self.sharing_closure(names)
                .into_iter()
                .filter(|name| !is_module(name) && !self.providers_of(name).is_empty())
                .collect()
        };
        let may_mutate = closure(&candidates);
        // The cell reads what it may mutate, refuted or not: refinement changes the order of
        // cells, never what a cell reads (so it never changes a key).
        let refuted_closure = closure(&refuted);
        for name in may_mutate.iter().chain(&refuted_closure) {
            if reads.insert(name.clone()) {
                let providers = self.providers_of(name).into_owned();
                for &provider in &providers {
                    depends_on.entry(provider).or_default().insert(name.clone());
                }
                inputs.insert(name.clone(), providers);
            }
        }

        // Files are shared state no variable carries: cells touching the same files keep their
        // notebook order (`FILES` marks what the static rules suspect; what a run saw wins).
        if !is_barrier {
            let known = self.files.get(&analysis.code_hash);
            let touches = match known {
                Some(access) => !access.is_empty(),
                None => suspected,
            };
            if touches {
                for &(earlier, access) in self.file_cells.iter().rev() {
                    let ordered = match (known, access) {
                        (Some(mine), Some(theirs)) => theirs.conflict(mine).is_some(),
                        _ => true,
                    };
                    if ordered {
                        depends_on.entry(earlier).or_default();
                    }
                    if access.is_none() {
                        break; // that one waits for everything before it
                    }
                }
                self.file_cells.push((idx, known));
            }
        } else {
            self.file_cells.clear();
        }

        let wave = depends_on
            .keys()
            .map(|&dep| self.waves.get(dep).copied().unwrap_or(0))
            .max()
            .map_or(0, |wave| wave + 1);
        let cell = GraphCell {
            reads,
            writes,
            may_mutate,
            refuted,
            unchecked,
            barriers,
            depends_on,
            inputs,
            wave,
        };
        let mut carried: Vec<FunctionId> = carried_here.into_iter().collect();
        carried.sort_unstable();
        self.record(idx, &cell, Arc::from(carried));
        cell
    }

    /// Updates the namespace state with what cell `idx` leaves behind.
    fn record(&mut self, idx: usize, cell: &GraphCell, carried: Carried) {
        let analysis = self.analyses[idx];
        self.waves.push(cell.wave);
        if cell.is_barrier() {
            self.providers.clear();
            self.carried.clear();
            self.shares.clear();
            self.barrier_mutators.clear();
            self.barrier_carried = carried;
            self.last_barrier = Some(idx);
            self.since_barrier.clear();
            return;
        }
        self.since_barrier.push(idx);
        if let Some(barrier) = self.last_barrier {
            let touches_barrier_value = cell
                .may_mutate
                .iter()
                .any(|name| self.providers_of(name).contains(&barrier));
            if touches_barrier_value {
                self.barrier_mutators.push(idx);
            }
        }
        self.record_sharing(analysis);
        for name in cell.writes.iter().chain(&cell.may_mutate) {
            let definite = analysis.definite_writes.contains(name) && cell.writes.contains(name);
            // Library state (a probe) holds no notebook function.
            let carried = if probes::is_probe(name) {
                Arc::from([])
            } else {
                carried.clone()
            };
            let previous_carried = self.carried_by(name).cloned();
            let previous_providers = self.providers_of(name).into_owned();
            if definite {
                self.providers.insert(name.clone(), vec![idx]);
                self.carried.insert(name.clone(), carried.clone());
            } else {
                let mut providers = previous_providers;
                if !providers.contains(&idx) {
                    providers.push(idx);
                }
                self.providers.insert(name.clone(), providers);
                let merged = match previous_carried {
                    Some(previous) => union(&previous, &carried),
                    None => carried.clone(),
                };
                self.carried.insert(name.clone(), merged);
            }
        }
        // A refuted candidate orders nothing, but what its value may carry stays as if it
        // were one, so refinement never changes which names later cells read.
        for name in &cell.refuted {
            if let Some(previous) = self.carried_by(name).cloned() {
                self.carried
                    .insert(name.clone(), union(&previous, &carried));
            }
        }
    }
}

/// Names IPython binds to its input and output history.
fn is_ipython_history(name: &str) -> bool {
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|byte| byte.is_ascii_digit()))
    };
    matches!(
        name,
        "_" | "__" | "___" | "In" | "Out" | "_oh" | "_ih" | "_dh" | "_i" | "_ii" | "_iii"
    ) || numbered("_")
        || numbered("_i")
}

fn union(a: &Carried, b: &Carried) -> Carried {
    if a.is_empty() || Arc::ptr_eq(a, b) {
        return b.clone();
    }
    if b.is_empty() {
        return a.clone();
    }
    let mut merged: Vec<FunctionId> = a.iter().chain(b.iter()).copied().collect();
    merged.sort_unstable();
    merged.dedup();
    Arc::from(merged)
}

impl Builder<'_> {
    /// Plain aliasing statements (`b = a`) make the two names share an object from now on;
    /// a definite rebinding ends the sharing of the old value.
    fn record_sharing(&mut self, analysis: &CellAnalysis) {
        for name in &analysis.definite_writes {
            if let Some(old) = self.shares.remove(name) {
                for other in old {
                    if let Some(set) = self.shares.get_mut(&other) {
                        set.remove(name);
                    }
                }
            }
        }
        for (name, source) in &analysis.aliases {
            if analysis.imports.contains(source) {
                continue;
            }
            self.shares
                .entry(name.clone())
                .or_default()
                .insert(source.clone());
            self.shares
                .entry(source.clone())
                .or_default()
                .insert(name.clone());
        }
    }
}

#[cfg(test)]
mod tests;
