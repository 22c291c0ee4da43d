//! Ranking an engine's candidates: the distance passes over bucket
//! contents (gathered rows of a shared arena, optionally screened by byte
//! codes first), the unique filter's first pass, and the integer keys that
//! order distances as `total_cmp` does.

use super::*;

/// The arena that every non-empty bucket in `buckets` indexes, as (rows of
/// `dim` values, payloads), when there is one (the in-memory storage);
/// `None` for packed buckets or buckets of different arenas.
///
/// # Errors
/// The bucket's error when the arena's value and payload counts disagree.
#[allow(clippy::type_complexity)]
pub(super) fn shared_arena<'b, D: Clone>(
    buckets: &'b [BucketContents<'_, D>],
    dim: usize,
) -> Result<Option<(&'b [f32], &'b [D])>> {
    let mut shared: Option<(&[f32], &[D])> = None;
    for b in buckets.iter().filter(|b| !b.is_empty()) {
        if b.rows.is_none() {
            return Ok(None);
        }
        let (v, d) = (&*b.vectors, &*b.data);
        match shared {
            None => {
                b.validate_sizes(dim)?;
                shared = Some((v, d));
            }
            Some((sv, sd)) => {
                if !(std::ptr::eq(sv, v) && std::ptr::eq(sd, d)) {
                    return Ok(None);
                }
            }
        }
    }
    Ok(shared)
}

/// Candidates ahead whose row is requested into L2 when rows lie scattered
/// (the in-memory arena): many rows' loads overlap without filling the L1
/// miss buffers (see `kernels::prefetch`), and the kernel's loads then hit
/// L2. Measured on SIFT, 10 bits, four hashes, alternating runs (median
/// queries/s): at 100,000 vectors 2.35k with 8 rows ahead into L1, 3.27k
/// with 16 into L2 (3.53k adding 4 rows ahead into L1 as well); at 20,000
/// vectors (the arena in L3) 26.8k, 27.1k, and 23.8k with the extra L1
/// requests. 12 and 24 were within noise of 16.
pub(super) const ROW_AHEAD: usize = 16;

/// Requests every line of `row` into L2: one prefetch per 64-byte line the
/// row touches, stepping through addresses (a loop over 16-float chunks
/// spent three times the instructions, and missed the last line of a row
/// that does not start on a line).
#[inline(always)]
pub(super) fn prefetch_row(row: &[f32]) {
    let p = row.as_ptr().cast::<u8>();
    let skew = p as usize % 64;
    let span = skew + std::mem::size_of_val(row);
    let mut at = 0;
    while at < span {
        prefetch_read_l2(p.wrapping_sub(skew).wrapping_add(at));
        at += 64;
    }
}

/// `dist[i] = d(query, row(i))` for every candidate `i` in `order`, rows
/// scattered in memory: one distance per row, each row requested
/// [`ROW_AHEAD`] candidates early.
pub(super) fn scattered_distances<'r>(
    d: &dyn Distance,
    query: &[f32],
    order: &[u32],
    row: impl Fn(u32) -> &'r [f32],
    dist: &mut [f32],
) {
    order
        .iter()
        .take(ROW_AHEAD)
        .for_each(|&i| prefetch_row(row(i)));
    for (j, &i) in order.iter().enumerate() {
        if let Some(&far) = order.get(j + ROW_AHEAD) {
            prefetch_row(row(far));
        }
        dist[i as usize] = d.distance(query, row(i));
    }
}

/// What [`rank_screened`] ranks: the query, the candidates' arena rows,
/// the arena, and the screening pieces.
pub(super) struct Screened<'a, D> {
    pub(super) query: &'a [f32],
    pub(super) rows: &'a [u32],
    pub(super) data: &'a [D],
    pub(super) vectors: &'a [f32],
    pub(super) dim: usize,
    pub(super) m: &'a MetricDistance,
    pub(super) qb: &'a QueryBound,
    pub(super) codes: &'a ScreenCodes,
    pub(super) top_n: usize,
}

/// The fused unique + distance + `Nearest(top_n)` pass of
/// `Engine::rank_arena`, screened by the storage's byte codes: pass 1 runs
/// the unique test and bounds every distance from the codes; pass 2 reads
/// the rows, and computes the distances, only of candidates whose lower
/// bound is not above the `top_n`-th smallest upper bound, then keeps the
/// `top_n` best by (distance, position) in `top`. `order` is left empty.
/// Not inlined, so the unscreened loop beside it compiles as on its own.
#[inline(never)]
pub(super) fn rank_screened<D: Payload>(
    s: Screened<'_, D>,
    mut seen: Option<UniqueSet<'_>>,
    order: &mut Vec<u32>,
    dist: &mut [f32],
    top: &mut Vec<(i32, u32)>,
) {
    let Screened {
        query,
        rows,
        data,
        vectors,
        dim,
        m,
        qb,
        codes,
        top_n,
    } = s;
    let total = rows.len();
    let datum = |i: u32| &data[rows[i as usize] as usize];
    let vector = |i: u32| {
        let r = rows[i as usize] as usize;
        &vectors[r * dim..(r + 1) * dim]
    };
    // Pass 1: the unique test, and bounds on each distance
    // from the codes; `tau`, the n-th smallest upper bound,
    // is at least the n-th smallest distance.
    let kt = kernels::active();
    let mut ubs = [f32::INFINITY; filter::SCAN_TOP_MAX];
    let ubs = &mut ubs[..top_n];
    (0..total.min(ROW_AHEAD)).for_each(|k| codes.prefetch(rows[k]));
    for k in 0..total {
        if let Some(&far) = rows.get(k + ROW_AHEAD) {
            codes.prefetch(far);
        }
        let i = k as u32;
        if !first_unique(&mut seen, rows, data, k, &datum) {
            continue;
        }
        order.push(i);
        let (p, c) = codes.row(rows[k]);
        if !p.screened() {
            dist[k] = f32::NEG_INFINITY;
            continue;
        }
        let t = kt.dot_u8(query, c);
        let lb = m.finish(qb.low(p, t));
        dist[k] = lb;
        // The upper bound can only lower `tau` when the
        // lower one is below it (rarely, once n are in).
        if lb < ubs[top_n - 1] {
            let ub = m.finish(qb.high(p, t));
            if ub < ubs[top_n - 1] {
                let at = ubs.partition_point(|&u| u <= ub);
                ubs.copy_within(at..top_n - 1, at + 1);
                ubs[at] = ub;
            }
        }
    }
    // Pass 2: a candidate whose lower bound exceeds `tau`
    // is farther than n others; the rest get their exact
    // distances, their rows prefetched.
    let tau = ubs[top_n - 1];
    order.retain(|&i| dist[i as usize].partial_cmp(&tau) != Some(std::cmp::Ordering::Greater));
    scattered_distances(m, query, order, vector, dist);
    for &i in order.iter() {
        keep_top(top, top_n, total_order_key(dist[i as usize]), i);
    }
    order.clear();
}

/// What [`rank_gathered`] ranks: the query, the candidates' arena rows,
/// the arena, and the crate metric.
pub(super) struct Gathered<'a, D> {
    pub(super) query: &'a [f32],
    pub(super) rows: &'a [u32],
    pub(super) data: &'a [D],
    pub(super) vectors: &'a [f32],
    pub(super) dim: usize,
    pub(super) m: &'a MetricDistance,
    pub(super) top_n: usize,
}

/// Unique candidates whose distances one gather kernel call computes.
pub(super) const GATHER: usize = 8;

/// The fused unique + distance (+ `Nearest(top_n)` when `top_n > 0`) pass
/// of `Engine::rank_arena` for a crate metric, unscreened: candidates that
/// pass the unique test are collected [`GATHER`] at a time and their
/// distances computed by one call of the metric's gather kernel (the rows'
/// latencies overlap, and cosine reduces and finishes four rows together),
/// with the query's own sums computed once. Each group then enters `top`
/// (kept as [`keep_top`] keeps it) or, without `Nearest`, `order`. Rows are
/// requested [`ROW_AHEAD`] candidates early, as in the screened pass.
#[inline(never)]
pub(super) fn rank_gathered<D: Payload>(
    s: Gathered<'_, D>,
    mut seen: Option<UniqueSet<'_>>,
    order: &mut Vec<u32>,
    dist: &mut [f32],
    top: &mut Vec<(i32, u32)>,
) {
    let Gathered {
        query,
        rows,
        data,
        vectors,
        dim,
        m,
        top_n,
    } = s;
    let total = rows.len();
    let datum = |i: u32| &data[rows[i as usize] as usize];
    let vector = |k: usize| {
        let r = rows[k] as usize;
        &vectors[r * dim..(r + 1) * dim]
    };
    let prepared = m.prepare(query);
    // Positions and arena rows of the pending group, and their distances.
    let (mut pos, mut at, mut out) = ([0u32; GATHER], [0u32; GATHER], [0f32; GATHER]);
    let mut settle = |pos: &[u32], at: &[u32]| {
        let out = &mut out[..at.len()];
        m.gather(&prepared, vectors, at, out);
        for (&i, &dk) in pos.iter().zip(out.iter()) {
            dist[i as usize] = dk;
            if top_n == 0 {
                order.push(i);
            } else {
                keep_top(top, top_n, total_order_key(dk), i);
            }
        }
    };
    (0..total.min(ROW_AHEAD)).for_each(|k| prefetch_row(vector(k)));
    let mut pending = 0;
    for k in 0..total {
        if k + ROW_AHEAD < total {
            prefetch_row(vector(k + ROW_AHEAD));
        }
        if !first_unique(&mut seen, rows, data, k, &datum) {
            continue;
        }
        pos[pending] = k as u32;
        at[pending] = rows[k];
        pending += 1;
        if pending == GATHER {
            settle(&pos, &at);
            pending = 0;
        }
    }
    settle(&pos[..pending], &at[..pending]);
}

/// Candidates ahead whose payload is requested into L1 for the unique test.
pub(super) const PAYLOAD_AHEAD: usize = 8;

/// The unique test of candidate `k` (arena row `rows[k]`, payload
/// `datum(k)`), the payload of candidate `k + PAYLOAD_AHEAD` requested
/// first: whether no earlier candidate carries an equal payload. Always
/// true without a set (no `Unique` filter).
#[inline(always)]
pub(super) fn first_unique<'d, D: Payload>(
    seen: &mut Option<UniqueSet<'_>>,
    rows: &[u32],
    data: &'d [D],
    k: usize,
    datum: &impl Fn(u32) -> &'d D,
) -> bool {
    let Some(seen) = seen else {
        return true;
    };
    if let Some(&next) = rows.get(k + PAYLOAD_AHEAD) {
        prefetch_read((&data[next as usize] as *const D).cast());
    }
    seen.first(k as u32, datum)
}

/// Keeps candidate `i` in `top`, the best `n` so far by (key, position) as
/// `Filter::Nearest` ranks, when it belongs there. Candidates come in
/// increasing position, so one enters only with a strictly smaller key
/// than the current last.
#[inline(always)]
pub(super) fn keep_top(top: &mut Vec<(i32, u32)>, n: usize, key: i32, i: u32) {
    if top.len() < n || key < top[n - 1].0 {
        let at = top.partition_point(|&(kj, _)| kj <= key);
        top.insert(at, (key, i));
        top.truncate(n);
    }
}

/// An integer that orders as [`f32::total_cmp`] orders `x` (what
/// `Filter::Nearest` ranks by), so a comparison is one integer compare.
#[inline(always)]
pub(super) fn total_order_key(x: f32) -> i32 {
    let b = x.to_bits() as i32;
    b ^ (((b >> 31) as u32) >> 1) as i32
}

/// The error for a query whose buckets hold `total` entries, more than
/// candidate positions (`u32`) can number.
pub(super) fn too_many_candidates(total: usize) -> Error {
    Error::InvalidParameter(format!(
        "a query's buckets hold {total} entries; at most {} are supported",
        u32::MAX - 1
    ))
}

#[cfg(test)]
mod tests {
    use super::total_order_key;

    /// The integer keys order every pair of floats as `total_cmp` does:
    /// signed zeros, infinities, subnormals and NaNs of both signs.
    #[test]
    fn total_order_keys_order_as_total_cmp() {
        let values = [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-45,
            -1e-45,
            1.0,
            -1.0,
            0.5,
            f32::MAX,
            f32::MIN,
            f32::from_bits(0x7fc0_0001),
            f32::from_bits(0xffc0_0001),
        ];
        for a in values {
            for b in values {
                assert_eq!(
                    total_order_key(a).cmp(&total_order_key(b)),
                    a.total_cmp(&b),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }
}
