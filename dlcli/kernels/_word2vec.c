/* word2vec's lock-free training loop, compiled ahead of time: the algorithm, its tables and its
 * random streams are described in word2vec_sgd.py, which checks every argument before calling
 * `train` here. C rather than numba because importing numba and running a first cached kernel
 * costs about 130 MB of resident memory, more than half of what gensim needs in all.
 *
 * One call trains the sentences tokens[starts[i]:starts[i + 1]]; thread t takes sentences
 * cuts[t]:cuts[t + 1] with LCG state states[t], on its own pthread (the caller's thread when
 * there is one), with the GIL released. The hot loop is cloned for AVX-512, AVX2 + FMA and the
 * baseline, picked at load time for the CPU at hand. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { SKIPGRAM = 0, CBOW = 1 };
enum { NEGATIVE = 0, HIERARCHICAL = 1 };
#define MAX_EXP 6.0f
#define MULT 25214903917ULL
#define INC 11ULL

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define CLONED __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONED
#endif
#define INLINE static inline __attribute__((always_inline))

typedef struct {
    float *w_in, *w_out;
    int64_t dim;
    const int32_t *tokens;
    const int64_t *starts;
    const float *keep_prob;
    const int64_t *ends;   /* noise runs: the slot after run r */
    const int32_t *words;  /* noise runs: the word filling run r */
    const int32_t *guide;  /* the first run a bucket's slots can fall in */
    uint64_t shift, noise_size;
    const int32_t *points; /* (V, depth_stride) inner nodes, root first */
    const float *codes;    /* (V, depth_stride) branch labels */
    const int32_t *depths;
    int64_t depth_stride;
    int arch, loss, window, negative, cbow_mean;
    double lr_start, lr_end;
    const float *sig, *log_sig;
    int64_t table_size;
    int64_t longest;
} Shared;

typedef struct {
    const Shared *s;
    int64_t first, last; /* sentences first:last */
    uint64_t state;
    double loss;
    int64_t kept, pairs;
    int failed; /* scratch could not be allocated */
} Part;

INLINE uint64_t next_state(uint64_t state) { return state * MULT + INC; }

INLINE float dot(const float *restrict a, const float *restrict b, int64_t dim) {
    float s = 0.0f;
    for (int64_t d = 0; d < dim; d++) s += a[d] * b[d];
    return s;
}

/* One logistic decision with score s: returns whether it trains; *g is lr * (label - sigma(s)),
 * *loss the negative log-likelihood before the update. A saturated score (|s| >= MAX_EXP) is
 * skipped, as gensim does: no gradient, a loss of 0 on its label's side, else the table's
 * saturated value. */
INLINE int decision(const Shared *s, float score, float label, float lr, float *g, double *loss) {
    int64_t last = s->table_size - 1;
    int positive = label > 0.5f;
    if (score <= -MAX_EXP || score >= MAX_EXP) {
        *g = 0.0f;
        *loss = ((score > 0.0f) == positive) ? 0.0 : -(double)s->log_sig[0];
        return 0;
    }
    /* The clamp keeps a rounding at the top edge inside the table; the float32 product is the bin. */
    float scaled = (score + MAX_EXP) * (float)(s->table_size / (2.0 * MAX_EXP));
    int64_t b = (int64_t)scaled;
    b = b < 0 ? 0 : (b > last ? last : b);
    *g = lr * (label - s->sig[b]);
    *loss = -(double)s->log_sig[positive ? b : last - b];
    return 1;
}

/* Every decision that predicts `target` from the hidden vector h: each accumulates its hidden
 * gradient in neu1e and moves its output row. Returns the loss before the updates. */
INLINE double predict(const Shared *s, const float *restrict h, float *restrict neu1e, int32_t target, float lr,
                      uint64_t *state) {
    const int64_t dim = s->dim;
    double total = 0.0;
    int hierarchical = s->loss == HIERARCHICAL;
    int64_t steps = hierarchical ? s->depths[target] : s->negative + 1;
    for (int64_t k = 0; k < steps; k++) {
        int64_t row;
        float label;
        if (hierarchical) {
            row = s->points[target * s->depth_stride + k];
            label = s->codes[target * s->depth_stride + k];
        } else if (k == 0) {
            row = target;
            label = 1.0f;
        } else {
            *state = next_state(*state);
            uint64_t top = *state >> 32;
            int64_t slot = (int64_t)((top * s->noise_size) >> 32); /* the draw is the table's slot */
            int64_t run = s->guide[top >> s->shift];
            while (s->ends[run] <= slot) run++;
            row = s->words[run];
            label = 0.0f;
            if (row == target) continue;
        }
        float *restrict out = s->w_out + row * dim;
        float g;
        double step;
        int trained = decision(s, dot(h, out, dim), label, lr, &g, &step);
        total += step;
        if (!trained) continue;
        for (int64_t d = 0; d < dim; d++) {
            neu1e[d] += g * out[d];
            out[d] += g * h[d];
        }
    }
    return total;
}

/* Skip-gram under hierarchical softmax: contexts ca and cb predict the same target's path
 * together. At each inner node both scores read the node's row as it stands, then both gradients
 * move it; the hidden gradients accumulate in ea, eb. Returns the loss before the updates. */
INLINE double path_pair(const Shared *s, const float *restrict a, const float *restrict b, float *restrict ea,
                        float *restrict eb, int32_t target, float lr) {
    const int64_t dim = s->dim;
    double total = 0.0;
    for (int64_t k = 0; k < s->depths[target]; k++) {
        float *restrict out = s->w_out + (int64_t)s->points[target * s->depth_stride + k] * dim;
        float label = s->codes[target * s->depth_stride + k];
        float sa = 0.0f, sb = 0.0f;
        for (int64_t d = 0; d < dim; d++) {
            sa += a[d] * out[d];
            sb += b[d] * out[d];
        }
        float ga, gb;
        double la, lb;
        decision(s, sa, label, lr, &ga, &la); /* a skipped decision's gradient is 0 */
        decision(s, sb, label, lr, &gb, &lb);
        total += la + lb;
        for (int64_t d = 0; d < dim; d++) {
            float w = out[d];
            ea[d] += ga * w;
            eb[d] += gb * w;
            out[d] = w + ga * a[d] + gb * b[d];
        }
    }
    return total;
}

INLINE void add_to(float *restrict row, const float *restrict delta, int64_t dim) {
    for (int64_t d = 0; d < dim; d++) row[d] += delta[d];
}

/* Trains every centre word of the kept sentence sen[:n]; lr0 + pos * lr_step is the learning
 * rate at position pos. Skip-gram reads the context's row of W_in in place, as word2vec.c does. */
INLINE void sentence(const Shared *s, const int32_t *sen, int64_t n, double lr0, double lr_step, float *neu1,
                     float *neu1e, Part *part) {
    const int64_t dim = s->dim;
    for (int64_t pos = 0; pos < n; pos++) {
        float lr = (float)(lr0 + pos * lr_step);
        part->state = next_state(part->state);
        int64_t reach = s->window - (int64_t)((part->state >> 33) % (uint64_t)s->window);
        int64_t lo = pos - reach < 0 ? 0 : pos - reach;
        int64_t hi = pos + reach + 1 > n ? n : pos + reach + 1;
        int32_t centre = sen[pos];
        if (s->arch == SKIPGRAM) {
            for (int64_t c = lo; c < hi;) {
                if (c == pos) {
                    c++;
                    continue;
                }
                int64_t other = c + 1 + (c + 1 == pos); /* the next context */
                if (s->loss == HIERARCHICAL && other < hi) {
                    float *a = s->w_in + (int64_t)sen[c] * dim, *b = s->w_in + (int64_t)sen[other] * dim;
                    memset(neu1e, 0, dim * sizeof(float));
                    memset(neu1, 0, dim * sizeof(float));
                    part->loss += path_pair(s, a, b, neu1e, neu1, centre, lr);
                    add_to(a, neu1e, dim);
                    add_to(b, neu1, dim);
                    part->pairs += 2;
                    c = other + 1;
                    continue;
                }
                float *ctx = s->w_in + (int64_t)sen[c] * dim;
                memset(neu1e, 0, dim * sizeof(float));
                part->loss += predict(s, ctx, neu1e, centre, lr, &part->state);
                part->pairs += 1;
                add_to(ctx, neu1e, dim);
                c++;
            }
            continue;
        }
        if (hi - lo < 2) continue;
        memset(neu1, 0, dim * sizeof(float));
        memset(neu1e, 0, dim * sizeof(float));
        for (int64_t c = lo; c < hi; c++)
            if (c != pos) add_to(neu1, s->w_in + (int64_t)sen[c] * dim, dim);
        if (s->cbow_mean) {
            float inv = (float)(1.0 / (double)(hi - lo - 1));
            for (int64_t d = 0; d < dim; d++) neu1[d] *= inv;
        }
        part->loss += predict(s, neu1, neu1e, centre, lr, &part->state);
        part->pairs += 1;
        for (int64_t c = lo; c < hi; c++)
            if (c != pos) add_to(s->w_in + (int64_t)sen[c] * dim, neu1e, dim);
    }
}

/* One thread's sentences: subsample each, then train it, decaying the learning rate linearly
 * over the part's raw tokens. */
CLONED static void run_part(Part *part, int32_t *sen, float *neu1, float *neu1e) {
    const Shared *s = part->s;
    int64_t first = s->starts[part->first];
    int64_t share = s->starts[part->last] - first;
    if (share < 1) share = 1;
    for (int64_t i = part->first; i < part->last; i++) {
        int64_t lo = s->starts[i], hi = s->starts[i + 1], n = 0;
        for (int64_t t = lo; t < hi; t++) {
            int32_t w = s->tokens[t];
            float kp = s->keep_prob[w];
            if (kp < 1.0f) {
                part->state = next_state(part->state);
                if ((float)((part->state >> 16) & 0xFFFFFF) * (1.0f / 16777216.0f) >= kp) continue;
            }
            sen[n++] = w;
        }
        if (n == 0) continue;
        /* Position pos of the kept words stands in for raw token lo + pos * (hi - lo) / n. */
        double lr0 = s->lr_start + (s->lr_end - s->lr_start) * (double)(lo - first) / (double)share;
        double lr_step = (s->lr_end - s->lr_start) * (double)(hi - lo) / ((double)n * (double)share);
        sentence(s, sen, n, lr0, lr_step, neu1, neu1e, part);
        part->kept += n;
    }
}

static void *part_thread(void *arg) {
    Part *part = arg;
    const Shared *s = part->s;
    int32_t *sen = malloc((size_t)s->longest * sizeof(int32_t));
    float *scratch = malloc((size_t)s->dim * 2 * sizeof(float));
    if (sen == NULL || scratch == NULL)
        part->failed = 1;
    else
        run_part(part, sen, scratch, scratch + s->dim);
    free(sen);
    free(scratch);
    return NULL;
}

/* A buffer argument and the number of items of `size` bytes it must hold (items -1: not read). */
typedef struct {
    Py_buffer view;
    const char *name;
    Py_ssize_t items, size;
} Arg;

static int check_sizes(Arg *args, int count) {
    for (int i = 0; i < count; i++) {
        if (args[i].items >= 0 && args[i].view.len != args[i].items * args[i].size) {
            PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, expected %zd", args[i].name, args[i].view.len,
                         args[i].items * args[i].size);
            return 0;
        }
    }
    return 1;
}

static PyObject *train(PyObject *self, PyObject *py_args) {
    enum { W_IN, W_OUT, TOKENS, STARTS, KEEP, ENDS, WORDS, GUIDE, POINTS, CODES, DEPTHS, CUTS, STATES, SIG, LOG_SIG,
           N_ARGS };
    Arg a[N_ARGS] = {{.name = "W_in"}, {.name = "W_out"}, {.name = "tokens"}, {.name = "starts"},
                     {.name = "keep_prob"}, {.name = "noise ends"}, {.name = "noise words"}, {.name = "noise guide"},
                     {.name = "hs points"}, {.name = "hs codes"}, {.name = "hs depths"}, {.name = "cuts"},
                     {.name = "states"}, {.name = "sigmoid table"}, {.name = "log-sigmoid table"}};
    Shared s;
    Py_ssize_t vocab, out_rows, dim, n_tokens, n_starts, n_runs, n_guide, stride, threads, table_size, longest;
    unsigned long long shift;
    if (!PyArg_ParseTuple(py_args, "w*w*y*y*y*y*y*y*y*y*y*y*y*y*y*nnnnnnnnnnnKiiiiidd:train", &a[W_IN].view,
                          &a[W_OUT].view, &a[TOKENS].view, &a[STARTS].view, &a[KEEP].view, &a[ENDS].view,
                          &a[WORDS].view, &a[GUIDE].view, &a[POINTS].view, &a[CODES].view, &a[DEPTHS].view,
                          &a[CUTS].view, &a[STATES].view, &a[SIG].view, &a[LOG_SIG].view, &vocab, &out_rows, &dim,
                          &n_tokens, &n_starts, &n_runs, &n_guide, &stride, &threads, &table_size, &longest, &shift,
                          &s.arch, &s.loss, &s.window, &s.negative, &s.cbow_mean, &s.lr_start, &s.lr_end))
        return NULL; /* PyArg_ParseTuple releases what it acquired */
    s.longest = longest;
    Py_ssize_t items[N_ARGS][2] = {
        {vocab * dim, 4}, {out_rows * dim, 4}, {n_tokens, 4}, {n_starts, 8}, {vocab, 4}, {n_runs, 8}, {n_runs, 4},
        {n_guide, 4}, {vocab * stride, 4}, {vocab * stride, 4}, {vocab, 4}, {threads + 1, 8}, {threads, 8},
        {table_size, 4}, {table_size, 4}};
    for (int i = 0; i < N_ARGS; i++) {
        a[i].items = items[i][0];
        a[i].size = items[i][1];
    }
    for (int i = ENDS; i <= DEPTHS; i++) /* the other loss's tables are placeholders, never read */
        if ((i <= GUIDE) != (s.loss == NEGATIVE)) a[i].items = -1;
    PyObject *result = NULL;
    Part *parts = NULL;
    pthread_t *ids = NULL;
    if (!check_sizes(a, N_ARGS)) goto done;
    if (threads < 1 || dim < 1 || s.window < 1 || table_size < 2 || s.longest < 1) {
        PyErr_SetString(PyExc_ValueError, "threads, dim, window and longest must be >= 1, the tables >= 2 long");
        goto done;
    }
    s.w_in = a[W_IN].view.buf;
    s.w_out = a[W_OUT].view.buf;
    s.dim = dim;
    s.tokens = a[TOKENS].view.buf;
    s.starts = a[STARTS].view.buf;
    s.keep_prob = a[KEEP].view.buf;
    s.ends = a[ENDS].view.buf;
    s.words = a[WORDS].view.buf;
    s.guide = a[GUIDE].view.buf;
    s.shift = shift;
    s.noise_size = n_runs > 0 ? (uint64_t)s.ends[n_runs - 1] : 0;
    s.points = a[POINTS].view.buf;
    s.codes = a[CODES].view.buf;
    s.depths = a[DEPTHS].view.buf;
    s.depth_stride = stride;
    s.sig = a[SIG].view.buf;
    s.log_sig = a[LOG_SIG].view.buf;
    s.table_size = table_size;
    const int64_t *cuts = a[CUTS].view.buf;
    const uint64_t *states = a[STATES].view.buf;

    parts = calloc((size_t)threads, sizeof(Part));
    ids = calloc((size_t)threads, sizeof(pthread_t));
    if (parts == NULL || ids == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t t = 0; t < threads; t++)
        parts[t] = (Part){.s = &s, .first = cuts[t], .last = cuts[t + 1], .state = states[t]};
    int spawn_failed = 0;
    Py_ssize_t started = 1;
    Py_BEGIN_ALLOW_THREADS
    for (; started < threads; started++)
        if (pthread_create(&ids[started], NULL, part_thread, &parts[started]) != 0) {
            spawn_failed = 1;
            break;
        }
    if (!spawn_failed) part_thread(&parts[0]);
    for (Py_ssize_t t = 1; t < started; t++) pthread_join(ids[t], NULL);
    Py_END_ALLOW_THREADS
    if (spawn_failed) {
        PyErr_SetString(PyExc_RuntimeError, "could not start the training threads");
        goto done;
    }
    double loss = 0.0;
    long long kept = 0, pairs = 0;
    for (Py_ssize_t t = 0; t < threads; t++) {
        if (parts[t].failed) {
            PyErr_NoMemory();
            goto done;
        }
        loss += parts[t].loss;
        kept += parts[t].kept;
        pairs += parts[t].pairs;
    }
    result = Py_BuildValue("(dLL)", loss, kept, pairs);
done:
    free(parts);
    free(ids);
    for (int i = 0; i < N_ARGS; i++) PyBuffer_Release(&a[i].view);
    return result;
}

static PyMethodDef methods[] = {
    {"train", train, METH_VARARGS, "One pass of word2vec's lock-free SGD; see word2vec_sgd.train_sentences."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_word2vec", "word2vec's compiled training loop.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__word2vec(void) { return PyModule_Create(&module); }
