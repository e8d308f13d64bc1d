/* The word and token cutters of prepflow's text filters, and the whitespace tidy of its
 * whitespace refiner, each in one pass over UTF-8 bytes; Gopher's n-gram repetition over word
 * ids; and fastText's prediction for its language ID (at the end of this file).
 *
 * Each function does what its twin does (operators/text/_words.py `_cut`,
 * operators/common/ngrams.py `_cut`, operators/text/refiners.py `_tidy_re2`, fastText's binding),
 * the cutters with the same character table (one flag byte per code point, asked of RE2 by the
 * Python side), so both give the same result on every input; the tests hold each pair to the
 * same answers. The caller allocates every output (a word or token has at least one byte, so
 * each array has room for one entry per input byte) and the scratch space. Input is valid UTF-8
 * (an Arrow string array's data). Called through ctypes, which releases the GIL for the call, so
 * two threads run them in parallel.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define PF_NATIVE_VERSION 1

/* word flags, as in _words.py */
enum {
    SPACE = 1,
    ASCII_SPACE = 2,
    CJK = 4,
    SYMBOL = 8,
    LETTER = 16,
    UPPER = 32,
    LOWER = 64,
};

/* token flags, as in ngrams.py */
enum { WORD = 1, SPACELESS = 2 };

int pf_native_version(void) { return PF_NATIVE_VERSION; }

/* The code point starting at data[i] (valid UTF-8), and its size in bytes. */
static inline uint32_t decode_at(const uint8_t *data, int64_t i, int *size) {
    uint32_t b0 = data[i];
    if (b0 < 0x80) {
        *size = 1;
        return b0;
    }
    if (b0 < 0xE0) {
        *size = 2;
        return ((b0 & 0x1F) << 6) | (data[i + 1] & 0x3F);
    }
    if (b0 < 0xF0) {
        *size = 3;
        return ((b0 & 0x0F) << 12) | ((uint32_t)(data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F);
    }
    *size = 4;
    return ((b0 & 0x07) << 18) | ((uint32_t)(data[i + 1] & 0x3F) << 12) |
           ((uint32_t)(data[i + 2] & 0x3F) << 6) | (data[i + 3] & 0x3F);
}

/* Each character of data[lo:hi): its flags and its first byte; returns the number of them. */
static int64_t decode_doc(const uint8_t *restrict data, int64_t lo, int64_t hi,
                          const uint8_t *restrict table, uint8_t *restrict flags,
                          int64_t *restrict lead) {
    int64_t n = 0;
    int size;
    for (int64_t i = lo; i < hi; i += size) {
        lead[n] = i;
        if (data[i] < 0x80) {
            size = 1;
            flags[n++] = table[data[i]];
        } else {
            flags[n++] = table[decode_at(data, i, &size)];
        }
    }
    lead[n] = hi;
    return n;
}

/* Write word w (data[begin:end), its characters and flags) to the outputs; returns the new
 * end of `kept`. */
static inline int64_t close_word(const uint8_t *data, int64_t begin, int64_t end, int64_t chars,
                                 uint8_t or_flags, uint8_t and_flags, int64_t d, uint8_t *kept,
                                 int64_t out, int64_t *sizes, int64_t *doc, int64_t *length,
                                 uint8_t *any, uint8_t *all, int64_t w) {
    memcpy(kept + out, data + begin, (size_t)(end - begin));
    sizes[w] = end - begin;
    doc[w] = d;
    length[w] = chars;
    any[w] = or_flags;
    all[w] = and_flags;
    return out + end - begin;
}

/* The words of n_docs documents (document d is data[offsets[d]:offsets[d + 1]]): their bytes
 * back to back in `kept`, and per word its byte size, document (from first_doc), length in
 * characters, and the OR and AND of its characters' flags. `flags`, `lead` (one more) and `start`
 * are scratch space of one entry per byte of the largest document. Returns the number of words. */
int64_t pf_cut_words(const uint8_t *restrict data, const int64_t *restrict offsets,
                     int64_t n_docs, int64_t first_doc, const uint8_t *restrict table,
                     uint8_t *restrict kept, int64_t *restrict sizes, int64_t *restrict doc,
                     int64_t *restrict length, uint8_t *restrict any, uint8_t *restrict all,
                     uint8_t *restrict flags, int64_t *restrict lead, uint8_t *restrict start) {
    int64_t w = 0, out = 0;
    for (int64_t d = 0; d < n_docs; d++) {
        int64_t n = decode_doc(data, offsets[d], offsets[d + 1], table, flags, lead);
        /* a word starts after a space, at (and after) a CJK character, and at the start */
        for (int64_t k = 0; k < n; k++) {
            uint8_t f = flags[k];
            start[k] = !(f & SPACE) && (k == 0 || (f & CJK) || (flags[k - 1] & (SPACE | CJK)));
        }
        /* runs of punctuation: cut after one that begins at an edge (the text's, an ASCII
         * space's, a CJK character's) and ends before a word character, and before one that
         * begins after a word character and ends at an edge */
        for (int64_t s = 0; s < n;) {
            if ((flags[s] & (SYMBOL | CJK)) != SYMBOL) {
                s++;
                continue;
            }
            int64_t e = s;
            while (e + 1 < n && (flags[e + 1] & (SYMBOL | CJK)) == SYMBOL) e++;
            int edge_before = s == 0 || (flags[s - 1] & (ASCII_SPACE | CJK));
            int other_before = s > 0 && !(flags[s - 1] & (SPACE | CJK | SYMBOL));
            int edge_after = e == n - 1 || (flags[e + 1] & (ASCII_SPACE | CJK));
            int other_after = e < n - 1 && !(flags[e + 1] & (SPACE | CJK | SYMBOL));
            if (edge_before && other_after) start[e + 1] = 1;
            if (other_before && edge_after) start[s] = 1;
            s = e + 1;
        }
        /* every non-space character belongs to the word last started (the first non-space
         * character of a document always starts one); a word's bytes are contiguous */
        int64_t begin = 0, end = 0, chars = 0;
        uint8_t or_flags = 0, and_flags = 0xFF;
        for (int64_t k = 0; k < n; k++) {
            uint8_t f = flags[k];
            if (f & SPACE) continue;
            if (start[k] && chars) {
                out = close_word(data, begin, end, chars, or_flags, and_flags, first_doc + d,
                                 kept, out, sizes, doc, length, any, all, w++);
                chars = 0;
            }
            if (!chars) {
                begin = lead[k];
                or_flags = 0;
                and_flags = 0xFF;
            }
            end = lead[k + 1];
            chars++;
            or_flags |= f;
            and_flags &= f;
        }
        if (chars)
            out = close_word(data, begin, end, chars, or_flags, and_flags, first_doc + d, kept,
                             out, sizes, doc, length, any, all, w++);
    }
    return w;
}

/* The tokens of n_docs documents: maximal runs of characters flagged WORD, and, when
 * split_spaceless, each WORD character flagged SPACELESS alone. Their bytes back to back in
 * `kept`, their byte sizes, and the number of tokens of each document. Returns the number of
 * tokens. */
int64_t pf_cut_tokens(const uint8_t *data, const int64_t *offsets, int64_t n_docs,
                      const uint8_t *table, int split_spaceless, uint8_t *kept, int64_t *sizes,
                      int64_t *per_doc) {
    int64_t t = 0, out = 0;
    for (int64_t d = 0; d < n_docs; d++) {
        int64_t first = t;
        int in_token = 0, size;
        for (int64_t i = offsets[d]; i < offsets[d + 1]; i += size) {
            uint8_t f = table[decode_at(data, i, &size)];
            if (!(f & WORD)) {
                in_token = 0;
                continue;
            }
            int alone = split_spaceless && (f & SPACELESS);
            if (!in_token || alone) sizes[t++] = 0;
            in_token = !alone;
            memcpy(kept + out, data + i, (size_t)size);
            out += size;
            sizes[t - 1] += size;
        }
        per_doc[d] = t - first;
    }
    return t;
}

/* The spaces the whitespace refiner collapses: ASCII space, tab, vertical tab, form feed, and
 * the Unicode spaces of refiners._SPACES. */
static inline int is_tidy_space(uint32_t c) {
    return c == ' ' || c == '\t' || c == 0x0B || c == 0x0C || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The whitespace tidy of n_docs documents into `out` (as large as the input: a tidy text is never
 * longer), each document's end in out_ends: CR LF and CR become LF, zero-width spaces and BOMs
 * go, a run of spaces becomes one space and goes before a line break, three or more line breaks
 * (spaces between them gone) become two. Leading and trailing whitespace are left to Arrow's
 * trim; the run at the end is dropped here, as the trim would drop it. Returns the bytes written. */
int64_t pf_tidy_whitespace(const uint8_t *restrict data, const int64_t *restrict offsets,
                           int64_t n_docs, uint8_t *restrict out, int64_t *restrict out_ends) {
    int64_t o = 0;
    for (int64_t d = 0; d < n_docs; d++) {
        int64_t end = offsets[d + 1], newlines = 0;
        int space = 0, size;
        for (int64_t i = offsets[d]; i < end; i += size) {
            uint32_t c;
            if (data[i] < 0x80) {
                size = 1;
                c = data[i];
            } else {
                c = decode_at(data, i, &size);
            }
            if (c == 0x200B || c == 0xFEFF) continue;
            if (c == '\r') {
                if (i + 1 < end && data[i + 1] == '\n') size = 2;
                c = '\n';
            }
            if (c == '\n') {
                space = 0; /* " \n" -> "\n" */
                newlines++;
                continue;
            }
            if (is_tidy_space(c)) {
                space = 1;
                continue;
            }
            for (int64_t k = newlines < 3 ? newlines : 2; k > 0; k--) out[o++] = '\n';
            if (space) out[o++] = ' ';
            newlines = 0;
            space = 0;
            memcpy(out + o, data + i, (size_t)size);
            o += size;
        }
        out_ends[d] = o;
    }
    return o;
}

/* The characters of RE2's [\s\v\p{Z}\x{85}] (ngrams._WHITESPACE): ASCII whitespace, NEL, and
 * Unicode's space, line and paragraph separators. */
static inline int is_any_space(uint32_t c) {
    return (c >= '\t' && c <= '\r') || c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Each run of is_any_space characters of n_docs documents replaced by the byte `with` (none when
 * it is negative), into `out` (as large as the input), each document's end in out_ends. Returns
 * the bytes written. */
int64_t pf_replace_space_runs(const uint8_t *restrict data, const int64_t *restrict offsets,
                              int64_t n_docs, int32_t with, uint8_t *restrict out,
                              int64_t *restrict out_ends) {
    int64_t o = 0;
    for (int64_t d = 0; d < n_docs; d++) {
        int in_run = 0, size;
        for (int64_t i = offsets[d]; i < offsets[d + 1]; i += size) {
            uint32_t c = data[i] < 0x80 ? (size = 1, data[i]) : decode_at(data, i, &size);
            if (is_any_space(c)) {
                if (!in_run && with >= 0) out[o++] = (uint8_t)with;
                in_run = 1;
                continue;
            }
            in_run = 0;
            memcpy(out + o, data + i, (size_t)size);
            o += size;
        }
        out_ends[d] = o;
    }
    return o;
}

/* Per document, its bytes of each class: out[d * n_classes + c - 1] counts the bytes b with
 * table[b] == c (class 0 is not counted). */
void pf_count_bytes(const uint8_t *restrict data, const int64_t *restrict offsets, int64_t n_docs,
                    const uint8_t *restrict table, int64_t n_classes, int64_t *restrict out) {
    int64_t counts[256];
    for (int64_t d = 0; d < n_docs; d++) {
        memset(counts, 0, sizeof counts);
        for (int64_t i = offsets[d]; i < offsets[d + 1]; i++) counts[data[i]]++;
        int64_t *row = out + d * n_classes;
        memset(row, 0, sizeof(int64_t) * (size_t)n_classes);
        for (int b = 0; b < 256; b++)
            if (table[b]) row[table[b] - 1] += counts[b];
    }
}

/* Per text, the matches of RE2's [CJK]|[^\sCJK]+ (C4's words of a line): each CJK character,
 * and each run of characters neither CJK nor ASCII_SPACE (RE2's \s), with the word flags. */
void pf_count_line_words(const uint8_t *restrict data, const int64_t *restrict offsets,
                         int64_t n_texts, const uint8_t *restrict table, int64_t *restrict out) {
    for (int64_t t = 0; t < n_texts; t++) {
        int64_t count = 0;
        int in_run = 0, size;
        for (int64_t i = offsets[t]; i < offsets[t + 1]; i += size) {
            uint8_t f = table[data[i] < 0x80 ? (size = 1, data[i]) : decode_at(data, i, &size)];
            if (f & CJK) {
                count++;
                in_run = 0;
            } else if (f & ASCII_SPACE) {
                in_run = 0;
            } else if (!in_run) {
                count++;
                in_run = 1;
            }
        }
        out[t] = count;
    }
}

static inline int is_re2_space(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static inline int ends_in_ellipsis(const uint8_t *data, int64_t lo, int64_t hi) {
    return (hi - lo >= 3 && data[hi - 1] == '.' && data[hi - 2] == '.' && data[hi - 3] == '.') ||
           (hi - lo >= 3 && data[hi - 3] == 0xE2 && data[hi - 2] == 0x80 && data[hi - 1] == 0xA6);
}

/* Per document, four counts (out[d * 4 + k]): its lines (split at '\n') that are not blank
 * (not all RE2 \s), those of them whose first character after \s is one of `bullets`, those
 * ending in "..." or U+2026 before \s, and the matches of \.\.\.|U+2026 in the whole text. */
void pf_line_marks(const uint8_t *restrict data, const int64_t *restrict offsets, int64_t n_docs,
                   const uint32_t *restrict bullets, int64_t n_bullets, int64_t *restrict out) {
    for (int64_t d = 0; d < n_docs; d++) {
        int64_t lines = 0, bulleted = 0, trailing = 0, ellipses = 0, end = offsets[d + 1];
        for (int64_t lo = offsets[d]; lo <= end;) {
            int64_t hi = lo;
            while (hi < end && data[hi] != '\n') hi++;
            int64_t first = lo, last = hi;
            while (first < hi && is_re2_space(data[first])) first++;
            while (last > first && is_re2_space(data[last - 1])) last--;
            if (first < hi) {
                int size;
                uint32_t c = decode_at(data, first, &size);
                lines++;
                for (int64_t b = 0; b < n_bullets; b++)
                    if (bullets[b] == c) {
                        bulleted++;
                        break;
                    }
                trailing += ends_in_ellipsis(data, first, last);
            }
            for (int64_t i = lo, dots = 0; i <= hi; i++) {
                if (i < hi && data[i] == '.') {
                    dots++;
                    continue;
                }
                ellipses += dots / 3;
                dots = 0;
                if (i + 2 < hi && data[i] == 0xE2 && data[i + 1] == 0x80 && data[i + 2] == 0xA6)
                    ellipses++;
            }
            lo = hi + 1;
        }
        int64_t *row = out + d * 4;
        row[0] = lines;
        row[1] = bulleted;
        row[2] = trailing;
        row[3] = ellipses;
    }
}

/* ---- Gopher's n-gram repetition over word ids (_stats.py DocStats._ngrams) ------------------
 *
 * Per document d (words offsets[d] to offsets[d + 1] of `ids`, lower-cased word ids, and `lens`,
 * their lengths in characters) and each n from 1 to max_n, at d * max_n + n - 1:
 * top = count x characters of its most frequent n-gram seen more than once (of those, the
 * longest, measured at its first occurrence; 0 when none repeats), and dup = characters of the
 * words covered by the occurrences of n-grams that are not their first. Level n groups the
 * positions whose (n-1)-gram repeats (only those can start a repeated n-gram) by the pair
 * (group of the (n-1)-gram, next word), keys compared in full, so the groups are exact. Scratch
 * of the widest document's words m: `group`, `pos`, `first`, `count` (m), `cover`, `cum`
 * (m + 1), and `slots` (at least 2 * m); word ids below 2^32. */
typedef struct {
    uint64_t key; /* (group of the (n-1)-gram + 1) << 32 | next word id */
    int64_t group;
} pf_slot;

void pf_ngram_repetition(const int64_t *restrict ids, const int64_t *restrict lens,
                         const int64_t *restrict offsets, int64_t n_docs, int32_t max_n,
                         int64_t *restrict group, int64_t *restrict pos, int64_t *restrict first,
                         int64_t *restrict count, int64_t *restrict cover, int64_t *restrict cum,
                         pf_slot *restrict slots, int64_t *restrict top, int64_t *restrict dup) {
    for (int64_t d = 0; d < n_docs; d++) {
        const int64_t lo = offsets[d], m = offsets[d + 1] - lo;
        int64_t *top_d = top + d * max_n, *dup_d = dup + d * max_n;
        memset(top_d, 0, sizeof(int64_t) * max_n);
        memset(dup_d, 0, sizeof(int64_t) * max_n);
        cum[0] = 0;
        for (int64_t i = 0; i < m; i++) {
            cum[i + 1] = cum[i] + lens[lo + i];
            pos[i] = i;
        }
        int64_t alive = m;
        for (int32_t n = 1; n <= max_n && alive > 0; n++) {
            uint64_t mask = 1;
            while (mask + 1 < (uint64_t)(2 * alive)) mask = mask << 1 | 1;
            for (uint64_t h = 0; h <= mask; h++) slots[h].group = -1;
            int64_t groups = 0;
            for (int64_t k = 0; k < alive; k++) {
                const int64_t p = pos[k];
                const uint64_t key =
                    (uint64_t)(n == 1 ? 0 : group[p] + 1) << 32 | (uint64_t)ids[lo + p + n - 1];
                uint64_t h = (key * 0x9E3779B97F4A7C15u) >> 29 & mask;
                while (slots[h].group >= 0 && slots[h].key != key) h = (h + 1) & mask;
                int64_t g = slots[h].group;
                if (g < 0) {
                    g = groups++;
                    slots[h].key = key;
                    slots[h].group = g;
                    count[g] = 0;
                    first[g] = p;
                }
                count[g]++;
                group[p] = g;
            }
            int64_t best = 0, best_chars = 0, repeats = 0;
            for (int64_t g = 0; g < groups; g++) {
                if (count[g] < 2) continue;
                const int64_t chars = cum[first[g] + n] - cum[first[g]];
                repeats += count[g] - 1;
                if (count[g] > best || (count[g] == best && chars > best_chars)) {
                    best = count[g];
                    best_chars = chars;
                }
            }
            top_d[n - 1] = best * best_chars;
            if (repeats) {
                memset(cover, 0, sizeof(int64_t) * (m + 1));
                for (int64_t k = 0; k < alive; k++) {
                    const int64_t p = pos[k];
                    if (first[group[p]] != p) {
                        cover[p]++;
                        cover[p + n]--;
                    }
                }
                int64_t run = 0, covered = 0;
                for (int64_t i = 0; i < m; i++) {
                    run += cover[i];
                    if (run > 0) covered += lens[lo + i];
                }
                dup_d[n - 1] = covered;
            }
            int64_t next = 0; /* the positions whose n-gram repeats and extends by a word */
            for (int64_t k = 0; k < alive; k++) {
                const int64_t p = pos[k];
                if (count[group[p]] > 1 && p + n < m) pos[next++] = p;
            }
            alive = next;
        }
    }
}

/* ---- fastText's supervised prediction (language ID), as fastText 0.9 computes it ----------
 *
 * The model's arrays are read by operators/text/_fasttext.py (a quantized input matrix, a dense
 * output matrix, hierarchical softmax, no word n-grams: lid.176.ftz); this does what fastText's
 * Dictionary::getLine, Model::computeHidden and HierarchicalSoftmaxLoss::dfs do for k = 1, in
 * the same order and the same float arithmetic, so the label and the probability are fastText's
 * bit for bit (the tests compare them on every corpus). */

#define FT_KSUB 256
#define FT_EMPTY (-1)

typedef struct {
    int32_t dim, nsubq, dsub, lastdsub; /* the product quantizer of the input matrix */
    int32_t minn, maxn, bucket, nwords, nlabels;
    int64_t pruned;                       /* fastText's pruneidx_size_: -1 none, 0 no n-grams */
    const uint8_t *words;                 /* the dictionary's entries, back to back */
    const int64_t *word_offsets;          /* size + 1 */
    const int8_t *word_types;             /* 0 word, 1 label */
    const int32_t *word_slots;            /* open addressing by FNV hash: entry id or -1 */
    uint32_t word_mask;
    const uint64_t *prune_slots; /* open addressing: (bucket + 1) << 32 | input row; 0 empty */
    uint32_t prune_mask;
    const uint8_t *codes;                 /* nsubq codes per input row */
    const float *centroids;               /* dim x 256 */
    const uint8_t *norm_codes;            /* one per input row, or NULL (no norm quantizer) */
    const float *norm_centroids;          /* 256 */
    const float *output;                  /* (nlabels - 1) x dim: the tree's inner nodes */
    const int32_t *left, *right;          /* the Huffman tree over the labels, 2 nlabels - 1 */
} pf_fasttext;

/* fastText's FNV-1a, which reads the bytes as signed chars (its released models depend on it). */
static inline uint32_t ft_hash_step(uint32_t h, uint8_t byte) {
    return (h ^ (uint32_t)(int32_t)(int8_t)byte) * 16777619u;
}

static inline uint32_t ft_hash(const uint8_t *s, int64_t n) {
    uint32_t h = 2166136261u;
    for (int64_t i = 0; i < n; i++) h = ft_hash_step(h, s[i]);
    return h;
}

static inline uint32_t ft_mix(uint32_t key) { return key * 2654435761u; }

/* Index the dictionary (word_slots, mask + 1 slots, all -1) and the pruned n-grams (prune_slots
 * all 0; a key and its row in one slot, one memory access a probe). */
void pf_fasttext_index(const uint8_t *words, const int64_t *word_offsets, int32_t size,
                       int32_t *word_slots, uint32_t word_mask, const int32_t *keys,
                       const int32_t *values, int64_t n_keys, uint64_t *prune_slots,
                       uint32_t prune_mask) {
    for (int32_t w = 0; w < size; w++) {
        uint32_t slot = ft_hash(words + word_offsets[w], word_offsets[w + 1] - word_offsets[w]);
        while (word_slots[slot & word_mask] != FT_EMPTY) slot++;
        word_slots[slot & word_mask] = w;
    }
    for (int64_t k = 0; k < n_keys; k++) {
        uint32_t slot = ft_mix((uint32_t)keys[k]);
        while (prune_slots[slot & prune_mask]) slot++;
        prune_slots[slot & prune_mask] = ((uint64_t)keys[k] + 1) << 32 | (uint32_t)values[k];
    }
}

static int32_t ft_word_id(const pf_fasttext *m, const uint8_t *s, int64_t n, uint32_t h) {
    for (uint32_t slot = h;; slot++) {
        int32_t w = m->word_slots[slot & m->word_mask];
        if (w == FT_EMPTY) return -1;
        int64_t lo = m->word_offsets[w];
        if (m->word_offsets[w + 1] - lo == n && memcmp(m->words + lo, s, (size_t)n) == 0) return w;
    }
}

/* hidden += row i of the quantized input matrix (QuantMatrix::addRowToVector). */
static void ft_add_row(const pf_fasttext *m, int64_t i, float *hidden) {
    float norm = m->norm_codes ? m->norm_centroids[m->norm_codes[i]] : 1.0f;
    const uint8_t *code = m->codes + (int64_t)m->nsubq * i;
    for (int32_t q = 0; q < m->nsubq; q++) {
        int last = q == m->nsubq - 1;
        int32_t d = last ? m->lastdsub : m->dsub;
        const float *c = m->centroids + (last ? (int64_t)q * FT_KSUB * m->dsub + code[q] * d
                                              : ((int64_t)q * FT_KSUB + code[q]) * m->dsub);
        for (int32_t k = 0; k < d; k++) hidden[q * m->dsub + k] += norm * c[k];
    }
}

/* Dictionary::pushHash then the row's addition; returns the rows added (0 or 1). */
static int ft_add_ngram(const pf_fasttext *m, int32_t id, float *hidden) {
    if (m->pruned == 0) return 0;
    if (m->pruned > 0) {
        uint64_t want = (uint64_t)id + 1, entry;
        for (uint32_t slot = ft_mix((uint32_t)id);; slot++) {
            entry = m->prune_slots[slot & m->prune_mask];
            if (!entry) return 0;
            if (entry >> 32 == want) break;
        }
        id = (int32_t)(uint32_t)entry;
    }
    ft_add_row(m, (int64_t)m->nwords + id, hidden);
    return 1;
}

/* Dictionary::computeSubwords of "<" word ">" (in `w`, n bytes); returns the rows added. */
static int64_t ft_add_subwords(const pf_fasttext *m, const uint8_t *w, int64_t n, float *hidden) {
    int64_t rows = 0;
    for (int64_t i = 0; i < n; i++) {
        if ((w[i] & 0xC0) == 0x80) continue;
        uint32_t h = 2166136261u;
        int64_t j = i;
        for (int32_t len = 1; j < n && len <= m->maxn; len++) {
            h = ft_hash_step(h, w[j++]);
            while (j < n && (w[j] & 0xC0) == 0x80) h = ft_hash_step(h, w[j++]);
            if (len >= m->minn && !(len == 1 && (i == 0 || j == n)))
                rows += ft_add_ngram(m, (int32_t)(h % (uint32_t)m->bucket), hidden);
        }
    }
    return rows;
}

static float ft_std_log(float x) { return (float)log((double)x + 1e-5); }

/* HierarchicalSoftmaxLoss::dfs with k = 1: a leaf reached replaces the best (fastText's heap
 * keeps the later of equal scores). */
static void ft_dfs(const pf_fasttext *m, int32_t node, float score, float threshold,
                   const float *hidden, float *best, int32_t *best_leaf) {
    if (score < ft_std_log(threshold)) return;
    if (*best_leaf >= 0 && score < *best) return;
    if (m->left[node] == -1 && m->right[node] == -1) {
        *best = score;
        *best_leaf = node;
        return;
    }
    const float *row = m->output + (int64_t)(node - m->nlabels) * m->dim;
    float f = 0.0f;
    for (int32_t k = 0; k < m->dim; k++) f += row[k] * hidden[k];
    f = (float)(1.0 / (double)(1.0f + expf(-f)));
    ft_dfs(m, m->left[node], score + ft_std_log((float)(1.0 - (double)f)), threshold, hidden, best,
           best_leaf);
    ft_dfs(m, m->right[node], score + ft_std_log(f), threshold, hidden, best, best_leaf);
}

static int ft_separator(uint8_t c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f' || c == '\0';
}

/* The most likely label of each document read as one line (the text, then a line break, as
 * fastText's predict is called), into labels (-1: no input row, no prediction) and its
 * probability into probs. With newlines_are_spaces, a line break inside a text separates words
 * as a space does instead of ending the line (as if every whitespace run were one space).
 * `scratch` holds the longest document plus 2 bytes, `hidden` dim floats. */
void pf_fasttext_predict(const pf_fasttext *m, const uint8_t *data, const int64_t *offsets,
                         int64_t n_docs, int newlines_are_spaces, float threshold,
                         uint8_t *scratch, float *hidden, int32_t *labels, float *probs) {
    static const uint8_t eos[] = "</s>";
    static const uint8_t label_prefix[] = "__label__";
    for (int64_t d = 0; d < n_docs; d++) {
        int64_t end = offsets[d + 1], rows = 0;
        memset(hidden, 0, sizeof(float) * (size_t)m->dim);
        for (int64_t i = offsets[d]; i <= end;) {
            /* readWord: skip separators; a line break (the one after the text included) with no
             * word before it is the end-of-sentence token, and the line's last */
            const uint8_t *token;
            int64_t n;
            while (i < end && ft_separator(data[i]) && (newlines_are_spaces || data[i] != '\n'))
                i++;
            if (i == end || data[i] == '\n') {
                token = eos;
                n = 4;
                i = end + 1;
            } else {
                int64_t begin = i;
                while (i < end && !ft_separator(data[i])) i++;
                token = data + begin;
                n = i - begin;
            }
            int32_t wid = ft_word_id(m, token, n, ft_hash(token, n));
            int is_label = wid >= 0 ? m->word_types[wid] == 1
                                    : n >= 9 && memcmp(token, label_prefix, 9) == 0;
            if (is_label) continue; /* a label in the text: not an input (it is never "</s>") */
            if (wid >= 0) {
                ft_add_row(m, wid, hidden);
                rows++;
            }
            if (n == 4 && memcmp(token, eos, 4) == 0) {
                i = end + 1; /* fastText ends the line at the token, a literal "</s>" too */
                continue;
            }
            scratch[0] = '<';
            memcpy(scratch + 1, token, (size_t)n);
            scratch[n + 1] = '>';
            rows += ft_add_subwords(m, scratch, n + 2, hidden);
        }
        labels[d] = -1;
        probs[d] = 0.0f;
        if (rows == 0) continue;
        float scale = (float)(1.0 / (double)rows);
        for (int32_t k = 0; k < m->dim; k++) hidden[k] *= scale;
        float best = 0.0f;
        int32_t leaf = -1;
        ft_dfs(m, 2 * m->nlabels - 2, 0.0f, threshold, hidden, &best, &leaf);
        if (leaf >= 0) {
            labels[d] = leaf;
            probs[d] = expf(best);
        }
    }
}
