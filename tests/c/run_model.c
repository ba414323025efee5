/*
 * run_model: load a .mote model through the C API, run it on raw inputs, print the output.
 *
 *   run_model MODEL.mote INPUT0.raw [INPUT1.raw ...] [--out OUT.raw] [--ref REF.raw] [--tol T]
 *
 * Each INPUTk.raw holds graph input k exactly as the model wants it (row-major, native-endian,
 * of the input's dtype; float32 for most models): no header, no .npy. The model is opened
 * twice: from a 16-byte aligned buffer on a caller arena (what firmware does), and by path
 * (mmap) on an owned arena when the library was built with std; the two outputs must agree
 * bit for bit. Output 0 is printed; --out writes it raw; --ref compares it (float32) against
 * a raw reference: |got - ref| <= T * max(1, max |ref|) for every element (T = 1e-4 unless
 * given). Exit status: 0 ok, 1 mismatch, 2 usage or API error.
 */
#include "mote.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUTS 16

/* Reads a whole file into a 16-byte aligned buffer (what mote_model_open_buffer needs). */
static void *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    size_t cap = ((size_t)n + 15) / 16 * 16;
    void *buf = aligned_alloc(16, cap ? cap : 16);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int api_error(const char *what, mote_status st, const char *detail) {
    fprintf(stderr, "%s: %s (status %d): %s\n", what, mote_status_str(st), (int)st, detail);
    return 2;
}

static const char *dtype_name(mote_dtype d) {
    switch (d) {
    case MOTE_DTYPE_F32: return "float32";
    case MOTE_DTYPE_F16: return "float16";
    case MOTE_DTYPE_I8: return "int8";
    case MOTE_DTYPE_U8: return "uint8";
    case MOTE_DTYPE_I32: return "int32";
    case MOTE_DTYPE_I64: return "int64";
    case MOTE_DTYPE_BOOL: return "bool";
    default: return "?";
    }
}

static void print_info(const char *kind, size_t i, const mote_tensor_info *t) {
    printf("%s %zu: %.*s %s [", kind, i, (int)t->name_len, t->name, dtype_name(t->dtype));
    for (size_t d = 0; d < t->rank; d++) {
        printf(d ? ", %zu" : "%zu", t->dims[d]);
    }
    printf("] (%zu bytes)\n", t->byte_size);
}

/* Sets every input, runs, and copies output 0 into a fresh buffer. */
static int run_session(mote_session *s, const mote_model *m, void **inputs, size_t *input_lens,
                       size_t n_inputs, void **out, size_t *out_len) {
    mote_status st;
    for (size_t i = 0; i < n_inputs; i++) {
        st = mote_session_set_input(s, i, inputs[i], input_lens[i]);
        if (st != MOTE_STATUS_OK) return api_error("mote_session_set_input", st, mote_session_last_error(s));
    }
    st = mote_session_run(s);
    if (st != MOTE_STATUS_OK) return api_error("mote_session_run", st, mote_session_last_error(s));
    mote_tensor_info info;
    st = mote_model_output_info(m, 0, &info);
    if (st != MOTE_STATUS_OK) return api_error("mote_model_output_info", st, "");
    *out = malloc(info.byte_size ? info.byte_size : 1);
    if (!*out) return 2;
    st = mote_session_get_output(s, 0, *out, info.byte_size);
    if (st != MOTE_STATUS_OK) return api_error("mote_session_get_output", st, mote_session_last_error(s));
    *out_len = info.byte_size;
    return 0;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *out_path = NULL, *ref_path = NULL;
    const char *input_paths[MAX_INPUTS];
    size_t n_inputs = 0;
    double tol = 1e-4;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--out") && a + 1 < argc) {
            out_path = argv[++a];
        } else if (!strcmp(argv[a], "--ref") && a + 1 < argc) {
            ref_path = argv[++a];
        } else if (!strcmp(argv[a], "--tol") && a + 1 < argc) {
            tol = atof(argv[++a]);
        } else if (!model_path) {
            model_path = argv[a];
        } else if (n_inputs < MAX_INPUTS) {
            input_paths[n_inputs++] = argv[a];
        } else {
            fprintf(stderr, "too many inputs\n");
            return 2;
        }
    }
    if (!model_path) {
        fprintf(stderr, "usage: %s MODEL.mote INPUT.raw... [--out OUT.raw] [--ref REF.raw] [--tol T]\n", argv[0]);
        return 2;
    }
    if (mote_abi_version() != MOTE_ABI_VERSION) {
        fprintf(stderr, "mote.h is ABI %d, the library ABI %u\n", MOTE_ABI_VERSION, mote_abi_version());
        return 2;
    }
    printf("mote %s\n", mote_version());

    /* 1. The buffer API on a caller arena: no allocation inside the library. */
    size_t model_len = 0;
    void *model_bytes = read_file(model_path, &model_len);
    if (!model_bytes) return 2;
    static mote_model model; /* storage: opaque, never copied while open */
    mote_status st = mote_model_open_buffer(&model, model_bytes, model_len);
    if (st != MOTE_STATUS_OK) return api_error("mote_model_open_buffer", st, mote_model_last_error(&model));

    size_t n_in = 0, n_out = 0, arena_len = 0;
    if ((st = mote_model_input_count(&model, &n_in)) != MOTE_STATUS_OK ||
        (st = mote_model_output_count(&model, &n_out)) != MOTE_STATUS_OK ||
        (st = mote_model_arena_size_min(&model, &arena_len)) != MOTE_STATUS_OK) {
        return api_error("model query", st, "");
    }
    if (n_in != n_inputs) {
        fprintf(stderr, "the model has %zu inputs, %zu files given\n", n_in, n_inputs);
        return 2;
    }
    void *inputs[MAX_INPUTS];
    size_t input_lens[MAX_INPUTS];
    for (size_t i = 0; i < n_in; i++) {
        mote_tensor_info info;
        if ((st = mote_model_input_info(&model, i, &info)) != MOTE_STATUS_OK) return api_error("mote_model_input_info", st, "");
        print_info("input", i, &info);
        inputs[i] = read_file(input_paths[i], &input_lens[i]);
        if (!inputs[i]) return 2;
    }
    for (size_t i = 0; i < n_out; i++) {
        mote_tensor_info info;
        if ((st = mote_model_output_info(&model, i, &info)) != MOTE_STATUS_OK) return api_error("mote_model_output_info", st, "");
        print_info("output", i, &info);
    }
    printf("arena: %zu bytes\n", arena_len);

    void *arena = malloc(arena_len);
    if (!arena) return 2;
    static mote_session session;
    st = mote_session_open(&session, &model, arena, arena_len);
    if (st != MOTE_STATUS_OK) return api_error("mote_session_open", st, mote_session_last_error(&session));
    void *out = NULL;
    size_t out_len = 0;
    int rc = run_session(&session, &model, inputs, input_lens, n_in, &out, &out_len);
    if (rc) return rc;
    mote_session_free(&session);
    mote_model_free(&model);
    free(arena);

    /* 2. The path API (mmap) on an owned arena, where the build has std. */
    static mote_model mapped;
    st = mote_model_open_path(&mapped, model_path);
    if (st == MOTE_STATUS_UNSUPPORTED) {
        printf("path API: not in this build (no std)\n");
    } else if (st != MOTE_STATUS_OK) {
        return api_error("mote_model_open_path", st, mote_model_last_error(&mapped));
    } else {
        static mote_session owned;
        st = mote_session_open_owned(&owned, &mapped);
        if (st != MOTE_STATUS_OK) return api_error("mote_session_open_owned", st, mote_session_last_error(&owned));
        void *out2 = NULL;
        size_t out2_len = 0;
        rc = run_session(&owned, &mapped, inputs, input_lens, n_in, &out2, &out2_len);
        if (rc) return rc;
        if (out2_len != out_len || memcmp(out, out2, out_len) != 0) {
            fprintf(stderr, "the path API gave another output than the buffer API\n");
            return 1;
        }
        printf("path API: same output\n");
        free(out2);
        mote_session_free(&owned);
        mote_model_free(&mapped);
    }

    size_t n_f32 = out_len / sizeof(float);
    printf("output 0:");
    for (size_t i = 0; i < n_f32 && i < 16; i++) {
        float v;
        memcpy(&v, (const char *)out + i * sizeof(float), sizeof v);
        printf(" %.6g", v);
    }
    printf(n_f32 > 16 ? " ...\n" : "\n");

    if (out_path) {
        FILE *f = fopen(out_path, "wb");
        if (!f || fwrite(out, 1, out_len, f) != out_len || fclose(f) != 0) {
            fprintf(stderr, "cannot write %s\n", out_path);
            return 2;
        }
    }
    if (ref_path) {
        size_t ref_len = 0;
        float *ref = read_file(ref_path, &ref_len);
        if (!ref) return 2;
        if (ref_len != out_len) {
            fprintf(stderr, "reference has %zu bytes, output %zu\n", ref_len, out_len);
            return 1;
        }
        const float *got = out;
        double scale = 1.0, max_diff = 0.0;
        for (size_t i = 0; i < n_f32; i++) scale = fmax(scale, fabs(ref[i]));
        for (size_t i = 0; i < n_f32; i++) {
            double d = fabs((double)got[i] - (double)ref[i]);
            if (!(d <= tol * scale)) {
                fprintf(stderr, "element %zu: got %.9g, reference %.9g (tolerance %g)\n", i, got[i], ref[i], tol * scale);
                return 1;
            }
            max_diff = fmax(max_diff, d);
        }
        printf("matches the reference: max abs diff %.3g (tolerance %.3g)\n", max_diff, tol * scale);
        free(ref);
    }
    free(out);
    for (size_t i = 0; i < n_in; i++) free(inputs[i]);
    free(model_bytes);
    return 0;
}
