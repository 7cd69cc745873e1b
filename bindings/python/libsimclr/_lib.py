"""Finds and loads libsimclr.so.MAJOR, checks its version, declares every C signature.

Signatures are written below as the C prototypes of include/simclr.h and turned
into ctypes declarations at import; tests/python/test_bindings_sync.py checks
that this text matches the header, so the two cannot drift apart silently.
Functions the loaded library does not export (layers not built yet, an older
minor version) become stubs that raise Unsupported when called.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import threading
from typing import Any, Callable, Dict, List, Optional

from .errors import LibraryVersionError, StateError, Unsupported, exception_for

#: The header version these bindings were written for: the library must have
#: the same major and a minor at least this one.
BINDINGS_VERSION = (0, 2, 0)
SONAME = "libsimclr.so.%d" % BINDINGS_VERSION[0]

PROTOTYPES = """
    unsigned simclr_version_number(void);
    const char * simclr_version_string(void);
    const char * simclr_status_string(simclr_status status);
    const char * simclr_last_error(void);
    simclr_status simclr_error_set(simclr_status status, const char *message);
    simclr_status simclr_context_create(const char *backend, int n_threads, const simclr_allocator *allocator, simclr_context **out);
    void simclr_context_destroy(simclr_context *ctx);
    const char * simclr_context_backend(const simclr_context *ctx);
    int simclr_context_threads(const simclr_context *ctx);
    const char * simclr_context_isa(const simclr_context *ctx);
    int simclr_isa_supported(const char *isa);
    int simclr_backend_count(void);
    const char * simclr_backend_name(int index);
    simclr_status simclr_context_set_log(simclr_context *ctx, simclr_log_fn fn, void *user, simclr_log_level max_level);
    simclr_status simclr_context_set_progress(simclr_context *ctx, simclr_progress_fn fn, void *user);
    simclr_status simclr_context_set_progress_cancel(simclr_context *ctx, simclr_progress_cancel_fn fn, void *user);
    simclr_status simclr_context_set(simclr_context *ctx, simclr_context_param key, double value);
    simclr_status simclr_context_get(const simclr_context *ctx, simclr_context_param key, double *value);
    simclr_status simclr_context_parallel_for(simclr_context *ctx, int64_t n, int64_t grain, simclr_task_fn fn, void *user);
    simclr_status simclr_tensor_create(simclr_context *ctx, simclr_dtype dtype, int ndim, const int64_t *shape, simclr_tensor **out);
    simclr_status simclr_tensor_wrap(simclr_context *ctx, simclr_dtype dtype, int ndim, const int64_t *shape, void *data, simclr_tensor **out);
    void simclr_tensor_destroy(simclr_tensor *t);
    int simclr_tensor_ndim(const simclr_tensor *t);
    int64_t simclr_tensor_dim(const simclr_tensor *t, int axis);
    int simclr_tensor_dtype(const simclr_tensor *t);
    int64_t simclr_tensor_numel(const simclr_tensor *t);
    size_t simclr_tensor_bytes(const simclr_tensor *t);
    void * simclr_tensor_data(simclr_tensor *t);
    simclr_status simclr_tensor_copy_from(simclr_tensor *t, const void *src, size_t bytes);
    simclr_status simclr_tensor_copy_to(const simclr_tensor *t, void *dst, size_t bytes);
    simclr_status simclr_tensor_reshape(simclr_tensor *t, int ndim, const int64_t *shape);
    simclr_status simclr_image_list_create(simclr_context *ctx, int64_t channels, simclr_image_list **out);
    void simclr_image_list_destroy(simclr_image_list *list);
    simclr_status simclr_image_list_clear(simclr_image_list *list);
    simclr_status simclr_image_list_add(simclr_image_list *list, const uint8_t *pixels, int64_t height, int64_t width);
    int64_t simclr_image_list_count(const simclr_image_list *list);
    int64_t simclr_image_list_channels(const simclr_image_list *list);
    simclr_status simclr_image_list_size(const simclr_image_list *list, int64_t index, int64_t *height, int64_t *width);
    simclr_status simclr_image_list_add_tensor(simclr_image_list *list, const simclr_tensor *images);
    void simclr_module_destroy(simclr_module *m);
    int64_t simclr_module_output_dim(const simclr_module *m);
    const char * simclr_module_arch(const simclr_module *m);
    simclr_status simclr_module_forward(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y);
    simclr_status simclr_module_backward(simclr_module *m, const simclr_tensor *dy, simclr_tensor *dx);
    simclr_status simclr_module_zero_grad(simclr_module *m);
    int simclr_module_param_count(const simclr_module *m);
    int64_t simclr_module_param_scalars(const simclr_module *m);
    simclr_status simclr_module_param(simclr_module *m, int index, const char **name, simclr_tensor **value, simclr_tensor **grad, int *flags);
    simclr_status simclr_module_momentum_update(simclr_module *target, const simclr_module *source, double momentum);
    simclr_status simclr_resnet_create_v2(simclr_context *ctx, int depth, int64_t width, int64_t in_channels, simclr_stem stem, uint64_t seed, simclr_module **out);
    simclr_status simclr_resnet_create(simclr_context *ctx, int depth, int width, int in_channels, simclr_stem stem, uint64_t seed, simclr_module **out);
    simclr_status simclr_vit_create(simclr_context *ctx, int64_t image_size, int64_t patch_size, int64_t in_channels, int64_t hidden_dim, int depth, int heads, int64_t mlp_dim, simclr_vit_pool pool, uint64_t seed, simclr_module **out);
    simclr_status simclr_vit_create_preset(simclr_context *ctx, simclr_vit_preset preset, int64_t in_channels, uint64_t seed, simclr_module **out);
    simclr_status simclr_mlp_head_create_v2(simclr_context *ctx, int64_t in_dim, int64_t hidden_dim, int64_t out_dim, int n_layers, int batch_norm, uint64_t seed, simclr_module **out);
    simclr_status simclr_mlp_head_create(simclr_context *ctx, int in_dim, int hidden_dim, int out_dim, int n_layers, int batch_norm, uint64_t seed, simclr_module **out);
    simclr_status simclr_linear_head_create(simclr_context *ctx, int64_t in_dim, int n_classes, uint64_t seed, simclr_module **out);
    simclr_status simclr_augment_create_v2(simclr_context *ctx, simclr_augment_preset preset, int64_t out_h, int64_t out_w, simclr_augment **out);
    simclr_status simclr_augment_create(simclr_context *ctx, simclr_augment_preset preset, int out_h, int out_w, simclr_augment **out);
    void simclr_augment_destroy(simclr_augment *aug);
    simclr_status simclr_augment_set(simclr_augment *aug, simclr_augment_param key, double value);
    simclr_status simclr_augment_get(const simclr_augment *aug, simclr_augment_param key, double *value);
    simclr_status simclr_augment_bounds(simclr_augment_param key, double *lo, double *hi);
    simclr_status simclr_augment_apply(simclr_augment *aug, const simclr_tensor *images, uint64_t seed, int view, simclr_tensor *out);
    simclr_status simclr_augment_pair(simclr_augment *aug, const simclr_tensor *images, uint64_t seed, simclr_tensor *view0, simclr_tensor *view1);
    simclr_status simclr_augment_apply_list(simclr_augment *aug, const simclr_image_list *images, uint64_t seed, int view, simclr_tensor *out);
    simclr_status simclr_augment_pair_list(simclr_augment *aug, const simclr_image_list *images, uint64_t seed, simclr_tensor *view0, simclr_tensor *view1);
    simclr_status simclr_ntxent_create(simclr_context *ctx, double temperature, int n_views, simclr_loss **out);
    void simclr_loss_destroy(simclr_loss *loss);
    simclr_status simclr_loss_forward(simclr_loss *loss, const simclr_tensor *z, float *value, float *accuracy);
    simclr_status simclr_loss_backward(simclr_loss *loss, simclr_tensor *dz);
    simclr_status simclr_cross_entropy_create(simclr_context *ctx, int n_classes, simclr_loss **out);
    simclr_status simclr_distill_create(simclr_context *ctx, int n_classes, double temperature, simclr_loss **out);
    simclr_status simclr_loss_set(simclr_loss *loss, simclr_loss_param key, double value);
    simclr_status simclr_loss_get(const simclr_loss *loss, simclr_loss_param key, double *value);
    simclr_status simclr_loss_forward_labels(simclr_loss *loss, const simclr_tensor *logits, const int32_t *labels, int64_t n_labels, float *value, float *accuracy);
    simclr_status simclr_loss_forward_distill(simclr_loss *loss, const simclr_tensor *student, const simclr_tensor *teacher, const int32_t *labels, int64_t n_labels, float *value, float *accuracy);
    simclr_status simclr_optimizer_create(simclr_context *ctx, simclr_optimizer_kind kind, simclr_module *const *modules, int n_modules, simclr_optimizer **out);
    void simclr_optimizer_destroy(simclr_optimizer *opt);
    simclr_status simclr_optimizer_set(simclr_optimizer *opt, simclr_optimizer_param key, double value);
    simclr_status simclr_optimizer_get(const simclr_optimizer *opt, simclr_optimizer_param key, double *value);
    simclr_status simclr_optimizer_lr(const simclr_optimizer *opt, double *lr);
    simclr_status simclr_optimizer_step(simclr_optimizer *opt);
    int simclr_optimizer_state_count(const simclr_optimizer *opt);
    simclr_status simclr_optimizer_state(simclr_optimizer *opt, int index, const char **name, simclr_tensor **value);
    double simclr_lr_linear_scaling(double base, int64_t batch);
    double simclr_lr_sqrt_scaling(double base, int64_t batch);
    simclr_status simclr_trainer_create(simclr_context *ctx, simclr_module *encoder, simclr_module *head, simclr_augment *aug, simclr_loss *loss, simclr_optimizer *opt, simclr_trainer **out);
    void simclr_trainer_destroy(simclr_trainer *tr);
    simclr_status simclr_trainer_step(simclr_trainer *tr, const simclr_tensor *images, uint64_t seed, float *loss);
    simclr_status simclr_trainer_step_list(simclr_trainer *tr, const simclr_image_list *images, uint64_t seed, float *loss);
    simclr_status simclr_trainer_stat(const simclr_trainer *tr, simclr_trainer_stat_key key, double *value);
    simclr_status simclr_finetune_trainer_create(simclr_context *ctx, simclr_module *encoder, simclr_module *head, simclr_augment *aug, simclr_loss *loss, simclr_optimizer *opt, simclr_trainer **out);
    simclr_status simclr_trainer_step_labels(simclr_trainer *tr, const simclr_tensor *images, const int32_t *labels, int64_t n_labels, uint64_t seed, float *loss);
    simclr_status simclr_trainer_step_distill(simclr_trainer *tr, const simclr_tensor *images, simclr_module *teacher_encoder, simclr_module *teacher_head, const int32_t *labels, int64_t n_labels, uint64_t seed, float *loss);
    simclr_status simclr_comm_validate(const simclr_comm *comm);
    simclr_status simclr_comm_single(simclr_comm *out);
    simclr_status simclr_trainer_set(simclr_trainer *tr, simclr_trainer_param key, double value);
    simclr_status simclr_trainer_get(const simclr_trainer *tr, simclr_trainer_param key, double *value);
    simclr_status simclr_trainer_set_comm(simclr_trainer *tr, const simclr_comm *comm);
    simclr_status simclr_moco_trainer_create(simclr_context *ctx, simclr_module *encoder, simclr_module *head, simclr_module *key_encoder, simclr_module *key_head, simclr_augment *aug, simclr_optimizer *opt, int64_t queue_size, uint64_t seed, simclr_trainer **out);
    simclr_status simclr_moco_set(simclr_trainer *tr, simclr_moco_param key, double value);
    simclr_status simclr_moco_get(const simclr_trainer *tr, simclr_moco_param key, double *value);
    simclr_status simclr_moco_queue(simclr_trainer *tr, simclr_tensor **queue);
    simclr_status simclr_moco_key_order(const simclr_trainer *tr, int64_t *order, int64_t n);
    simclr_status simclr_swav_prototypes_create(simclr_context *ctx, int64_t dim, int64_t k, uint64_t seed, simclr_module **out);
    simclr_status simclr_swav_trainer_create(simclr_context *ctx, simclr_module *encoder, simclr_module *head, simclr_module *prototypes, simclr_augment *aug, simclr_optimizer *opt, simclr_trainer **out);
    simclr_status simclr_swav_set(simclr_trainer *tr, simclr_swav_param key, double value);
    simclr_status simclr_swav_get(const simclr_trainer *tr, simclr_swav_param key, double *value);
    simclr_status simclr_dataset_open_idx(simclr_context *ctx, const char *images_path, const char *labels_path, simclr_dataset **out);
    simclr_status simclr_dataset_open_cifar(simclr_context *ctx, const char *const *paths, int n_paths, int cifar100, simclr_dataset **out);
    void simclr_dataset_destroy(simclr_dataset *ds);
    int64_t simclr_dataset_count(const simclr_dataset *ds);
    simclr_status simclr_dataset_shape(const simclr_dataset *ds, int64_t *height, int64_t *width, int64_t *channels);
    const int32_t * simclr_dataset_labels(const simclr_dataset *ds);
    int simclr_dataset_class_count(const simclr_dataset *ds);
    simclr_status simclr_dataset_batch(const simclr_dataset *ds, const int64_t *indices, int64_t n, simclr_tensor *out);
    simclr_status simclr_label_subset_fraction(simclr_context *ctx, const int32_t *labels, int64_t n_labels, int n_classes, double fraction, uint64_t seed, int64_t *indices, int64_t capacity, int64_t *count);
    simclr_status simclr_label_subset_per_class(simclr_context *ctx, const int32_t *labels, int64_t n_labels, int n_classes, int64_t per_class, uint64_t seed, int64_t *indices, int64_t capacity, int64_t *count);
    simclr_status simclr_label_subset_save(simclr_context *ctx, const char *path, const int64_t *indices, int64_t count, int64_t n_labels, double fraction, int64_t per_class, uint64_t seed);
    simclr_status simclr_label_subset_load(simclr_context *ctx, const char *path, int64_t n_labels, int64_t *indices, int64_t capacity, int64_t *count, uint64_t *seed, double *fraction, int64_t *per_class);
    simclr_status simclr_module_save(const simclr_module *m, const char *path);
    simclr_status simclr_module_load(simclr_module *m, const char *path);
    simclr_status simclr_trainer_save(const simclr_trainer *tr, const char *path);
    simclr_status simclr_trainer_load(simclr_trainer *tr, const char *path);
    simclr_status simclr_module_export_safetensors(const simclr_module *m, const char *path);
    simclr_status simclr_module_import_safetensors(simclr_module *m, const char *path);
    simclr_status simclr_export_classifier_safetensors(const simclr_module *encoder, const simclr_module *head, const char *path);
    simclr_status simclr_extract_features(simclr_module *encoder, const simclr_dataset *ds, simclr_augment *aug, int64_t batch_size, simclr_tensor *out);
    simclr_status simclr_embedder_create(simclr_context *ctx, const simclr_module *encoder, int64_t out_h, int64_t out_w, simclr_embedder **out);
    void simclr_embedder_destroy(simclr_embedder *emb);
    simclr_status simclr_embedder_set(simclr_embedder *emb, simclr_embedder_param key, double value);
    simclr_status simclr_embedder_get(const simclr_embedder *emb, simclr_embedder_param key, double *value);
    simclr_status simclr_embedder_run(simclr_embedder *emb, const simclr_image_list *images, simclr_tensor *out);
    simclr_status simclr_classifier_create(simclr_context *ctx, const simclr_module *encoder, const simclr_module *head, int64_t out_h, int64_t out_w, simclr_classifier **out);
    void simclr_classifier_destroy(simclr_classifier *clf);
    simclr_status simclr_classifier_set(simclr_classifier *clf, simclr_classifier_param key, double value);
    simclr_status simclr_classifier_get(const simclr_classifier *clf, simclr_classifier_param key, double *value);
    simclr_status simclr_classifier_run(simclr_classifier *clf, const simclr_image_list *images, simclr_tensor *probs);
    simclr_status simclr_classifier_topk(simclr_classifier *clf, const simclr_image_list *images, int k, int32_t *classes, float *probs, int64_t n_out);
    simclr_status simclr_classifier_evaluate(simclr_classifier *clf, const simclr_image_list *images, const int32_t *labels, int64_t n_labels, double *accuracy, int64_t *confusion, int64_t n_confusion, double *recall, int64_t n_recall);
    simclr_status simclr_knn_eval_n(simclr_context *ctx, const simclr_tensor *train, const int32_t *train_labels, int64_t n_train_labels, const simclr_tensor *test, const int32_t *test_labels, int64_t n_test_labels, int n_classes, int k, double temperature, double *top1);
    simclr_status simclr_knn_eval(simclr_context *ctx, const simclr_tensor *train, const int32_t *train_labels, const simclr_tensor *test, const int32_t *test_labels, int n_classes, int k, double temperature, double *top1);
    simclr_status simclr_linear_probe_n(simclr_context *ctx, const simclr_tensor *train, const int32_t *train_labels, int64_t n_train_labels, const simclr_tensor *test, const int32_t *test_labels, int64_t n_test_labels, int n_classes, int epochs, double weight_decay, double *top1);
    simclr_status simclr_linear_probe(simclr_context *ctx, const simclr_tensor *train, const int32_t *train_labels, const simclr_tensor *test, const int32_t *test_labels, int n_classes, int epochs, double weight_decay, double *top1);
    simclr_status simclr_linear_probe_select(simclr_context *ctx, const simclr_tensor *train, const int32_t *train_labels, int64_t n_train_labels, const simclr_tensor *test, const int32_t *test_labels, int64_t n_test_labels, int n_classes, int epochs, const double *decays, int n_decays, double *top1, double *chosen_decay);
    simclr_status simclr_classification_metrics(const int32_t *predicted, const int32_t *labels, int64_t n, int n_classes, double *accuracy, int64_t *confusion, int64_t n_confusion, double *recall, int64_t n_recall);
"""

# ---------------------------------------------------------------- C types --

_ENUMS = {"simclr_status", "simclr_dtype", "simclr_stem", "simclr_mode", "simclr_augment_preset",
          "simclr_augment_param", "simclr_optimizer_kind", "simclr_optimizer_param", "simclr_trainer_stat_key",
          "simclr_moco_param", "simclr_swav_param", "simclr_log_level", "simclr_bn_mode", "simclr_trainer_param",
          "simclr_context_param", "simclr_conv_algo", "simclr_embedder_param", "simclr_vit_pool",
          "simclr_vit_preset", "simclr_loss_param", "simclr_classifier_param",
          # the older names, aliases of the same types in the header
          "simclr_aug_preset", "simclr_aug_param", "simclr_opt_kind", "simclr_opt_param", "simclr_stat",
          "simclr_ctx_param", "simclr_embed_param"}
_HANDLES = {"simclr_context", "simclr_tensor", "simclr_module", "simclr_augment", "simclr_loss",
            "simclr_optimizer", "simclr_trainer", "simclr_dataset", "simclr_image_list",
            "simclr_embedder", "simclr_classifier"}

LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
PROGRESS_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64, ctypes.c_int64)
#: simclr_progress_cancel_fn (0.2): returns nonzero to stop the call.
PROGRESS_CANCEL_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64, ctypes.c_int64)
TASK_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int)
ALLOC_FN = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t)
FREE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


class Allocator(ctypes.Structure):
    """struct simclr_allocator (frozen forever in the header)."""
    _fields_ = [("alloc", ALLOC_FN), ("free", FREE_FN), ("user", ctypes.c_void_p)]


COMM_RANK_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
COMM_REDUCE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64)
COMM_GATHER_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64,
                                  ctypes.POINTER(ctypes.c_float))
COMM_BCAST_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64,
                                 ctypes.c_int)
COMM_ERROR_FN = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int)


class Comm(ctypes.Structure):
    """struct simclr_comm (frozen forever in the header)."""
    _fields_ = [("rank", COMM_RANK_FN), ("size", COMM_RANK_FN), ("all_reduce_sum", COMM_REDUCE_FN),
                ("all_gather", COMM_GATHER_FN), ("broadcast", COMM_BCAST_FN), ("error_string", COMM_ERROR_FN),
                ("user", ctypes.c_void_p)]


_SCALARS = {
    "void": None, "unsigned": ctypes.c_uint, "int": ctypes.c_int, "int64_t": ctypes.c_int64,
    "uint64_t": ctypes.c_uint64, "size_t": ctypes.c_size_t, "double": ctypes.c_double,
    "float": ctypes.c_float, "int32_t": ctypes.c_int32, "uint8_t": ctypes.c_uint8,
}
_CALLBACKS = {"simclr_log_fn": LOG_FN, "simclr_progress_fn": PROGRESS_FN,
              "simclr_progress_cancel_fn": PROGRESS_CANCEL_FN, "simclr_task_fn": TASK_FN}


def ctype_of(decl: str) -> Any:
    """Maps a C parameter or return type (name removed) to a ctypes type.

    Input data pointers (shapes, buffers, label arrays, arrays of handles or
    strings) become c_void_p so callers pass NumPy addresses or ctypes arrays
    alike; pointers to non-const scalars are outputs and keep a POINTER type;
    handle pointers are c_void_p and handle outputs POINTER(c_void_p)."""
    d = " ".join(decl.replace("*", " * ").split())
    stars = d.count("*")
    const_array = "* const *" in d  # T *const *: an input array of T*
    base_t = (re.sub(r"\bconst\b|\*", " ", d).split() or ["void"])[0]
    if base_t in _CALLBACKS and stars == 0:
        return _CALLBACKS[base_t]
    if base_t == "simclr_allocator" and stars == 1:
        return ctypes.POINTER(Allocator)
    if base_t == "simclr_comm" and stars == 1:
        return ctypes.POINTER(Comm)
    if base_t == "char":
        if stars == 1:
            return ctypes.c_char_p
        return ctypes.c_void_p if const_array else ctypes.POINTER(ctypes.c_char_p)
    if base_t in _HANDLES:
        if stars == 1 or const_array:
            return ctypes.c_void_p
        return ctypes.POINTER(ctypes.c_void_p)
    if base_t in _ENUMS:
        scalar = ctypes.c_int
    elif base_t in _SCALARS:
        scalar = _SCALARS[base_t]
    else:
        raise TypeError("no ctypes mapping for C type %r" % decl)
    if stars == 0:
        return scalar
    if scalar is None or d.startswith("const"):
        return ctypes.c_void_p
    return ctypes.POINTER(scalar)


def parse_prototypes(text: str) -> List[Dict[str, Any]]:
    """[{name, ret, params: [(type, name)]}] from C prototypes (comments removed)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    if "SIMCLR_API" in text:  # the header itself: declarations start at the macro
        pat = r"^SIMCLR_API\s+([^;(]*?)\b(simclr_\w+)\s*\(([^)]*)\)\s*;"
    else:
        pat = r"^\s*([A-Za-z_][\w \t\*]*?)\b(simclr_\w+)\s*\(([^)]*)\)\s*;"
    out = []
    for m in re.finditer(pat, text, flags=re.M):
        ret = " ".join(m.group(1).replace("SIMCLR_API", "").split())
        params = []
        raw = " ".join(m.group(3).split())
        if raw and raw != "void":
            for p in raw.split(","):
                p = p.strip()
                pm = re.match(r"(.*?)(\w+)$", p)
                params.append((" ".join(pm.group(1).split()), pm.group(2)))
        out.append({"name": m.group(2), "ret": ret, "params": params})
    return out


# ---------------------------------------------------------------- loading --

def _candidates() -> List[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    paths = []
    env = os.environ.get("SIMCLR_LIBRARY")
    if env:
        paths.append(env)
    paths.append(os.path.join(here, SONAME))
    # Running from the source tree: bindings/python/libsimclr -> <repo>/lib.
    paths.append(os.path.normpath(os.path.join(here, "..", "..", "..", "lib", SONAME)))
    return paths


def _load() -> ctypes.CDLL:
    tried = []
    env = os.environ.get("SIMCLR_LIBRARY")
    for path in _candidates():
        if os.path.exists(path):
            return ctypes.CDLL(path)
        tried.append(path)
        if env and path == env:
            raise LibraryVersionError("SIMCLR_LIBRARY=%s does not exist" % env)
    found = ctypes.util.find_library("simclr")
    for name in ([SONAME] + ([found] if found else [])):
        try:
            return ctypes.CDLL(name)
        except OSError:
            tried.append(name)
    raise LibraryVersionError(
        "libsimclr not found (tried %s); build it with `make lib`, install it with "
        "`make install`, or set SIMCLR_LIBRARY to the .so" % ", ".join(tried))


cdll = _load()
#: Path or name the library was loaded from.
library_path: str = cdll._name

_tls = threading.local()


def _check(result: int, func: Any, args: Any) -> int:
    if result != 0:
        msg = cdll.simclr_last_error().decode("utf-8", "replace")
        raise exception_for(result, msg or cdll.simclr_status_string(result).decode(), func.__name__)
    return result


class _Missing:
    """Stand-in for a function the loaded library does not export."""

    def __init__(self, name: str) -> None:
        self.__name__ = name

    def __call__(self, *args: Any) -> Any:
        raise Unsupported("%s is not exported by %s (version %s): this layer is not built yet"
                          % (self.__name__, library_path, version_string()), 7, self.__name__)


class _Functions:
    """Attribute access to every declared C function (ctypes or _Missing)."""


fn = _Functions()
SIGNATURES = parse_prototypes(PROTOTYPES)
for _sig in SIGNATURES:
    _f: Callable[..., Any]
    try:
        _cf = getattr(cdll, _sig["name"])
    except AttributeError:
        setattr(fn, _sig["name"][len("simclr_"):], _Missing(_sig["name"]))
        continue
    _cf.restype = ctype_of(_sig["ret"])
    _cf.argtypes = [ctype_of(t) for t, _ in _sig["params"]]
    if _sig["ret"] == "simclr_status":
        _cf.errcheck = _check
    setattr(fn, _sig["name"][len("simclr_"):], _cf)


def has(name: str) -> bool:
    """True when the loaded library exports the C function `name` (with or without prefix)."""
    if not name.startswith("simclr_"):
        name = "simclr_" + name
    return hasattr(cdll, name)


def version_number() -> int:
    return int(cdll.simclr_version_number())


def version_string() -> str:
    return cdll.simclr_version_string().decode()


def _check_version() -> None:
    v = version_number()
    major, minor = v // 10000, (v // 100) % 100
    if major != BINDINGS_VERSION[0] or minor < BINDINGS_VERSION[1]:
        raise LibraryVersionError(
            "%s is libsimclr %s; these bindings need %d.%d or a later %d.x"
            % (library_path, version_string(), BINDINGS_VERSION[0], BINDINGS_VERSION[1],
               BINDINGS_VERSION[0]))


_check_version()


def last_error() -> str:
    """simclr_last_error() of the calling thread."""
    return cdll.simclr_last_error().decode("utf-8", "replace")


def status_string(status: int) -> str:
    return cdll.simclr_status_string(int(status)).decode()


def closed_error(what: str) -> StateError:
    return StateError("%s is closed" % what, 8, "")
