//! The access map (`specs/access-log.md` §13): a verifiable, insert-only sparse Merkle map
//! from 256-bit keys (access-event tags) to 32-byte values, whose root every checkpoint
//! carries. Holders prove that their tags are in it, and that the next tag is not.
//!
//! Tree shape (§13.2). A compact sparse Merkle tree with leaf shortcuts: walking a key's bits
//! from the most significant, a subtree holding no key is [`EMPTY`], a subtree holding one
//! key is that key's leaf (at the shallowest depth where the key is alone), and a subtree
//! holding two or more keys is an internal node. Internal nodes are never collapsed into
//! paths, and a lone leaf never sits beside an empty sibling (it would have moved up), so
//! every key set has exactly one tree and one root, whatever the insertion order.
//!
//! Storage model. The node keeps the map in RocksDB, so this module is storage-agnostic: a
//! [`MapSource`] reads stored nodes in batches (absent = empty subtree), [`insert_batch`]
//! is a pure function returning the root and the node writes, and proofs are generated
//! over the trait. Reads are batched level by level (insertion) or a whole stretch of path
//! at a time (proofs, lookups), because each store call has a fixed cost.
//!
//! Robustness. Proofs and encodings reach the verifiers from untrusted nodes: nothing here
//! panics, no slice is indexed, lengths are bounded before allocation, and a proof longer
//! than a key has bits is rejected before any hashing.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::hash::Hash;

/// The hash of an empty subtree, and the root of the empty map (§13.1). Not a BLAKE3 output
/// anyone can find a preimage for, so it cannot stand for a non-empty subtree.
pub const EMPTY: Hash = Hash([0u8; 32]);

/// Domain tag in front of every hashed node (§13.1). It separates map nodes from the ledger's
/// RFC 9162 nodes, which use the same 0x00/0x01 prefixes with BLAKE3; with it a node input
/// is 78 bytes, still two BLAKE3 blocks, so the separation costs nothing.
const DOMAIN: &[u8; 13] = b"dojang/map/v1";
const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// Number of bits in a key, and so the greatest depth of a node.
pub const KEY_BITS: u16 = 256;

/// Most siblings a proof can carry: a leaf sits at depth at most 256.
pub const MAX_PROOF_SIBLINGS: usize = 256;

/// Longest binary proof: tag, sibling count, a leaf, 256 siblings (§13.5).
pub const MAX_PROOF_LEN: usize = 3 + 64 + 32 * MAX_PROOF_SIBLINGS;

/// How many levels of a path [`prove`] and [`get`] read per store call. A random key of a
/// map of n keys sits at depth about log2(n) + 1.3 (about 25 for 10^7 keys), so one call
/// nearly always suffices; deeper paths take one more call per 32 levels.
pub const PATH_READ_LEVELS: u16 = 32;

/// `H(DOMAIN || 0x00 || key || value)`: the leaf of `key` (§13.1). It commits to the whole
/// key, so a leaf that sits high in the tree (a shortcut) still names exactly one key.
pub fn leaf_hash(key: &[u8; 32], value: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(DOMAIN);
    h.update(&[LEAF_PREFIX]);
    h.update(key);
    h.update(&value.0);
    Hash(*h.finalize().as_bytes())
}

/// `H(DOMAIN || 0x01 || left || right)`: an internal node (§13.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(DOMAIN);
    h.update(&[NODE_PREFIX]);
    h.update(&left.0);
    h.update(&right.0);
    Hash(*h.finalize().as_bytes())
}

/// Bit `i` of `key`, most significant first (§13.1). `i` is always below 256 here; a larger
/// `i` reads as 0.
fn bit(key: &[u8; 32], i: u16) -> u8 {
    key.get(usize::from(i / 8)).map_or(0, |b| (b >> (7 - i % 8)) & 1)
}

/// `bits` with every bit at position `depth` or later cleared.
fn masked(bits: &[u8; 32], depth: u16) -> [u8; 32] {
    let depth = usize::from(depth);
    let mut out = *bits;
    for (i, b) in out.iter_mut().enumerate() {
        let start = i * 8;
        if start + 8 <= depth {
            continue;
        }
        if start >= depth {
            *b = 0;
        } else {
            // 1..=7 bits of this byte are kept.
            *b &= 0xFFu8 << (8 - (depth - start));
        }
    }
    out
}

/// Where a node sits: the first `depth` bits of the keys below it (§13.3). Bits beyond
/// `depth` are always zero, so each position has one identity and one storage key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapNodeId {
    depth: u16,
    prefix: [u8; 32],
}

impl MapNodeId {
    /// The root position.
    pub const ROOT: MapNodeId = MapNodeId { depth: 0, prefix: [0u8; 32] };

    /// The position at `depth` on the path of `bits` (bits beyond `depth` are ignored).
    pub fn new(depth: u16, bits: &[u8; 32]) -> Result<Self, MapDecodeError> {
        if depth > KEY_BITS {
            return Err(MapDecodeError::Depth(depth));
        }
        Ok(MapNodeId { depth, prefix: masked(bits, depth) })
    }

    /// The position at `depth` (clamped to 256) on the path of `key`.
    fn on_path(key: &[u8; 32], depth: u16) -> Self {
        let depth = depth.min(KEY_BITS);
        MapNodeId { depth, prefix: masked(key, depth) }
    }

    pub fn depth(&self) -> u16 {
        self.depth
    }

    /// The first `depth` bits; the rest are zero.
    pub fn prefix(&self) -> &[u8; 32] {
        &self.prefix
    }

    /// Whether `key`'s path passes through this position.
    pub fn covers(&self, key: &[u8; 32]) -> bool {
        masked(key, self.depth) == self.prefix
    }

    /// The child on side `side` (0 left, anything else right); none below depth 256.
    pub fn child(&self, side: u8) -> Option<Self> {
        if self.depth >= KEY_BITS {
            return None;
        }
        let mut prefix = self.prefix;
        if side != 0 {
            let byte = prefix.get_mut(usize::from(self.depth / 8))?;
            *byte |= 0x80 >> (self.depth % 8);
        }
        Some(MapNodeId { depth: self.depth + 1, prefix })
    }

    /// The other child of this node's parent; none for the root.
    pub fn sibling(&self) -> Option<Self> {
        let last = self.depth.checked_sub(1)?;
        let mut prefix = self.prefix;
        let byte = prefix.get_mut(usize::from(last / 8))?;
        *byte ^= 0x80 >> (last % 8);
        Some(MapNodeId { depth: self.depth, prefix })
    }

    /// The storage key (§13.3): depth as 2 bytes big-endian, then the `ceil(depth / 8)`
    /// prefix bytes. Byte order of these keys is the order of [`MapNodeId`]: by depth, then
    /// by prefix, so one level of the tree is one contiguous key range.
    pub fn to_key_bytes(&self) -> Vec<u8> {
        let n = usize::from(self.depth.div_ceil(8));
        let mut out = Vec::with_capacity(2 + n);
        out.extend_from_slice(&self.depth.to_be_bytes());
        out.extend(self.prefix.iter().take(n));
        out
    }

    /// Decodes [`to_key_bytes`](Self::to_key_bytes), rejecting every other byte string
    /// (wrong length, depth above 256, bits set beyond the depth).
    pub fn from_key_bytes(bytes: &[u8]) -> Result<Self, MapDecodeError> {
        let (depth, rest) = match bytes {
            [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
            _ => return Err(MapDecodeError::Length { what: "map node id", len: bytes.len() }),
        };
        if depth > KEY_BITS {
            return Err(MapDecodeError::Depth(depth));
        }
        if rest.len() != usize::from(depth.div_ceil(8)) {
            return Err(MapDecodeError::Length { what: "map node id", len: bytes.len() });
        }
        let mut prefix = [0u8; 32];
        for (dst, src) in prefix.iter_mut().zip(rest) {
            *dst = *src;
        }
        if masked(&prefix, depth) != prefix {
            return Err(MapDecodeError::Padding { depth });
        }
        Ok(MapNodeId { depth, prefix })
    }
}

/// A stored node (§13.3). Empty subtrees are not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapNode {
    /// Two or more keys below; the node's hash (its children are stored at their own ids).
    Internal(Hash),
    /// Exactly one key below.
    Leaf { key: [u8; 32], value: Hash },
}

impl MapNode {
    /// The node's hash in the tree.
    pub fn hash(&self) -> Hash {
        match self {
            MapNode::Internal(h) => *h,
            MapNode::Leaf { key, value } => leaf_hash(key, value),
        }
    }

    /// Storage value: 32 bytes for an internal node (its hash), 64 for a leaf (key, value).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            MapNode::Internal(h) => h.0.to_vec(),
            MapNode::Leaf { key, value } => {
                let mut out = Vec::with_capacity(64);
                out.extend_from_slice(key);
                out.extend_from_slice(&value.0);
                out
            }
        }
    }

    /// Decodes [`encode`](Self::encode); any other length, or an internal node claiming
    /// the empty hash, is rejected.
    pub fn decode(bytes: &[u8]) -> Result<Self, MapDecodeError> {
        if let Ok(h) = <[u8; 32]>::try_from(bytes) {
            if h == EMPTY.0 {
                return Err(MapDecodeError::EmptyInternal);
            }
            return Ok(MapNode::Internal(Hash(h)));
        }
        if let Ok(b) = <&[u8; 64]>::try_from(bytes) {
            let (key, value) = split_64(b);
            return Ok(MapNode::Leaf { key, value: Hash(value) });
        }
        Err(MapDecodeError::Length { what: "map node", len: bytes.len() })
    }
}

fn split_64(b: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut l = [0u8; 32];
    let mut r = [0u8; 32];
    for (i, x) in b.iter().enumerate() {
        if let Some(d) = if i < 32 { l.get_mut(i) } else { r.get_mut(i - 32) } {
            *d = *x;
        }
    }
    (l, r)
}

/// Where the map's nodes are read from. Absent (`None`) means an empty subtree.
pub trait MapSource {
    /// The nodes at `ids`, in order, one answer per id. Insertion asks for a whole tree
    /// level per call and proofs for a whole stretch of path, so a store can batch reads.
    fn get_many(&self, ids: &[MapNodeId]) -> Result<Vec<Option<MapNode>>, MapSourceError>;
    /// How many levels, from `depth` down, a proof walk should ask for in one
    /// [`MapSource::get_many`] call. Reading more than the path needs costs lookups of
    /// absent nodes; reading fewer costs round trips. A source with cached upper levels
    /// answers those in one call and the stored ones a few levels at a time.
    fn levels_per_read(&self, depth: u16) -> u16 {
        let _ = depth;
        PATH_READ_LEVELS
    }
}

/// A node store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("map node store: {0}")]
pub struct MapSourceError(pub String);

/// The result of [`insert_batch`]: the new root, and the node writes that turn the stored
/// tree into the new one. `None` deletes a node; an insert-only map never needs it (a slot
/// that held a leaf now holds an internal node and is overwritten), but the store applies
/// it if present. Each id appears at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapUpdate {
    pub root: Hash,
    pub writes: Vec<(MapNodeId, Option<MapNode>)>,
}

/// Why a map operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The key is already in the map, or appears twice in the batch; nothing was written.
    #[error("key {key} is already in the access map or repeats in the batch")]
    DuplicateKey { key: Hash },
    /// The store holds something no canonical tree holds.
    #[error("access map store is corrupt at depth {depth}: {reason}")]
    Corrupt { depth: u16, reason: &'static str },
    #[error(transparent)]
    Source(#[from] MapSourceError),
}

impl MapError {
    pub fn slug(&self) -> &'static str {
        match self {
            MapError::DuplicateKey { .. } => "access-map-duplicate-key",
            MapError::Corrupt { .. } => "access-map-corrupt",
            MapError::Source(_) => "access-map-storage",
        }
    }
}

/// Why a proof does not verify (§13.6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapVerifyError {
    #[error("proof has {got} siblings, a 256-bit key allows at most 256")]
    TooManySiblings { got: usize },
    #[error("proof ends in an empty subtree at depth 256, which no key set has")]
    EmptyAtMaxDepth,
    #[error("proof is not canonical: the sibling beside its terminal at depth {depth} is empty, so the terminal would sit higher")]
    NonCanonical { depth: usize },
    #[error("proof's leaf key {other} does not share the first {depth} bits of the key")]
    OffPath { depth: usize, other: Hash },
    #[error("proof's terminal leaf is the key itself: it shows presence, not absence")]
    KeyPresent,
    #[error("proof ends in an empty subtree: it shows absence, not presence")]
    KeyAbsent,
    #[error("proof's terminal leaf is for key {other}, not the key asked about")]
    OtherKey { other: Hash },
    #[error("proof's leaf has value {got}, expected value {expected}")]
    ValueMismatch { expected: Hash, got: Hash },
    #[error("proof leads to root {computed}, expected root {expected}")]
    RootMismatch { computed: Hash, expected: Hash },
}

impl MapVerifyError {
    pub fn slug(&self) -> &'static str {
        match self {
            MapVerifyError::TooManySiblings { .. }
            | MapVerifyError::EmptyAtMaxDepth
            | MapVerifyError::NonCanonical { .. }
            | MapVerifyError::OffPath { .. } => "access-map-proof-malformed",
            MapVerifyError::KeyPresent => "access-map-key-present",
            MapVerifyError::KeyAbsent | MapVerifyError::OtherKey { .. } => "access-map-key-absent",
            MapVerifyError::ValueMismatch { .. } => "access-map-value-mismatch",
            MapVerifyError::RootMismatch { .. } => "access-map-root-mismatch",
        }
    }
}

/// A byte string that is not a canonical node id, node or proof encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapDecodeError {
    #[error("a {what} cannot be {len} bytes long")]
    Length { what: &'static str, len: usize },
    #[error("depth {0} is above 256")]
    Depth(u16),
    #[error("map node id at depth {depth} has bits set beyond its depth")]
    Padding { depth: u16 },
    #[error("an internal map node cannot have the empty hash")]
    EmptyInternal,
    #[error("unknown proof terminal tag {0:#04x}")]
    Tag(u8),
    #[error("proof has {0} siblings, at most 256 are allowed")]
    TooManySiblings(usize),
}

impl MapDecodeError {
    pub fn slug(&self) -> &'static str {
        "access-map-encoding"
    }
}

/// An in-memory [`MapSource`], for tests, tools and small maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryMap {
    nodes: BTreeMap<MapNodeId, MapNode>,
}

impl MemoryMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies an update's writes (`None` deletes).
    pub fn apply(&mut self, writes: &[(MapNodeId, Option<MapNode>)]) {
        for (id, node) in writes {
            match node {
                Some(n) => {
                    self.nodes.insert(*id, *n);
                }
                None => {
                    self.nodes.remove(id);
                }
            }
        }
    }

    /// Every stored node, by position.
    pub fn nodes(&self) -> &BTreeMap<MapNodeId, MapNode> {
        &self.nodes
    }

    /// Number of keys (stored leaves).
    pub fn len(&self) -> usize {
        self.nodes.values().filter(|n| matches!(n, MapNode::Leaf { .. })).count()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl MapSource for MemoryMap {
    fn get_many(&self, ids: &[MapNodeId]) -> Result<Vec<Option<MapNode>>, MapSourceError> {
        Ok(ids.iter().map(|id| self.nodes.get(id).copied()).collect())
    }
}

/// Reads `ids`, checking that the store answered each one.
fn fetch(src: &impl MapSource, ids: &[MapNodeId]) -> Result<Vec<Option<MapNode>>, MapError> {
    let nodes = src.get_many(ids)?;
    if nodes.len() != ids.len() {
        return Err(MapSourceError(format!("asked for {} nodes, got {}", ids.len(), nodes.len())).into());
    }
    Ok(nodes)
}

/// The map's root: the root node's hash, [`EMPTY`] when the map is empty.
pub fn root(src: &impl MapSource) -> Result<Hash, MapError> {
    let nodes = fetch(src, &[MapNodeId::ROOT])?;
    Ok(nodes.into_iter().flatten().next().map_or(EMPTY, |n| n.hash()))
}

type Item = ([u8; 32], Hash);

/// One position visited by [`insert_batch`], with the new keys that go below it.
struct Visit<'a> {
    id: MapNodeId,
    items: &'a [Item],
}

/// What a visited position became: a finished subtree, or an internal node whose children
/// are the two visits at this index (and the next) of the level below.
enum Outcome {
    Done(Hash),
    Descend(usize),
}

/// Inserts `items` (any order) and returns the new root and the node writes (§13.4). Fails
/// with [`MapError::DuplicateKey`] if a key repeats in the batch or is already stored; then
/// nothing is to be written.
///
/// Reads walk the tree level by level: one [`MapSource::get_many`] per depth, covering
/// every position of that depth the batch passes through and the untouched siblings whose
/// hashes it needs, so each stored node is read at most once. Each changed node is written
/// once.
pub fn insert_batch(src: &impl MapSource, items: &[([u8; 32], Hash)]) -> Result<MapUpdate, MapError> {
    let mut items = items.to_vec();
    items.sort_unstable_by_key(|a| a.0);
    if let Some(key) = items.windows(2).find_map(|w| match w {
        [a, b] if a.0 == b.0 => Some(a.0),
        _ => None,
    }) {
        return Err(MapError::DuplicateKey { key: Hash(key) });
    }
    if items.is_empty() {
        return Ok(MapUpdate { root: root(src)?, writes: Vec::new() });
    }

    let mut writes = Vec::new();
    let mut levels: Vec<Vec<(MapNodeId, Outcome)>> = Vec::new();
    let mut current = vec![Visit { id: MapNodeId::ROOT, items: &items }];
    while !current.is_empty() {
        let ids: Vec<MapNodeId> = current.iter().map(|v| v.id).collect();
        let nodes = fetch(src, &ids)?;
        let mut next = Vec::new();
        let mut outcomes = Vec::with_capacity(current.len());
        for (visit, node) in current.iter().zip(nodes) {
            let id = visit.id;
            let outcome = match node {
                // Empty subtree: the new keys alone form it.
                None => Outcome::Done(build(id, visit.items, &mut writes)?),
                Some(MapNode::Leaf { key, value }) => {
                    if !id.covers(&key) {
                        return Err(MapError::Corrupt { depth: id.depth, reason: "leaf stored off its key's path" });
                    }
                    if visit.items.is_empty() {
                        Outcome::Done(leaf_hash(&key, &value))
                    } else {
                        // The lone key moves down beside the new ones; its slot becomes an
                        // internal node (overwritten by `build`).
                        let pos = match visit.items.binary_search_by(|(k, _)| k.cmp(&key)) {
                            Ok(_) => return Err(MapError::DuplicateKey { key: Hash(key) }),
                            Err(pos) => pos,
                        };
                        let (before, after) = visit.items.split_at(pos);
                        let mut merged = Vec::with_capacity(visit.items.len() + 1);
                        merged.extend_from_slice(before);
                        merged.push((key, value));
                        merged.extend_from_slice(after);
                        Outcome::Done(build(id, &merged, &mut writes)?)
                    }
                }
                Some(MapNode::Internal(h)) if visit.items.is_empty() => Outcome::Done(h),
                Some(MapNode::Internal(_)) => {
                    let (Some(left), Some(right)) = (id.child(0), id.child(1)) else {
                        return Err(MapError::Corrupt { depth: id.depth, reason: "internal node at depth 256" });
                    };
                    let (l, r) = visit.items.split_at(visit.items.partition_point(|(k, _)| bit(k, id.depth) == 0));
                    outcomes.push((id, Outcome::Descend(next.len())));
                    next.push(Visit { id: left, items: l });
                    next.push(Visit { id: right, items: r });
                    continue;
                }
            };
            outcomes.push((id, outcome));
        }
        levels.push(outcomes);
        current = next;
    }

    // Hash the descended internal nodes bottom-up.
    let mut below: Vec<Hash> = Vec::new();
    for level in levels.iter().rev() {
        let mut hashes = Vec::with_capacity(level.len());
        for (id, outcome) in level {
            let h = match outcome {
                Outcome::Done(h) => *h,
                Outcome::Descend(j) => {
                    let (Some(l), Some(r)) = (below.get(*j), below.get(j + 1)) else {
                        return Err(MapError::Corrupt { depth: id.depth, reason: "lost track of a child while hashing" });
                    };
                    let h = node_hash(l, r);
                    writes.push((*id, Some(MapNode::Internal(h))));
                    h
                }
            };
            hashes.push(h);
        }
        below = hashes;
    }
    let root = below.first().copied().unwrap_or(EMPTY);
    Ok(MapUpdate { root, writes })
}

/// Builds the canonical subtree at `id` over `items` (sorted, distinct, all on `id`'s path),
/// pushing its nodes to `writes`; returns its hash.
fn build(id: MapNodeId, items: &[Item], writes: &mut Vec<(MapNodeId, Option<MapNode>)>) -> Result<Hash, MapError> {
    match items {
        [] => Ok(EMPTY),
        [(key, value)] => {
            writes.push((id, Some(MapNode::Leaf { key: *key, value: *value })));
            Ok(leaf_hash(key, value))
        }
        _ => {
            // Two distinct keys differ in some bit, so they split above depth 256.
            let (Some(left), Some(right)) = (id.child(0), id.child(1)) else {
                return Err(MapError::Corrupt { depth: id.depth, reason: "two keys share all 256 bits" });
            };
            let (l, r) = items.split_at(items.partition_point(|(k, _)| bit(k, id.depth) == 0));
            let hl = build(left, l, writes)?;
            let hr = build(right, r, writes)?;
            let h = node_hash(&hl, &hr);
            writes.push((id, Some(MapNode::Internal(h))));
            Ok(h)
        }
    }
}

/// How a key's path ends (§13.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Terminal {
    /// An empty subtree: the key is absent.
    Empty,
    /// A leaf: the key itself (present), or another key sharing the path so far (absent).
    Leaf {
        #[serde(with = "hex32")]
        key: [u8; 32],
        value: Hash,
    },
}

/// A proof about one key against a map root (§13.5): the siblings along the key's path,
/// root first (`siblings[i]` is the child at depth `i + 1` on the side the key's bit `i`
/// does not take), and the node where the path ends, at depth `siblings.len()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MapProof {
    pub siblings: Vec<Hash>,
    pub terminal: Terminal,
}

const TAG_EMPTY: u8 = 0x00;
const TAG_LEAF: u8 = 0x01;

impl MapProof {
    /// Binary form (§13.5): tag (0x00 empty, 0x01 leaf), sibling count as 2 bytes
    /// big-endian, for a leaf its key and value, then the siblings root first.
    pub fn encode(&self) -> Vec<u8> {
        let count = u16::try_from(self.siblings.len()).unwrap_or(u16::MAX);
        let mut out = Vec::with_capacity(3 + 64 + 32 * self.siblings.len());
        match &self.terminal {
            Terminal::Empty => out.push(TAG_EMPTY),
            Terminal::Leaf { .. } => out.push(TAG_LEAF),
        }
        out.extend_from_slice(&count.to_be_bytes());
        if let Terminal::Leaf { key, value } = &self.terminal {
            out.extend_from_slice(key);
            out.extend_from_slice(&value.0);
        }
        for s in &self.siblings {
            out.extend_from_slice(&s.0);
        }
        out
    }

    /// Decodes [`encode`](Self::encode): exact length, at most 256 siblings, known tag.
    pub fn decode(bytes: &[u8]) -> Result<Self, MapDecodeError> {
        let (tag, count, rest) = match bytes {
            [tag, a, b, rest @ ..] => (*tag, usize::from(u16::from_be_bytes([*a, *b])), rest),
            _ => return Err(MapDecodeError::Length { what: "map proof", len: bytes.len() }),
        };
        if count > MAX_PROOF_SIBLINGS {
            return Err(MapDecodeError::TooManySiblings(count));
        }
        let (terminal, rest) = match tag {
            TAG_EMPTY => (Terminal::Empty, rest),
            TAG_LEAF => {
                let (leaf, rest) = rest.split_first_chunk::<64>().ok_or(MapDecodeError::Length { what: "map proof", len: bytes.len() })?;
                let (key, value) = split_64(leaf);
                (Terminal::Leaf { key, value: Hash(value) }, rest)
            }
            other => return Err(MapDecodeError::Tag(other)),
        };
        if rest.len() != 32 * count {
            return Err(MapDecodeError::Length { what: "map proof", len: bytes.len() });
        }
        let siblings = rest.chunks_exact(32).filter_map(|c| <[u8; 32]>::try_from(c).ok()).map(Hash).collect();
        Ok(MapProof { siblings, terminal })
    }
}

mod hex32 {
    use serde::{Deserialize as _, Deserializer, Serialize as _, Serializer};

    use crate::hash::Hash;

    pub(super) fn serialize<S: Serializer>(key: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        Hash(*key).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        Hash::deserialize(d).map(|h| h.0)
    }
}

/// One key's path as read from the store: siblings (if asked for) and terminal.
struct Path {
    siblings: Vec<Hash>,
    terminal: Option<Terminal>,
}

/// Walks the paths of `keys`, [`PATH_READ_LEVELS`] levels per store call for all keys at
/// once (shared upper nodes are read once per call).
fn walk(src: &impl MapSource, keys: &[[u8; 32]], with_siblings: bool) -> Result<Vec<Path>, MapError> {
    let mut paths: Vec<Path> = keys.iter().map(|_| Path { siblings: Vec::new(), terminal: None }).collect();
    let mut lo: u16 = 0;
    while paths.iter().any(|p| p.terminal.is_none()) {
        if lo > KEY_BITS {
            return Err(MapError::Corrupt { depth: KEY_BITS, reason: "path continues below depth 256" });
        }
        let hi = lo.saturating_add(src.levels_per_read(lo).max(1)).min(KEY_BITS + 1);
        let mut index: HashMap<MapNodeId, usize> = HashMap::new();
        let mut ids: Vec<MapNodeId> = Vec::new();
        let mut want = |id: MapNodeId| {
            index.entry(id).or_insert_with(|| {
                ids.push(id);
                ids.len() - 1
            });
        };
        for (path, key) in paths.iter().zip(keys) {
            if path.terminal.is_some() {
                continue;
            }
            for d in lo..hi {
                want(MapNodeId::on_path(key, d));
                if with_siblings
                    && d < KEY_BITS
                    && let Some(s) = MapNodeId::on_path(key, d + 1).sibling()
                {
                    want(s);
                }
            }
        }
        let nodes = fetch(src, &ids)?;
        let node_at = |id: &MapNodeId| -> Option<MapNode> { index.get(id).and_then(|&i| nodes.get(i).copied().flatten()) };
        for (path, key) in paths.iter_mut().zip(keys) {
            if path.terminal.is_some() {
                continue;
            }
            for d in lo..hi {
                let id = MapNodeId::on_path(key, d);
                match node_at(&id) {
                    None => path.terminal = Some(Terminal::Empty),
                    Some(MapNode::Leaf { key: k, value }) => {
                        if !id.covers(&k) {
                            return Err(MapError::Corrupt { depth: d, reason: "leaf stored off its key's path" });
                        }
                        path.terminal = Some(Terminal::Leaf { key: k, value });
                    }
                    Some(MapNode::Internal(_)) => {
                        if d >= KEY_BITS {
                            return Err(MapError::Corrupt { depth: d, reason: "internal node at depth 256" });
                        }
                        if with_siblings {
                            let sib = MapNodeId::on_path(key, d + 1).sibling().and_then(|s| node_at(&s));
                            path.siblings.push(sib.map_or(EMPTY, |n| n.hash()));
                        }
                        continue;
                    }
                }
                // A canonical tree never puts a leaf or an empty subtree beside an empty one.
                if with_siblings && d > 0 && path.siblings.last() == Some(&EMPTY) {
                    return Err(MapError::Corrupt { depth: d, reason: "path ends beside an empty sibling" });
                }
                break;
            }
        }
        lo = hi;
    }
    Ok(paths)
}

/// The proof for `key`: membership if present, non-membership otherwise (§13.5).
pub fn prove(src: &impl MapSource, key: &[u8; 32]) -> Result<MapProof, MapError> {
    prove_many(src, std::slice::from_ref(key))?.pop().ok_or(MapError::Corrupt { depth: 0, reason: "lost track of a proof" })
}

/// Proofs for many keys, in order, reading shared upper nodes once.
pub fn prove_many(src: &impl MapSource, keys: &[[u8; 32]]) -> Result<Vec<MapProof>, MapError> {
    walk(src, keys, true)?
        .into_iter()
        .map(|p| match p.terminal {
            Some(terminal) => Ok(MapProof { siblings: p.siblings, terminal }),
            None => Err(MapError::Corrupt { depth: 0, reason: "path without an end" }),
        })
        .collect()
}

/// The value stored under `key`, if any.
pub fn get(src: &impl MapSource, key: &[u8; 32]) -> Result<Option<Hash>, MapError> {
    let path = walk(src, std::slice::from_ref(key), false)?.pop();
    Ok(match path.and_then(|p| p.terminal) {
        Some(Terminal::Leaf { key: k, value }) if k == *key => Some(value),
        _ => None,
    })
}

/// Whether `key` is in the map.
pub fn contains(src: &impl MapSource, key: &[u8; 32]) -> Result<bool, MapError> {
    Ok(get(src, key)?.is_some())
}

/// Folds a proof from its terminal's hash up to a root (§13.6 step 5).
fn fold(key: &[u8; 32], proof: &MapProof, start: Hash) -> Hash {
    let mut h = start;
    for (i, sibling) in proof.siblings.iter().enumerate().rev() {
        // `i` < 256: the length was checked by the caller.
        let b = bit(key, u16::try_from(i).unwrap_or(u16::MAX));
        h = if b == 0 { node_hash(&h, sibling) } else { node_hash(sibling, &h) };
    }
    h
}

/// The checks both verifiers share (§13.6 steps 1–3): length, canonical terminal position.
fn check_shape(proof: &MapProof) -> Result<(), MapVerifyError> {
    let d = proof.siblings.len();
    if d > MAX_PROOF_SIBLINGS {
        return Err(MapVerifyError::TooManySiblings { got: d });
    }
    if proof.siblings.last() == Some(&EMPTY) {
        return Err(MapVerifyError::NonCanonical { depth: d });
    }
    if d == MAX_PROOF_SIBLINGS && proof.terminal == Terminal::Empty {
        return Err(MapVerifyError::EmptyAtMaxDepth);
    }
    Ok(())
}

/// §13.6 step 6.
fn check_root(computed: Hash, expected: &Hash) -> Result<(), MapVerifyError> {
    if computed != *expected {
        return Err(MapVerifyError::RootMismatch { computed, expected: *expected });
    }
    Ok(())
}

/// Checks that `key` maps to `value` in the map with root `root` (§13.6).
pub fn verify_membership(root: &Hash, key: &[u8; 32], value: &Hash, proof: &MapProof) -> Result<(), MapVerifyError> {
    check_shape(proof)?;
    // Step 4: the terminal is this key's leaf with this value.
    let start = match &proof.terminal {
        Terminal::Empty => return Err(MapVerifyError::KeyAbsent),
        Terminal::Leaf { key: k, .. } if k != key => return Err(MapVerifyError::OtherKey { other: Hash(*k) }),
        Terminal::Leaf { value: v, .. } if v != value => return Err(MapVerifyError::ValueMismatch { expected: *value, got: *v }),
        Terminal::Leaf { key: k, value: v } => leaf_hash(k, v),
    };
    check_root(fold(key, proof, start), root)
}

/// Checks that `key` is not in the map with root `root` (§13.6).
pub fn verify_non_membership(root: &Hash, key: &[u8; 32], proof: &MapProof) -> Result<(), MapVerifyError> {
    check_shape(proof)?;
    let d = proof.siblings.len();
    // Step 4: an empty subtree, or another key's leaf on this key's path.
    let start = match &proof.terminal {
        Terminal::Empty => EMPTY,
        Terminal::Leaf { key: k, .. } if k == key => return Err(MapVerifyError::KeyPresent),
        Terminal::Leaf { key: k, value: v } => {
            // `d` <= 256 here; `on_path` at depth d is the first d bits.
            let depth = u16::try_from(d).unwrap_or(KEY_BITS);
            if MapNodeId::on_path(k, depth) != MapNodeId::on_path(key, depth) {
                return Err(MapVerifyError::OffPath { depth: d, other: Hash(*k) });
            }
            leaf_hash(k, v)
        }
    };
    check_root(fold(key, proof, start), root)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

    use std::cell::RefCell;
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn value_of(key: &[u8; 32]) -> Hash {
        Hash(*blake3::hash(key).as_bytes())
    }

    fn items(keys: &[[u8; 32]]) -> Vec<Item> {
        keys.iter().map(|k| (*k, value_of(k))).collect()
    }

    fn flip(key: &[u8; 32], i: usize) -> [u8; 32] {
        let mut k = *key;
        k[i / 8] ^= 0x80 >> (i % 8);
        k
    }

    /// Deterministic pseudo-random keys.
    fn keys_from(seed: u64, n: usize) -> Vec<[u8; 32]> {
        (0..n as u64).map(|i| *blake3::hash(&[seed.to_be_bytes(), i.to_be_bytes()].concat()).as_bytes()).collect()
    }

    /// Inserts the batches in turn into a fresh map; checks each update's root against the
    /// stored root.
    fn insert_all(batches: &[Vec<[u8; 32]>]) -> MemoryMap {
        let mut map = MemoryMap::new();
        for b in batches {
            let up = insert_batch(&map, &items(b)).unwrap();
            let ids: HashSet<_> = up.writes.iter().map(|(id, _)| *id).collect();
            assert_eq!(ids.len(), up.writes.len(), "an id written twice");
            map.apply(&up.writes);
            assert_eq!(root(&map).unwrap(), up.root);
        }
        map
    }

    // --- Reference model: the definition of §13.2, with no storage, bytes hashed by hand. ---

    fn ref_leaf(key: &[u8; 32], value: &Hash) -> Hash {
        Hash(*blake3::hash(&[&b"dojang/map/v1\x00"[..], key, &value.0].concat()).as_bytes())
    }

    fn ref_node(l: &Hash, r: &Hash) -> Hash {
        Hash(*blake3::hash(&[&b"dojang/map/v1\x01"[..], &l.0, &r.0].concat()).as_bytes())
    }

    fn ref_bit(key: &[u8; 32], i: usize) -> bool {
        (key[i / 8] >> (7 - i % 8)) & 1 == 1
    }

    /// The root and the node set of the canonical tree of `keys`.
    fn reference(keys: &[Item]) -> (Hash, BTreeMap<MapNodeId, MapNode>) {
        fn rec(depth: usize, keys: Vec<Item>, nodes: &mut BTreeMap<MapNodeId, MapNode>) -> Hash {
            match keys.as_slice() {
                [] => EMPTY,
                [(k, v)] => {
                    nodes.insert(MapNodeId::new(depth as u16, k).unwrap(), MapNode::Leaf { key: *k, value: *v });
                    ref_leaf(k, v)
                }
                [(k, _), ..] => {
                    let id = MapNodeId::new(depth as u16, k).unwrap();
                    let (r, l): (Vec<Item>, Vec<Item>) = keys.into_iter().partition(|(k, _)| ref_bit(k, depth));
                    let h = ref_node(&rec(depth + 1, l, nodes), &rec(depth + 1, r, nodes));
                    nodes.insert(id, MapNode::Internal(h));
                    h
                }
            }
        }
        let mut nodes = BTreeMap::new();
        let root = rec(0, keys.to_vec(), &mut nodes);
        (root, nodes)
    }

    /// A source that records every read.
    struct Counting<'a> {
        inner: &'a MemoryMap,
        calls: RefCell<Vec<Vec<MapNodeId>>>,
    }

    impl MapSource for Counting<'_> {
        fn get_many(&self, ids: &[MapNodeId]) -> Result<Vec<Option<MapNode>>, MapSourceError> {
            self.calls.borrow_mut().push(ids.to_vec());
            self.inner.get_many(ids)
        }
    }

    fn counting(inner: &MemoryMap) -> Counting<'_> {
        Counting { inner, calls: RefCell::new(Vec::new()) }
    }

    // --- Unit tests. ---

    #[test]
    fn empty_map() {
        let map = MemoryMap::new();
        assert_eq!(root(&map).unwrap(), EMPTY);
        let up = insert_batch(&map, &[]).unwrap();
        assert_eq!(up, MapUpdate { root: EMPTY, writes: vec![] });
        let key = [7u8; 32];
        let proof = prove(&map, &key).unwrap();
        assert_eq!(proof, MapProof { siblings: vec![], terminal: Terminal::Empty });
        verify_non_membership(&EMPTY, &key, &proof).unwrap();
        assert_eq!(verify_membership(&EMPTY, &key, &Hash([1; 32]), &proof), Err(MapVerifyError::KeyAbsent));
        assert!(matches!(verify_non_membership(&Hash([1; 32]), &key, &proof), Err(MapVerifyError::RootMismatch { .. })));
        assert_eq!(get(&map, &key).unwrap(), None);
    }

    #[test]
    fn hashes_follow_the_documented_bytes() {
        let (k, v) = ([0xAB; 32], Hash([0xCD; 32]));
        assert_eq!(leaf_hash(&k, &v), ref_leaf(&k, &v));
        assert_eq!(leaf_hash(&k, &v).to_hex(), "b4c722c7691de739ba54773ae4c275dc276cde749e88fe96d80f380fe24b9efb");
        assert_eq!(node_hash(&v, &Hash(k)), ref_node(&v, &Hash(k)));
        assert_ne!(leaf_hash(&k, &v), node_hash(&Hash(k), &v), "leaf and node domains differ");
        // Pinned: a change of the hashing scheme is a change of every checkpoint's map root.
        let keys = [[0u8; 32], [0x80; 32], [0x40; 32], flip(&[0x40; 32], 255)];
        let up = insert_batch(&MemoryMap::new(), &items(&keys)).unwrap();
        assert_eq!(up.root.to_hex(), PINNED_ROOT);
    }

    /// Computed independently (Python `blake3`, straight from §13.1–§13.2).
    const PINNED_ROOT: &str = "872f90d0cab63ef768ae9d025c2f8d0ff27e4951a73bf5b7ba8f168a1d142129";

    #[test]
    fn one_key() {
        let key = [0x42; 32];
        let value = value_of(&key);
        let map = insert_all(&[vec![key]]);
        assert_eq!(root(&map).unwrap(), leaf_hash(&key, &value));
        assert_eq!(map.nodes().get(&MapNodeId::ROOT), Some(&MapNode::Leaf { key, value }));
        assert_eq!(map.nodes().len(), 1);
        let proof = prove(&map, &key).unwrap();
        assert_eq!(proof, MapProof { siblings: vec![], terminal: Terminal::Leaf { key, value } });
        verify_membership(&root(&map).unwrap(), &key, &value, &proof).unwrap();
        // Any other key is absent, shown by the lone leaf at the root.
        let other = flip(&key, 255);
        let p = prove(&map, &other).unwrap();
        assert_eq!(p.terminal, Terminal::Leaf { key, value });
        verify_non_membership(&root(&map).unwrap(), &other, &p).unwrap();
        assert_eq!(get(&map, &key).unwrap(), Some(value));
        assert!(contains(&map, &key).unwrap());
        assert!(!contains(&map, &other).unwrap());
    }

    #[test]
    fn two_keys_diverging_at_bit_0() {
        let a = [0x00; 32];
        let b = [0x80; 32];
        let map = insert_all(&[vec![b], vec![a]]);
        let r = root(&map).unwrap();
        assert_eq!(r, node_hash(&leaf_hash(&a, &value_of(&a)), &leaf_hash(&b, &value_of(&b))));
        assert_eq!(map.nodes().len(), 3);
        let pa = prove(&map, &a).unwrap();
        assert_eq!(pa.siblings, vec![leaf_hash(&b, &value_of(&b))]);
        verify_membership(&r, &a, &value_of(&a), &pa).unwrap();
        verify_membership(&r, &b, &value_of(&b), &prove(&map, &b).unwrap()).unwrap();
        // A key starting with 0 but otherwise different: a's leaf shows it absent.
        let c = flip(&a, 7);
        let pc = prove(&map, &c).unwrap();
        assert_eq!(pc.terminal, Terminal::Leaf { key: a, value: value_of(&a) });
        verify_non_membership(&r, &c, &pc).unwrap();
    }

    #[test]
    fn two_keys_diverging_at_bit_200() {
        let a = [0x5A; 32];
        let b = flip(&a, 200);
        let map = insert_all(&[vec![a, b]]);
        // Internal nodes at depths 0..=200, leaves at depth 201.
        assert_eq!(map.nodes().len(), 201 + 2);
        let (la, lb) = (leaf_hash(&a, &value_of(&a)), leaf_hash(&b, &value_of(&b)));
        let mut h = if ref_bit(&a, 200) { node_hash(&lb, &la) } else { node_hash(&la, &lb) };
        for i in (0..200).rev() {
            h = if ref_bit(&a, i) { node_hash(&EMPTY, &h) } else { node_hash(&h, &EMPTY) };
        }
        assert_eq!(root(&map).unwrap(), h);
        let pa = prove(&map, &a).unwrap();
        assert_eq!(pa.siblings.len(), 201);
        assert!(pa.siblings[..200].iter().all(|s| *s == EMPTY));
        assert_eq!(pa.siblings[200], lb);
        verify_membership(&h, &a, &value_of(&a), &pa).unwrap();
        // Diverging at bit 100: the path ends in an empty subtree at depth 101.
        let c = flip(&a, 100);
        let pc = prove(&map, &c).unwrap();
        assert_eq!(pc.terminal, Terminal::Empty);
        assert_eq!(pc.siblings.len(), 101);
        verify_non_membership(&h, &c, &pc).unwrap();
        assert_eq!(verify_membership(&h, &c, &value_of(&c), &pc), Err(MapVerifyError::KeyAbsent));
    }

    #[test]
    fn keys_differing_only_in_the_last_bit_give_256_siblings() {
        let a = [0x33; 32];
        let b = flip(&a, 255);
        let map = insert_all(&[vec![a], vec![b]]);
        let r = root(&map).unwrap();
        assert_eq!(r, reference(&items(&[a, b])).0);
        for k in [a, b] {
            let p = prove(&map, &k).unwrap();
            assert_eq!(p.siblings.len(), 256);
            verify_membership(&r, &k, &value_of(&k), &p).unwrap();
            assert_eq!(MapProof::decode(&p.encode()).unwrap(), p);
            assert_eq!(p.encode().len(), MAX_PROOF_LEN);
        }
        let c = flip(&a, 254);
        let pc = prove(&map, &c).unwrap();
        assert_eq!((pc.siblings.len(), &pc.terminal), (255, &Terminal::Empty));
        verify_non_membership(&r, &c, &pc).unwrap();
    }

    #[test]
    fn duplicates_are_rejected() {
        let keys = keys_from(1, 50);
        let map = insert_all(std::slice::from_ref(&keys));
        let dup = |m: &MemoryMap, batch: &[[u8; 32]]| insert_batch(m, &items(batch)).unwrap_err();
        // Within one batch, even into an empty map, even with different values.
        let k = [9u8; 32];
        let err = insert_batch(&MemoryMap::new(), &[(k, Hash([1; 32])), ([8; 32], Hash([1; 32])), (k, Hash([2; 32]))]).unwrap_err();
        assert_eq!(err, MapError::DuplicateKey { key: Hash(k) });
        // Already stored: alone, among new keys, and next to keys sharing its prefix.
        for (i, old) in keys.iter().enumerate().step_by(7) {
            assert_eq!(dup(&map, &[*old]), MapError::DuplicateKey { key: Hash(*old) });
            let mut batch = keys_from(100 + i as u64, 20);
            batch.push(flip(old, 250));
            batch.push(*old);
            assert_eq!(dup(&map, &batch), MapError::DuplicateKey { key: Hash(*old) });
        }
        // Stored below internal nodes too.
        let deep = insert_all(&[vec![k, flip(&k, 200), flip(&k, 201)]]);
        assert_eq!(dup(&deep, &[flip(&k, 201)]), MapError::DuplicateKey { key: Hash(flip(&k, 201)) });
        assert_eq!(err.slug(), "access-map-duplicate-key");
    }

    #[test]
    fn history_independence() {
        let mut keys = keys_from(7, 300);
        for i in 0..40 {
            keys.push(flip(&keys[i], 180 + i));
        }
        let whole = insert_all(std::slice::from_ref(&keys));
        let (r, nodes) = reference(&items(&keys));
        assert_eq!(root(&whole).unwrap(), r);
        assert_eq!(whole.nodes(), &nodes);
        let singles_reversed: Vec<Vec<[u8; 32]>> = keys.iter().rev().map(|k| vec![*k]).collect();
        assert_eq!(insert_all(&singles_reversed), whole);
        let mut shuffled = keys.clone();
        let mut x = 12345u64;
        for i in (1..shuffled.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (x >> 33) as usize % (i + 1));
        }
        let uneven: Vec<Vec<[u8; 32]>> = [1usize, 2, 3, 50, 7, 100, 1, 176]
            .iter()
            .scan(0, |at, n| {
                Some(
                    shuffled[*at..{
                        *at += n;
                        *at
                    }]
                        .to_vec(),
                )
            })
            .collect();
        assert_eq!(uneven.iter().map(Vec::len).sum::<usize>(), keys.len());
        assert_eq!(insert_all(&uneven), whole);
    }

    #[test]
    fn reads_are_batched_and_read_each_node_once() {
        let old = keys_from(3, 3000);
        let map = insert_all(std::slice::from_ref(&old));
        let max_depth = map.nodes().keys().map(|id| id.depth()).max().unwrap();
        let new = keys_from(4, 500);
        let src = counting(&map);
        let up = insert_batch(&src, &items(&new)).unwrap();
        let calls = src.calls.borrow().clone();
        let all: Vec<MapNodeId> = calls.iter().flatten().copied().collect();
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len(), "a node read twice");
        assert!(calls.len() <= usize::from(max_depth) + 1, "{} calls for depth {max_depth}", calls.len());
        // Every read is a node the new tree passes through or an untouched sibling:
        // at most the root plus two children per rewritten internal node.
        let internal_writes = up.writes.iter().filter(|(_, n)| matches!(n, Some(MapNode::Internal(_)))).count();
        assert!(all.len() <= 1 + 2 * internal_writes);
        let mut after = map.clone();
        after.apply(&up.writes);
        assert_eq!(after, insert_all(&[old.clone(), new.clone()]));

        // A proof or a lookup is one store call for a map this size; many proofs too.
        let src = counting(&after);
        prove(&src, &old[0]).unwrap();
        assert_eq!(src.calls.borrow().len(), 1);
        get(&src, &new[0]).unwrap();
        assert_eq!(src.calls.borrow().len(), 2);
        let proofs = prove_many(&src, &old[..200]).unwrap();
        assert_eq!(src.calls.borrow().len(), 3);
        let r = root(&after).unwrap();
        for (k, p) in old[..200].iter().zip(&proofs) {
            verify_membership(&r, k, &value_of(k), p).unwrap();
        }
    }

    #[test]
    fn deep_paths_take_more_read_rounds() {
        let a = [0x0F; 32];
        let map = insert_all(&[vec![a, flip(&a, 100)]]);
        let src = counting(&map);
        let p = prove(&src, &a).unwrap();
        assert_eq!(p.siblings.len(), 101);
        assert_eq!(src.calls.borrow().len(), usize::from(101 / PATH_READ_LEVELS + 1));
        verify_membership(&root(&map).unwrap(), &a, &value_of(&a), &p).unwrap();
    }

    #[test]
    fn non_canonical_proofs_are_rejected_even_when_the_hashes_chain() {
        // A "tree" where key a sits at depth 1 beside an empty sibling. The hash chain is
        // consistent, but no canonical tree has this shape, so the proof is refused.
        let a = [0x00; 32];
        let va = value_of(&a);
        let fake_root = node_hash(&leaf_hash(&a, &va), &EMPTY);
        let p = MapProof { siblings: vec![EMPTY], terminal: Terminal::Leaf { key: a, value: va } };
        assert_eq!(verify_membership(&fake_root, &a, &va, &p), Err(MapVerifyError::NonCanonical { depth: 1 }));
        let other = flip(&a, 9);
        assert_eq!(verify_non_membership(&fake_root, &other, &p), Err(MapVerifyError::NonCanonical { depth: 1 }));
        // An empty subtree beside an empty sibling.
        let p = MapProof { siblings: vec![Hash([3; 32]), EMPTY], terminal: Terminal::Empty };
        assert_eq!(verify_non_membership(&fold(&a, &p, EMPTY), &a, &p), Err(MapVerifyError::NonCanonical { depth: 2 }));
        // An empty subtree at depth 256.
        let p = MapProof { siblings: vec![Hash([3; 32]); 256], terminal: Terminal::Empty };
        assert_eq!(verify_non_membership(&fold(&a, &p, EMPTY), &a, &p), Err(MapVerifyError::EmptyAtMaxDepth));
        // Too long: rejected before hashing.
        let p = MapProof { siblings: vec![Hash([3; 32]); 257], terminal: Terminal::Leaf { key: a, value: va } };
        assert_eq!(verify_membership(&EMPTY, &a, &va, &p), Err(MapVerifyError::TooManySiblings { got: 257 }));
        assert_eq!(verify_non_membership(&EMPTY, &other, &p), Err(MapVerifyError::TooManySiblings { got: 257 }));
        // A leaf that is not on the key's path.
        let b = [0x80; 32];
        let p = MapProof { siblings: vec![leaf_hash(&b, &va)], terminal: Terminal::Leaf { key: b, value: va } };
        assert_eq!(
            verify_non_membership(&fold(&a, &p, leaf_hash(&b, &va)), &a, &p),
            Err(MapVerifyError::OffPath { depth: 1, other: Hash(b) })
        );
        // A non-membership proof whose leaf is the key itself.
        let p = MapProof { siblings: vec![], terminal: Terminal::Leaf { key: a, value: va } };
        assert_eq!(verify_non_membership(&leaf_hash(&a, &va), &a, &p), Err(MapVerifyError::KeyPresent));
        assert_eq!(verify_membership(&leaf_hash(&a, &va), &other, &va, &p), Err(MapVerifyError::OtherKey { other: Hash(a) }));
    }

    #[test]
    fn corrupt_stores_are_reported() {
        let a = [0x00; 32];
        let b = [0x80; 32];
        let mut map = MemoryMap::new();
        // b's leaf stored on a's side.
        let id = MapNodeId::ROOT.child(0).unwrap();
        map.apply(&[(MapNodeId::ROOT, Some(MapNode::Internal(Hash([5; 32])))), (id, Some(MapNode::Leaf { key: b, value: Hash([1; 32]) }))]);
        assert!(matches!(prove(&map, &a), Err(MapError::Corrupt { depth: 1, .. })));
        assert!(matches!(insert_batch(&map, &items(&[flip(&a, 3)])), Err(MapError::Corrupt { depth: 1, .. })));
        // A lone leaf beside an empty sibling.
        let mut map = MemoryMap::new();
        map.apply(&[(MapNodeId::ROOT, Some(MapNode::Internal(Hash([5; 32])))), (id, Some(MapNode::Leaf { key: a, value: Hash([1; 32]) }))]);
        assert!(matches!(prove(&map, &a), Err(MapError::Corrupt { depth: 1, .. })));

        struct Short;
        impl MapSource for Short {
            fn get_many(&self, _: &[MapNodeId]) -> Result<Vec<Option<MapNode>>, MapSourceError> {
                Ok(vec![])
            }
        }
        assert!(matches!(root(&Short), Err(MapError::Source(_))));
        assert!(matches!(insert_batch(&Short, &items(&[a])), Err(MapError::Source(_))));
        assert!(matches!(prove(&Short, &a), Err(MapError::Source(_))));
    }

    #[test]
    fn node_ids() {
        let bits = [0xFF; 32];
        let id = MapNodeId::new(13, &bits).unwrap();
        assert_eq!(id.to_key_bytes(), vec![0x00, 0x0D, 0xFF, 0xF8]);
        assert_eq!(MapNodeId::ROOT.to_key_bytes(), vec![0, 0]);
        assert_eq!(MapNodeId::new(256, &bits).unwrap().to_key_bytes().len(), 34);
        assert_eq!(MapNodeId::new(257, &bits), Err(MapDecodeError::Depth(257)));
        assert_eq!(MapNodeId::from_key_bytes(&[0x01, 0x01]), Err(MapDecodeError::Depth(257)));
        assert_eq!(MapNodeId::from_key_bytes(&[0x00, 0x0D, 0xFF, 0xFC]), Err(MapDecodeError::Padding { depth: 13 }));
        assert!(matches!(MapNodeId::from_key_bytes(&[0x00, 0x0D, 0xFF]), Err(MapDecodeError::Length { .. })));
        assert!(matches!(MapNodeId::from_key_bytes(&[0x00]), Err(MapDecodeError::Length { .. })));
        assert_eq!(id.child(0).unwrap().to_key_bytes(), vec![0x00, 0x0E, 0xFF, 0xF8]);
        assert_eq!(id.child(1).unwrap().to_key_bytes(), vec![0x00, 0x0E, 0xFF, 0xFC]);
        assert_eq!(id.child(1).unwrap().sibling(), id.child(0));
        assert_eq!(MapNodeId::ROOT.sibling(), None);
        assert_eq!(MapNodeId::new(256, &bits).unwrap().child(0), None);
        assert!(id.covers(&bits) && !id.covers(&flip(&bits, 12)) && id.covers(&flip(&bits, 13)));
    }

    #[test]
    fn nodes_encode() {
        let leaf = MapNode::Leaf { key: [1; 32], value: Hash([2; 32]) };
        assert_eq!(MapNode::decode(&leaf.encode()).unwrap(), leaf);
        let int = MapNode::Internal(Hash([3; 32]));
        assert_eq!(MapNode::decode(&int.encode()).unwrap(), int);
        assert_eq!(MapNode::decode(&[0u8; 32]), Err(MapDecodeError::EmptyInternal));
        for len in [0, 1, 31, 33, 63, 65, 96] {
            assert_eq!(MapNode::decode(&vec![7u8; len]), Err(MapDecodeError::Length { what: "map node", len }));
        }
    }

    #[test]
    fn proof_json_shape() {
        let p = MapProof { siblings: vec![Hash([0xAA; 32])], terminal: Terminal::Leaf { key: [0x01; 32], value: Hash([0x02; 32]) } };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"siblings":["{}"],"terminal":{{"type":"leaf","key":"{}","value":"{}"}}}}"#,
                "aa".repeat(32),
                "01".repeat(32),
                "02".repeat(32)
            )
        );
        assert_eq!(serde_json::from_str::<MapProof>(&json).unwrap(), p);
        let empty = MapProof { siblings: vec![], terminal: Terminal::Empty };
        assert_eq!(serde_json::to_string(&empty).unwrap(), r#"{"siblings":[],"terminal":{"type":"empty"}}"#);
        assert!(serde_json::from_str::<MapProof>(r#"{"siblings":[],"terminal":{"type":"empty"},"x":1}"#).is_err());
        assert!(serde_json::from_str::<MapProof>(r#"{"siblings":[],"terminal":{"type":"other"}}"#).is_err());
        assert!(serde_json::from_str::<MapProof>(r#"{"siblings":["00"],"terminal":{"type":"empty"}}"#).is_err());
    }

    #[test]
    fn proof_decode_rejects() {
        assert!(matches!(MapProof::decode(&[]), Err(MapDecodeError::Length { .. })));
        assert_eq!(MapProof::decode(&[0x02, 0, 0]), Err(MapDecodeError::Tag(2)));
        assert_eq!(MapProof::decode(&[0x00, 0x01, 0x01]), Err(MapDecodeError::TooManySiblings(257)));
        assert_eq!(MapProof::decode(&[0x00, 0xFF, 0xFF]), Err(MapDecodeError::TooManySiblings(65535)));
        assert!(matches!(MapProof::decode(&[0x01, 0, 0]), Err(MapDecodeError::Length { .. })));
        assert_eq!(MapProof::decode(&[0x00, 0, 0]).unwrap(), MapProof { siblings: vec![], terminal: Terminal::Empty });
        assert!(matches!(MapProof::decode(&[0x00, 0, 0, 1]), Err(MapDecodeError::Length { .. })));
    }

    #[test]
    fn errors_have_slugs_and_lowercase_messages() {
        let h = Hash([1; 32]);
        let msgs: Vec<(String, &str)> = vec![
            (MapError::DuplicateKey { key: h }.to_string(), MapError::DuplicateKey { key: h }.slug()),
            (MapError::Corrupt { depth: 1, reason: "x" }.to_string(), MapError::Corrupt { depth: 1, reason: "x" }.slug()),
            (MapError::Source(MapSourceError("x".into())).to_string(), MapError::Source(MapSourceError("x".into())).slug()),
        ];
        let verify = [
            MapVerifyError::TooManySiblings { got: 1 },
            MapVerifyError::EmptyAtMaxDepth,
            MapVerifyError::NonCanonical { depth: 1 },
            MapVerifyError::OffPath { depth: 1, other: h },
            MapVerifyError::KeyPresent,
            MapVerifyError::KeyAbsent,
            MapVerifyError::OtherKey { other: h },
            MapVerifyError::ValueMismatch { expected: h, got: h },
            MapVerifyError::RootMismatch { computed: h, expected: h },
        ];
        let decode = [
            MapDecodeError::Length { what: "map node", len: 1 },
            MapDecodeError::Depth(300),
            MapDecodeError::Padding { depth: 1 },
            MapDecodeError::EmptyInternal,
            MapDecodeError::Tag(9),
            MapDecodeError::TooManySiblings(300),
        ];
        let all = msgs
            .into_iter()
            .chain(verify.iter().map(|e| (e.to_string(), e.slug())))
            .chain(decode.iter().map(|e| (e.to_string(), e.slug())));
        for (msg, slug) in all {
            assert!(slug.starts_with("access-map-"), "{slug}");
            assert!(slug.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{slug}");
            assert!(msg.chars().next().unwrap().is_lowercase(), "{msg}");
        }
    }

    // --- Properties. ---

    /// Random keys plus keys made by flipping (often late) bits of earlier ones, so that
    /// long shared prefixes and deep paths are common.
    fn key_set() -> impl Strategy<Value = Vec<[u8; 32]>> {
        (
            prop::collection::vec(any::<[u8; 32]>(), 1..24),
            prop::collection::vec((any::<prop::sample::Index>(), prop_oneof![0usize..256, 200usize..256]), 0..24),
        )
            .prop_map(|(mut keys, flips)| {
                for (i, b) in flips {
                    let k = flip(i.get(&keys), b);
                    keys.push(k);
                }
                let mut seen = HashSet::new();
                keys.retain(|k| seen.insert(*k));
                keys
            })
    }

    fn batches() -> impl Strategy<Value = Vec<Vec<[u8; 32]>>> {
        (key_set(), prop::collection::vec(1usize..10, 1..8)).prop_map(|(keys, sizes)| {
            let mut out = Vec::new();
            let mut rest = keys.as_slice();
            for n in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (a, b) = rest.split_at((*n).min(rest.len()));
                out.push(a.to_vec());
                rest = b;
            }
            out
        })
    }

    fn any_proof() -> impl Strategy<Value = MapProof> {
        let terminal = prop_oneof![
            Just(Terminal::Empty),
            (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(key, v)| Terminal::Leaf { key, value: Hash(v) })
        ];
        let siblings = prop_oneof![prop::collection::vec(any::<[u8; 32]>(), 0..40), prop::collection::vec(any::<[u8; 32]>(), 256..=256)];
        (siblings, terminal).prop_map(|(s, terminal)| MapProof { siblings: s.into_iter().map(Hash).collect(), terminal })
    }

    /// Ways to damage a proof; each must make it fail.
    #[derive(Debug, Clone)]
    enum Mutation {
        FlipSiblingByte(prop::sample::Index, usize, u8),
        DropFirst,
        DropLast,
        PushEmpty,
        PushSibling([u8; 32]),
        InsertFirst([u8; 32]),
        SwapTerminal([u8; 32]),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<prop::sample::Index>(), 0usize..32, 1u8..=255).prop_map(|(i, b, x)| Mutation::FlipSiblingByte(i, b, x)),
            Just(Mutation::DropFirst),
            Just(Mutation::DropLast),
            Just(Mutation::PushEmpty),
            any::<[u8; 32]>().prop_map(Mutation::PushSibling),
            any::<[u8; 32]>().prop_map(Mutation::InsertFirst),
            any::<[u8; 32]>().prop_map(Mutation::SwapTerminal),
        ]
    }

    /// The mutated proof, or `None` when the mutation does not apply (nothing to drop).
    fn mutate(p: &MapProof, m: &Mutation) -> Option<MapProof> {
        let mut p = p.clone();
        match m {
            Mutation::FlipSiblingByte(i, b, x) => {
                if p.siblings.is_empty() {
                    return None;
                }
                let j = i.index(p.siblings.len());
                p.siblings[j].0[*b] ^= x;
            }
            Mutation::DropFirst => {
                if p.siblings.is_empty() {
                    return None;
                }
                p.siblings.remove(0);
            }
            Mutation::DropLast => {
                p.siblings.pop()?;
            }
            Mutation::PushEmpty => p.siblings.push(EMPTY),
            Mutation::PushSibling(s) => p.siblings.push(Hash(*s)),
            Mutation::InsertFirst(s) => p.siblings.insert(0, Hash(*s)),
            Mutation::SwapTerminal(k) => {
                p.terminal = match p.terminal {
                    Terminal::Empty => Terminal::Leaf { key: *k, value: Hash(*k) },
                    Terminal::Leaf { .. } => Terminal::Empty,
                }
            }
        }
        Some(p)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn batches_match_the_reference_model(batches in batches()) {
            let mut map = MemoryMap::new();
            let mut so_far = Vec::new();
            for b in &batches {
                let up = insert_batch(&map, &items(b)).unwrap();
                map.apply(&up.writes);
                so_far.extend_from_slice(b);
                let (r, nodes) = reference(&items(&so_far));
                prop_assert_eq!(up.root, r);
                prop_assert_eq!(map.nodes(), &nodes);
            }
            // Re-inserting any present key fails and changes nothing.
            for k in so_far.iter().take(5) {
                prop_assert_eq!(insert_batch(&map, &items(&[*k])), Err(MapError::DuplicateKey { key: Hash(*k) }));
            }
            let fresh = insert_all(&[so_far.clone()]);
            prop_assert_eq!(fresh, map);
        }

        #[test]
        fn proofs_verify_and_damaged_proofs_fail(
            keys in key_set(),
            randoms in prop::collection::vec(any::<[u8; 32]>(), 0..8),
            flips in prop::collection::vec((any::<prop::sample::Index>(), prop_oneof![0usize..256, 220usize..256]), 0..16),
            mutations in prop::collection::vec(mutation(), 1..6),
        ) {
            let map = insert_all(std::slice::from_ref(&keys));
            let r = root(&map).unwrap();
            let present: HashSet<[u8; 32]> = keys.iter().copied().collect();
            for k in &keys {
                let v = value_of(k);
                let p = prove(&map, k).unwrap();
                prop_assert_eq!(verify_membership(&r, k, &v, &p), Ok(()));
                prop_assert_eq!(get(&map, k).unwrap(), Some(v));
                let wrong = Hash(*blake3::hash(&v.0).as_bytes());
                prop_assert_eq!(verify_membership(&r, k, &wrong, &p), Err(MapVerifyError::ValueMismatch { expected: wrong, got: v }));
                prop_assert_eq!(verify_non_membership(&r, k, &p), Err(MapVerifyError::KeyPresent));
                prop_assert_eq!(MapProof::decode(&p.encode()).unwrap(), p.clone());
                for m in &mutations {
                    if let Some(bad) = mutate(&p, m) {
                        prop_assert!(verify_membership(&r, k, &v, &bad).is_err(), "{:?} verified", m);
                        prop_assert!(verify_non_membership(&r, k, &bad).is_err(), "{:?} verified", m);
                    }
                }
            }
            let absent: Vec<[u8; 32]> = randoms
                .into_iter()
                .chain(flips.iter().map(|(i, b)| flip(i.get(&keys), *b)))
                .filter(|k| !present.contains(k))
                .collect();
            let proofs = prove_many(&map, &absent).unwrap();
            for (k, p) in absent.iter().zip(&proofs) {
                prop_assert_eq!(p, &prove(&map, k).unwrap());
                prop_assert_eq!(verify_non_membership(&r, k, p), Ok(()));
                prop_assert!(verify_membership(&r, k, &value_of(k), p).is_err());
                prop_assert_eq!(get(&map, k).unwrap(), None);
                // The proof is about this key only: it fails for every present key.
                for other in keys.iter().take(4) {
                    prop_assert!(verify_non_membership(&r, other, p).is_err());
                }
                for m in &mutations {
                    if let Some(bad) = mutate(p, m) {
                        prop_assert!(verify_non_membership(&r, k, &bad).is_err(), "{:?} verified", m);
                    }
                }
            }
        }

        #[test]
        fn proof_encoding_round_trips(p in any_proof(), cut in any::<prop::sample::Index>()) {
            let bytes = p.encode();
            prop_assert_eq!(MapProof::decode(&bytes), Ok(p.clone()));
            let json = serde_json::to_string(&p).unwrap();
            prop_assert_eq!(serde_json::from_str::<MapProof>(&json).unwrap(), p);
            let n = cut.index(bytes.len());
            prop_assert!(MapProof::decode(&bytes[..n]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(MapProof::decode(&longer).is_err());
        }

        #[test]
        fn decoders_never_panic_and_accept_only_canonical_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(p) = MapProof::decode(&bytes) {
                prop_assert_eq!(p.encode(), bytes.clone());
            }
            if let Ok(id) = MapNodeId::from_key_bytes(&bytes) {
                prop_assert_eq!(id.to_key_bytes(), bytes.clone());
            }
            if let Ok(n) = MapNode::decode(&bytes) {
                prop_assert_eq!(n.encode(), bytes.clone());
            }
            let mut proofish = vec![bytes.first().copied().unwrap_or(0) & 1, 0, (bytes.len() / 32) as u8];
            proofish.extend_from_slice(&bytes);
            if let Ok(p) = MapProof::decode(&proofish) {
                prop_assert_eq!(p.encode(), proofish);
            }
        }

        #[test]
        fn node_ids_round_trip_in_order(depth in 0u16..=256, bits in any::<[u8; 32]>(), depth2 in 0u16..=256, bits2 in any::<[u8; 32]>()) {
            let a = MapNodeId::new(depth, &bits).unwrap();
            let b = MapNodeId::new(depth2, &bits2).unwrap();
            prop_assert_eq!(MapNodeId::from_key_bytes(&a.to_key_bytes()), Ok(a));
            prop_assert!(a.covers(&bits));
            prop_assert_eq!(a.cmp(&b), a.to_key_bytes().cmp(&b.to_key_bytes()));
            prop_assert_eq!(a == b, a.to_key_bytes() == b.to_key_bytes());
            if depth < 256 {
                let c = a.child(ref_bit(&bits, usize::from(depth)) as u8).unwrap();
                prop_assert_eq!(c, MapNodeId::new(depth + 1, &bits).unwrap());
                prop_assert_eq!(c.sibling().unwrap().sibling(), Some(c));
            }
        }
    }
}
