/* The word and token cutters of prepflow's text filters, and the whitespace tidy of its
 * whitespace refiner, each in one pass over UTF-8 bytes.
 *
 * Each function does what its twin does (operators/text/_words.py `_cut`,
 * operators/common/ngrams.py `_cut`, operators/text/refiners.py `_tidy_re2`), the cutters with the
 * same character table (one flag byte per code point, asked of RE2 by the Python side), so both
 * give the same result on every input; the tests hold both to the regex definitions. The caller allocates every output (a word or token has at least
 * one byte, so each array has room for one entry per input byte) and the scratch space.
 * Input is valid UTF-8 (an Arrow string array's data). Called through ctypes, which releases the
 * GIL for the call, so two threads cut in parallel.
 */
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
