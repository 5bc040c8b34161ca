//! The log as C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>): which stored hashes and entries
//! a tile or an entry bundle holds, their paths, and the bundle encoding.
//!
//! A tile at level `L`, index `N` holds the Merkle tree hashes at height `8L`, nodes
//! `256N .. 256N + W` (`W = 256` for a full tile, 1 to 255 for a partial one). Each of those
//! nodes is a complete perfect subtree, so [`crate::log`] has already stored it: a tile is
//! one range read of stored hashes, never a rehash. A tile exists for a tree of `size` leaves
//! when its last node is complete in it: `256N + W <= size >> 8L`. An entry bundle at `N`
//! holds entries `256N .. 256N + W`, each as a big-endian 16-bit length and the entry's bytes
//! (the leaf, exactly).
//!
//! Paths (relative to the log's prefix):
//!
//! ```text
//! tile/<L>/<N>[.p/<W>]          tile/0/x001/x234/067.p/8
//! tile/entries/<N>[.p/<W>]      tile/entries/000
//! ```
//!
//! `<N>` is written in 3-digit groups, every group but the last prefixed with `x`.

use crate::merkle::{Hash, NodeId};

/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u16 = 256;
/// Tree levels one tile level spans.
pub const TILE_HEIGHT: u32 = 8;
/// The largest entry an entry bundle can hold (its length prefix has 16 bits).
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// A tile of Merkle tree hashes at this tile level (0 to 63).
    Hashes {
        /// The tile level.
        level: u8,
    },
    /// An entry bundle.
    Entries,
}

/// One tile or entry bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Hashes or entries.
    pub kind: TileKind,
    /// Its index within its level.
    pub index: u64,
    /// How many hashes or entries it holds: 256 for a full tile, 1 to 255 for a partial one.
    pub width: u16,
}

/// A path that names no tile, or a bundle that cannot be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// The path breaks the tlog-tiles grammar.
    #[error("not a tile path: {0}")]
    BadPath(&'static str),
    /// An entry is longer than a bundle's 16-bit length prefix can say.
    #[error("entry {index} is {len} bytes; an entry bundle holds entries of at most 65535")]
    EntryTooLong {
        /// The entry's index.
        index: u64,
        /// Its length.
        len: usize,
    },
    /// A bundle whose bytes do not split into length-prefixed entries.
    #[error("malformed entry bundle: {0}")]
    BadBundle(&'static str),
}

impl Tile {
    /// Parses a path relative to the log prefix's `tile/`: `<L>/<N>[.p/<W>]` or
    /// `entries/<N>[.p/<W>]`.
    ///
    /// # Errors
    ///
    /// [`TileError::BadPath`] for anything else, leading zeros and out-of-range numbers
    /// included (one tile, one path: caches and mirrors must not see two names for it).
    pub fn parse_path(path: &str) -> Result<Tile, TileError> {
        let (first, rest) = path.split_once('/').ok_or(TileError::BadPath("no index"))?;
        let kind = if first == "entries" {
            TileKind::Entries
        } else {
            let level = canonical_decimal(first)
                .filter(|&l| l <= 63)
                .ok_or(TileError::BadPath("the level is not 0 to 63"))?;
            TileKind::Hashes { level: level as u8 }
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index, width)) => {
                let width = canonical_decimal(width)
                    .filter(|w| (1..u64::from(TILE_WIDTH)).contains(w))
                    .ok_or(TileError::BadPath("a partial width is 1 to 255"))?;
                (index, width as u16)
            }
            None => (rest, TILE_WIDTH),
        };
        Ok(Tile {
            kind,
            index: parse_index(index_part)?,
            width,
        })
    }

    /// The path relative to the log prefix, `tile/` included.
    pub fn path(&self) -> String {
        let mut path = String::from("tile/");
        match self.kind {
            TileKind::Hashes { level } => path.push_str(&level.to_string()),
            TileKind::Entries => path.push_str("entries"),
        }
        path.push('/');
        let digits = self.index.to_string();
        // Groups of three from the right; the first is zero-padded to three.
        let padded = format!("{:0>width$}", digits, width = digits.len().div_ceil(3) * 3);
        let groups: Vec<&str> = padded
            .as_bytes()
            .chunks(3)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        for (i, group) in groups.iter().enumerate() {
            if i + 1 < groups.len() {
                path.push('x');
                path.push_str(group);
                path.push('/');
            } else {
                path.push_str(group);
            }
        }
        if self.is_partial() {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }

    /// Whether it holds fewer than 256 hashes or entries (and may be superseded).
    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH
    }

    /// The tree level of the hashes it holds (0: leaf hashes); entries are at level 0 too.
    /// `None` for a tile level so high no tree of 2^64 - 1 leaves has nodes there.
    pub fn tree_level(&self) -> Option<u8> {
        let level = match self.kind {
            TileKind::Hashes { level } => u32::from(level) * TILE_HEIGHT,
            TileKind::Entries => 0,
        };
        (level < 64).then_some(level as u8)
    }

    /// The stored nodes it holds, as the range `[start, end)` of node indexes at
    /// [`Tile::tree_level`], or `None` when it lies beyond every possible tree.
    pub fn node_range(&self) -> Option<(u8, u64, u64)> {
        let level = self.tree_level()?;
        let start = self.index.checked_mul(u64::from(TILE_WIDTH))?;
        let end = start.checked_add(u64::from(self.width))?;
        Some((level, start, end))
    }

    /// Whether the tree of `size` leaves has every hash (or entry) of this tile, so that it can
    /// be served (a tile of a larger tree than the log's is not).
    pub fn exists_in(&self, size: u64) -> bool {
        self.node_range()
            .is_some_and(|(level, _, end)| end <= size >> level)
    }

    /// The node ids it holds, in order.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.node_range()
            .map(|(level, start, end)| (start..end).map(|i| NodeId::new(level, i)).collect())
            .unwrap_or_default()
    }

    /// Every tile and entry bundle of the tree of `size` leaves: the full ones, and the
    /// partial one at each level where the size leaves a remainder. What a mirror fetches.
    pub fn all_of(size: u64) -> Vec<Tile> {
        let mut tiles = Vec::new();
        for level in 0..=7u8 {
            let nodes = size >> (u32::from(level) * TILE_HEIGHT);
            if nodes == 0 {
                break;
            }
            let kinds: &[TileKind] = if level == 0 {
                &[TileKind::Hashes { level: 0 }, TileKind::Entries]
            } else {
                &[TileKind::Hashes { level }]
            };
            for &kind in kinds {
                let full = nodes / u64::from(TILE_WIDTH);
                tiles.extend((0..full).map(|index| Tile {
                    kind,
                    index,
                    width: TILE_WIDTH,
                }));
                let rest = (nodes % u64::from(TILE_WIDTH)) as u16;
                if rest > 0 {
                    tiles.push(Tile {
                        kind,
                        index: full,
                        width: rest,
                    });
                }
            }
        }
        tiles
    }
}

/// A decimal number with no leading zeros (`0` itself allowed).
fn canonical_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// `x001/x234/067` to 1234067.
fn parse_index(text: &str) -> Result<u64, TileError> {
    let groups: Vec<&str> = text.split('/').collect();
    let mut index: u64 = 0;
    for (i, group) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let digits = if last {
            *group
        } else {
            group.strip_prefix('x').ok_or(TileError::BadPath(
                "an index group but the last lacks its 'x'",
            ))?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TileError::BadPath("an index group is not three digits"));
        }
        // A leading group of 000 would give the tile a second name.
        if i == 0 && !last && digits == "000" {
            return Err(TileError::BadPath("an index with a leading zero group"));
        }
        let value: u64 = digits
            .parse()
            .map_err(|_| TileError::BadPath("an index group is not three digits"))?;
        index = index
            .checked_mul(1000)
            .and_then(|n| n.checked_add(value))
            .ok_or(TileError::BadPath("the index is above 2^64 - 1"))?;
    }
    Ok(index)
}

/// A tile's bytes: its hashes, concatenated.
pub fn hash_tile(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

/// An entry bundle of the entries (leaf bytes) starting at index `first`.
///
/// # Errors
///
/// [`TileError::EntryTooLong`] for an entry of more than 65535 bytes.
pub fn entry_bundle<E: AsRef<[u8]>>(first: u64, entries: &[E]) -> Result<Vec<u8>, TileError> {
    let total: usize = entries.iter().map(|e| 2 + e.as_ref().len()).sum();
    let mut bundle = Vec::with_capacity(total);
    for (index, entry) in (first..).zip(entries) {
        let entry = entry.as_ref();
        let len = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLong {
            index,
            len: entry.len(),
        })?;
        bundle.extend_from_slice(&len.to_be_bytes());
        bundle.extend_from_slice(entry);
    }
    Ok(bundle)
}

/// Splits an entry bundle into its entries.
///
/// # Errors
///
/// [`TileError::BadBundle`] when a length prefix runs past the end.
pub fn parse_entry_bundle(bundle: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut entries = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or(TileError::BadBundle("a length prefix is cut short"))?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err(TileError::BadBundle("an entry is cut short"));
        }
        let (entry, tail) = tail.split_at(len);
        entries.push(entry);
        rest = tail;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(kind: TileKind, index: u64, width: u16) -> Tile {
        Tile { kind, index, width }
    }

    #[test]
    fn paths_follow_the_spec_examples_and_round_trip() {
        let level0 = TileKind::Hashes { level: 0 };
        for (t, path) in [
            (tile(level0, 1234067, 256), "tile/0/x001/x234/067"),
            (tile(level0, 0, 256), "tile/0/000"),
            (tile(level0, 7, 8), "tile/0/007.p/8"),
            (
                tile(TileKind::Hashes { level: 2 }, 1000, 1),
                "tile/2/x001/000.p/1",
            ),
            (tile(TileKind::Entries, 999, 255), "tile/entries/999.p/255"),
            (
                tile(TileKind::Entries, 1_000_000, 256),
                "tile/entries/x001/x000/000",
            ),
            (
                tile(level0, u64::MAX, 256),
                "tile/0/x018/x446/x744/x073/x709/x551/615",
            ),
        ] {
            assert_eq!(t.path(), path);
            assert_eq!(Tile::parse_path(&path["tile/".len()..]), Ok(t), "{path}");
        }
    }

    #[test]
    fn paths_with_a_second_spelling_or_out_of_range_are_refused() {
        for path in [
            "0/7",
            "0/0007",
            "0/x000/007",
            "0/001/007",
            "0/x01/007",
            "00/007",
            "64/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/08",
            "0/000.p/",
            "entries/000.p/1/",
            "entry/000",
            "0/x018/x446/x744/x073/x709/x551/616",
            "-1/000",
            "0",
            "",
        ] {
            assert!(Tile::parse_path(path).is_err(), "{path}");
        }
    }

    #[test]
    fn the_specs_tree_of_70000_has_the_tiles_it_lists() {
        // tlog-tiles: 273 full level-0 tiles, one partial of width 112, one full level-1
        // tile, one partial of width 17, one partial level-2 tile of width 1 (and bundles
        // alongside level 0).
        let tiles = Tile::all_of(70_000);
        let of = |kind| {
            tiles
                .iter()
                .filter(|t| t.kind == kind)
                .copied()
                .collect::<Vec<_>>()
        };
        let level0 = of(TileKind::Hashes { level: 0 });
        assert_eq!(level0.len(), 274);
        assert_eq!(level0[273], tile(TileKind::Hashes { level: 0 }, 273, 112));
        assert_eq!(of(TileKind::Entries).len(), 274);
        assert_eq!(
            of(TileKind::Hashes { level: 1 }),
            vec![
                tile(TileKind::Hashes { level: 1 }, 0, 256),
                tile(TileKind::Hashes { level: 1 }, 1, 17)
            ]
        );
        assert_eq!(
            of(TileKind::Hashes { level: 2 }),
            vec![tile(TileKind::Hashes { level: 2 }, 0, 1)]
        );
        assert!(tiles.iter().all(|t| t.exists_in(70_000)));
        assert!(!tile(TileKind::Hashes { level: 0 }, 273, 113).exists_in(70_000));
        assert!(!tile(TileKind::Hashes { level: 2 }, 0, 2).exists_in(70_000));
        // A tree of 256: one full level-0 tile and a level-1 tile of width 1.
        let small = Tile::all_of(256);
        assert!(small.contains(&tile(TileKind::Hashes { level: 1 }, 0, 1)));
        assert_eq!(small.len(), 3);
        assert!(Tile::all_of(0).is_empty());
        // No tree has nodes at tile level 8 (tree level 64).
        assert!(!tile(TileKind::Hashes { level: 8 }, 0, 1).exists_in(u64::MAX));
    }

    #[test]
    fn a_tile_names_the_stored_nodes_it_holds() {
        let t = tile(TileKind::Hashes { level: 1 }, 2, 3);
        assert_eq!(
            t.nodes(),
            vec![
                NodeId::new(8, 512),
                NodeId::new(8, 513),
                NodeId::new(8, 514)
            ]
        );
        assert_eq!(
            tile(TileKind::Entries, 1, 2).node_range(),
            Some((0, 256, 258))
        );
    }

    #[test]
    fn bundles_round_trip_and_refuse_what_does_not_fit() {
        let entries: Vec<Vec<u8>> = vec![b"a".to_vec(), Vec::new(), vec![7; 300]];
        let bundle = entry_bundle(0, &entries).unwrap();
        assert_eq!(&bundle[..3], &[0, 1, b'a']);
        assert_eq!(&bundle[5..7], &[1, 44]);
        let parsed = parse_entry_bundle(&bundle).unwrap();
        assert_eq!(
            parsed,
            entries.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        assert!(parse_entry_bundle(&bundle[..bundle.len() - 1]).is_err());
        assert!(parse_entry_bundle(&[0]).is_err());
        assert_eq!(
            entry_bundle(9, &[vec![0u8; MAX_ENTRY_LEN + 1]]),
            Err(TileError::EntryTooLong {
                index: 9,
                len: MAX_ENTRY_LEN + 1
            })
        );
        assert!(entry_bundle(0, &[vec![0u8; MAX_ENTRY_LEN]]).is_ok());
    }
}
