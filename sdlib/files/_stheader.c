/*
 * sdlib.files._stheader: the tensor entries of a well-formed safetensors header, read and
 * checked in one pass in C (the optional compiled half of sdlib/files/safetensors.py).
 *
 * A first scan reads millions of entries; in Python each costs a struct, its members and
 * a dozen column passes. Here an entry costs the objects the classifier keeps (its name,
 * shape and offsets) and nothing else.
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
 * Every read is bounds-checked against the buffer; nothing here recurses or allocates
 * but Python objects (freed on every failure).
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
 * header, which the compiler vectorises, instead of two tests per byte of every string). */
static int
all_plain(const unsigned char *p, const unsigned char *end)
{
    unsigned char bad = 0;
    for (; p < end; p++)
        bad |= (unsigned char)((*p < 0x20) | (*p == '\\'));
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
 * is at most `max` (< 2**64). Up to 19 digits cannot overflow 64 bits. */
static int
take_uint(Cursor *c, uint64_t max, uint64_t *out)
{
    const unsigned char *p, *first;
    uint64_t v = 0;
    skip_ws(c);
    p = first = c->p;
    if (p >= c->end || *p < '0' || *p > '9')
        return 0;
    if (*p == '0') {
        p++;
    }
    else {
        while (p < c->end && *p >= '0' && *p <= '9') {
            if (p - first == 19)
                return 0;
            v = v * 10 + (uint64_t)(*p - '0');
            p++;
        }
    }
    if (v > max)
        return 0;
    if (p < c->end && (*p == '.' || *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9')))
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
 * is kept in a direct-mapped cache across calls, found by a hash of its bytes and then
 * compared in full, and shared: no decode, no allocation, and its str hash (which the
 * rows dict needs) is already computed; files with the same names then hold the same
 * objects, which later comparisons of whole name lists find by identity. Bounded like
 * the shape cache. */
#define NAME_SLOTS 32768

typedef struct {
    uint64_t hash;
    PyObject *name; /* NULL: an empty slot; else an ASCII str */
} NameSlot;

static NameSlot name_cache[NAME_SLOTS];

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

/* A new reference to the str of a name's UTF-8 bytes; NULL with an exception set. */
static PyObject *
name_object(const unsigned char *key, Py_ssize_t klen)
{
    uint64_t h = bytes_hash(key, klen);
    NameSlot *slot = &name_cache[h & (NAME_SLOTS - 1)];
    PyObject *name, *old;
    if (slot->name != NULL && slot->hash == h && PyUnicode_GET_LENGTH(slot->name) == klen &&
        memcmp(PyUnicode_DATA(slot->name), key, (size_t)klen) == 0) {
        Py_INCREF(slot->name);
        return slot->name;
    }
    name = PyUnicode_DecodeUTF8((const char *)key, klen, NULL);
    if (name != NULL && PyUnicode_IS_ASCII(name)) {
        old = slot->name;
        Py_INCREF(name);
        slot->name = name;
        slot->hash = h;
        Py_XDECREF(old);
    }
    return name;
}

/* The outcome of one entry: added, not accepted (None for the caller), or an error. */
enum { ADDED, REFUSED, FAILED };

static int
add_entry(PyObject **cols, const unsigned char *key, Py_ssize_t klen, const Entry *e,
          uint64_t *last_end)
{
    int ok;
    uint64_t count = elements(e, &ok), size = dtypes[e->dtype].size;
    Py_ssize_t before;
    PyObject *name, *row, *shape, *number;
    if (!ok || e->end < e->begin || e->begin < *last_end)
        return REFUSED;
    if (count > MAX_OFFSET / size || e->end - e->begin != count * size)
        return REFUSED;
    *last_end = e->end;
    if (same(key, klen, "__metadata__"))
        return REFUSED;
    name = name_object(key, klen);
    if (name == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
            return FAILED;
        PyErr_Clear();
        return REFUSED;
    }
    before = PyDict_GET_SIZE(cols[0]);
    row = PyLong_FromSsize_t(before);
    if (row == NULL || PyDict_SetItem(cols[0], name, row) < 0) {
        Py_XDECREF(row);
        Py_DECREF(name);
        return FAILED;
    }
    Py_DECREF(row);
    Py_DECREF(name);
    if (PyDict_GET_SIZE(cols[0]) == before) /* the name came before */
        return REFUSED;
    if (PyList_Append(cols[1], dtypes[e->dtype].name) < 0 ||
        !shape_objects(e, count, &shape, &number))
        return FAILED;
    if (!append_new(cols[2], shape)) { /* (append_new drops the reference it is given) */
        Py_DECREF(number);
        return FAILED;
    }
    if (!append_new(cols[5], number))
        return FAILED;
    if (!append_new(cols[3], PyLong_FromUnsignedLongLong(e->begin)) ||
        !append_new(cols[4], PyLong_FromUnsignedLongLong(e->end)))
        return FAILED;
    return ADDED;
}

#define N_COLUMNS 6

/* read_entries(raw, start, after_comma, data_size) -> (rows, dtypes, shapes, begins, ends,
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
    PyObject *cols[N_COLUMNS] = {NULL};
    PyObject *result = NULL;
    uint64_t last_end = 0;
    int i, outcome = REFUSED, more;

    if (!PyArg_ParseTuple(args, "y*npL:read_entries", &buf, &start, &after_comma, &data_size))
        return NULL;
    if (n_dtypes == 0 || start < 0 || start > buf.len)
        goto refused;
    c.p = (const unsigned char *)buf.buf + start;
    c.end = (const unsigned char *)buf.buf + buf.len;
    c.plain = all_plain(c.p, c.end);
    if (start == 0 && !take(&c, '{'))
        goto refused;
    cols[0] = PyDict_New();
    for (i = 1; i < N_COLUMNS; i++)
        cols[i] = PyList_New(0);
    for (i = 0; i < N_COLUMNS; i++)
        if (cols[i] == NULL)
            goto failed;
    /* After the metadata's ',' an entry must follow; else the object may be empty. */
    more = after_comma || !take(&c, '}');
    while (more) {
        const unsigned char *key;
        Py_ssize_t klen;
        if (!take_string(&c, &key, &klen) || !take(&c, ':') ||
            !((c.plain && take_compact_entry(&c, &e)) || take_entry(&c, &e)))
            goto refused;
        outcome = add_entry(cols, key, klen, &e, &last_end);
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
    result = PyTuple_New(N_COLUMNS);
    if (result == NULL)
        goto failed;
    for (i = 0; i < N_COLUMNS; i++) {
        PyTuple_SET_ITEM(result, i, cols[i]);
        cols[i] = NULL;
    }
    PyBuffer_Release(&buf);
    return result;

refused:
    for (i = 0; i < N_COLUMNS; i++)
        Py_XDECREF(cols[i]);
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
failed:
    for (i = 0; i < N_COLUMNS; i++)
        Py_XDECREF(cols[i]);
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
     "checked against `data_size` bytes of tensor data: (rows, dtypes, shapes, begins,\n"
     "ends, counts), or None when anything is not what this reader accepts."},
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
