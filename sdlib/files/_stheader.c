/*
 * sdlib.files._stheader: the tensor entries of a well-formed safetensors header, read and
 * checked in one pass in C (the optional compiled half of sdlib/files/safetensors.py).
 *
 * A first scan reads millions of entries; in Python each costs a struct, its members and
 * a dozen column passes. Here an entry costs at most the objects the classifier keeps
 * (its name and shape, mostly shared with earlier files) and 16 bytes of packed offsets.
 *
 * Like the Python bulk path it stands in front of, it only ever *accepts*: it reads a
 * strict subset of JSON (no escapes, plain non-negative integers, each entry's three
 * members exactly once) and returns None for anything else, whatever the reason, and the
 * Python paths decide. Accepting means the careful path would return an equal table, so
 * every check of `_tensor` and `_check_layout` is made here too:
 *   - dtype one of the configured names whose element size is a whole number of bytes;
 *   - at most MAX_DIMS dimensions, each < 2**62, their product < 2**62;
 *   - 0 <= begin <= end < 2**63, and end - begin = elements x element size;
 *   - entries stored one after another in file order (begin >= the previous end) and the
 *     last end within the data: files written any other way go to the Python paths;
 *   - no name twice, none named "__metadata__", names valid UTF-8.
 *
 * Every read is bounds-checked against the buffer; nothing here recurses, and nothing is
 * allocated but Python objects and the offsets' buffer (all freed on every failure). The
 * caches kept between calls (names, shapes, templates of whole name lists) are of fixed
 * size and only save work: what is taken from them is compared in full first.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DIMS 64
#define HUGE_COUNT ((uint64_t)1 << 62)
#define MAX_OFFSET ((uint64_t)INT64_MAX)
#define MAX_DTYPES 64

typedef struct {
    PyObject *name; /* the str the columns hold (a reference kept here) */
    const char *text;
    Py_ssize_t len;
    uint64_t size;
} DType;

static DType dtypes[MAX_DTYPES];
static int n_dtypes = 0;

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
    int plain; /* no control character nor backslash anywhere ahead (see all_plain) */
} Cursor;

static inline void
skip_ws(Cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

/* The next byte after white space is `ch`: step over it. */
static inline int
take(Cursor *c, unsigned char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* Whether [p, end) holds no control character and no backslash: then no string in it has
 * an escape or a byte it may not hold, and strings end at the next '"' (one pass over the
 * header, which the compiler vectorises, instead of two tests per byte of every string).
 * The same pass counts the '{' bytes (about one per entry: part of a template's key). */
static int
all_plain(const unsigned char *p, const unsigned char *end, Py_ssize_t *braces)
{
    unsigned char bad = 0;
    Py_ssize_t n = 0;
    while (p < end) {
        /* Blocks of at most 255 bytes: a byte-wide count cannot overflow, and the loop
         * stays one the compiler vectorises (a wider count made it 4x the instructions). */
        const unsigned char *stop = end - p > 255 ? p + 255 : end;
        unsigned char count = 0;
        for (; p < stop; p++) {
            bad |= (unsigned char)((*p < 0x20) | (*p == '\\'));
            count += *p == '{';
        }
        n += count;
    }
    *braces = n;
    return !bad;
}

/* A string with no escape and no control character: its bytes, between the quotes. */
static int
take_string(Cursor *c, const unsigned char **text, Py_ssize_t *len)
{
    const unsigned char *q;
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"')
        return 0;
    q = c->p + 1;
    if (c->plain) {
        q = memchr(q, '"', (size_t)(c->end - q));
        if (q == NULL)
            return 0;
    }
    else {
        while (q < c->end && *q != '"') {
            if (*q < 0x20 || *q == '\\')
                return 0;
            q++;
        }
        if (q >= c->end)
            return 0;
    }
    *text = c->p + 1;
    *len = q - (c->p + 1);
    c->p = q + 1;
    return 1;
}

/* A plain JSON integer (digits, no sign, no leading zero, no fraction or exponent) that
 * is at most `max` (< 2**64). Up to 19 digits cannot overflow 64 bits: the loop stops
 * there, and a 20th digit is then refused like any digit after a leading zero. */
static inline int
take_uint(Cursor *c, uint64_t max, uint64_t *out)
{
    const unsigned char *p, *stop;
    uint64_t v;
    skip_ws(c);
    p = c->p;
    if (p >= c->end || (unsigned)(*p - '0') > 9)
        return 0;
    v = (uint64_t)(*p++ - '0');
    if (v != 0) {
        stop = c->end - c->p > 19 ? c->p + 19 : c->end;
        while (p < stop && (unsigned)(*p - '0') <= 9)
            v = v * 10 + (uint64_t)(*p++ - '0');
    }
    if (v > max)
        return 0;
    if (p < c->end && (*p == '.' || *p == 'e' || *p == 'E' || (unsigned)(*p - '0') <= 9))
        return 0;
    c->p = p;
    *out = v;
    return 1;
}

static inline int
same(const unsigned char *text, Py_ssize_t len, const char *word)
{
    size_t n = strlen(word);
    return (size_t)len == n && memcmp(text, word, n) == 0;
}

/* The configured dtype spelled by these bytes (its index), or -1. */
static int
find_dtype(const unsigned char *text, Py_ssize_t len)
{
    int i;
    for (i = 0; i < n_dtypes; i++)
        if (dtypes[i].len == len && memcmp(dtypes[i].text, text, (size_t)len) == 0)
            return i;
    return -1;
}

typedef struct {
    int dtype;
    int ndims;
    uint64_t dims[MAX_DIMS];
    uint64_t begin, end;
} Entry;

#define HAS_DTYPE 1
#define HAS_SHAPE 2
#define HAS_OFFSETS 4

/* One entry's object, from its '{' to its '}'. */
static int
take_entry(Cursor *c, Entry *e)
{
    int seen = 0;
    if (!take(c, '{'))
        return 0;
    do {
        const unsigned char *key;
        Py_ssize_t klen;
        if (!take_string(c, &key, &klen) || !take(c, ':'))
            return 0;
        if (same(key, klen, "dtype")) {
            const unsigned char *text;
            Py_ssize_t len;
            if (seen & HAS_DTYPE || !take_string(c, &text, &len) ||
                (e->dtype = find_dtype(text, len)) < 0)
                return 0;
            seen |= HAS_DTYPE;
        }
        else if (same(key, klen, "shape")) {
            if (seen & HAS_SHAPE || !take(c, '['))
                return 0;
            e->ndims = 0;
            if (!take(c, ']')) {
                do {
                    if (e->ndims == MAX_DIMS || !take_uint(c, HUGE_COUNT - 1, &e->dims[e->ndims]))
                        return 0;
                    e->ndims++;
                } while (take(c, ','));
                if (!take(c, ']'))
                    return 0;
            }
            seen |= HAS_SHAPE;
        }
        else if (same(key, klen, "data_offsets")) {
            if (seen & HAS_OFFSETS || !take(c, '[') || !take_uint(c, MAX_OFFSET, &e->begin) ||
                !take(c, ',') || !take_uint(c, MAX_OFFSET, &e->end) || !take(c, ']'))
                return 0;
            seen |= HAS_OFFSETS;
        }
        else {
            return 0;
        }
    } while (take(c, ','));
    return take(c, '}') && seen == (HAS_DTYPE | HAS_SHAPE | HAS_OFFSETS);
}

/* `text` (a literal) is next: step over it. */
#define TAKE_LITERAL(c, text)                                                              \
    ((c)->end - (c)->p >= (Py_ssize_t)(sizeof(text) - 1) &&                                \
             memcmp((c)->p, (text), sizeof(text) - 1) == 0                                 \
         ? ((c)->p += sizeof(text) - 1, 1)                                                 \
         : 0)

/* One entry as every writer spells it, {"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}
 * with no white space and the members in this order, read without looking up a member
 * name; 0 (and the cursor where it was) for any other spelling, which take_entry then
 * reads. Only where the buffer is plain (no string holds an escape). */
static int
take_compact_entry(Cursor *c, Entry *e)
{
    Cursor t = *c;
    const unsigned char *q;
    if (!TAKE_LITERAL(&t, "{\"dtype\":\""))
        return 0;
    q = memchr(t.p, '"', (size_t)(t.end - t.p));
    if (q == NULL)
        return 0;
    if ((e->dtype = find_dtype(t.p, q - t.p)) < 0)
        return 0;
    t.p = q + 1;
    if (!TAKE_LITERAL(&t, ",\"shape\":["))
        return 0;
    e->ndims = 0;
    if (!TAKE_LITERAL(&t, "]")) {
        do {
            if (e->ndims == MAX_DIMS || !take_uint(&t, HUGE_COUNT - 1, &e->dims[e->ndims]))
                return 0;
            e->ndims++;
        } while (TAKE_LITERAL(&t, ","));
        if (!TAKE_LITERAL(&t, "]"))
            return 0;
    }
    if (!TAKE_LITERAL(&t, ",\"data_offsets\":[") || !take_uint(&t, MAX_OFFSET, &e->begin) ||
        !TAKE_LITERAL(&t, ",") || !take_uint(&t, MAX_OFFSET, &e->end) || !TAKE_LITERAL(&t, "]}"))
        return 0;
    *c = t;
    return 1;
}

/* Elements of a shape (a zero dimension makes 0 whatever the others), or 0 with *ok = 0
 * when the product reaches 2**62. */
static uint64_t
elements(const Entry *e, int *ok)
{
    uint64_t count = 1;
    int i;
    *ok = 1;
    for (i = 0; i < e->ndims; i++)
        if (e->dims[i] == 0)
            return 0;
    for (i = 0; i < e->ndims; i++) {
        if (count > (HUGE_COUNT - 1) / e->dims[i]) {
            *ok = 0;
            return 0;
        }
        count *= e->dims[i];
    }
    return count;
}

/* Append a new reference to `list` and drop ours; 0 on failure (an exception is set). */
static int
append_new(PyObject *list, PyObject *item)
{
    int rc;
    if (item == NULL)
        return 0;
    rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc == 0;
}

static PyObject *
shape_tuple(const Entry *e)
{
    PyObject *t = PyTuple_New(e->ndims);
    int i;
    if (t == NULL)
        return NULL;
    for (i = 0; i < e->ndims; i++) {
        PyObject *d = PyLong_FromUnsignedLongLong(e->dims[i]);
        if (d == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, d);
    }
    return t;
}

/* Shapes repeat: every LoRA module has the same few, and a checkpoint's blocks too. A
 * shape's tuple and its element count are kept in a small direct-mapped cache across
 * calls and shared (both are immutable), instead of made and freed per tensor. Bounded:
 * at most SHAPE_SLOTS tuples are kept, whatever the headers hold. The GIL is held
 * throughout, so calls never meet in it. */
#define CACHED_DIMS 6
#define SHAPE_SLOTS 4096

typedef struct {
    int ndims;
    uint64_t dims[CACHED_DIMS];
    PyObject *tuple; /* NULL: an empty slot */
    PyObject *count;
} ShapeSlot;

static ShapeSlot shape_cache[SHAPE_SLOTS];

/* New references to the shape's tuple and its element count (`count`); 0 on failure. */
static int
shape_objects(const Entry *e, uint64_t count, PyObject **tuple, PyObject **number)
{
    ShapeSlot *slot = NULL;
    PyObject *old_tuple, *old_count;
    if (e->ndims <= CACHED_DIMS) {
        uint64_t h = 14695981039346656037ULL ^ (uint64_t)e->ndims;
        int i;
        for (i = 0; i < e->ndims; i++) {
            h ^= e->dims[i];
            h *= 1099511628211ULL;
        }
        h ^= h >> 31;
        slot = &shape_cache[h & (SHAPE_SLOTS - 1)];
        if (slot->tuple != NULL && slot->ndims == e->ndims &&
            memcmp(slot->dims, e->dims, sizeof(uint64_t) * (size_t)e->ndims) == 0) {
            Py_INCREF(slot->tuple);
            Py_INCREF(slot->count);
            *tuple = slot->tuple;
            *number = slot->count;
            return 1;
        }
    }
    *tuple = shape_tuple(e);
    if (*tuple == NULL)
        return 0;
    *number = PyLong_FromUnsignedLongLong(count);
    if (*number == NULL) {
        Py_DECREF(*tuple);
        return 0;
    }
    if (slot != NULL) {
        old_tuple = slot->tuple;
        old_count = slot->count;
        slot->ndims = e->ndims;
        memcpy(slot->dims, e->dims, sizeof(uint64_t) * (size_t)e->ndims);
        Py_INCREF(*tuple);
        Py_INCREF(*number);
        slot->tuple = *tuple;
        slot->count = *number;
        Py_XDECREF(old_tuple);
        Py_XDECREF(old_count);
    }
    return 1;
}

/* Names repeat too, from file to file: every LoRA of one trainer and base has the same
 * module names, every checkpoint of one architecture the same keys. An ASCII name's str
 * is kept in a two-way set-associative cache across calls (a direct-mapped one had ~10
 * pairs of a LoRA's 793 names evict each other in every file), found by a hash of its
 * bytes and then compared in full, and shared: no decode, no allocation, and its str
 * hash (which the rows dict needs) is already computed. Bounded like the shape cache. */
#define NAME_SETS 16384

typedef struct {
    uint64_t hash;
    PyObject *name; /* NULL: an empty slot; else an ASCII str */
} NameSlot;

static NameSlot name_cache[NAME_SETS][2];

static uint64_t
bytes_hash(const unsigned char *p, Py_ssize_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n, w;
    while (n >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    w = 0;
    memcpy(&w, p, (size_t)n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 29);
}

static inline int
holds(const NameSlot *slot, uint64_t h, const unsigned char *key, Py_ssize_t klen)
{
    return slot->name != NULL && slot->hash == h && PyUnicode_GET_LENGTH(slot->name) == klen &&
           memcmp(PyUnicode_DATA(slot->name), key, (size_t)klen) == 0;
}

/* A new reference to the str of a name's UTF-8 bytes; NULL with an exception set. */
static PyObject *
name_object(const unsigned char *key, Py_ssize_t klen)
{
    uint64_t h = bytes_hash(key, klen);
    NameSlot *set = name_cache[h & (NAME_SETS - 1)];
    PyObject *name, *old;
    if (holds(&set[0], h, key, klen)) {
        Py_INCREF(set[0].name);
        return set[0].name;
    }
    if (holds(&set[1], h, key, klen)) {
        Py_INCREF(set[1].name);
        return set[1].name;
    }
    name = PyUnicode_DecodeUTF8((const char *)key, klen, NULL);
    if (name != NULL && PyUnicode_IS_ASCII(name)) {
        /* The newer of the two stays: the older is dropped, the new one takes its place. */
        old = set[1].name;
        set[1] = set[0];
        Py_INCREF(name);
        set[0].name = name;
        set[0].hash = h;
        Py_XDECREF(old);
    }
    return name;
}

/* Rows are numbered 0, 1, 2...: the numbers are made once and shared (Python keeps only
 * -5..256), instead of one new int per tensor of every file. */
#define ROW_INTS 16384

static PyObject *row_ints[ROW_INTS];

/* A new reference to the int `i`; NULL with an exception set. */
static PyObject *
row_int(Py_ssize_t i)
{
    if (i >= ROW_INTS)
        return PyLong_FromSsize_t(i);
    if (row_ints[i] == NULL && (row_ints[i] = PyLong_FromSsize_t(i)) == NULL)
        return NULL;
    Py_INCREF(row_ints[i]);
    return row_ints[i];
}

/* Whole lists of names repeat too: LoRAs of one trainer, base and layout list the same
 * modules in the same order, checkpoints of one architecture the same keys. The rows dict
 * (name -> row) of a file is kept as a template, with its names in order, found by a hash
 * of its first name's bytes and its count of '{' (see template_key). While a later
 * file's names have the template's bytes in the same order, each costs one comparison
 * (no cache lookup, no insertion), and a file whose names are all of the template's
 * shares its dict and its str objects. The dicts are never changed once made
 * (TensorColumns documents its rows as read-only). Bounded: TEMPLATE_SLOTS templates of
 * at most TEMPLATE_MAX names. */
#define TEMPLATE_SLOTS 64
#define TEMPLATE_MIN 8
#define TEMPLATE_MAX 8192

typedef struct {
    PyObject *names; /* a tuple of the (ASCII) names in row order; NULL: none kept */
    PyObject *rows;  /* the dict shared by the files that match */
    uint64_t key;    /* the key of the template kept (see template_key) */
    uint64_t seen;   /* the key of a file met once, with no template kept for it yet */
} Template;

static Template templates[TEMPLATE_SLOTS];

/* Whether the str `name` (ASCII) is spelled by these bytes. */
static inline int
spells(PyObject *name, const unsigned char *key, Py_ssize_t klen)
{
    return PyUnicode_GET_LENGTH(name) == klen &&
           memcmp(PyUnicode_DATA(name), key, (size_t)klen) == 0;
}

/* A template's key, from its first name and the '{' bytes of its header's entries: LoRAs
 * of one trainer start with the same name whatever modules they hold, and their counts of
 * entries tell most layouts apart. Never 0 (0 marks nothing seen). */
static uint64_t
template_key(const unsigned char *first, Py_ssize_t len, Py_ssize_t braces)
{
    uint64_t h = bytes_hash(first, len) ^ ((uint64_t)braces * 0x9E3779B97F4A7C15ULL);
    h ^= h >> 32;
    return h ? h : 1;
}

static Template *
template_slot(uint64_t key)
{
    return &templates[key & (TEMPLATE_SLOTS - 1)];
}

/* Keep `rows` (built for a file whose key is `key`) as a template, if its names are all
 * ASCII (compared as bytes) and files like it come again: a key met for the first time
 * is only noted, so a library of layouts that never repeat builds no templates (each
 * costs a tuple of its names and keeps its dict alive) and evicts none. */
static int
remember_template(PyObject *rows, uint64_t key_hash)
{
    Py_ssize_t n = PyDict_GET_SIZE(rows), pos = 0, i = 0;
    PyObject *names, *key, *value, *old_names, *old_rows;
    Template *slot = template_slot(key_hash);
    if (n < TEMPLATE_MIN || n > TEMPLATE_MAX)
        return 1;
    if (!(slot->names != NULL && slot->key == key_hash) && slot->seen != key_hash) {
        slot->seen = key_hash;
        return 1;
    }
    names = PyTuple_New(n);
    if (names == NULL)
        return 0;
    while (PyDict_Next(rows, &pos, &key, &value)) {
        if (!PyUnicode_IS_ASCII(key)) {
            Py_DECREF(names); /* (its unset items are NULL, which a tuple's free skips) */
            return 1;
        }
        Py_INCREF(key);
        PyTuple_SET_ITEM(names, i, key);
        i++;
    }
    old_names = slot->names;
    old_rows = slot->rows;
    Py_INCREF(rows);
    slot->names = names;
    slot->rows = rows;
    slot->key = key_hash;
    slot->seen = 0;
    Py_XDECREF(old_names);
    Py_XDECREF(old_rows);
    return 1;
}

/* The columns being built: a rows dict (or, while the names follow a template, only how
 * many of its names matched so far), the dtypes, shapes and element counts as lists, and
 * the offsets as packed pairs of unsigned 64-bit integers (nobody but a TensorInfo made
 * on demand reads them: no int objects per tensor). */
typedef struct {
    PyObject *rows;         /* NULL while following a template */
    PyObject *follow_names; /* the template the names have matched so far (references */
    PyObject *follow_rows;  /* held: a collection meanwhile may run code that replaces it) */
    Py_ssize_t matched;     /* how many of its names */
    PyObject *dtypes, *shapes, *counts;
    uint64_t *offsets;
    Py_ssize_t n, cap;      /* entries added; pairs `offsets` has room for */
    Py_ssize_t braces;      /* '{' bytes in the entries' text (with the first name: the key) */
    uint64_t key;           /* this file's template key (0: no entry yet) */
} Columns;

static void
columns_clear(Columns *cols)
{
    Py_CLEAR(cols->rows);
    Py_CLEAR(cols->follow_names);
    Py_CLEAR(cols->follow_rows);
    Py_CLEAR(cols->dtypes);
    Py_CLEAR(cols->shapes);
    Py_CLEAR(cols->counts);
    PyMem_Free(cols->offsets);
    cols->offsets = NULL;
}

/* Stop following the template: the rows dict from the names matched so far. */
static int
stop_following(Columns *cols)
{
    Py_ssize_t i;
    cols->rows = PyDict_New();
    if (cols->rows == NULL)
        return 0;
    for (i = 0; i < cols->matched; i++) {
        PyObject *row = row_int(i);
        int rc;
        if (row == NULL)
            return 0;
        rc = PyDict_SetItem(cols->rows, PyTuple_GET_ITEM(cols->follow_names, i), row);
        Py_DECREF(row);
        if (rc < 0)
            return 0;
    }
    Py_CLEAR(cols->follow_names);
    Py_CLEAR(cols->follow_rows);
    return 1;
}

/* The next name, spelled by `key`: 1 if it goes on following a template (nothing else to
 * do), 0 if it is for the rows dict (made here when needed), -1 on failure. */
static int
follow(Columns *cols, const unsigned char *key, Py_ssize_t klen)
{
    if (cols->n == 0) {
        Template *slot;
        cols->key = template_key(key, klen, cols->braces);
        slot = template_slot(cols->key);
        if (slot->names != NULL && slot->key == cols->key &&
            spells(PyTuple_GET_ITEM(slot->names, 0), key, klen)) {
            Py_INCREF(slot->names);
            Py_INCREF(slot->rows);
            cols->follow_names = slot->names;
            cols->follow_rows = slot->rows;
        }
        else {
            cols->rows = PyDict_New();
            return cols->rows == NULL ? -1 : 0;
        }
    }
    if (cols->follow_names == NULL)
        return 0;
    if (cols->matched < PyTuple_GET_SIZE(cols->follow_names) &&
        spells(PyTuple_GET_ITEM(cols->follow_names, cols->matched), key, klen)) {
        cols->matched++; /* the template's names are unique: never a duplicate */
        return 1;
    }
    return stop_following(cols) ? 0 : -1;
}

/* Put `name` (a new reference, dropped here) in the rows dict: 1, 0 when it came before
 * (the caller refuses), -1 on failure (an exception is set). */
static int
add_name(Columns *cols, PyObject *name)
{
    Py_ssize_t before = PyDict_GET_SIZE(cols->rows);
    PyObject *row = row_int(before);
    int rc;
    if (row == NULL) {
        Py_DECREF(name);
        return -1;
    }
    rc = PyDict_SetItem(cols->rows, name, row);
    Py_DECREF(row);
    Py_DECREF(name);
    if (rc < 0)
        return -1;
    return PyDict_GET_SIZE(cols->rows) != before;
}

/* The rows dict once every entry is in: the template's own when the names were all of
 * its names; else this file's, kept as a template for files like it. NULL on failure. */
static PyObject *
finish_rows(Columns *cols)
{
    PyObject *rows;
    if (cols->rows == NULL && cols->follow_names != NULL &&
        cols->matched == PyTuple_GET_SIZE(cols->follow_names)) {
        Py_INCREF(cols->follow_rows);
        return cols->follow_rows;
    }
    if (cols->rows == NULL) {
        if (cols->follow_names != NULL) { /* a prefix of the template's names */
            if (!stop_following(cols))
                return NULL;
        }
        else if ((cols->rows = PyDict_New()) == NULL) { /* no entries */
            return NULL;
        }
    }
    if (cols->key != 0 && !remember_template(cols->rows, cols->key))
        return NULL;
    rows = cols->rows;
    cols->rows = NULL;
    return rows;
}

/* The outcome of one entry: added, not accepted (None for the caller), or an error. */
enum { ADDED, REFUSED, FAILED };

static int
add_entry(Columns *cols, const unsigned char *key, Py_ssize_t klen, const Entry *e,
          uint64_t *last_end)
{
    int ok, added;
    uint64_t count = elements(e, &ok), size = dtypes[e->dtype].size;
    PyObject *name, *shape, *number;
    if (!ok || e->end < e->begin || e->begin < *last_end)
        return REFUSED;
    if (count > MAX_OFFSET / size || e->end - e->begin != count * size)
        return REFUSED;
    *last_end = e->end;
    if (same(key, klen, "__metadata__"))
        return REFUSED;
    added = follow(cols, key, klen);
    if (added < 0)
        return FAILED;
    if (!added) {
        name = name_object(key, klen);
        if (name == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                return FAILED;
            PyErr_Clear();
            return REFUSED;
        }
        added = add_name(cols, name);
        if (added < 0)
            return FAILED;
        if (!added) /* the name came before */
            return REFUSED;
    }
    if (PyList_Append(cols->dtypes, dtypes[e->dtype].name) < 0 ||
        !shape_objects(e, count, &shape, &number))
        return FAILED;
    if (!append_new(cols->shapes, shape)) { /* (append_new drops the reference it is given) */
        Py_DECREF(number);
        return FAILED;
    }
    if (!append_new(cols->counts, number))
        return FAILED;
    if (cols->n == cols->cap) {
        Py_ssize_t cap = cols->cap ? 2 * cols->cap : 256;
        uint64_t *grown = PyMem_Realloc(cols->offsets, (size_t)cap * 2 * sizeof(uint64_t));
        if (grown == NULL) {
            PyErr_NoMemory();
            return FAILED;
        }
        cols->offsets = grown;
        cols->cap = cap;
    }
    cols->offsets[2 * cols->n] = e->begin;
    cols->offsets[2 * cols->n + 1] = e->end;
    cols->n++;
    return ADDED;
}

/* read_entries(raw, start, after_comma, data_size) -> (rows, dtypes, shapes, offsets,
 * counts) | None */
static PyObject *
read_entries(PyObject *module, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t start;
    int after_comma;
    long long data_size;
    Cursor c;
    Entry e;
    Columns cols = {NULL};
    PyObject *rows = NULL, *offsets = NULL, *result = NULL;
    uint64_t last_end = 0;
    int outcome = REFUSED, more;

    if (!PyArg_ParseTuple(args, "y*npL:read_entries", &buf, &start, &after_comma, &data_size))
        return NULL;
    if (n_dtypes == 0 || start < 0 || start > buf.len)
        goto refused;
    c.p = (const unsigned char *)buf.buf + start;
    c.end = (const unsigned char *)buf.buf + buf.len;
    c.plain = all_plain(c.p, c.end, &cols.braces);
    if (start == 0 && !take(&c, '{'))
        goto refused;
    cols.dtypes = PyList_New(0);
    cols.shapes = PyList_New(0);
    cols.counts = PyList_New(0);
    if (cols.dtypes == NULL || cols.shapes == NULL || cols.counts == NULL)
        goto failed;
    /* After the metadata's ',' an entry must follow; else the object may be empty. */
    more = after_comma || !take(&c, '}');
    while (more) {
        const unsigned char *key;
        Py_ssize_t klen;
        if (!take_string(&c, &key, &klen) || !take(&c, ':') ||
            !((c.plain && take_compact_entry(&c, &e)) || take_entry(&c, &e)))
            goto refused;
        outcome = add_entry(&cols, key, klen, &e, &last_end);
        if (outcome == FAILED)
            goto failed;
        if (outcome == REFUSED)
            goto refused;
        if (!take(&c, ',')) {
            if (!take(&c, '}'))
                goto refused;
            more = 0;
        }
    }
    skip_ws(&c);
    if (c.p != c.end || (data_size < 0 || last_end > (uint64_t)data_size))
        goto refused;
    rows = finish_rows(&cols);
    if (rows == NULL)
        goto failed;
    offsets = PyBytes_FromStringAndSize((const char *)cols.offsets,
                                        cols.n * 2 * (Py_ssize_t)sizeof(uint64_t));
    if (offsets == NULL)
        goto failed;
    result = PyTuple_Pack(5, rows, cols.dtypes, cols.shapes, offsets, cols.counts);
    if (result == NULL)
        goto failed;
    Py_DECREF(rows);
    Py_DECREF(offsets);
    columns_clear(&cols);
    PyBuffer_Release(&buf);
    return result;

refused:
    columns_clear(&cols);
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
failed:
    Py_XDECREF(rows);
    Py_XDECREF(offsets);
    columns_clear(&cols);
    PyBuffer_Release(&buf);
    return NULL;
}

/* configure(sizes: dict[str, float]): the dtype names and element sizes to accept. Names
 * whose size is not a whole number of bytes are left to the Python paths. */
static PyObject *
configure(PyObject *module, PyObject *sizes)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    int i;
    if (!PyDict_Check(sizes)) {
        PyErr_SetString(PyExc_TypeError, "configure() takes a dict of dtype sizes");
        return NULL;
    }
    for (i = 0; i < n_dtypes; i++)
        Py_CLEAR(dtypes[i].name);
    n_dtypes = 0;
    while (PyDict_Next(sizes, &pos, &key, &value)) {
        double size;
        Py_ssize_t len;
        const char *text;
        if (!PyUnicode_CheckExact(key))
            continue;
        size = PyFloat_AsDouble(value);
        if (size == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(size == 1 || size == 2 || size == 4 || size == 8))
            continue;
        text = PyUnicode_AsUTF8AndSize(key, &len);
        if (text == NULL)
            return NULL;
        if (n_dtypes == MAX_DTYPES) {
            PyErr_SetString(PyExc_ValueError, "configure(): too many dtypes");
            return NULL;
        }
        Py_INCREF(key);
        dtypes[n_dtypes].name = key;
        dtypes[n_dtypes].text = text; /* kept alive by the reference above */
        dtypes[n_dtypes].len = len;
        dtypes[n_dtypes].size = (uint64_t)size;
        n_dtypes++;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"read_entries", read_entries, METH_VARARGS,
     "read_entries(raw, start, after_comma, data_size) -> columns | None\n\n"
     "The entries of a well-formed safetensors header from byte `start` (0: the whole\n"
     "object; else just after the metadata member's ',' or at the object's closing '}'),\n"
     "checked against `data_size` bytes of tensor data: (rows, dtypes, shapes, offsets,\n"
     "counts), offsets packed as native unsigned 64-bit (begin, end) pairs, or None when\n"
     "anything is not what this reader accepts. Files with the same names in the same\n"
     "order may share one rows dict: never change it."},
    {"configure", configure, METH_O,
     "configure(sizes) -> None\n\nThe dtype names and their element sizes in bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_stheader",
    "The tensor entries of a well-formed safetensors header, read and checked in C.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__stheader(void)
{
    return PyModule_Create(&module);
}
