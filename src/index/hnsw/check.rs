//! The graph checker: [`HnswIndex::check`](super::HnswIndex::check).
//!
//! It reads every link record of every node in use and reports what a
//! well-formed graph never holds: links out of range or to free slots,
//! self-links, duplicate links, lists longer than their level's maximum,
//! links to nodes that do not reach the level, an entry point that is not
//! on the top level, and nodes a search cannot reach from the entry point
//! on each level. It never panics, whatever the graph holds (a file's
//! links are not trusted).

use std::collections::VecDeque;
use std::fmt;

use super::graph::Graph;
use super::space::Space;
use crate::store::LinkArena;

/// One defect the checker found. Labels name nodes; `target` is the slot
/// a link holds where that slot has no label to report.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraphProblem {
    /// A link to a slot at or past the number of slots in use.
    LinkOutOfRange {
        /// The node holding the link.
        label: u64,
        /// The level of the list.
        level: usize,
        /// The slot the link names.
        target: u32,
    },
    /// A link to a slot that holds no node (removed and free for reuse, or
    /// claimed by an insert that never finished).
    LinkToFreeSlot {
        /// The node holding the link.
        label: u64,
        /// The level of the list.
        level: usize,
        /// The slot the link names.
        target: u32,
    },
    /// A node links to itself.
    SelfLink {
        /// The node.
        label: u64,
        /// The level of the list.
        level: usize,
    },
    /// A list names the same node twice.
    DuplicateLink {
        /// The node holding the list.
        label: u64,
        /// The level of the list.
        level: usize,
        /// The node named twice.
        target: u64,
    },
    /// A list holds more links than its level allows.
    DegreeOverMax {
        /// The node.
        label: u64,
        /// The level.
        level: usize,
        /// Links in the list.
        degree: usize,
        /// The level's maximum (`M0` on level 0, `M` above).
        max: usize,
    },
    /// A link on `level` to a node whose top level is below `level`.
    LinkBelowLevel {
        /// The node holding the link.
        label: u64,
        /// The level of the list.
        level: usize,
        /// The node linked to.
        target: u64,
        /// That node's top level.
        target_level: usize,
    },
    /// A node's upper-level record lies outside the upper-link arena.
    MissingRecord {
        /// The node.
        label: u64,
        /// The level whose record is missing.
        level: usize,
    },
    /// The entry point is not a node in use, or not on the top level, or
    /// the index has nodes but no entry point.
    BadEntryPoint {
        /// What is wrong.
        reason: String,
    },
    /// The count of lists holding a node that the index keeps (to find
    /// them on removal) differs from the lists that do.
    InboundMiscounted {
        /// The node.
        label: u64,
        /// The level.
        level: usize,
        /// What the index counted.
        counted: u32,
        /// Lists that hold it.
        actual: u32,
    },
    /// A node on `level` that no path of `level` links leads to from the
    /// entry point: a search never finds it there.
    Unreachable {
        /// The node.
        label: u64,
        /// The level.
        level: usize,
    },
}

impl fmt::Display for GraphProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphProblem::LinkOutOfRange {
                label,
                level,
                target,
            } => write!(
                f,
                "label {label} level {level}: link to slot {target}, out of range"
            ),
            GraphProblem::LinkToFreeSlot {
                label,
                level,
                target,
            } => write!(
                f,
                "label {label} level {level}: link to free slot {target}"
            ),
            GraphProblem::SelfLink { label, level } => {
                write!(f, "label {label} level {level}: links to itself")
            }
            GraphProblem::DuplicateLink {
                label,
                level,
                target,
            } => write!(
                f,
                "label {label} level {level}: links to label {target} twice"
            ),
            GraphProblem::DegreeOverMax {
                label,
                level,
                degree,
                max,
            } => write!(
                f,
                "label {label} level {level}: {degree} links, more than the maximum {max}"
            ),
            GraphProblem::LinkBelowLevel {
                label,
                level,
                target,
                target_level,
            } => write!(
                f,
                "label {label} level {level}: links to label {target}, whose top level is {target_level}"
            ),
            GraphProblem::MissingRecord { label, level } => write!(
                f,
                "label {label}: the level-{level} link record lies outside the upper-link arena"
            ),
            GraphProblem::BadEntryPoint { reason } => write!(f, "entry point: {reason}"),
            GraphProblem::InboundMiscounted {
                label,
                level,
                counted,
                actual,
            } => write!(
                f,
                "label {label} level {level}: {actual} lists hold it, {counted} counted"
            ),
            GraphProblem::Unreachable { label, level } => write!(
                f,
                "label {label} is not reachable from the entry point on level {level}"
            ),
        }
    }
}

/// Per-level counts from [`GraphReport`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LevelReport {
    /// Nodes whose top level is at or above this level.
    pub nodes: usize,
    /// Of those, the ones a walk over this level's links reaches from the
    /// entry point.
    pub reachable: usize,
    /// Links on this level, summed over its nodes.
    pub links: usize,
}

/// What [`HnswIndex::check`](super::HnswIndex::check) found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphReport {
    /// Nodes in the graph (live, marked deleted or retired; free slots
    /// excluded).
    pub nodes: usize,
    /// Nodes marked deleted (they still route searches).
    pub deleted: usize,
    /// Nodes removed but not yet unlinked (they still route searches, are
    /// never returned, and have no label; see `HnswIndex::remove`).
    pub retired: usize,
    /// Free slots (removed nodes, awaiting reuse).
    pub free: usize,
    /// Counts per level, level 0 first.
    pub levels: Vec<LevelReport>,
    /// Every defect found, in slot order, then unreachable nodes by level.
    pub problems: Vec<GraphProblem>,
}

impl GraphReport {
    /// Whether the graph has no defect.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Nodes unreachable on level 0: the ones no search can return.
    pub fn unreachable(&self) -> usize {
        self.levels.first().map_or(0, |l| l.nodes - l.reachable)
    }
}

impl fmt::Display for GraphReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} nodes ({} marked deleted, {} removed awaiting unlinking), {} free slots",
            self.nodes, self.deleted, self.retired, self.free
        )?;
        for (l, lv) in self.levels.iter().enumerate() {
            writeln!(
                f,
                "level {l}: {} nodes, {} reachable, {} links",
                lv.nodes, lv.reachable, lv.links
            )?;
        }
        if self.problems.is_empty() {
            write!(f, "no problems found")
        } else {
            writeln!(f, "{} problems:", self.problems.len())?;
            const SHOWN: usize = 20;
            for p in self.problems.iter().take(SHOWN) {
                writeln!(f, "  {p}")?;
            }
            if self.problems.len() > SHOWN {
                writeln!(f, "  ... and {} more", self.problems.len() - SHOWN)?;
            }
            Ok(())
        }
    }
}

impl<S: Space> Graph<S> {
    /// Reads the raw ids of `slot`'s list on `level`, unfiltered; `None`
    /// when the record lies outside its arena.
    fn raw_links(&self, slot: u32, level: usize, out: &mut Vec<u32>) -> Option<()> {
        out.clear();
        let (arena, rec) = if level == 0 {
            (&self.links0, slot as usize)
        } else {
            let first = *self.upper_offset.get(slot as usize)? as usize;
            (&self.upper, first.checked_add(level - 1)?)
        };
        if rec >= arena.records() {
            return None;
        }
        for e in arena.record(rec) {
            let id = e.load(std::sync::atomic::Ordering::Acquire);
            if id == LinkArena::EMPTY {
                break;
            }
            out.push(id);
        }
        Some(())
    }

    /// The checker behind [`HnswIndex::check`](super::HnswIndex::check).
    /// Meaningful when no insert runs (it reads a snapshot link by link).
    pub(crate) fn check(&self) -> GraphReport {
        let len = self.len().min(self.capacity());
        let mut report = GraphReport::default();
        let in_use = |s: u32| (s as usize) < len && self.in_use(s);
        let level_of = |s: u32| usize::from(self.levels[s as usize]);
        // The top level of the nodes that hold labels: a retired node may
        // sit above it until it is unlinked, and routes nothing up there.
        let mut top = 0usize;
        let mut top_all = 0usize;
        for s in 0..len as u32 {
            if !self.in_use(s) {
                report.free += 1;
                continue;
            }
            report.nodes += 1;
            if self.is_retired(s) {
                report.retired += 1;
            } else if self.is_deleted(s) {
                report.deleted += 1;
            }
            top_all = top_all.max(level_of(s));
            if !self.is_retired(s) {
                top = top.max(level_of(s));
            }
        }
        if report.nodes > 0 {
            report.levels = vec![LevelReport::default(); top_all + 1];
        }
        let mut ids = Vec::new();
        let mut seen = Vec::new();
        for s in 0..len as u32 {
            if !in_use(s) {
                continue;
            }
            let label = self.label(s);
            for level in 0..=level_of(s) {
                report.levels[level].nodes += 1;
                if self.raw_links(s, level, &mut ids).is_none() {
                    report
                        .problems
                        .push(GraphProblem::MissingRecord { label, level });
                    continue;
                }
                report.levels[level].links += ids.len();
                let max = if level == 0 {
                    self.params.m0
                } else {
                    self.params.m
                };
                if ids.len() > max {
                    report.problems.push(GraphProblem::DegreeOverMax {
                        label,
                        level,
                        degree: ids.len(),
                        max,
                    });
                }
                seen.clear();
                for &t in &ids {
                    if t as usize >= len {
                        report.problems.push(GraphProblem::LinkOutOfRange {
                            label,
                            level,
                            target: t,
                        });
                        continue;
                    }
                    if !self.in_use(t) {
                        report.problems.push(GraphProblem::LinkToFreeSlot {
                            label,
                            level,
                            target: t,
                        });
                        continue;
                    }
                    if t == s {
                        report
                            .problems
                            .push(GraphProblem::SelfLink { label, level });
                        continue;
                    }
                    if seen.contains(&t) {
                        report.problems.push(GraphProblem::DuplicateLink {
                            label,
                            level,
                            target: self.label(t),
                        });
                        continue;
                    }
                    seen.push(t);
                    if level_of(t) < level {
                        report.problems.push(GraphProblem::LinkBelowLevel {
                            label,
                            level,
                            target: self.label(t),
                            target_level: level_of(t),
                        });
                    }
                }
            }
        }
        if report.nodes == 0 {
            if self.entry_point().is_some() {
                report.problems.push(GraphProblem::BadEntryPoint {
                    reason: "the index holds no node but names an entry point".into(),
                });
            }
            return report;
        }
        let Some((ep, ep_level)) = self.entry_point() else {
            report.problems.push(GraphProblem::BadEntryPoint {
                reason: format!("{} nodes and no entry point", report.nodes),
            });
            return report;
        };
        if !in_use(ep) {
            report.problems.push(GraphProblem::BadEntryPoint {
                reason: format!("slot {ep} holds no node"),
            });
            return report;
        }
        if ep_level != level_of(ep) || (ep_level != top && !self.is_retired(ep)) {
            report.problems.push(GraphProblem::BadEntryPoint {
                reason: format!(
                    "label {} is recorded at level {ep_level}, its own top level is {}, the graph's is {top}",
                    self.label(ep),
                    level_of(ep)
                ),
            });
        }
        // The inbound counts of a writable graph (a mapped view keeps none).
        if !self.read_only && self.locks.len() >= len {
            let mut actual: Vec<Vec<u32>> = vec![Vec::new(); len];
            for s in 0..len as u32 {
                if !in_use(s) {
                    continue;
                }
                actual[s as usize] = vec![0; level_of(s) + 1];
            }
            for s in 0..len as u32 {
                if !in_use(s) {
                    continue;
                }
                for level in 0..=level_of(s) {
                    if self.raw_links(s, level, &mut ids).is_none() {
                        continue;
                    }
                    for &t in &ids {
                        if let Some(c) = actual.get_mut(t as usize).and_then(|a| a.get_mut(level)) {
                            *c += 1;
                        }
                    }
                }
            }
            for s in 0..len as u32 {
                for (level, &a) in actual[s as usize].iter().enumerate() {
                    let counted = self.inbound(s, level);
                    if counted != a {
                        report.problems.push(GraphProblem::InboundMiscounted {
                            label: self.label(s),
                            level,
                            counted,
                            actual: a,
                        });
                    }
                }
            }
        }
        // Breadth-first walks from the entry point, one per level, over the
        // links a search follows on that level.
        let mut reached = vec![u32::MAX; len];
        let mut queue = VecDeque::new();
        for level in 0..=top.min(level_of(ep)) {
            reached[ep as usize] = level as u32;
            queue.push_back(ep);
            let mut count = 1;
            while let Some(s) = queue.pop_front() {
                if self.raw_links(s, level, &mut ids).is_none() {
                    continue;
                }
                for &t in &ids {
                    if in_use(t) && level_of(t) >= level && reached[t as usize] != level as u32 {
                        reached[t as usize] = level as u32;
                        count += 1;
                        queue.push_back(t);
                    }
                }
            }
            report.levels[level].reachable = count;
            for s in 0..len as u32 {
                if in_use(s) && level_of(s) >= level && reached[s as usize] != level as u32 {
                    report.problems.push(GraphProblem::Unreachable {
                        label: self.label(s),
                        level,
                    });
                }
            }
        }
        report
    }
}
