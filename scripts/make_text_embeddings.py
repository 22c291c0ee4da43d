#!/usr/bin/env python3
"""Builds a real higher-dimensional cosine data set: sentence embeddings of
English documentation text.

Source: the HTML documentation trees given with --source (default: the
Python documentation of Debian's python3.X-doc package and, when present,
the Rust documentation rustup installs). Every paragraph-level text block
is split into sentences; sentences of 6-80 words are kept, deduplicated by
their words, and after embedding rows equal to an earlier row are dropped.

Embedding: latent semantic analysis, the classic sentence embedding: a
TF-IDF matrix (sublinear term frequency, words and word bigrams seen in at
least 3 sentences) reduced to --dim dimensions (default 384) by a truncated
SVD, then normalized to unit length. Nothing is random apart from the SVD's
seeded solver and the seeded query split.

Output (in --out, default data/docs-lsa): docs-lsa_base.fvecs,
docs-lsa_query.fvecs (held-out sentences, never in the base),
docs-lsa_groundtruth.ivecs (exact 100 nearest by cosine), and
docs-lsa_meta.json (sources, counts, timings).

    python3 -m pip install numpy scikit-learn
    sudo apt-get install python3.11-doc       # the default source
    python3 scripts/make_text_embeddings.py --min-sentences 100000

Then, e.g.:
    target/release/swann bench hnsw --metric cosine --quant sq8 \\
        --base data/docs-lsa/docs-lsa_base.fvecs \\
        --queries data/docs-lsa/docs-lsa_query.fvecs \\
        --groundtruth data/docs-lsa/docs-lsa_groundtruth.ivecs
"""

import argparse
import glob
import html.parser
import json
import os
import re
import sys
import time

import numpy as np

BLOCK_TAGS = {"p", "li", "dd", "td", "h1", "h2", "h3", "h4", "blockquote", "dt"}
SKIP_TAGS = {"pre", "code", "script", "style", "nav", "footer", "header"}


class TextBlocks(html.parser.HTMLParser):
    """Collects the text of block elements, skipping code and navigation."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks = []
        self.cur = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in SKIP_TAGS:
            self.skip += 1
        elif tag in BLOCK_TAGS:
            self.flush()

    def handle_endtag(self, tag):
        if tag in SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in BLOCK_TAGS:
            self.flush()

    def handle_data(self, data):
        if not self.skip:
            self.cur.append(data)

    def flush(self):
        text = " ".join("".join(self.cur).split())
        if text:
            self.blocks.append(text)
        self.cur = []


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")


def sentences_of(path):
    p = TextBlocks()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            p.feed(f.read())
        p.flush()
    except Exception as e:  # a malformed page costs only itself
        print(f"skipping {path}: {e}", file=sys.stderr)
        return []
    out = []
    for block in p.blocks:
        for s in SENTENCE_END.split(block):
            words = WORD.findall(s)
            if 6 <= len(words) <= 80:
                out.append(s.strip())
    return out


def default_sources():
    srcs = sorted(glob.glob("/usr/share/doc/python3.*/html"))
    srcs += sorted(glob.glob(os.path.expanduser("~/.rustup/toolchains/*/share/doc/rust/html")))[:1]
    return srcs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", action="append", help="HTML documentation tree (repeatable)")
    ap.add_argument("--out", default="data/docs-lsa")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--min-sentences", type=int, default=100_000,
                    help="fail unless the base holds at least this many sentences")
    ap.add_argument("--max-sentences", type=int, default=0, help="cap the base (0: keep all)")
    ap.add_argument("--gt-k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    try:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError:
        sys.exit("needs scikit-learn: python3 -m pip install numpy scikit-learn")

    sources = a.source or default_sources()
    if not sources:
        sys.exit("no documentation tree found: install python3.11-doc or pass --source DIR")
    t0 = time.time()
    seen, sents, per_source = set(), [], {}
    for src in sources:
        files = sorted(glob.glob(os.path.join(src, "**", "*.html"), recursive=True))
        before = len(sents)
        for path in files:
            for s in sentences_of(path):
                # Sentences that differ only in code, numbers or punctuation
                # are one sentence to the embedding.
                key = " ".join(WORD.findall(s.lower()))
                if key not in seen:
                    seen.add(key)
                    sents.append(s)
        per_source[src] = {"files": len(files), "sentences": len(sents) - before}
        print(f"{src}: {len(files)} pages, {len(sents) - before} new sentences", file=sys.stderr)
    rng = np.random.RandomState(a.seed)
    order = rng.permutation(len(sents))
    queries = [sents[i] for i in order[: a.queries]]
    base = [sents[i] for i in order[a.queries:]]
    if a.max_sentences:
        base = base[: a.max_sentences]
    if len(base) < a.min_sentences:
        sys.exit(f"only {len(base)} base sentences (need {a.min_sentences}); add --source trees")
    t1 = time.time()
    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=3, max_df=0.5, ngram_range=(1, 2),
                            token_pattern=r"(?u)\b[A-Za-z][A-Za-z'-]+\b", dtype=np.float32)
    xb = tfidf.fit_transform(base)
    xq = tfidf.transform(queries)
    svd = TruncatedSVD(n_components=a.dim, algorithm="randomized", n_iter=4, random_state=a.seed)
    eb = svd.fit_transform(xb).astype(np.float32)
    eq = svd.transform(xq).astype(np.float32)

    def unit(x):
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.maximum(n, 1e-12)

    eb, eq = unit(eb), unit(eq)
    # Drop sentences whose terms all fell out of the vocabulary, and rows
    # equal to an earlier row to 5 decimals (sentences made of the same
    # terms): thousands of tied neighbours would make recall@k meaningless.
    eb = eb[np.linalg.norm(eb, axis=1) > 0.5]
    _, first = np.unique(np.round(eb, 5), axis=0, return_index=True)
    eb = eb[np.sort(first)]
    eq = eq[np.linalg.norm(eq, axis=1) > 0.5]
    if len(eb) < a.min_sentences:
        sys.exit(f"only {len(eb)} distinct base vectors (need {a.min_sentences}); add --source trees")
    t2 = time.time()
    gt = np.empty((len(eq), a.gt_k), dtype=np.int32)
    for i in range(0, len(eq), 100):
        sims = eq[i:i + 100] @ eb.T
        top = np.argpartition(-sims, a.gt_k, axis=1)[:, : a.gt_k]
        rows = np.take_along_axis(sims, top, axis=1)
        gt[i:i + 100] = np.take_along_axis(top, np.argsort(-rows, axis=1, kind="stable"), axis=1)
    t3 = time.time()

    os.makedirs(a.out, exist_ok=True)
    name = os.path.basename(os.path.normpath(a.out))

    def write_vecs(path, x, dtype):
        x = np.ascontiguousarray(x, dtype=dtype)
        d = np.full((x.shape[0], 1), x.shape[1], dtype=np.int32)
        np.hstack([d.view(dtype), x]).tofile(path)

    write_vecs(os.path.join(a.out, f"{name}_base.fvecs"), eb, np.float32)
    write_vecs(os.path.join(a.out, f"{name}_query.fvecs"), eq, np.float32)
    write_vecs(os.path.join(a.out, f"{name}_groundtruth.ivecs"), gt, np.int32)
    meta = {
        "what": "LSA sentence embeddings (TF-IDF words+bigrams, truncated SVD, unit length) of documentation text",
        "metric": "cosine",
        "dim": a.dim,
        "base": int(len(eb)),
        "queries": int(len(eq)),
        "groundtruth_k": a.gt_k,
        "vocabulary": int(len(tfidf.vocabulary_)),
        "explained_variance": float(svd.explained_variance_ratio_.sum()),
        "sources": per_source,
        "seconds": {"text": round(t1 - t0, 1), "embed": round(t2 - t1, 1), "groundtruth": round(t3 - t2, 1)},
    }
    with open(os.path.join(a.out, f"{name}_meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
