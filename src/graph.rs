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

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::analysis::{ANONYMOUS, Barrier, CellAnalysis, FunctionSummary, NameSet};

/// A function known to the graph: the cell that defines it and its name there.
type FunctionRef = (usize, String);

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

    /// Builds the graph from the analyses of the code cells, in notebook order.
    pub fn build(analyses: &[&CellAnalysis]) -> Graph {
        let mut builder = Builder::default();
        let cells = analyses
            .iter()
            .enumerate()
            .map(|(idx, analysis)| builder.add(idx, analyses, analysis))
            .collect();
        Graph { cells }
    }
}

/// The state of the notebook's namespace after the cells added so far.
#[derive(Default)]
struct Builder {
    /// For each name, the cells that may provide its current value, oldest first.
    providers: FxHashMap<String, Vec<usize>>,
    /// For each name, the functions its current value may hold.
    carried: FxHashMap<String, BTreeSet<FunctionRef>>,
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

impl Builder {
    fn providers_of(&self, name: &str) -> Vec<usize> {
        let mut providers = match self.providers.get(name) {
            Some(providers) => providers.clone(),
            None => self.last_barrier.into_iter().collect(),
        };
        if self
            .last_barrier
            .is_some_and(|barrier| providers.contains(&barrier))
        {
            for &mutator in &self.barrier_mutators {
                if !providers.contains(&mutator) {
                    providers.push(mutator);
                }
            }
        }
        providers
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

    /// The summary of a function `name` as provided by cell `provider`, if it defines one.
    fn summary<'a>(
        analyses: &[&'a CellAnalysis],
        provider: usize,
        name: &str,
    ) -> Option<&'a FunctionSummary> {
        analyses[provider].functions.get(name)
    }

    fn add(
        &mut self,
        idx: usize,
        analyses: &[&CellAnalysis],
        analysis: &CellAnalysis,
    ) -> GraphCell {
        let mut barriers = analysis.barriers.clone();
        let mut reads = NameSet::new();
        let mut writes = analysis.writes.clone();
        let mut mutates = analysis.may_mutate.clone();
        let mut carried_here: BTreeSet<FunctionRef> = analysis
            .functions
            .keys()
            .map(|name| (idx, name.clone()))
            .collect();

        // Expand reads through the functions they name or carry, as bound at this cell.
        let mut queue: Vec<String> = analysis.reads.iter().cloned().collect();
        let mut seen_functions: FxHashSet<FunctionRef> = FxHashSet::default();
        let mut seen_names: FxHashSet<String> = FxHashSet::default();
        while let Some(name) = queue.pop() {
            if !seen_names.insert(name.clone()) {
                continue;
            }
            let providers = self.providers_of(&name);
            if providers.is_empty() {
                // A builtin, or a name nothing defines (the cell will fail as it would in order).
                continue;
            }
            reads.insert(name.clone());
            let mut functions: Vec<FunctionRef> = providers
                .iter()
                .filter(|&&provider| Self::summary(analyses, provider, &name).is_some())
                .map(|&provider| (provider, name.clone()))
                .collect();
            if let Some(carried) = self.carried.get(&name) {
                functions.extend(carried.iter().cloned());
            }
            for function in functions {
                if !seen_functions.insert(function.clone()) {
                    continue;
                }
                let Some(summary) = Self::summary(analyses, function.0, &function.1) else {
                    continue;
                };
                queue.extend(summary.reads.iter().cloned());
                writes.extend(summary.writes.iter().cloned());
                mutates.extend(summary.mutates.iter().cloned());
                if summary.dynamic {
                    let shown = if function.1 == ANONYMOUS {
                        "a lambda".to_string()
                    } else {
                        format!("{}()", function.1)
                    };
                    barriers.push(Barrier::DynamicCall(shown));
                }
                carried_here.insert(function);
            }
            if let Some(carried) = self.carried.get(&name) {
                carried_here.extend(carried.iter().cloned());
            }
        }

        let is_barrier = !barriers.is_empty();
        let mut depends_on: BTreeMap<usize, NameSet> = BTreeMap::new();
        let mut inputs = BTreeMap::new();
        if is_barrier {
            // Reads and writes everything; runs after every earlier cell and before every later one.
            let mut everything: NameSet = self.providers.keys().cloned().collect();
            everything.extend(reads);
            reads = everything;
            for &earlier in self.since_barrier.iter().chain(self.last_barrier.iter()) {
                depends_on.entry(earlier).or_default();
            }
            for carried in self.carried.values() {
                carried_here.extend(carried.iter().cloned());
            }
        } else if let Some(barrier) = self.last_barrier {
            depends_on.entry(barrier).or_default();
        }
        for name in &reads {
            let providers = self.providers_of(name);
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
        let candidates: NameSet = mutates
            .into_iter()
            .filter(|name| {
                // A name the cell binds afresh before touching it holds no earlier value.
                let fresh =
                    analysis.definite_writes.contains(name) && !analysis.reads.contains(name);
                !fresh && !self.providers_of(name).is_empty() && !is_module(name)
            })
            .collect();
        // A mutation through one name is seen through every name sharing the object.
        let may_mutate: NameSet = if is_barrier {
            candidates
        } else {
            self.sharing_closure(&candidates)
                .into_iter()
                .filter(|name| !is_module(name) && !self.providers_of(name).is_empty())
                .collect()
        };
        for name in &may_mutate {
            if reads.insert(name.clone()) {
                let providers = self.providers_of(name);
                for &provider in &providers {
                    depends_on.entry(provider).or_default().insert(name.clone());
                }
                inputs.insert(name.clone(), providers);
            }
        }

        let wave = depends_on
            .keys()
            .map(|&dep| self.wave_of(dep))
            .max()
            .map_or(0, |wave| wave + 1);
        let cell = GraphCell {
            reads,
            writes,
            may_mutate,
            barriers,
            depends_on,
            inputs,
            wave,
        };
        self.record(idx, analysis, &cell, carried_here);
        cell
    }

    fn wave_of(&self, idx: usize) -> usize {
        self.waves.get(idx).copied().unwrap_or(0)
    }

    /// Updates the namespace state with what cell `idx` leaves behind.
    fn record(
        &mut self,
        idx: usize,
        analysis: &CellAnalysis,
        cell: &GraphCell,
        carried: BTreeSet<FunctionRef>,
    ) {
        self.waves.push(cell.wave);
        if cell.is_barrier() {
            self.providers.clear();
            self.shares.clear();
            self.barrier_mutators.clear();
            self.last_barrier = Some(idx);
            self.since_barrier.clear();
            for value in self.carried.values_mut() {
                value.extend(carried.iter().cloned());
            }
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
        for name in &cell.writes {
            let providers = self
                .providers
                .entry(name.clone())
                .or_insert_with(|| self.last_barrier.into_iter().collect());
            let carried_by_name = self.carried.entry(name.clone()).or_default();
            if analysis.definite_writes.contains(name) {
                *providers = vec![idx];
                carried_by_name.clone_from(&carried);
            } else {
                if !providers.contains(&idx) {
                    providers.push(idx);
                }
                carried_by_name.extend(carried.iter().cloned());
            }
        }
        for name in &cell.may_mutate {
            let providers = self
                .providers
                .entry(name.clone())
                .or_insert_with(|| self.last_barrier.into_iter().collect());
            if !providers.contains(&idx) {
                providers.push(idx);
            }
            self.carried
                .entry(name.clone())
                .or_default()
                .extend(carried.iter().cloned());
        }
    }
}

impl Builder {
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
