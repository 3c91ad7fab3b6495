//! The scrubber's multi-pattern automaton: Aho–Corasick with the per-state facts that the
//! streaming rules need.
//!
//! Written here rather than taken from the `aho-corasick` crate because the scrubber needs what
//! that crate does not expose: each state's depth and failure link (to hold back exactly the
//! bytes that may still start an occurrence), and for each state whether a strong or a weak
//! pattern may still complete from it (weak patterns only count after a token boundary).
//!
//! Layout: states are numbered in breadth-first order. States that branch, end a pattern or
//! lie near the root have a full transition row over byte classes (in breadth-first order, as
//! many as [`DENSE_BUDGET`] allows: all of them for small sets), so scanning text that stays
//! near the root costs one table lookup per byte. The rest keep sparse edges and a failure
//! link. Every transition target carries [`OUT`] when the target state ends a pattern.
//! A state with a single child (nearly every state deep in a pattern) is a *chain* state: its
//! value is [`CHAIN`] and its number, and its child is kept in two small arrays
//! (`chain_class`, `chain_next`, 6 bytes a state, which stay in cache). Reading along a
//! pattern, as near misses and long encoded forms make it do, then costs no lookup in a
//! multi-megabyte table; the other states keep the premultiplied dense rows of the hot path.
//!
//! No pattern is stored contiguously: dense rows hold only state numbers, and sparse edges
//! interleave one byte with a four-byte target.

use zeroize::{Zeroize, Zeroizing};

use super::patterns::Pattern;

/// Set on a transition target whose state ends at least one pattern.
pub(crate) const OUT: u32 = 1 << 31;
/// Set on a state value that is a sparse state's number; a dense state's value is its number
/// times the number of byte classes (its row's offset), so the hot path needs no multiply.
const SPARSE: u32 = 1 << 30;
/// Set on a state value that is a chain state's number (a state with one child).
const CHAIN: u32 = 1 << 29;
/// The number in a [`SPARSE`] or [`CHAIN`] value.
const ID: u32 = CHAIN - 1;
/// States at least this deep with one child are chain states.
const CHAIN_DEPTH: u32 = 4;
/// `chain_class` of a state that has no single child.
const NO_CHAIN: u16 = u16::MAX;
/// Skip-ahead by first-byte pairs is used while at most this many pairs start a pattern:
/// beyond that too many text positions pass the test for it to pay.
const MAX_SKIP_PAIRS: usize = 4096;
const NONE: u32 = u32::MAX;
const ROOT: u32 = 0;
/// Most dense-table entries (4 bytes each): 16 MiB.
const DENSE_BUDGET: usize = 1 << 22;
/// Most pattern bytes accepted in one set: keeps the build bounded (fail closed beyond).
pub(crate) const MAX_PATTERN_BYTES: usize = 64 << 20;

/// Why an automaton cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The patterns are too large in total.
    #[error("the secrets' patterns total {bytes} bytes; at most {max} are supported")]
    TooLarge {
        /// Total bytes asked for.
        bytes: usize,
        /// The limit.
        max: usize,
    },
}

/// A sparse edge: the byte in the low 8 bits, the (flagged) target above. Packing them into one
/// word keeps pattern bytes eight bytes apart in memory, and lets [`Zeroize`] wipe them.
#[derive(Clone, Copy, Default, Zeroize)]
struct Edge(u64);

impl Edge {
    const fn new(byte: u8, target: u32) -> Self {
        Self(((target as u64) << 8) | byte as u64)
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "the low 8 bits are the byte"
    )]
    const fn byte(self) -> u8 {
        (self.0 & 0xff) as u8
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "a target was a u32 shifted by 8"
    )]
    const fn target(self) -> u32 {
        (self.0 >> 8) as u32
    }
}

/// What the streaming layer needs to know of a pattern.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PatInfo {
    pub(crate) len: u32,
    pub(crate) secret: u32,
    pub(crate) weak: bool,
}

#[derive(Clone, Copy)]
struct Node {
    fail: u32,
    depth: u32,
    /// Next state on the failure chain that ends a pattern.
    dict: u32,
    edges: (u32, u32),
    out: (u32, u32),
    /// Lowest secret index of a strong pattern strictly longer than this state's string that
    /// begins with it; `NONE` if there is none.
    strong_proper: u32,
    /// Same for weak patterns, including one that ends exactly here.
    weak_incl: u32,
    /// Same for weak patterns strictly longer.
    weak_proper: u32,
}

/// The automaton. Immutable once built; shared by every stream.
pub(crate) struct Automaton {
    class: [u16; 256],
    nclasses: usize,
    dense: Vec<u32>,
    /// Per state: its value ([`state_value`]), which is its row's offset when it has a row.
    values: Vec<u32>,
    /// Per row (offset / `nclasses`): the state it belongs to.
    row_owner: Vec<u32>,
    nodes: Vec<Node>,
    sparse: Vec<Edge>,
    /// Per state: the byte class of its only child's edge, or [`NO_CHAIN`].
    chain_class: Vec<u16>,
    /// Per state: that child's (flagged) state value.
    chain_next: Vec<u32>,
    outputs: Vec<u32>,
    pats: Vec<PatInfo>,
    longest: usize,
    shortest: usize,
    /// Entry `(a << 8) | b` is 1 when some pattern starts with bytes `a, b` (a byte per pair:
    /// no shift or mask in the skip loop's test).
    pairs: Option<Box<[u8]>>,
    /// How many first pairs there are.
    pair_count: usize,
}

/// A trie under construction. Each node's children are a list threaded through `first` and
/// `sibling`, rather than a `Vec` per node: most nodes have one child, and a small `Vec` each
/// (its allocation, its growth, its wiping when freed) was the larger part of building. The
/// root's children, where most failure walks end, are also kept by byte.
struct Trie {
    /// Per node: its child added last, or [`NONE`].
    first: Vec<u32>,
    /// Per node: the child of the same parent added before it, or [`NONE`].
    sibling: Vec<u32>,
    /// Per node: the byte on the edge into it (pattern bytes: wiped when dropped).
    byte: Zeroizing<Vec<u8>>,
    depth: Vec<u32>,
    ends: Vec<Vec<u32>>,
    /// The root's child on each byte, or [`NONE`].
    root: Box<[u32; 256]>,
}

impl Trie {
    fn child(&self, node: u32, byte: u8) -> Option<u32> {
        if node == ROOT {
            let child = self.root[usize::from(byte)];
            return (child != NONE).then_some(child);
        }
        let mut child = self.first[node as usize];
        while child != NONE {
            if self.byte[child as usize] == byte {
                return Some(child);
            }
            child = self.sibling[child as usize];
        }
        None
    }

    fn add_child(&mut self, node: u32, byte: u8) -> u32 {
        let child = idx(self.first.len());
        self.first.push(NONE);
        self.sibling.push(self.first[node as usize]);
        self.byte.push(byte);
        self.depth.push(self.depth[node as usize] + 1);
        self.ends.push(Vec::new());
        self.first[node as usize] = child;
        if node == ROOT {
            self.root[usize::from(byte)] = child;
        }
        child
    }

    /// `node`'s children as `(byte, node)` in byte order, into `out` (cleared first).
    fn children_into(&self, node: u32, out: &mut Vec<(u8, u32)>) {
        out.clear();
        let mut child = self.first[node as usize];
        while child != NONE {
            out.push((self.byte[child as usize], child));
            child = self.sibling[child as usize];
        }
        out.sort_unstable_by_key(|&(b, _)| b);
    }
}

/// Checked conversion of an index that the size limits keep far below `u32::MAX`.
fn idx(n: usize) -> u32 {
    u32::try_from(n).expect("bounded by MAX_PATTERN_BYTES")
}

impl Trie {
    /// Inserts every pattern; returns the trie, the patterns' facts and the bytes used.
    fn of(patterns: &[Pattern]) -> (Self, Vec<PatInfo>, [bool; 256]) {
        let mut trie = Self {
            first: vec![NONE],
            sibling: vec![NONE],
            byte: Zeroizing::new(vec![0]),
            depth: vec![0],
            ends: vec![Vec::new()],
            root: Box::new([NONE; 256]),
        };
        let mut pats: Vec<PatInfo> = Vec::new();
        let mut used = [false; 256];
        for p in patterns {
            let mut node = ROOT;
            for &b in p.bytes.iter() {
                used[usize::from(b)] = true;
                node = match trie.child(node, b) {
                    Some(next) => next,
                    None => trie.add_child(node, b),
                };
            }
            let same = |id: &u32| {
                let q = pats[*id as usize];
                q.secret == p.secret && q.weak == p.weak
            };
            if node != ROOT && !trie.ends[node as usize].iter().any(same) {
                trie.ends[node as usize].push(idx(pats.len()));
                pats.push(PatInfo {
                    len: idx(p.bytes.len()),
                    secret: p.secret,
                    weak: p.weak,
                });
            }
        }
        (trie, pats, used)
    }

    /// Lays the trie out in breadth-first order (so a failure link always points to a lower
    /// number and the dense states are a prefix) with failure links, sparse edges and outputs.
    fn freeze(self) -> (Vec<Node>, Vec<Edge>, Vec<u32>) {
        let n = self.first.len();
        // `order` is also the breadth-first queue; the children of `order[i]`, in byte order,
        // are `kids[ranges[i]]`.
        let mut order = Vec::with_capacity(n);
        let mut renumber = vec![NONE; n];
        let mut kids: Vec<(u8, u32)> = Vec::with_capacity(n);
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(n);
        let mut scratch = Vec::new();
        order.push(ROOT);
        let mut head = 0;
        while let Some(&old) = order.get(head) {
            renumber[old as usize] = idx(head);
            head += 1;
            self.children_into(old, &mut scratch);
            ranges.push((kids.len(), kids.len() + scratch.len()));
            kids.extend_from_slice(&scratch);
            order.extend(scratch.iter().map(|&(_, t)| t));
        }
        let mut fail = vec![ROOT; n];
        for (&u, &(lo, hi)) in order.iter().zip(&ranges).skip(1) {
            for &(b, v) in &kids[lo..hi] {
                let mut f = fail[u as usize];
                fail[v as usize] = loop {
                    if let Some(t) = self.child(f, b) {
                        break t;
                    }
                    if f == ROOT {
                        break ROOT;
                    }
                    f = fail[f as usize];
                };
            }
        }
        let mut nodes = Vec::with_capacity(n);
        let mut sparse = Vec::with_capacity(kids.len());
        let mut outputs = Vec::new();
        for (&old, &(lo, hi)) in order.iter().zip(&ranges) {
            let o = old as usize;
            let edges_lo = idx(sparse.len());
            let edges = kids[lo..hi]
                .iter()
                .map(|&(b, t)| Edge::new(b, renumber[t as usize]));
            sparse.extend(edges);
            let out_lo = idx(outputs.len());
            outputs.extend_from_slice(&self.ends[o]);
            nodes.push(Node {
                fail: renumber[fail[o] as usize],
                depth: self.depth[o],
                dict: NONE,
                edges: (edges_lo, idx(sparse.len())),
                out: (out_lo, idx(outputs.len())),
                strong_proper: NONE,
                weak_incl: NONE,
                weak_proper: NONE,
            });
        }
        kids.zeroize();
        (nodes, sparse, outputs)
    }
}

/// Fills each node's dictionary link and which patterns may still complete from it.
fn annotate(nodes: &mut [Node], sparse: &[Edge], outputs: &[u32], pats: &[PatInfo]) {
    // Breadth-first order: the failure target is already done.
    for id in 1..nodes.len() {
        let f = nodes[id].fail as usize;
        nodes[id].dict = if nodes[f].out.0 < nodes[f].out.1 {
            idx(f)
        } else {
            nodes[f].dict
        };
    }
    let ending_here = |node: &Node, weak: bool| {
        outputs[node.out.0 as usize..node.out.1 as usize]
            .iter()
            .map(|&p| pats[p as usize])
            .filter(|p| p.weak == weak)
            .map(|p| p.secret)
            .min()
            .unwrap_or(NONE)
    };
    // Children (higher numbers) before parents.
    for id in (0..nodes.len()).rev() {
        let (lo, hi) = nodes[id].edges;
        let (mut strong, mut weak) = (NONE, NONE);
        for e in &sparse[lo as usize..hi as usize] {
            let child = &nodes[e.target() as usize];
            strong = strong
                .min(child.strong_proper)
                .min(ending_here(child, false));
            weak = weak.min(child.weak_incl);
        }
        let weak_here = ending_here(&nodes[id], true);
        let node = &mut nodes[id];
        node.strong_proper = strong;
        node.weak_proper = weak;
        node.weak_incl = weak.min(weak_here);
    }
}

/// Byte classes: each byte used by a pattern is its own class, the rest share class 0. Returns
/// the class of each byte and the number of classes.
fn byte_classes(used: &[bool; 256]) -> ([u16; 256], usize) {
    let mut class = [0u16; 256];
    let mut nclasses = 1;
    for b in 0..=255u8 {
        if used[usize::from(b)] {
            class[usize::from(b)] = u16::try_from(nclasses).expect("at most 257");
            nclasses += 1;
        }
    }
    (class, nclasses)
}

/// Which states get a dense row: those that are not chain states, in breadth-first order,
/// within [`DENSE_BUDGET`]. A chain state's row would only serve the bytes that leave its
/// pattern, which its failure state's row serves one step later; skipping them keeps the table
/// (and the time to build it, which every launch pays) about ten times smaller.
fn dense_rows(nodes: &[Node], nclasses: usize) -> Vec<u32> {
    let budget = (DENSE_BUDGET / nclasses).max(1);
    (0..idx(nodes.len()))
        .filter(|&id| !is_chain(&nodes[id as usize]))
        .take(budget)
        .collect()
}

/// Full transition rows (as state values) for the states in `rows`. A row starts as the row
/// of the nearest state on its failure chain that has one (complete already: failure states
/// are shallower, so earlier in breadth-first order), then the edges of the row-less states
/// passed on the way, nearest last, then the state's own edges, are written over it: a copy
/// per row rather than a search per byte class.
fn dense_table(
    nodes: &[Node],
    sparse: &[Edge],
    class: &[u16; 256],
    nclasses: usize,
    rows: &[u32],
    values: &[u32],
) -> Vec<u32> {
    let mut dense = Vec::with_capacity(rows.len() * nclasses);
    let mut passed = Vec::new();
    for (row, &id) in rows.iter().enumerate() {
        // The states whose edges go over the copied row: this one, then the row-less ones on
        // its failure chain, nearest first.
        passed.clear();
        passed.push(id);
        if id == ROOT {
            dense.resize(nclasses, values[ROOT as usize]);
        } else {
            let mut f = nodes[id as usize].fail;
            while values[f as usize] & (SPARSE | CHAIN) != 0 {
                passed.push(f);
                f = nodes[f as usize].fail;
            }
            let from = (values[f as usize] & !OUT) as usize;
            dense.extend_from_within(from..from + nclasses);
        }
        let at = row * nclasses;
        for &p in passed.iter().rev() {
            let (lo, hi) = nodes[p as usize].edges;
            for e in &sparse[lo as usize..hi as usize] {
                dense[at + usize::from(class[usize::from(e.byte())])] = values[e.target() as usize];
            }
        }
    }
    dense
}

/// Whether a state is a chain state: deep enough, with exactly one child.
fn is_chain(node: &Node) -> bool {
    node.depth >= CHAIN_DEPTH && node.edges.1 - node.edges.0 == 1
}

/// The state values: [`CHAIN`] and its number for a chain state, else its row offset when it
/// has a row, else [`SPARSE`] and its number; with [`OUT`] when it ends a pattern.
fn state_values(nodes: &[Node], rows: &[u32], nclasses: usize) -> Vec<u32> {
    let mut values: Vec<u32> = (0..idx(nodes.len())).map(|id| SPARSE | id).collect();
    // Shallow states have rows (random text wanders there, and the dense row is the fastest
    // step with no branch to mispredict); the start state keeps value 0 (the skip loop takes
    // over when a scan comes back to it).
    for (row, &id) in rows.iter().enumerate() {
        values[id as usize] = idx(row * nclasses);
    }
    for (id, node) in nodes.iter().enumerate() {
        if is_chain(node) {
            values[id] = CHAIN | idx(id);
        }
        if node.out.0 < node.out.1 || node.dict != NONE {
            values[id] |= OUT;
        }
    }
    values
}

/// Each state's only child, as `(class, state value)` arrays ([`NO_CHAIN`] where a state has
/// none or several).
fn chains(nodes: &[Node], sparse: &[Edge], class: &[u16; 256]) -> (Vec<u16>, Vec<u32>) {
    let mut chain_class = vec![NO_CHAIN; nodes.len()];
    let mut chain_next = vec![ROOT; nodes.len()];
    for (id, node) in nodes.iter().enumerate() {
        if let [edge] = &sparse[node.edges.0 as usize..node.edges.1 as usize] {
            chain_class[id] = class[usize::from(edge.byte())];
            chain_next[id] = edge.target();
        }
    }
    (chain_class, chain_next)
}

/// The patterns' first-two-byte pairs, when few enough to make skipping pay.
fn pairs(patterns: &[Pattern]) -> (Option<Box<[u8]>>, usize) {
    let mut bits = vec![0u8; 1 << 16].into_boxed_slice();
    let mut count = 0;
    for p in patterns {
        let key = (usize::from(p.bytes[0]) << 8) | usize::from(p.bytes[1]);
        if bits[key] == 0 {
            bits[key] = 1;
            count += 1;
        }
    }
    ((count <= MAX_SKIP_PAIRS).then_some(bits), count)
}

impl Automaton {
    /// Builds the automaton over `patterns` (their order only breaks ties between names), at
    /// most [`MAX_PATTERN_BYTES`] in all (checked by the caller).
    pub(crate) fn build(patterns: &[Pattern]) -> Self {
        debug_assert!(patterns.iter().map(|p| p.bytes.len()).sum::<usize>() <= MAX_PATTERN_BYTES);
        let (trie, pats, used) = Trie::of(patterns);
        let (mut nodes, mut sparse, outputs) = trie.freeze();
        annotate(&mut nodes, &sparse, &outputs, &pats);
        let (class, nclasses) = byte_classes(&used);
        assert!(nodes.len() < ID as usize, "bounded by MAX_PATTERN_BYTES");
        let row_owner = dense_rows(&nodes, nclasses);
        let values = state_values(&nodes, &row_owner, nclasses);
        let dense = dense_table(&nodes, &sparse, &class, nclasses, &row_owner, &values);
        for e in &mut sparse {
            *e = Edge::new(e.byte(), values[e.target() as usize]);
        }
        let (chain_class, chain_next) = chains(&nodes, &sparse, &class);
        let longest = pats.iter().map(|p| p.len as usize).max().unwrap_or(0);
        let shortest = pats.iter().map(|p| p.len as usize).min().unwrap_or(0);
        let (pairs, pair_count) = pairs(patterns);
        Self {
            class,
            nclasses,
            dense,
            values,
            row_owner,
            nodes,
            sparse,
            chain_class,
            chain_next,
            outputs,
            pats,
            longest,
            shortest,
            pairs,
            pair_count,
        }
    }

    /// The start state.
    pub(crate) const fn start() -> u32 {
        ROOT
    }

    /// The node number of a state value.
    fn node(&self, state: u32) -> u32 {
        let s = state & !OUT;
        if s & (SPARSE | CHAIN) == 0 {
            self.row_owner[s as usize / self.nclasses]
        } else {
            s & ID
        }
    }

    /// The state after reading `byte` in `state` (either may carry [`OUT`]).
    #[inline]
    pub(crate) fn next(&self, state: u32, byte: u8) -> u32 {
        let class = self.class[usize::from(byte)];
        let s = state & !OUT;
        if s & (SPARSE | CHAIN) == 0 {
            return self.dense[s as usize + usize::from(class)];
        }
        let mut id = s & ID;
        if s & CHAIN != 0 {
            if self.chain_class[id as usize] == class {
                return self.chain_next[id as usize];
            }
            // The chain's one edge does not match: on to its failure state.
            id = self.nodes[id as usize].fail;
        }
        let class = usize::from(class);
        // The root has a row, so the walk ends.
        loop {
            let value = self.values[id as usize] & !OUT;
            if value & (SPARSE | CHAIN) == 0 {
                return self.dense[value as usize + class];
            }
            let node = &self.nodes[id as usize];
            let (lo, hi) = node.edges;
            if let Some(e) = self.sparse[lo as usize..hi as usize]
                .iter()
                .find(|e| e.byte() == byte)
            {
                return e.target();
            }
            id = node.fail;
        }
    }

    /// Reads `input` from `at` until a state that ends a pattern, a return to the start state
    /// (where [`Automaton::skip`] takes over), or the end. Returns the state and the position
    /// after the last byte read.
    #[inline]
    pub(crate) fn run(&self, mut state: u32, input: &[u8], mut at: usize) -> (u32, usize) {
        for &b in &input[at..] {
            state = self.next(state, b);
            at += 1;
            if state & OUT != 0 || state == ROOT {
                break;
            }
        }
        (state, at)
    }

    /// From position `at` of `input`, read in the start state, the first position where an
    /// occurrence may begin: a byte whose pair with the next byte starts no pattern cannot
    /// start an occurrence, so reading it would leave the automaton in its start state. The
    /// last byte cannot be paired and is never skipped.
    #[inline]
    pub(crate) fn skip(&self, input: &[u8], at: usize) -> usize {
        let Some(bits) = &self.pairs else { return at };
        let hit = |a: u8, b: u8| bits[(usize::from(a) << 8) | usize::from(b)] != 0;
        let rest = &input[at..];
        let mut k = 0;
        // Four independent tests per step let the lookups overlap.
        while let Some(w) = rest.get(k..k + 5) {
            if hit(w[0], w[1]) | hit(w[1], w[2]) | hit(w[2], w[3]) | hit(w[3], w[4]) {
                break;
            }
            k += 4;
        }
        while let Some(w) = rest.get(k..k + 2) {
            if hit(w[0], w[1]) {
                break;
            }
            k += 1;
        }
        at + k
    }

    /// Calls `f` with every pattern that ends in `state`.
    #[inline]
    pub(crate) fn for_each_match(&self, state: u32, mut f: impl FnMut(PatInfo)) {
        let mut s = self.node(state);
        while s != NONE {
            let node = &self.nodes[s as usize];
            for &p in &self.outputs[node.out.0 as usize..node.out.1 as usize] {
                f(self.pats[p as usize]);
            }
            s = node.dict;
        }
    }

    /// The length of the longest suffix of the input read so far that may still become an
    /// occurrence, and the secret it would belong to. `boundary_ok(d)` tells whether a weak
    /// pattern may start `d` bytes back; `complete_weak` counts a complete weak pattern still
    /// waiting for its right boundary.
    pub(crate) fn live_tail(
        &self,
        state: u32,
        complete_weak: bool,
        boundary_ok: impl Fn(usize) -> bool,
    ) -> Option<(usize, u32)> {
        let mut s = self.node(state);
        while s != ROOT {
            let node = &self.nodes[s as usize];
            let depth = node.depth as usize;
            let weak = if complete_weak {
                node.weak_incl
            } else {
                node.weak_proper
            };
            let weak = if weak != NONE && boundary_ok(depth) {
                weak
            } else {
                NONE
            };
            let secret = node.strong_proper.min(weak);
            if secret != NONE {
                return Some((depth, secret));
            }
            s = node.fail;
        }
        None
    }

    /// Length of the longest pattern.
    pub(crate) const fn longest(&self) -> usize {
        self.longest
    }

    /// Length of the shortest pattern.
    pub(crate) const fn shortest(&self) -> usize {
        self.shortest
    }

    /// Whether [`Self::skip`] passes over most text: few enough of the 4,096 pairs of base64
    /// characters start a pattern that a random pair rarely does.
    pub(crate) const fn skips_most(&self) -> bool {
        self.pairs.is_some() && self.pair_count <= 1024
    }

    /// Whether some pattern holds `byte`; reading any other byte returns to the start state.
    #[inline]
    pub(crate) fn uses(&self, byte: u8) -> bool {
        self.class[usize::from(byte)] != 0
    }

    /// Number of states (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn states(&self) -> usize {
        self.nodes.len()
    }
}

impl Drop for Automaton {
    fn drop(&mut self) {
        // The sparse edges and the chains hold pattern bytes or their classes (spread out, but
        // there all the same): wipe them.
        self.sparse.zeroize();
        self.chain_class.zeroize();
    }
}
