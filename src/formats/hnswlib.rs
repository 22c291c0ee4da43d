//! Reading the files hnswlib's `saveIndex` writes (hnswlib 0.7 and 0.8;
//! Python's `Index.save_index` calls it), validated field by field.
//!
//! # hnswlib's layout
//!
//! All values are the writer's native byte order (little-endian on every
//! platform hnswlib ships for), `size_t` is 8 bytes:
//!
//! | field | type |
//! |---|---|
//! | offsetLevel0 | size_t (always 0) |
//! | max_elements | size_t |
//! | cur_element_count | size_t |
//! | size_data_per_element | size_t |
//! | label_offset | size_t |
//! | offsetData | size_t |
//! | maxlevel | int (i32; -1 when empty) |
//! | enterpoint_node | u32 (`u32::MAX` when empty) |
//! | maxM | size_t (= M) |
//! | maxM0 | size_t (= 2 M) |
//! | M | size_t |
//! | mult | f64 |
//! | ef_construction | size_t |
//!
//! then `cur_element_count` level-0 records of `size_data_per_element`
//! bytes: a `u32` link header (low 16 bits: link count; bit 0 of byte 2:
//! deleted), `maxM0` `u32` ids, the vector (`dim` `f32`), the label (`u64`);
//! then per element a `u32` byte length (`level * (4 + 4 maxM)`) followed by
//! its upper-level link lists, one per level, each a `u32` count and `maxM`
//! ids.
//!
//! Every size is checked against the others and against the file before it
//! is used; every link id is checked against the element count. A file that
//! fails any check is a [`FormatError::Foreign`] saying which.

use crate::store::FormatError;

/// Levels above this are refused (swann's graph caps levels at 16; hnswlib
/// reaches level 16 with probability about `M^-16` per element).
pub const MAX_LEVEL: u8 = 16;

/// Size of hnswlib's fixed header in bytes.
const HEADER_LEN: usize = 6 * 8 + 4 + 4 + 3 * 8 + 8 + 8;

/// An hnswlib index as flat arrays, in hnswlib's internal id order.
#[derive(Clone, Debug, PartialEq)]
pub struct HnswlibIndex {
    /// Vector dimension.
    pub dim: usize,
    /// hnswlib's `M` (links per node on upper levels).
    pub m: usize,
    /// Links per node on level 0 (`2 M`).
    pub m0: usize,
    /// Level multiplier (`1 / ln M` unless hnswlib was given another).
    pub mult: f64,
    /// `ef_construction`.
    pub ef_construction: usize,
    /// `max_elements` when saved (the capacity).
    pub max_elements: usize,
    /// Entry point id and top level, `None` for an empty index.
    pub entry: Option<(u32, u8)>,
    /// `n * dim` components, row `i` for internal id `i`.
    pub vectors: Vec<f32>,
    /// Label of each id.
    pub labels: Vec<u64>,
    /// Whether each id is marked deleted.
    pub deleted: Vec<bool>,
    /// Level of each id.
    pub levels: Vec<u8>,
    /// Level-0 links: `n * m0` ids, row `i`'s first `links0_len[i]` valid.
    pub links0: Vec<u32>,
    /// Number of level-0 links of each id.
    pub links0_len: Vec<u16>,
    /// Index of each id's first upper-level record: id `i` on level `l >= 1`
    /// has record `upper_offset[i] + l - 1`.
    pub upper_offset: Vec<u32>,
    /// Upper-level links: `m` ids per record.
    pub upper: Vec<u32>,
    /// Number of links in each upper record.
    pub upper_len: Vec<u16>,
}

impl HnswlibIndex {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the index holds no elements.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The level-0 links of `id`.
    pub fn links0(&self, id: usize) -> &[u32] {
        &self.links0[id * self.m0..id * self.m0 + usize::from(self.links0_len[id])]
    }

    /// The links of `id` on `level >= 1` (empty above its level).
    pub fn upper_links(&self, id: usize, level: usize) -> &[u32] {
        if level == 0 || level > usize::from(self.levels[id]) {
            return &[];
        }
        let rec = self.upper_offset[id] as usize + level - 1;
        &self.upper[rec * self.m..rec * self.m + usize::from(self.upper_len[rec])]
    }
}

fn err(reason: impl Into<String>) -> FormatError {
    FormatError::Foreign {
        format: "hnswlib",
        reason: reason.into(),
    }
}

/// A bounds-checked little-endian reader.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                err(format!(
                    "file truncated: {what} needs {n} bytes at offset {}, the file has {}",
                    self.pos,
                    self.b.len()
                ))
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    fn size(&mut self, what: &str) -> Result<usize, FormatError> {
        let v = self.u64(what)?;
        usize::try_from(v).map_err(|_| err(format!("{what} = {v} does not fit in memory")))
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses an hnswlib index of `dim`-dimensional `f32` vectors.
///
/// # Errors
/// [`FormatError::WrongDimension`] when the file's vectors do not have `dim`
/// components; [`FormatError::Foreign`] for every other check that fails: a
/// zero `dim`, a truncated file or trailing bytes, header fields that
/// contradict each other or are out of swann's range (`M` outside `2..=127`, a
/// level above [`MAX_LEVEL`], more elements than `max_elements` or `u32` ids
/// hold), a link out of range or to itself, a non-finite component, a level
/// that disagrees with the entry point, or a label that appears twice;
/// [`FormatError::BigEndianHost`] on a big-endian host.
pub fn parse(bytes: &[u8], dim: usize) -> Result<HnswlibIndex, FormatError> {
    if cfg!(target_endian = "big") {
        return Err(FormatError::BigEndianHost);
    }
    if dim == 0 {
        return Err(err("dimension must be at least 1"));
    }
    if bytes.len() < HEADER_LEN {
        return Err(err(format!(
            "file truncated: {} bytes, the header alone is {HEADER_LEN}",
            bytes.len()
        )));
    }
    let mut c = Cursor { b: bytes, pos: 0 };
    let offset_level0 = c.size("offsetLevel0")?;
    let max_elements = c.size("max_elements")?;
    let n = c.size("cur_element_count")?;
    let size_per_element = c.size("size_data_per_element")?;
    let label_offset = c.size("label_offset")?;
    let offset_data = c.size("offsetData")?;
    let max_level = c.u32("maxlevel")? as i32;
    let entry = c.u32("enterpoint_node")?;
    let max_m = c.size("maxM")?;
    let max_m0 = c.size("maxM0")?;
    let m = c.size("M")?;
    let mult = f64::from_bits(c.u64("mult")?);
    let ef_construction = c.size("ef_construction")?;

    if !(mult.is_finite() && mult > 0.0) {
        return Err(err(format!("mult = {mult}, expected a positive number")));
    }
    if offset_level0 != 0 {
        return Err(err(format!("offsetLevel0 is {offset_level0}, expected 0")));
    }
    if !(2..=127).contains(&m) {
        return Err(err(format!("M = {m} is outside swann's range 2..=127")));
    }
    if max_m != m || max_m0 != 2 * m {
        return Err(err(format!(
            "maxM = {max_m}, maxM0 = {max_m0}; expected M = {m} and 2 M = {}",
            2 * m
        )));
    }
    let links0_bytes = 4 + 4 * max_m0;
    if offset_data != links0_bytes {
        return Err(err(format!(
            "offsetData = {offset_data}, expected 4 + 4 maxM0 = {links0_bytes}"
        )));
    }
    // dim >= 1 and small enough not to overflow: checked by comparing with
    // the stored sizes, which bound it.
    let data_size = dim
        .checked_mul(4)
        .ok_or_else(|| err("dimension overflows"))?;
    if label_offset != offset_data.saturating_add(data_size) {
        let stored_dim = label_offset.saturating_sub(offset_data) / 4;
        return Err(FormatError::WrongDimension {
            expected: dim as u64,
            found: stored_dim as u64,
        });
    }
    if size_per_element != label_offset + 8 {
        return Err(err(format!(
            "size_data_per_element = {size_per_element}, expected label_offset + 8 = {}",
            label_offset + 8
        )));
    }
    if n > max_elements {
        return Err(err(format!(
            "cur_element_count {n} exceeds max_elements {max_elements}"
        )));
    }
    if n >= u32::MAX as usize {
        return Err(err(format!("{n} elements do not fit u32 ids")));
    }
    if ef_construction == 0 {
        return Err(err("ef_construction is 0"));
    }
    let entry = match (n, max_level) {
        (0, -1) => None,
        (0, l) => return Err(err(format!("empty index with maxlevel {l}"))),
        (_, l) if !(0..=i32::from(MAX_LEVEL)).contains(&l) => {
            return Err(err(format!("maxlevel {l} outside 0..={MAX_LEVEL}")))
        }
        (_, _) if entry as usize >= n => {
            return Err(err(format!(
                "entry point {entry} is not below the element count {n}"
            )))
        }
        (_, l) => Some((entry, l as u8)),
    };

    let level0_len = n
        .checked_mul(size_per_element)
        .ok_or_else(|| err("level-0 block size overflows"))?;
    let level0 = c.take(level0_len, "level-0 data")?;

    let mut out = HnswlibIndex {
        dim,
        m,
        m0: max_m0,
        mult,
        ef_construction,
        max_elements,
        entry,
        vectors: Vec::with_capacity(n * dim),
        labels: Vec::with_capacity(n),
        deleted: Vec::with_capacity(n),
        levels: Vec::with_capacity(n),
        links0: Vec::with_capacity(n * max_m0),
        links0_len: Vec::with_capacity(n),
        upper_offset: Vec::with_capacity(n),
        upper: Vec::new(),
        upper_len: Vec::new(),
    };
    let check_ids = |ids: &mut dyn Iterator<Item = u32>, id: usize, level: usize| {
        for (j, t) in ids.enumerate() {
            if t as usize >= n {
                return Err(err(format!(
                    "element {id} level {level}: link {j} is {t}, not below the element count {n}"
                )));
            }
            if t as usize == id {
                return Err(err(format!("element {id} level {level}: links to itself")));
            }
        }
        Ok(())
    };
    for (id, rec) in level0.chunks_exact(size_per_element).enumerate() {
        let header = u32_at(rec, 0);
        let count = (header & 0xffff) as usize;
        if count > max_m0 {
            return Err(err(format!(
                "element {id}: {count} level-0 links, at most maxM0 = {max_m0}"
            )));
        }
        let ids = (0..max_m0).map(|j| u32_at(rec, 4 + 4 * j));
        check_ids(&mut ids.clone().take(count), id, 0)?;
        out.links0.extend(ids);
        out.links0_len.push(count as u16);
        out.deleted.push(rec[2] & 1 != 0);
        for j in 0..dim {
            let x = f32::from_le_bytes(
                rec[offset_data + 4 * j..offset_data + 4 * j + 4]
                    .try_into()
                    .expect("4 bytes"),
            );
            if !x.is_finite() {
                return Err(err(format!("element {id}: component {j} is {x}")));
            }
            out.vectors.push(x);
        }
        let mut label = [0u8; 8];
        label.copy_from_slice(&rec[label_offset..label_offset + 8]);
        out.labels.push(u64::from_le_bytes(label));
    }

    let upper_rec_bytes = 4 + 4 * max_m;
    let mut records = 0u32;
    for id in 0..n {
        let size = c.u32("link list size")? as usize;
        if !size.is_multiple_of(upper_rec_bytes) {
            return Err(err(format!(
                "element {id}: link list size {size} is not a multiple of {upper_rec_bytes}"
            )));
        }
        let level = size / upper_rec_bytes;
        if level > usize::from(MAX_LEVEL) {
            return Err(err(format!(
                "element {id}: level {level} above {MAX_LEVEL}"
            )));
        }
        let lists = c.take(size, "upper link lists")?;
        out.levels.push(level as u8);
        out.upper_offset.push(records);
        records = records
            .checked_add(level as u32)
            .ok_or_else(|| err("too many upper-level records"))?;
        for (l, rec) in lists.chunks_exact(upper_rec_bytes).enumerate() {
            let count = (u32_at(rec, 0) & 0xffff) as usize;
            if count > max_m {
                return Err(err(format!(
                    "element {id} level {}: {count} links, at most maxM = {max_m}",
                    l + 1
                )));
            }
            let ids = (0..max_m).map(|j| u32_at(rec, 4 + 4 * j));
            check_ids(&mut ids.clone().take(count), id, l + 1)?;
            out.upper.extend(ids);
            out.upper_len.push(count as u16);
        }
    }
    if c.pos != bytes.len() {
        return Err(err(format!(
            "{} bytes after the last link list",
            bytes.len() - c.pos
        )));
    }
    if let Some((ep, top)) = out.entry {
        if out.levels[ep as usize] != top {
            return Err(err(format!(
                "entry point {ep} has level {}, maxlevel is {top}",
                out.levels[ep as usize]
            )));
        }
        if let Some(max) = out.levels.iter().max() {
            if *max > top {
                return Err(err(format!(
                    "an element has level {max} above maxlevel {top}"
                )));
            }
        }
    }
    let mut seen = std::collections::HashSet::with_capacity(n);
    for (id, l) in out.labels.iter().enumerate() {
        if !seen.insert(*l) {
            return Err(err(format!("element {id}: label {l} appears twice")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hnswlib/");
        std::fs::read(format!("{path}{name}")).unwrap()
    }

    #[test]
    fn parses_the_fixtures_consistently() {
        for space in ["l2", "ip", "cosine"] {
            let idx = parse(&fixture(&format!("{space}.hnsw")), 16).unwrap();
            assert_eq!((idx.len(), idx.m, idx.m0, idx.dim), (500, 8, 16, 16));
            assert_eq!(idx.max_elements, 520);
            assert_eq!(idx.ef_construction, 100);
            assert!((idx.mult - 1.0 / 8f64.ln()).abs() < 1e-12, "{}", idx.mult);
            assert_eq!(idx.labels[0], 1000);
            assert_eq!(idx.labels[499], 1000 + 3 * 499);
            let n_deleted = idx.deleted.iter().filter(|&&d| d).count();
            assert_eq!(n_deleted, if space == "l2" { 3 } else { 0 });
            let (ep, top) = idx.entry.unwrap();
            assert_eq!(idx.levels[ep as usize], top);
            assert!(top >= 1, "500 nodes at M=8 have an upper level");
            // Every node is reachable on level 0 from somewhere.
            let mut indeg = vec![0u32; idx.len()];
            for id in 0..idx.len() {
                assert!(!idx.links0(id).is_empty());
                for &t in idx.links0(id) {
                    indeg[t as usize] += 1;
                }
                for l in 1..=usize::from(idx.levels[id]) {
                    for &t in idx.upper_links(id, l) {
                        assert!(idx.levels[t as usize] as usize >= l);
                    }
                }
            }
            assert!(indeg.iter().all(|&d| d > 0));
            if space == "cosine" {
                for row in idx.vectors.chunks(16) {
                    let norm: f32 = row.iter().map(|x| x * x).sum();
                    assert!((norm - 1.0).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn wrong_dimension_is_named() {
        assert_eq!(
            parse(&fixture("l2.hnsw"), 32).unwrap_err(),
            FormatError::WrongDimension {
                expected: 32,
                found: 16
            }
        );
    }

    #[test]
    fn every_truncation_and_many_corruptions_are_errors_not_panics() {
        let good = fixture("ip.hnsw");
        for len in (0..good.len()).step_by(61).chain([good.len() - 1]) {
            assert!(parse(&good[..len], 16).is_err(), "truncated to {len}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(parse(&longer, 16).is_err());
        // Every header byte, and a sample of the rest: an error or a parse
        // whose every link is in range (a flipped vector bit is still a file).
        for i in (0..HEADER_LEN).chain((HEADER_LEN..good.len()).step_by(53)) {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            if let Ok(idx) = parse(&bad, 16) {
                for id in 0..idx.len() {
                    assert!(idx.links0(id).iter().all(|&t| (t as usize) < idx.len()));
                }
            }
        }
    }
}
